package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// limited starts a snapWorld whose API has the given abuse limits.
func limited(t *testing.T, dialect string, l api.Limits) *snapWorld {
	return newSnapWorld(t, dialect, func(d *api.Deps) { d.Config.Limits = l })
}

// assertTooMany checks a limit's 429: the code naming it, a sentence, and when to retry.
func assertTooMany(t *testing.T, r *apitest.Response, code string) {
	t.Helper()
	assert.Equal(t, 429, r.Status, string(r.Raw))
	assert.Equal(t, code, r.String("code"))
	assert.NotEmpty(t, r.String("message"))
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	assert.NoError(t, err, "Retry-After is whole seconds")
	assert.Positive(t, secs)
}

func TestLoginLimitAnswersRetryAfter(t *testing.T) {
	w := limited(t, "sqlite", api.Limits{LoginFailuresPerAccount: 2, LoginDelay: time.Minute})
	c := w.env.Client(t)
	for range 2 {
		assert.Equal(t, 401, c.Do("POST", "/api/v1/auth/login", map[string]string{"email": "viewer@example.com", "password": "wrong-password"}).Status)
	}
	assertTooMany(t, c.Do("POST", "/api/v1/auth/login", map[string]string{"email": "viewer@example.com", "password": testPassword}), "too_many_sign_ins")
	c.Login("member@example.com", testPassword) // another account is not held back
}

func TestJSONDepthLimitIsConfigurable(t *testing.T) {
	w := limited(t, "sqlite", api.Limits{MaxJSONDepth: 3})
	r := w.as["owner"].Do("POST", "/api/v1/teams", `{"name":"x","slug":"deep","a":[[{}]]}`)
	assert.Equal(t, 400, r.Status)
	assert.Equal(t, "json_too_deep", r.String("code"))
	assert.Contains(t, r.String("message"), "3 levels")
}

// TestProvisioningIsRateLimitedPerTokenAndAddress: a provisioning token, and a client address with any
// tokens, may provision only so many devices a minute; the refused attempts register nothing.
func TestProvisioningIsRateLimitedPerTokenAndAddress(t *testing.T) {
	w := limited(t, "sqlite", api.Limits{ProvisionsPerToken: 3, ProvisionsPerIP: 5})
	owner := w.as["owner"]
	provisioner := func(name string) *apitest.Client {
		c := w.env.Client(t)
		c.Bearer = owner.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/provisioning-tokens", map[string]any{"name": name, "applicationId": w.appIDs[0]}).String("token")
		return c
	}
	device := func(i int) map[string]any {
		return map[string]any{"name": "dev-" + strconv.Itoa(i), "type": "pi", "team": w.teamID}
	}
	first, second := provisioner("first"), provisioner("second")
	for i := range 3 {
		first.Must(200, "POST", "/api/v1/devices", device(i))
	}
	assertTooMany(t, first.Do("POST", "/api/v1/devices", device(3)), "too_many_provisioning_attempts")
	for i := range 2 {
		second.Must(200, "POST", "/api/v1/devices", device(10+i))
	}
	r := second.Do("POST", "/api/v1/devices", device(12))
	assertTooMany(t, r, "too_many_provisioning_attempts")
	assert.Contains(t, r.String("message"), "address")

	guesser := w.env.Client(t)
	guesser.Bearer = "fyp_" + strings.Repeat("x", 40)
	assertTooMany(t, guesser.Do("POST", "/api/v1/devices", device(20)), "too_many_provisioning_attempts")
	assert.Len(t, owner.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/devices", nil).Body["items"], 5, "refused attempts register nothing")
}

// TestTeamOperationsAreLimited: a team may have only so many operations pending or running; concurrent requests
// cannot overshoot, another team is not affected, and a finished operation makes room.
func TestTeamOperationsAreLimited(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		const max = 3
		w := limited(t, dialect, api.Limits{MaxTeamOperations: max})
		in := w.mine(t, 0, "busy", "secret")
		owner := w.as["owner"]
		restart := func() *apitest.Response { return owner.Do("POST", "/api/v1/instances/"+in.ID+"/actions/restart", nil) }

		statuses := make([]int, 10)
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Add(1)
			go func() { defer wg.Done(); statuses[i] = restart().Status }()
		}
		wg.Wait()
		accepted := 0
		for _, s := range statuses {
			assert.Contains(t, []int{202, 429}, s)
			if s == 202 {
				accepted++
			}
		}
		assert.Equal(t, max, accepted, "concurrent requests start exactly as many operations as the limit allows")
		assertTooMany(t, restart(), "too_many_operations")
		ops := owner.Must(200, "GET", "/api/v1/instances/"+in.ID+"/operations", nil).Body["items"].([]any)
		require.Len(t, ops, max, "a refused request records no operation")

		foreign := w.as["outsider"].Do("POST", "/api/v1/instances/"+w.foreign.ID+"/actions/restart", nil)
		assert.Equal(t, 202, foreign.Status, "another team has its own allowance: %s", foreign.Raw)

		done := &storage.Operation{ID: ops[0].(map[string]any)["id"].(string), Status: domain.OperationSucceeded, Progress: map[string]any{}}
		moved, err := w.env.Store.UpdateOperation(context.Background(), done, domain.OperationPending, domain.OperationRunning)
		require.NoError(t, err)
		require.True(t, moved)
		assert.Equal(t, 202, restart().Status, "a finished operation makes room")
	})
}

