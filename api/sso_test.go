package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/internal/oidctest"
)

const (
	ssoDomain       = "corp.example"
	ssoClientID     = "flowyard-web"
	ssoClientSecret = "the-client-secret-of-flowyard"
)

// ssoWorld is a world whose platform sends corp.example to a real OpenID provider running in the test.
type ssoWorld struct {
	*world
	idp      *oidctest.Provider
	configID string
}

func testSealer(t *testing.T) *domain.Sealer {
	t.Helper()
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	return sealer
}

func newSSOWorld(t *testing.T, dialect string) *ssoWorld {
	t.Helper()
	sealer := testSealer(t)
	w := &ssoWorld{world: newWorld(t, dialect, func(d *api.Deps) { d.Sealer = sealer }), idp: oidctest.Start(t)}
	w.idp.AddClient(ssoClientID, ssoClientSecret, w.env.URL+"/api/v1/auth/sso/callback")
	for _, u := range []oidctest.User{{Email: "alice@corp.example", EmailVerified: true, Name: "Alice Corp"},
		{Email: "bob@corp.example", EmailVerified: true, Name: "Bob Corp"},
		{Email: "root@corp.example", EmailVerified: true, Name: "Root"},
		{Email: "unverified@corp.example", EmailVerified: false, Name: "Not Verified"},
		{Email: "intruder@elsewhere.example", EmailVerified: true, Name: "From Elsewhere"}} {
		w.idp.AddUser(u)
	}
	w.configID = w.admin.Must(201, "POST", "/api/v1/sso-configurations", map[string]any{"domain": ssoDomain, "issuerUrl": w.idp.URL,
		"clientId": ssoClientID, "clientSecret": ssoClientSecret}).String("id")
	return w
}

// ssoSignIn walks a browser through the provider as email and returns the platform's answer to the callback.
func (w *ssoWorld) ssoSignIn(t *testing.T, c *apitest.Client, email string, before func(*url.URL)) *http.Response {
	t.Helper()
	res := w.idp.SignIn(t, c.HTTP(), w.env.URL+"/api/v1/auth/sso/start?email="+url.QueryEscape(email), email, before)
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func signedInAs(t *testing.T, c *apitest.Client) map[string]any {
	t.Helper()
	return c.Must(200, "GET", "/api/v1/user", nil).Body
}

func countUsers(t *testing.T, w *world) int {
	t.Helper()
	n, err := w.env.Store.CountUsers(context.Background())
	require.NoError(t, err)
	return n
}

// TestSSOFirstSignInCreatesTheAccountAndTheNextReusesIt: an address of the domain that has no account signs in
// through the provider; the account is made (named as the provider says, with no password) and signed in, and
// a later sign-in from another browser reaches the same account. The landing path stays on the platform.
func TestSSOFirstSignInCreatesTheAccountAndTheNextReusesIt(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSSOWorld(t, dialect)
		before := countUsers(t, w.world)
		first := w.env.Client(t)
		res := w.ssoSignIn(t, first, "alice@corp.example", nil)
		require.Equal(t, 303, res.StatusCode)
		assert.Equal(t, "/", res.Header.Get("Location"))
		me := signedInAs(t, first)
		assert.Equal(t, "alice@corp.example", me["email"])
		assert.Equal(t, "Alice Corp", me["name"])
		assert.Equal(t, false, me["admin"])
		assert.Equal(t, before+1, countUsers(t, w.world))
		u, err := w.env.Store.GetUserByEmail(context.Background(), "alice@corp.example")
		require.NoError(t, err)
		assert.Empty(t, u.PasswordHash, "an account made by single sign-on has no password")

		second := w.env.Client(t)
		res = w.idp.SignIn(t, second.HTTP(), w.env.URL+"/api/v1/auth/sso/start?email=alice%40corp.example&next=%2Fteams%2Fx%3Fy%3D1", "alice@corp.example", nil)
		defer res.Body.Close()
		assert.Equal(t, "/teams/x?y=1", res.Header.Get("Location"))
		assert.Equal(t, me["id"], signedInAs(t, second)["id"], "the same account")
		assert.Equal(t, before+1, countUsers(t, w.world))
		signedInAs(t, first) // both sessions stand

		offsite := w.env.Client(t)
		res = w.idp.SignIn(t, offsite.HTTP(), w.env.URL+"/api/v1/auth/sso/start?email=alice%40corp.example&next=%2F%2Fevil.example%2F", "alice@corp.example", nil)
		defer res.Body.Close()
		assert.Equal(t, "/", res.Header.Get("Location"), "no landing on another site")
	})
}

