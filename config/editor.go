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
	c.EditorDomain, err = checkOriginDomain("editor-domain", "editor", c.EditorDomain, publicHost)
	return err
}

// checkOriginDomain normalises a domain under which the API serves origins of their own (<label>.<domain>) and
// checks it: a domain name of two labels or more, not holding the platform's own host.
func checkOriginDomain(flag, example, domainName, publicHost string) (string, error) {
	domainName = strings.ToLower(strings.Trim(domainName, "."))
	labels := strings.Split(domainName, ".")
	if len(labels) < 2 || len(domainName) > 253-64 || net.ParseIP(domainName) != nil {
		return "", fmt.Errorf("--%s=%q must be a domain name of two labels or more, such as %s.example.com", flag, domainName, example)
	}
	for _, l := range labels {
		if !dnsLabel.MatchString(l) {
			return "", fmt.Errorf("--%s=%q: %q is not a DNS label", flag, domainName, l)
		}
	}
	if publicHost == domainName || strings.HasSuffix(publicHost, "."+domainName) {
		return "", fmt.Errorf("--%s=%q holds the public URL's host %q: the platform must not be served on an instance's origin; use a domain of its own, such as %s.%s",
			flag, domainName, publicHost, example, publicHost)
	}
	return domainName, nil
}

// defaultEditorDomain is editor.localhost when the platform is reached at an IP address or at localhost (every
// browser, and curl, resolves each *.localhost name to loopback, so `flowyard dev` needs no DNS), and
// editor.<public host> otherwise.
func defaultEditorDomain(publicHost string) string {
	return defaultOriginDomain("editor", publicHost)
}

// defaultOriginDomain is <first>.localhost for a public URL on an IP address or under localhost, and
// <first>.<public host> otherwise.
func defaultOriginDomain(first, publicHost string) string {
	if net.ParseIP(publicHost) != nil || publicHost == "localhost" || strings.HasSuffix(publicHost, ".localhost") {
		return first + ".localhost"
	}
	return first + "." + publicHost
}
