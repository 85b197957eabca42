package api_test

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// codeClock is the time the platform checks two-factor codes against, moved by the test one 30-second step at a
// time, so that a test needs no more codes than a step has and never waits.
type codeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *codeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// next moves to the next step and returns the code of a secret there.
func (c *codeClock) next(t *testing.T, secret string) string {
	t.Helper()
	c.mu.Lock()
	c.now = c.now.Add(30 * time.Second)
	c.mu.Unlock()
	return codeAt(t, secret, c.Now())
}

func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, at)
	require.NoError(t, err)
	return code
}

type twoFactorWorld struct {
	*world
	clock *codeClock
}

func newTwoFactorWorld(t *testing.T, dialect string, limits ...api.Limits) *twoFactorWorld {
	t.Helper()
	sealer := testSealer(t)
	clock := &codeClock{now: time.Now()}
	w := newWorld(t, dialect, func(d *api.Deps) {
		d.Sealer, d.Config.CodeClock = sealer, clock.Now
		if len(limits) > 0 {
			d.Config.Limits = limits[0]
		}
	})
	return &twoFactorWorld{world: w, clock: clock}
}

// enrol turns two-factor sign-in on for the signed-in client and returns the secret and the recovery codes.
func (w *twoFactorWorld) enrol(t *testing.T, c *apitest.Client) (string, []string) {
	t.Helper()
	secret := c.Must(201, "POST", "/api/v1/user/two-factor", nil).String("secret")
	codes := c.Must(200, "POST", "/api/v1/user/two-factor/confirm", map[string]any{"code": w.clock.next(t, secret)}).Body["recoveryCodes"].([]any)
	out := make([]string, len(codes))
	for i, code := range codes {
		out[i] = code.(string)
	}
	return secret, out
}

// passwordStep signs in with the password and expects to be asked for the second factor.
func passwordStep(t *testing.T, c *apitest.Client, email string) {
	t.Helper()
	r := c.Must(202, "POST", "/api/v1/auth/login", map[string]string{"email": email, "password": testPassword})
	assert.Equal(t, true, r.Body["secondFactorRequired"])
	assert.Equal(t, 401, c.Do("GET", "/api/v1/user", nil).Status, "no session before the second factor")
}

func secondFactor(c *apitest.Client, body map[string]any) *apitest.Response {
	return c.Do("POST", secondFactorPath, body)
}

var recoveryCodeShape = regexp.MustCompile(`^[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}$`)

// TestTwoFactorEnrolment: enrolling answers the secret, its otpauth URI and a QR code, and changes nothing at
// sign-in until a first right code confirms it; a wrong first code is refused; confirming answers ten distinct
// recovery codes, stored (like the secret) only in a form that does not show them; a second enrolment is
// refused while one is on.
func TestTwoFactorEnrolment(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newTwoFactorWorld(t, dialect)
		c := w.byRole["member"]
		assert.Equal(t, false, c.Must(200, "GET", "/api/v1/user/two-factor", nil).Body["enabled"])
		enrolment := c.Must(201, "POST", "/api/v1/user/two-factor", nil)
		secret := enrolment.String("secret")
		uri, err := url.Parse(enrolment.String("uri"))
		require.NoError(t, err)
		assert.Equal(t, "otpauth", uri.Scheme)
		assert.Equal(t, "/Flowyard:member@example.com", uri.Path)
		assert.Equal(t, secret, uri.Query().Get("secret"))
		assertQuietQRCode(t, enrolment.String("qrCode"))
		assert.Equal(t, true, c.Must(200, "GET", "/api/v1/user/two-factor", nil).Body["pending"])
		w.env.Client(t).Login("member@example.com", testPassword) // not asked for a code yet

		before := dump(t, w.env.Store)
		wrong := c.Do("POST", "/api/v1/user/two-factor/confirm", map[string]any{"code": "000000"})
		assert.Equal(t, 422, wrong.Status)
		assert.Equal(t, "wrong_code", wrong.String("code"))
		assert.Equal(t, before, dump(t, w.env.Store))

		codes := c.Must(200, "POST", "/api/v1/user/two-factor/confirm", map[string]any{"code": w.clock.next(t, secret)}).Body["recoveryCodes"].([]any)
		require.Len(t, codes, 10)
		seen := map[string]bool{}
		for _, code := range codes {
			assert.Regexp(t, recoveryCodeShape, code)
			seen[code.(string)] = true
		}
		assert.Len(t, seen, 10, "distinct")
		status := c.Must(200, "GET", "/api/v1/user/two-factor", nil).Body
		assert.Equal(t, true, status["enabled"])
		assert.Equal(t, float64(10), status["recoveryCodesLeft"])
		stored := dump(t, w.env.Store)
		for table, rows := range stored {
			all := strings.Join(rows, "\n")
			assert.NotContains(t, all, secret, "%s holds the secret in clear", table)
			for code := range seen {
				assert.NotContains(t, all, strings.ReplaceAll(code, "-", ""), "%s holds a recovery code", table)
			}
		}
		again := c.Do("POST", "/api/v1/user/two-factor", nil)
		assert.Equal(t, 409, again.Status)
		assert.Equal(t, "totp_enabled", again.String("code"))
	})
}