// TestSSORefusesWhatItMustNotTrust: a forged state, a callback without the sign-in's cookie, an ID token with
// another nonce, audience or issuer, an expired one, an address the provider has not verified and an address of
// another domain are each refused with their own code, sign no one in and write nothing.
func TestSSORefusesWhatItMustNotTrust(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSSOWorld(t, dialect)
		cases := []struct {
			name, email, code string
			detail            string // what the envelope's detail names
			status            int
			tamper            oidctest.Tamper
			before            func(*url.URL)
		}{
			{name: "forged state", email: "alice@corp.example", code: "sso_state_invalid", status: 400, before: setQuery("state", "forged")},
			{name: "nonce of another sign-in", email: "alice@corp.example", code: "sso_nonce_mismatch", status: 401, tamper: oidctest.Tamper{Nonce: "another-sign-in"}},
			{name: "token for another client", email: "alice@corp.example", code: "sso_token_invalid", detail: "audience", status: 401, tamper: oidctest.Tamper{Audience: []string{"another-client"}}},
			{name: "expired token", email: "alice@corp.example", code: "sso_token_expired", status: 401, tamper: oidctest.Tamper{Lifetime: -time.Minute}},
			{name: "another issuer", email: "alice@corp.example", code: "sso_token_invalid", detail: "impostor", status: 401, tamper: oidctest.Tamper{Issuer: "http://127.0.0.1:1/impostor"}},
			{name: "unverified address", email: "unverified@corp.example", code: "sso_email_unverified", status: 403},
			{name: "address of another domain", email: "intruder@elsewhere.example", code: "sso_email_other_domain", status: 403},
			{name: "code that was never issued", email: "alice@corp.example", code: "sso_exchange_failed", status: 401, before: setQuery("code", "made-up")},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				w.idp.SetTamper(tc.tamper)
				defer w.idp.SetTamper(oidctest.Tamper{})
				before := dump(t, w.env.Store)
				c := w.env.Client(t)
				// The provider signs in whom it is told to; the platform was asked for an address of its domain.
				res := w.idp.SignIn(t, c.HTTP(), w.env.URL+"/api/v1/auth/sso/start?email=alice%40corp.example", tc.email, tc.before)
				defer res.Body.Close()
				got := decodeEnvelope(t, res)
				assert.Equal(t, tc.status, res.StatusCode, "%v", got)
				assert.Equal(t, tc.code, got["code"])
				assert.NotEmpty(t, got["message"])
				if tc.detail != "" {
					assert.Contains(t, got["detail"], tc.detail)
				}
				assert.Equal(t, 401, c.Do("GET", "/api/v1/user", nil).Status, "no one is signed in")
				assert.Equal(t, before, dump(t, w.env.Store), "nothing is written")
			})
		}
		t.Run("callback without the sign-in's cookie", func(t *testing.T) {
			c := w.env.Client(t)
			var callback *url.URL
			res := w.ssoSignIn(t, c, "alice@corp.example", func(u *url.URL) { sent := *u; callback = &sent; u.RawQuery = "" })
			require.NotNil(t, callback)
			assert.Equal(t, 400, res.StatusCode)
			other := w.env.Client(t) // another browser, say one an attacker sent the link to
			r := other.Do("GET", strings.TrimPrefix(callback.String(), w.env.URL), nil)
			assert.Equal(t, 400, r.Status)
			assert.Equal(t, "sso_state_invalid", r.String("code"))
			assert.Equal(t, 401, other.Do("GET", "/api/v1/user", nil).Status)
		})
	})
}

func setQuery(key, value string) func(*url.URL) {
	return func(u *url.URL) {
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
	}
}

// TestSSOSendsABrowserBackToTheSignInPage: a browser (which asks for HTML) that the callback refuses lands on the
// sign-in page with the refusal's code, rather than on a JSON document.
func TestSSOSendsABrowserBackToTheSignInPage(t *testing.T) {
	w := newSSOWorld(t, "sqlite")
	c := w.env.Client(t)
	browser := *c.HTTP()
	browser.Transport = acceptHTML{}
	w.idp.SetTamper(oidctest.Tamper{Nonce: "another-sign-in"})
	res := w.idp.SignIn(t, &browser, w.env.URL+"/api/v1/auth/sso/start?email=alice%40corp.example", "alice@corp.example", nil)
	defer res.Body.Close()
	assert.Equal(t, 303, res.StatusCode)
	assert.Equal(t, "/signin?sso_error=sso_nonce_mismatch", res.Header.Get("Location"))
}

type acceptHTML struct{}

func (acceptHTML) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	return http.DefaultTransport.RoundTrip(r)
}

