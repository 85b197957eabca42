package config

import (
	"fmt"
	"net/url"
	"strings"
)

// resolveAppsDomain gives AppsDomain its default and checks it. Each instance's flows serve their http-in routes
// (and Dashboard 2) at the root of <instance name>.<apps domain>, an origin of its own served by the API
// (docs/ARCHITECTURE.md §12). The apps domain and the editor domain must not hold one another: a host would
// otherwise name both an editor and an app.
func (c *Config) resolveAppsDomain() error {
	public, err := url.Parse(c.PublicURL)
	if err != nil || public.Hostname() == "" {
		return fmt.Errorf("--public-url=%q is not a URL", c.PublicURL)
	}
	publicHost := strings.ToLower(public.Hostname())
	if c.AppsDomain == "" {
		c.AppsDomain = defaultOriginDomain("apps", publicHost)
	}
	if c.AppsDomain, err = checkOriginDomain("apps-domain", "apps", c.AppsDomain, publicHost); err != nil {
		return err
	}
	if under(c.AppsDomain, c.EditorDomain) || under(c.EditorDomain, c.AppsDomain) {
		return fmt.Errorf("--apps-domain=%q and --editor-domain=%q overlap: each needs a domain of its own, such as apps.example.com and editor.example.com",
			c.AppsDomain, c.EditorDomain)
	}
	return nil
}

// under tells whether name is domain or a name below it.
func under(name, domain string) bool {
	return domain != "" && (name == domain || strings.HasSuffix(name, "."+domain))
}
