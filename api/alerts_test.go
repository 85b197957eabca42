package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

func newAlertWorld(t *testing.T, dialect string, allowPrivate bool) *world {
	t.Helper()
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	return newWorld(t, dialect, func(d *api.Deps) { d.Sealer = sealer; d.Config.WebhooksAllowPrivate = allowPrivate })
}

func countTeamRows(t *testing.T, st *storage.Store, table, teamID string) int {
	t.Helper()
	n, err := st.CountRows(context.Background(), table, "team_id", teamID)
	require.NoError(t, err)
	return n
}

// TestWebhookToLoopbackRefusedUnlessAllowed: by default a webhook on this machine's or a private network is
// refused (nothing stored), by address and by a name that resolves to one; with --webhooks-allow-private the
// same URL is accepted.
func TestWebhookToLoopbackRefusedUnlessAllowed(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			w := newAlertWorld(t, dialect, false)
			owner := w.byRole["owner"]
			path := "/api/v1/teams/" + w.teamID + "/webhooks"
			for _, url := range []string{"http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://[::1]:9/", "http://10.1.2.3/",
				"http://169.254.169.254/latest/meta-data", "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/", "http://0.0.0.0:9/"} {
				r := owner.Do("POST", path, map[string]any{"name": "local", "url": url})
				assert.Equal(t, 422, r.Status, url)
				assert.Equal(t, "webhook_destination_private", r.String("code"), url)
			}
			assert.Zero(t, countTeamRows(t, w.env.Store, "alert_webhooks", w.teamID))

			allowed := newAlertWorld(t, dialect, true)
			r := allowed.byRole["owner"].Must(201, "POST", "/api/v1/teams/"+allowed.teamID+"/webhooks", map[string]any{"name": "local", "url": "http://127.0.0.1:9/hook"})
			assert.True(t, strings.HasPrefix(r.String("secret"), "whsec_"))
		})
	}
}

