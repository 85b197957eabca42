package api_test

import (
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestTextTheStoreRefusesIsBadInput: a NUL character in a device's state report or audit event, a description
// or a cursor answers 400 naming the field on both stores, and in a sign-in e-mail 401 (PostgreSQL refuses NUL in
// text; each was a 500).
func TestTextTheStoreRefusesIsBadInput(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := newDeviceWorld(t, dialect)
		d := w.register(t, "Gateway")
		for _, tc := range []struct {
			name, method, path, body, field string
			device                          bool
		}{
			{"state detail", "POST", "/api/v1/devices/" + d.id + "/live/state", `{"state":"crashed","stateDetail":"bad\u0000byte"}`, "stateDetail", true},
			{"reported snapshot", "POST", "/api/v1/devices/" + d.id + "/live/state", `{"state":"running","snapshot":"a\u0000"}`, "snapshot", true},
			{"audit event", "POST", "/logging/device/" + d.id + "/audit", `{"event":"x\u0000y"}`, "event", true},
			{"crash info", "POST", "/logging/device/" + d.id + "/audit", `{"event":"crashed","info":{"code":"1","info":"\u0000"}}`, "info", true},
			{"description", "POST", "/api/v1/teams/" + w.teamID + "/applications", `{"name":"nul","description":"a\u0000b"}`, "description", false},
			{"cursor", "GET", "/api/v1/teams/" + w.teamID + "/applications?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("a\x00b")), "", "cursor", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := w.as["owner"]
				if tc.device {
					c = d.agent
				}
				var body any
				if tc.body != "" {
					body = tc.body
				}
				r := c.Do(tc.method, tc.path, body)
				assert.Equal(t, 400, r.Status, string(r.Raw))
				assert.Contains(t, string(r.Raw), `"field":"`+tc.field+`"`)
			})
		}
		signIn := w.env.Client(t).Do("POST", "/api/v1/auth/login", `{"email":"owner\u0000@example.com","password":"x"}`)
		assert.Equal(t, 401, signIn.Status, "an e-mail the store refuses names no one: %s", signIn.Raw)
		assert.NotEqual(t, "crashed", w.as["owner"].Must(200, "GET", "/api/v1/devices/"+d.id, nil).String("state"), "a refused report changes nothing")
	})
}
