package platform_test

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/alerts"
	"github.com/flowyard/flowyard/alerts/alertstest"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/mail/mailtest"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// crashingFlows kill their own Node-RED three seconds after it starts (after the platform saw it ready): an
// exec node's shell sends SIGKILL to its parent, Node-RED. Three crashes in a row start it in safe mode, where
// flows are loaded but not run, so it stays up.
var crashingFlows = []any{
	map[string]any{"id": "t1", "type": "tab", "label": "Crash"},
	map[string]any{"id": "go", "type": "inject", "z": "t1", "once": true, "onceDelay": 3, "repeat": "", "wires": []any{[]any{"kill"}}},
	map[string]any{"id": "kill", "type": "exec", "z": "t1", "command": "kill -9 $PPID", "addpay": "", "append": "", "useSpawn": "false",
		"timer": "", "winHide": false, "oldrc": false, "wires": []any{[]any{}, []any{}, []any{}}},
}

// TestAlertsEndToEnd runs `flowyard dev` (SQLite and Postgres) with a real SMTP server and a real webhook
// receiver that checks signatures and fails its first request, and has a team's rule send everything to both:
// a webhook test is retried and delivered; real Node-RED running a flow that kills it crashes three times and
// comes back in safe mode, each told once by e-mail and webhook; a device that checked in and went silent is
// reported offline once; a rollout to it that nobody answers is rolled back and reported. The delivery log
// shows each delivery with its attempts.
func TestAlertsEndToEnd(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			smtp := mailtest.Start(t, "")
			receiver := alertstest.Start(t, 1)
			flags := []string{"--webhooks-allow-private", "--smtp-url", smtp.URL(), "--mail-from", "Flowyard <alerts@example.com>"}
			dbURL := ""
			if dialect == "postgres" {
				dbURL = storagetest.NewDatabase(t, dialect)
				flags = append(flags, "--database-url", dbURL)
			}
			dev := startDev(t, flags...)
			if dbURL == "" {
				dbURL = filepath.Join(dev.DataDir, "flowyard.db")
			}
			st, err := storage.Open(context.Background(), dbURL)
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			c := (&apitest.Env{URL: dev.URL}).Client(t)
			c.Login("admin@example.com", "admin-password")

			id, op := createInstance(t, c, "crashy")
			require.Equal(t, "succeeded", waitOperation(t, c, op).String("status"))
			team := c.Must(200, "GET", "/api/v1/instances/"+id, nil).String("teamId")

			hook := c.Must(201, "POST", "/api/v1/teams/"+team+"/webhooks", map[string]any{"name": "ops", "url": receiver.URL})
			receiver.SetSecret(hook.String("secret"))
			c.Must(201, "POST", "/api/v1/teams/"+team+"/alert-rules", map[string]any{"name": "everything", "kinds": alerts.Kinds,
				"offlineMinutes": 5, "throttleMinutes": 0, "emailRole": "owner", "webhookId": hook.String("id")})

			c.Must(202, "POST", "/api/v1/webhooks/"+hook.String("id")+"/test", nil)
			test := receiver.WaitAccepted(t, 1, time.Minute)[0]
			assert.Equal(t, alerts.KindTest, test.Event)
			assert.Len(t, receiver.Requests(), 2, "the receiver's first failure was retried")

			cur := c.Must(200, "GET", "/api/v1/instances/"+id+"/flows", nil)
			c.Must(200, "PUT", "/api/v1/instances/"+id+"/flows", map[string]any{"flows": crashingFlows, "rev": cur.String("rev")})
			waitFor(t, 3*time.Minute, "the instance to run in safe mode after three crashes", func() bool {
				in := c.Must(200, "GET", "/api/v1/instances/"+id, nil)
				return in.String("state") == "running" && strings.Contains(in.String("stateReason"), "safe mode")
			})
			got := receiver.WaitAccepted(t, 5, time.Minute)
			kinds := map[string]int{}
			for _, d := range got {
				kinds[d.Event]++
				if d.Event != alerts.KindTest {
					assert.Equal(t, id, d.Payload.Subject.ID)
				}
			}
			assert.Equal(t, map[string]int{alerts.KindTest: 1, alerts.KindInstanceCrashed: 3, alerts.KindInstanceSafeMode: 1}, kinds)
			mail := smtp.Wait(t, 4, time.Minute)
			assert.Equal(t, []string{"admin@example.com"}, mail.To)
			subjects := ""
			for _, m := range smtp.Messages() {
				subjects += m.Header("Subject") + "\n"
			}
			assert.Contains(t, subjects, "Instance crashy is running in safe mode")
			assert.Equal(t, 3, strings.Count(subjects, "Instance crashy crashed"))

			app := c.Must(200, "GET", "/api/v1/instances/"+id, nil).String("applicationId")
			dev1 := c.Must(200, "POST", "/api/v1/devices", map[string]any{"name": "gw-1", "type": "gateway", "team": team})
			deviceID := dev1.String("id")
			c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"applicationId": app})
			token := dev1.Body["credentials"].(map[string]any)["token"].(string)
			checkIn(t, dev.URL, deviceID, token)
			// The device checked in, was last connected ten minutes ago and has been silent since.
			backdateLastSeen(t, st, deviceID, 10*time.Minute)
			offline := receiver.WaitAccepted(t, 6, time.Minute)[5]
			assert.Equal(t, alerts.KindDeviceOffline, offline.Event)
			assert.Equal(t, "gw-1", offline.Payload.Subject.Name)

			snap := c.Must(201, "POST", "/api/v1/instances/"+id+"/snapshots", map[string]any{"name": "v1"}).String("id")
			group := c.Must(201, "POST", "/api/v1/applications/"+app+"/device-groups", map[string]any{"name": "line"}).String("id")
			c.Must(200, "PUT", "/api/v1/device-groups/"+group+"/devices", map[string]any{"add": []string{deviceID}})
			c.Must(202, "POST", "/api/v1/device-groups/"+group+"/rollouts", map[string]any{"snapshotId": snap,
				"strategy": map[string]any{"waveTimeout": "2s", "autoRollback": true}})
			rolled := receiver.WaitAccepted(t, 7, 2*time.Minute)[6]
			assert.Contains(t, []string{alerts.KindRolloutRolledBack, alerts.KindRolloutFailed}, rolled.Event)
			assert.Equal(t, group, rolled.Payload.Subject.ID)

			var log []map[string]any
			waitFor(t, time.Minute, "every delivery to be logged delivered", func() bool {
				log = nil
				for _, d := range c.Must(200, "GET", "/api/v1/teams/"+team+"/alert-deliveries?limit=100", nil).Body["items"].([]any) {
					log = append(log, d.(map[string]any))
				}
				for _, d := range log {
					if d["status"] != storage.DeliverySucceeded {
						return false
					}
				}
				return len(log) == 13 // 7 webhook deliveries, 6 e-mails (the test goes to the webhook only)
			})
			oldest := log[len(log)-1]
			assert.Equal(t, "webhook", oldest["channel"])
			assert.Equal(t, float64(2), oldest["attempts"], "the test's delivery: one failure, one success")
		})
	}
}

// checkIn reports a device's state over HTTP as an agent does.
func checkIn(t *testing.T, base, deviceID, token string) {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/api/v1/devices/"+deviceID+"/live/state",
		bytes.NewReader([]byte(`{"state":"running","agentVersion":"3.0.0","nodeRedVersion":"4.1.15"}`)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, []int{200, 409}, resp.StatusCode)
}

// backdateLastSeen records, as the broker would, that the device was last connected ago and left then: time
// passing for a device that went silent.
func backdateLastSeen(t *testing.T, st *storage.Store, deviceID string, ago time.Duration) {
	t.Helper()
	ctx := context.Background()
	d, err := st.GetDevice(ctx, deviceID)
	require.NoError(t, err)
	require.NotNil(t, d.LastSeenAt, "the device checked in")
	at := time.Now().Add(-ago)
	require.NoError(t, st.SetDeviceConnected(ctx, deviceID, true, at))
	require.NoError(t, st.SetDeviceConnected(ctx, deviceID, false, at))
}