// TestListLimitIsCapped: every list takes ?limit= up to the store's page cap; more is refused, not clamped.
func TestListLimitIsCapped(t *testing.T) {
	w := newSnapWorld(t, "sqlite")
	owner := w.as["owner"]
	owner.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/applications?limit="+strconv.Itoa(storage.MaxPageLimit), nil)
	for _, bad := range []string{strconv.Itoa(storage.MaxPageLimit + 1), "0", "-1", "all"} {
		r := owner.Do("GET", "/api/v1/teams/"+w.teamID+"/applications?limit="+bad, nil)
		assert.Equal(t, 400, r.Status, bad)
		require.NotEmpty(t, r.Body["validations"], string(r.Raw))
		v := r.Body["validations"].([]any)[0].(map[string]any)
		assert.Equal(t, "limit", v["field"])
		assert.Contains(t, v["detail"], "from 1 to "+strconv.Itoa(storage.MaxPageLimit))
	}
}

// signIn tries a sign-in as one client.
func signIn(c *apitest.Client, email, password string) *apitest.Response {
	return c.Do("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": password})
}

// forwardedFor is a client whose requests say, in X-Forwarded-For, that they come from addrs.
func forwardedFor(t *testing.T, env *apitest.Env, addrs string) *apitest.Client {
	c := env.Client(t)
	c.Header = http.Header{"X-Forwarded-For": {addrs}}
	return c
}

// A client talking to the API directly cannot pick the address its limits count: X-Forwarded-For from a peer
// that is not a trusted proxy is ignored, so a new address in it each time gets no fresh allowance.
func TestSpoofedForwardedForIsIgnoredFromAnUntrustedPeer(t *testing.T) {
	w := limited(t, "sqlite", api.Limits{LoginFailuresPerIP: 3})
	for i := range 3 {
		assert.Equal(t, 401, signIn(forwardedFor(t, w.env, fmt.Sprintf("203.0.113.%d", i)), fmt.Sprintf("nobody%d@example.com", i), "wrong-password").Status)
	}
	r := signIn(forwardedFor(t, w.env, "198.51.100.77"), "owner@example.com", testPassword)
	assertTooMany(t, r, "too_many_sign_ins")
}

// Behind a trusted proxy each client has its own allowance: one client's failures do not lock out the others
// who share the proxy's address, and what a client writes left of the proxy's own entry changes nothing.
func TestTrustedProxySeparatesClients(t *testing.T) {
	w := newSnapWorld(t, "sqlite", func(d *api.Deps) {
		d.Config.Limits = api.Limits{LoginFailuresPerIP: 3, ProvisionsPerIP: 2, ProvisionsPerToken: 100}
		d.Config.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} // the proxy is the test itself
	})
	for i := range 3 {
		assert.Equal(t, 401, signIn(forwardedFor(t, w.env, "203.0.113.7"), fmt.Sprintf("nobody%d@example.com", i), "wrong-password").Status)
	}
	assertTooMany(t, signIn(forwardedFor(t, w.env, "203.0.113.7"), "owner@example.com", testPassword), "too_many_sign_ins")
	assertTooMany(t, signIn(forwardedFor(t, w.env, "198.51.100.4, 203.0.113.7"), "owner@example.com", testPassword), "too_many_sign_ins")
	assert.Equal(t, 200, signIn(forwardedFor(t, w.env, "198.51.100.4"), "owner@example.com", testPassword).Status, "another client behind the proxy")

	token := w.as["owner"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/provisioning-tokens", map[string]any{"name": "line", "applicationId": w.appIDs[0]}).String("token")
	provision := func(from string, i int) *apitest.Response {
		c := forwardedFor(t, w.env, from)
		c.Bearer = token
		return c.Do("POST", "/api/v1/devices", map[string]any{"name": "dev-" + strconv.Itoa(i), "type": "pi", "team": w.teamID})
	}
	for i := range 2 {
		assert.Equal(t, 200, provision("203.0.113.7", i).Status)
	}
	assertTooMany(t, provision("203.0.113.7", 2), "too_many_provisioning_attempts")
	assert.Equal(t, 200, provision("198.51.100.4", 3).Status, "another site's devices provision from their own address")
}

// Failing on purpose cannot lock an account's owner out: past its free failures an account waits a delay (429
// with Retry-After, even for the right password, only while it runs), which doubles with each further failure,
// and the right password once it has run signs in and clears the account.
func TestLockedOutAccountSignsInAfterTheDelay(t *testing.T) {
	w := limited(t, "sqlite", api.Limits{LoginFailuresPerAccount: 2, LoginDelay: 2 * time.Second})
	attacker, owner := w.env.Client(t), w.env.Client(t)
	for range 2 {
		assert.Equal(t, 401, signIn(attacker, "viewer@example.com", "wrong-password").Status)
	}
	r := signIn(owner, "viewer@example.com", testPassword)
	assertTooMany(t, r, "too_many_sign_ins")
	assert.Equal(t, "2", r.Header.Get("Retry-After"), "the first delay")
	assertTooMany(t, signIn(attacker, "viewer@example.com", "wrong-password"), "too_many_sign_ins")

	time.Sleep(2200 * time.Millisecond)
	assert.Equal(t, 401, signIn(attacker, "viewer@example.com", "wrong-password").Status, "refused attempts did not lengthen the delay")
	r = signIn(owner, "viewer@example.com", testPassword)
	assertTooMany(t, r, "too_many_sign_ins")
	assert.Equal(t, "4", r.Header.Get("Retry-After"), "each failure past the free ones doubles the delay")

	time.Sleep(4200 * time.Millisecond)
	assert.Equal(t, 200, signIn(owner, "viewer@example.com", testPassword).Status, "the right password after the delay signs in")
	assert.Equal(t, 401, signIn(attacker, "viewer@example.com", "wrong-password").Status, "and the account's count starts again")
}