// TestAlertRulesValidateAndStayInTheTeam: bad rules are refused with every field named and nothing written; a
// rule may not name another team's webhook; members read, only owners write; the secret is shown once and
// stored sealed.
func TestAlertRulesValidateAndStayInTheTeam(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			w := newAlertWorld(t, dialect, false)
			owner, member := w.byRole["owner"], w.byRole["member"]
			hooks := "/api/v1/teams/" + w.teamID + "/webhooks"
			rules := "/api/v1/teams/" + w.teamID + "/alert-rules"

			owner.Must(400, "POST", hooks, map[string]any{"name": "x", "url": "ftp://203.0.113.5/"})
			owner.Must(400, "POST", hooks, map[string]any{"name": "x", "url": "https://user:pw@203.0.113.5/"})
			hook := owner.Must(201, "POST", hooks, map[string]any{"name": "ops", "url": "https://203.0.113.5/hook"})
			secret := hook.String("secret")
			listed := member.Must(200, "GET", hooks, nil)
			assert.NotContains(t, string(listed.Raw), secret, "the secret is shown only when created")
			stored, err := w.env.Store.GetAlertWebhook(context.Background(), hook.String("id"))
			require.NoError(t, err)
			assert.NotContains(t, stored.Secret, strings.TrimPrefix(secret, "whsec_"), "stored sealed")

			bad := owner.Must(400, "POST", rules, map[string]any{"name": "", "kinds": []string{"nope"}})
			assert.Contains(t, string(bad.Raw), `"name"`)
			assert.Contains(t, string(bad.Raw), `"kinds"`)
			owner.Must(400, "POST", rules, map[string]any{"name": "offline", "kinds": []string{"device_offline"}, "emailRole": "owner"})
			owner.Must(400, "POST", rules, map[string]any{"name": "nowhere", "kinds": []string{"instance_crashed"}})
			owner.Must(400, "POST", rules, map[string]any{"name": "r", "kinds": []string{"instance_crashed"}, "emailRole": "boss"})
			otherHook := w.byRole["outsider"].Must(201, "POST", "/api/v1/teams/"+w.otherTID+"/webhooks", map[string]any{"name": "theirs", "url": "https://203.0.113.6/"})
			foreign := owner.Must(422, "POST", rules, map[string]any{"name": "r", "kinds": []string{"instance_crashed"}, "webhookId": otherHook.String("id")})
			assert.Equal(t, "unknown_reference", foreign.String("code"))
			member.Must(403, "POST", rules, map[string]any{"name": "r", "kinds": []string{"instance_crashed"}, "emailRole": "owner"})
			w.byRole["viewer"].Must(403, "GET", rules, nil)
			assert.Zero(t, countTeamRows(t, w.env.Store, "alert_rules", w.teamID))

			rule := owner.Must(201, "POST", rules, map[string]any{"name": "crashes", "kinds": []string{"instance_crashed", "device_offline"},
				"offlineMinutes": 5, "emailRole": "member", "webhookId": hook.String("id")})
			assert.Equal(t, "member", rule.String("emailRole"))
			assert.EqualValues(t, 15, rule.Body["throttleMinutes"], "throttled by default")
			bad = owner.Must(400, "PATCH", "/api/v1/alert-rules/"+rule.String("id"), map[string]any{"throttleMinutes": -1})
			assert.Contains(t, string(bad.Raw), `"throttleMinutes"`)
			unthrottled := owner.Must(200, "PATCH", "/api/v1/alert-rules/"+rule.String("id"), map[string]any{"throttleMinutes": 0})
			assert.EqualValues(t, 0, unthrottled.Body["throttleMinutes"])
			patched := owner.Must(200, "PATCH", "/api/v1/alert-rules/"+rule.String("id"), map[string]any{"enabled": false, "webhookId": ""})
			assert.False(t, patched.Body["enabled"].(bool))
			assert.Nil(t, patched.Body["webhookId"])
			w.byRole["outsider"].Must(404, "PATCH", "/api/v1/alert-rules/"+rule.String("id"), map[string]any{"enabled": true})

			owner.Must(202, "POST", "/api/v1/webhooks/"+hook.String("id")+"/test", nil)
			events, err := w.env.Store.UndispatchedAlertEvents(context.Background(), 10)
			require.NoError(t, err)
			require.Len(t, events, 1)
			assert.Equal(t, "test", events[0].Kind)
			assert.Equal(t, hook.String("id"), *events[0].WebhookID)
			member.Must(403, "POST", "/api/v1/webhooks/"+hook.String("id")+"/test", nil)
			member.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/alert-deliveries", nil)
		})
	}
}

// TestInstanceHealthSeries: viewers read an instance's samples of the last hour, oldest first (an older one is
// left out); another team's instance is not found.
func TestInstanceHealthSeries(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			w := newWorld(t, dialect)
			ctx := context.Background()
			app := w.byRole["owner"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/applications", map[string]any{"name": "plant"}).String("id")
			in := newInstanceRow(t, w.env.Store, w.teamID, app, "line")
			require.NoError(t, w.env.Store.InsertInstance(ctx, in))
			now := time.Now().UTC().Truncate(time.Second)
			require.NoError(t, w.env.Store.InsertInstanceSamples(ctx, []storage.InstanceSample{
				{InstanceID: in.ID, At: now.Add(-30 * time.Second), CPUPercent: 3.5, MemoryBytes: 90 << 20},
				{InstanceID: in.ID, At: now.Add(-2 * time.Hour), CPUPercent: 99, MemoryBytes: 1},
				{InstanceID: in.ID, At: now.Add(-15 * time.Second), CPUPercent: 7, MemoryBytes: 95 << 20},
			}))
			r := w.byRole["viewer"].Must(200, "GET", "/api/v1/instances/"+in.ID+"/health", nil)
			samples := r.Body["samples"].([]any)
			require.Len(t, samples, 2)
			assert.Equal(t, 3.5, samples[0].(map[string]any)["cpuPercent"])
			assert.Equal(t, float64(95<<20), samples[1].(map[string]any)["memoryBytes"])
			w.byRole["outsider"].Must(404, "GET", "/api/v1/instances/"+in.ID+"/health", nil)
		})
	}
}