// assertQuietQRCode checks that the QR code is an SVG data URL whose dark modules keep four modules clear of
// every edge: the quiet zone scanners need.
func assertQuietQRCode(t *testing.T, dataURL string) {
	t.Helper()
	b64, ok := strings.CutPrefix(dataURL, "data:image/svg+xml;base64,")
	require.True(t, ok, dataURL)
	raw, err := base64.StdEncoding.DecodeString(b64)
	require.NoError(t, err)
	var svg struct {
		ViewBox string `xml:"viewBox,attr"`
		Path    struct {
			D string `xml:"d,attr"`
		} `xml:"path"`
	}
	require.NoError(t, xml.Unmarshal(raw, &svg))
	var size int
	_, err = fmt.Sscanf(svg.ViewBox, "0 0 %d", &size)
	require.NoError(t, err)
	modules := regexp.MustCompile(`M(\d+) (\d+)`).FindAllStringSubmatch(svg.Path.D, -1)
	require.Greater(t, len(modules), 100, "a QR code's worth of dark modules")
	low, high := size, 0
	for _, m := range modules {
		for _, v := range m[1:] {
			var n int
			_, _ = fmt.Sscanf(v, "%d", &n)
			low, high = min(low, n), max(high, n)
		}
	}
	assert.Equal(t, 4, low, "four clear modules before the code")
	assert.Equal(t, size-5, high, "four clear modules after it")
}

// TestTwoFactorSignIn: with two-factor sign-in on, a right password yields no session but a challenge; a wrong
// code, a code of another user's authenticator and no challenge at all are refused; a right code signs in once;
// the same code is refused again while it is still current (a replay); a recovery code works once; a challenge
// ends after five wrong codes, once used, and after five minutes. Personal access tokens go on working.
func TestTwoFactorSignIn(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newTwoFactorWorld(t, dialect)
		pat := w.byRole["member"].Must(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "ci"}).String("token")
		secret, recovery := w.enrol(t, w.byRole["member"])
		otherSecret, _ := w.enrol(t, w.byRole["viewer"])

		c := w.env.Client(t)
		passwordStep(t, c, "member@example.com")
		for _, code := range []string{"000000", "12345", codeAt(t, otherSecret, w.clock.Now().Add(30*time.Second))} {
			r := secondFactor(c, map[string]any{"code": code})
			assert.Equal(t, 401, r.Status, code)
			assert.Equal(t, "wrong_code", r.String("code"), code)
		}
		assert.Equal(t, 400, secondFactor(c, map[string]any{"code": "123456", "recoveryCode": recovery[0]}).Status, "one proof at a time")
		code := w.clock.next(t, secret)
		challenge := w.cookieValue(t, c, secondFactorPath, "flowyard_second_factor")
		me := c.Must(200, "POST", secondFactorPath, map[string]any{"code": code}).Body["user"].(map[string]any)
		assert.Equal(t, "member@example.com", me["email"])
		c.Must(200, "GET", "/api/v1/user", nil)

		replay := w.env.Client(t)
		passwordStep(t, replay, "member@example.com")
		r := secondFactor(replay, map[string]any{"code": code})
		assert.Equal(t, "wrong_code", r.String("code"), "a code is accepted once, even while current")
		replay.Must(200, "POST", secondFactorPath, map[string]any{"recoveryCode": strings.ToUpper(recovery[0])})
		again := w.env.Client(t)
		passwordStep(t, again, "member@example.com")
		assert.Equal(t, "wrong_code", secondFactor(again, map[string]any{"recoveryCode": recovery[0]}).String("code"), "a recovery code works once")
		assert.Equal(t, float64(9), w.byRole["member"].Must(200, "GET", "/api/v1/user/two-factor", nil).Body["recoveryCodesLeft"])

		used := w.env.Client(t)
		w.setCookie(t, used, secondFactorPath, "flowyard_second_factor", challenge)
		assert.Equal(t, "second_factor_expired", secondFactor(used, map[string]any{"code": w.clock.next(t, secret)}).String("code"), "a challenge signs in once")
		assert.Equal(t, "second_factor_expired", secondFactor(w.env.Client(t), map[string]any{"code": w.clock.next(t, secret)}).String("code"), "no challenge")

		expired, hash := domain.NewToken(domain.TokenPrefixSecondFactor)
		require.NoError(t, w.env.Store.InsertSecondFactorChallenge(context.Background(), &storage.SecondFactorChallenge{TokenHash: hash,
			UserID: w.userIDs["member"], ExpiresAt: time.Now().Add(-time.Second)}))
		late := w.env.Client(t)
		w.setCookie(t, late, secondFactorPath, "flowyard_second_factor", expired)
		assert.Equal(t, "second_factor_expired", secondFactor(late, map[string]any{"code": w.clock.next(t, secret)}).String("code"), "after five minutes")

		guesser := w.env.Client(t)
		passwordStep(t, guesser, "member@example.com")
		for i := range 5 {
			want := map[bool]string{true: "second_factor_expired", false: "wrong_code"}[i == 4]
			assert.Equal(t, want, secondFactor(guesser, map[string]any{"code": "000000"}).String("code"), "wrong code %d", i+1)
		}
		assert.Equal(t, "second_factor_expired", secondFactor(guesser, map[string]any{"code": w.clock.next(t, secret)}).String("code"),
			"after five wrong codes the password is asked again")

		token := w.env.Client(t)
		token.Bearer = pat
		token.Must(200, "GET", "/api/v1/teams", nil)
	})
}

