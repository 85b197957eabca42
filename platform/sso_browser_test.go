package platform_test

import (
	"testing"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/internal/oidctest"
)

// ssoBrowserEnv runs a real OpenID provider for the browser tests (web/e2e/signin.test.mjs) until the test ends,
// has the platform's admin send the domain sso.example to it, and returns what the tests need to know of it.
func ssoBrowserEnv(t *testing.T, admin *apitest.Client, platformURL string) []string {
	t.Helper()
	idp := oidctest.Start(t)
	idp.AddClient("flowyard-browser", "browser-client-secret", platformURL+"/api/v1/auth/sso/callback")
	idp.AddUser(oidctest.User{Email: "alice@sso.example", EmailVerified: true, Name: "Alice SSO"})
	idp.AddUser(oidctest.User{Email: "unverified@sso.example", Name: "Not Verified"})
	admin.Must(201, "POST", "/api/v1/sso-configurations", map[string]any{"domain": "sso.example", "issuerUrl": idp.URL,
		"clientId": "flowyard-browser", "clientSecret": "browser-client-secret"})
	return []string{"FLOWYARD_SSO_DOMAIN=sso.example", "FLOWYARD_SSO_EMAIL=alice@sso.example", "FLOWYARD_SSO_NAME=Alice SSO",
		"FLOWYARD_SSO_UNVERIFIED_EMAIL=unverified@sso.example"}
}