// TestSSODomainUsersSignInOnlyThroughTheirProvider: a password sign-in at an address of the domain is refused
// alike whether the password is right or wrong, for an account made before the configuration and for one made by
// single sign-on; a platform admin of the domain still signs in with the right password (break-glass), and only
// with it; an address of another domain is not affected. The older account reaches its provider and stays itself.
func TestSSODomainUsersSignInOnlyThroughTheirProvider(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSSOWorld(t, dialect)
		for _, u := range []struct {
			email string
			admin bool
		}{{"bob@corp.example", false}, {"root@corp.example", true}} {
			w.admin.Must(201, "POST", "/api/v1/users", map[string]any{"email": u.email, "name": u.email, "password": testPassword, "admin": u.admin})
		}
		w.ssoSignIn(t, w.env.Client(t), "alice@corp.example", nil)
		anon := w.env.Client(t)
		login := func(email, password string) *apitest.Response {
			return anon.Do("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": password})
		}
		for _, attempt := range [][2]string{{"bob@corp.example", testPassword}, {"bob@corp.example", "wrong password!"},
			{"alice@corp.example", "anything at all"}, {"nobody@corp.example", testPassword}, {"root@corp.example", "wrong password!"}} {
			r := login(attempt[0], attempt[1])
			assert.Equal(t, 401, r.Status, attempt)
			assert.Equal(t, "sso_required", r.String("code"), attempt)
		}
		assert.Equal(t, 401, anon.Do("GET", "/api/v1/user", nil).Status)

		admin := w.env.Client(t)
		admin.Login("root@corp.example", testPassword)
		assert.Equal(t, true, signedInAs(t, admin)["admin"], "break-glass: the admin signs in with the password")
		w.byRole["member"].Must(200, "GET", "/api/v1/user", nil)
		w.env.Client(t).Login("member@example.com", testPassword) // another domain: as before

		bob := w.env.Client(t)
		res := w.ssoSignIn(t, bob, "bob@corp.example", nil)
		assert.Equal(t, 303, res.StatusCode)
		bobID, err := w.env.Store.GetUserByEmail(context.Background(), "bob@corp.example")
		require.NoError(t, err)
		assert.Equal(t, bobID.ID, signedInAs(t, bob)["id"], "the account made before single sign-on is reused")
	})
}

// TestSSOConfigurations: only platform admins manage configurations; bad fields, an issuer that does not answer
// and one whose discovery names another issuer are refused with nothing stored; a domain is configured once; the
// secret is stored sealed and never shown; a change without a secret keeps it, a wrong secret makes sign-ins
// fail at the exchange, and removing the configuration gives the domain its passwords back.
func TestSSOConfigurations(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSSOWorld(t, dialect)
		body := func(domain, issuer string) map[string]any {
			return map[string]any{"domain": domain, "issuerUrl": issuer, "clientId": ssoClientID, "clientSecret": ssoClientSecret}
		}
		for _, role := range []string{"owner", "member", "anonymous"} {
			assert.Contains(t, []int{401, 403}, w.byRole[role].Do("POST", "/api/v1/sso-configurations", body("other.example", w.idp.URL)).Status, role)
			assert.Contains(t, []int{401, 403}, w.byRole[role].Do("GET", "/api/v1/sso-configurations", nil).Status, role)
		}
		before := dump(t, w.env.Store)
		bad := w.admin.Do("POST", "/api/v1/sso-configurations", map[string]any{"domain": "not a domain", "issuerUrl": "http://login.example.com", "clientId": "", "clientSecret": ""})
		assert.Equal(t, 400, bad.Status)
		assert.ElementsMatch(t, []string{"domain", "issuerUrl", "clientId", "clientSecret"}, fieldsOf(bad), string(bad.Raw))
		unreachable := w.admin.Do("POST", "/api/v1/sso-configurations", body("other.example", "http://127.0.0.1:1"))
		assert.Equal(t, 422, unreachable.Status)
		assert.Equal(t, "sso_issuer_unreachable", unreachable.String("code"))
		assert.NotEmpty(t, unreachable.String("detail"), "says what went wrong")
		mismatch := w.admin.Do("POST", "/api/v1/sso-configurations", body("other.example", w.idp.URL+"/"))
		assert.Equal(t, 422, mismatch.Status)
		assert.Equal(t, "sso_issuer_mismatch", mismatch.String("code"))
		assert.Contains(t, string(mismatch.Raw), w.idp.URL, "names the issuer to use")
		taken := w.admin.Do("POST", "/api/v1/sso-configurations", body("Corp.Example", w.idp.URL))
		assert.Equal(t, 409, taken.Status)
		assert.Equal(t, "sso_domain_taken", taken.String("code"))
		assert.Equal(t, before, dump(t, w.env.Store), "refusals store nothing")

		listed := w.admin.Must(200, "GET", "/api/v1/sso-configurations", nil)
		assert.NotContains(t, string(listed.Raw), ssoClientSecret, "the secret is never shown")
		item := listed.Body["items"].([]any)[0].(map[string]any)
		assert.Equal(t, true, item["clientSecretSet"])
		assert.Equal(t, w.env.URL+"/api/v1/auth/sso/callback", item["redirectUri"])
		for table, rows := range dump(t, w.env.Store) {
			assert.NotContains(t, strings.Join(rows, "\n"), ssoClientSecret, "%s holds the secret in clear", table)
		}

		item1 := "/api/v1/sso-configurations/" + w.configID
		w.admin.Must(200, "PATCH", item1, map[string]any{"clientId": ssoClientID})
		assert.Equal(t, 303, w.ssoSignIn(t, w.env.Client(t), "alice@corp.example", nil).StatusCode, "the secret stayed")
		w.admin.Must(200, "PATCH", item1, map[string]any{"clientSecret": "not-the-secret"})
		res := w.ssoSignIn(t, w.env.Client(t), "alice@corp.example", nil)
		assert.Equal(t, "sso_exchange_failed", decodeEnvelope(t, res)["code"])

		lookup := w.env.Client(t).Must(200, "GET", "/api/v1/auth/sso/lookup?email=bob%40corp.example", nil)
		assert.Equal(t, true, lookup.Body["sso"])
		assert.Equal(t, "/api/v1/auth/sso/start?email=bob%40corp.example", lookup.String("startUrl"))
		assert.Equal(t, false, w.env.Client(t).Must(200, "GET", "/api/v1/auth/sso/lookup?email=member%40example.com", nil).Body["sso"])
		assert.Equal(t, 400, w.env.Client(t).Do("GET", "/api/v1/auth/sso/lookup?email=nope", nil).Status)

		w.admin.Must(201, "POST", "/api/v1/users", map[string]any{"email": "bob@corp.example", "name": "Bob", "password": testPassword})
		w.admin.Must(204, "DELETE", item1, nil)
		assert.Equal(t, 404, w.admin.Do("GET", item1, nil).Status)
		assert.Equal(t, false, w.env.Client(t).Must(200, "GET", "/api/v1/auth/sso/lookup?email=bob%40corp.example", nil).Body["sso"])
		w.env.Client(t).Login("bob@corp.example", testPassword)
	})
}