// TestTwoFactorCodesAreRateLimited: wrong codes count against the account as failed sign-ins do (across
// challenges), so after the free attempts the next waits: 429, even with the right code.
func TestTwoFactorCodesAreRateLimited(t *testing.T) {
	w := newTwoFactorWorld(t, "sqlite", api.Limits{LoginFailuresPerAccount: 3, LoginDelay: time.Minute})
	secret, _ := w.enrol(t, w.byRole["member"])
	for range 3 {
		c := w.env.Client(t)
		passwordStep(t, c, "member@example.com")
		assert.Equal(t, "wrong_code", secondFactor(c, map[string]any{"code": "000000"}).String("code"))
	}
	c := w.env.Client(t)
	passwordStep(t, c, "member@example.com")
	assertTooMany(t, secondFactor(c, map[string]any{"code": w.clock.next(t, secret)}), "too_many_sign_ins")
	assert.Equal(t, 401, c.Do("GET", "/api/v1/user", nil).Status)
	other := w.env.Client(t)
	other.Login("viewer@example.com", testPassword) // another account is not held back
}

// TestTwoFactorOffAndRecoveryCodes: turning two-factor sign-in off asks for one proof (a current code, a recovery
// code or the password) and refuses a wrong one; new recovery codes replace the old; a platform admin turns a
// user's two-factor sign-in off, and only an admin may.
func TestTwoFactorOffAndRecoveryCodes(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newTwoFactorWorld(t, dialect)
		member := w.byRole["member"]
		secret, old := w.enrol(t, member)
		before := dump(t, w.env.Store)
		for _, proof := range []map[string]any{{}, {"password": testPassword, "code": "123456"}} {
			assert.Equal(t, 400, member.Do("POST", "/api/v1/user/two-factor/disable", proof).Status, proof)
		}
		for _, proof := range []map[string]any{{"password": "not my password"}, {"code": "000000"}, {"recoveryCode": "0000-0000-0000-0000"}} {
			r := member.Do("POST", "/api/v1/user/two-factor/disable", proof)
			assert.Equal(t, 422, r.Status, proof)
			assert.Equal(t, "wrong_proof", r.String("code"))
		}
		assert.Equal(t, before, dump(t, w.env.Store), "wrong proofs change nothing")

		fresh := member.Must(200, "POST", "/api/v1/user/two-factor/recovery-codes", map[string]any{"code": w.clock.next(t, secret)}).Body["recoveryCodes"].([]any)
		assert.Len(t, fresh, 10)
		assert.Equal(t, 422, member.Do("POST", "/api/v1/user/two-factor/disable", map[string]any{"recoveryCode": old[1]}).Status, "the old codes are gone")
		member.Must(204, "POST", "/api/v1/user/two-factor/disable", map[string]any{"recoveryCode": fresh[0]})
		w.env.Client(t).Login("member@example.com", testPassword)
		assert.Equal(t, 409, member.Do("POST", "/api/v1/user/two-factor/disable", map[string]any{"password": testPassword}).Status, "already off")

		w.enrol(t, member)
		member.Must(204, "POST", "/api/v1/user/two-factor/disable", map[string]any{"password": testPassword})
		w.enrol(t, member)
		for _, role := range []string{"owner", "member", "viewer"} {
			assert.Equal(t, 403, w.byRole[role].Do("DELETE", "/api/v1/users/"+w.userIDs["member"]+"/two-factor", nil).Status, role)
		}
		assert.Equal(t, 404, w.admin.Do("DELETE", "/api/v1/users/"+domain.NewID()+"/two-factor", nil).Status)
		w.admin.Must(204, "DELETE", "/api/v1/users/"+w.userIDs["member"]+"/two-factor", nil)
		w.env.Client(t).Login("member@example.com", testPassword)
		assert.Equal(t, false, member.Must(200, "GET", "/api/v1/user/two-factor", nil).Body["enabled"])
	})
}

const secondFactorPath = "/api/v1/auth/login/second-factor"

// cookieValue reads a cookie the client holds for a path of the API.
func (w *twoFactorWorld) cookieValue(t *testing.T, c *apitest.Client, path, name string) string {
	t.Helper()
	u, err := url.Parse(w.env.URL + path)
	require.NoError(t, err)
	for _, ck := range c.Jar().Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	t.Fatalf("the client holds no cookie %s for %s", name, path)
	return ""
}

// setCookie gives the client a cookie for a path of the API, as a browser that kept an old one would send it.
func (w *twoFactorWorld) setCookie(t *testing.T, c *apitest.Client, path, name, value string) {
	t.Helper()
	u, err := url.Parse(w.env.URL + path)
	require.NoError(t, err)
	c.Jar().SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: path}})
}
