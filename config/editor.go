package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// dnsLabel is one label of a host name, in lower case.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// resolveEditorDomain gives EditorDomain its default and checks it. Each instance's editor gets the origin
// <instance id>.<editor domain> (26 characters and a dot before the domain), so that a node module's editor
// script reaches neither the platform nor another instance's editor (docs/ARCHITECTURE.md §12).
func (c *Config) resolveEditorDomain() error {
	public, err := url.Parse(c.PublicURL)
	if err != nil || public.Hostname() == "" {
		return fmt.Errorf("--public-url=%q is not a URL", c.PublicURL)
	}
	publicHost := strings.ToLower(public.Hostname())
	if c.EditorDomain == "" {
		c.EditorDomain = defaultEditorDomain(publicHost)
	}
	c.EditorDomain = strings.ToLower(strings.Trim(c.EditorDomain, "."))
	labels := strings.Split(c.EditorDomain, ".")
	if len(labels) < 2 || len(c.EditorDomain) > 253-27 || net.ParseIP(c.EditorDomain) != nil {
		return fmt.Errorf("--editor-domain=%q must be a domain name of two labels or more, such as editor.example.com", c.EditorDomain)
	}
	for _, l := range labels {
		if !dnsLabel.MatchString(l) {
			return fmt.Errorf("--editor-domain=%q: %q is not a DNS label", c.EditorDomain, l)
		}
	}
	if publicHost == c.EditorDomain || strings.HasSuffix(publicHost, "."+c.EditorDomain) {
		return fmt.Errorf("--editor-domain=%q holds the public URL's host %q: the platform must not be served on an editor's origin; use a domain of its own, such as editor.%s",
			c.EditorDomain, publicHost, publicHost)
	}
	return nil
}

// defaultEditorDomain is editor.localhost when the platform is reached at an IP address or at localhost (every
// browser, and curl, resolves each *.localhost name to loopback, so `flowyard dev` needs no DNS), and
// editor.<public host> otherwise.
func defaultEditorDomain(publicHost string) string {
	if net.ParseIP(publicHost) != nil || publicHost == "localhost" || strings.HasSuffix(publicHost, ".localhost") {
		return "editor.localhost"
	}
	return "editor." + publicHost
}