// TestSSOSignInSpansReplicas: the sign-in begins on one API replica and its callback reaches another, which
// holds nothing of it in memory: the sealed cookie carries what the callback checks.
func TestSSOSignInSpansReplicas(t *testing.T) {
	w := newSSOWorld(t, "sqlite")
	sealer := testSealer(t)
	other := apitest.Serve(t, w.env.Store, func(d *api.Deps) { d.Sealer = sealer })
	c := w.env.Client(t)
	res := w.ssoSignIn(t, c, "alice@corp.example", func(u *url.URL) { u.Host = strings.TrimPrefix(other.URL, "http://") })
	require.Equal(t, 303, res.StatusCode, "%v", decodeEnvelope(t, res))
	assert.Equal(t, "alice@corp.example", signedInAs(t, c)["email"], "the session made on the other replica works here")
}

// decodeEnvelope reads an error answer that came as a plain HTTP response.
func decodeEnvelope(t *testing.T, res *http.Response) map[string]any {
	t.Helper()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var env map[string]any
	_ = json.Unmarshal(raw, &env)
	return env
}

// TestSSODoesNotLetASuspendedAccountIn: the provider vouching for an address does not reinstate its account; a
// suspended user's single sign-on is refused and signs no one in, and works again once reinstated.
func TestSSODoesNotLetASuspendedAccountIn(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSSOWorld(t, dialect)
		first := w.env.Client(t)
		require.Equal(t, 303, w.ssoSignIn(t, first, "alice@corp.example", nil).StatusCode)
		alice := signedInAs(t, first)["id"].(string)
		w.admin.Must(200, "POST", "/api/v1/users/"+alice+"/actions/suspend", nil)

		refused := w.env.Client(t)
		res := w.ssoSignIn(t, refused, "alice@corp.example", nil)
		assert.Equal(t, 403, res.StatusCode)
		assert.Equal(t, "account_suspended", decodeEnvelope(t, res)["code"])
		assert.Equal(t, 401, refused.Do("GET", "/api/v1/user", nil).Status, "nobody signed in")

		w.admin.Must(200, "POST", "/api/v1/users/"+alice+"/actions/reinstate", nil)
		again := w.env.Client(t)
		require.Equal(t, 303, w.ssoSignIn(t, again, "alice@corp.example", nil).StatusCode)
		assert.Equal(t, alice, signedInAs(t, again)["id"])
	})
}
