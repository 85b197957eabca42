package platform_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/alerts"
	"github.com/flowyard/flowyard/alerts/alertstest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/internal/replaytest"
	"github.com/flowyard/flowyard/mail"
	"github.com/flowyard/flowyard/mail/mailtest"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
	"github.com/flowyard/flowyard/worker"
	"github.com/flowyard/flowyard/workflows/alert"
)

// alertTeam is a team with an owner and a member, a webhook at a receiver and a rule sending crashes to both.
type alertTeam struct {
	id, hookID, ruleID string
}

func newAlertTeam(t *testing.T, st *storage.Store, sealer *domain.Sealer, hookURL, secret string) alertTeam {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, st.SeedDefaults(ctx))
	types, _, err := storage.ListObjects[storage.TeamType](ctx, st, storage.Page{})
	require.NoError(t, err)
	team := &storage.Team{ID: domain.NewID(), Name: "Ops & Co", Slug: "ops-" + strings.ToLower(domain.NewID()[16:]), TeamTypeID: types[0].ID}
	require.NoError(t, st.InsertTeam(ctx, team))
	for _, u := range []struct {
		email string
		role  domain.Role
	}{{"owner@example.com", domain.RoleOwner}, {"member@example.com", domain.RoleMember}} {
		user := &storage.User{ID: domain.NewID(), Email: strings.Replace(u.email, "@", "+"+team.ID[18:]+"@", 1), Name: u.email, PasswordHash: "x"}
		require.NoError(t, st.InsertUser(ctx, user))
		require.NoError(t, st.InsertMembership(ctx, &storage.Membership{TeamID: team.ID, UserID: user.ID, Role: u.role}))
	}
	hook := &storage.AlertWebhook{ID: domain.NewID(), TeamID: team.ID, Name: "ops", URL: hookURL, Secret: sealer.Seal(secret)}
	require.NoError(t, st.InsertAlertWebhook(ctx, hook))
	rule := &storage.AlertRule{ID: domain.NewID(), TeamID: team.ID, Name: "crashes", Kinds: []string{alerts.KindInstanceCrashed},
		EmailRole: domain.RoleOwner, WebhookID: &hook.ID, Enabled: true}
	require.NoError(t, st.InsertAlertRule(ctx, rule))
	return alertTeam{id: team.ID, hookID: hook.ID, ruleID: rule.ID}
}

// runAlerts runs an alerts worker on its own task queue and a dispatcher for it until the test ends.
func runAlerts(t *testing.T, c client.Client, st *storage.Store, sealer *domain.Sealer, smtpURL string, allowPrivate bool) *alert.Client {
	t.Helper()
	sender, err := mail.NewSMTP(smtpURL, "Flowyard <alerts@example.com>")
	require.NoError(t, err)
	d := &alerts.Deliverer{Store: st, Sealer: sealer, Mail: sender, HTTP: alerts.SafeClient(allowPrivate), PublicURL: "http://flowyard.test"}
	wc := &alert.Client{Temporal: c, TaskQueue: "alerts-" + domain.NewID()}
	w := worker.NewAlerts(c, wc.TaskQueue, &activities.Alerts{Deliverer: d})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dispatcher := &alerts.Dispatcher{Store: st, Start: wc.Start, Every: 200 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go dispatcher.Run(ctx)
	return wc
}

func deliveriesOf(t *testing.T, st *storage.Store, teamID string) map[string]storage.AlertDeliveryView {
	t.Helper()
	rows, _, err := st.ListAlertDeliveries(context.Background(), teamID, storage.Page{})
	require.NoError(t, err)
	out := map[string]storage.AlertDeliveryView{}
	for _, r := range rows {
		out[r.Channel] = r
	}
	return out
}

// alertsDevServer starts a Temporal dev server and returns a client of it, closed when the test ends, and a sealer.
func alertsDevServer(t *testing.T) (client.Client, *domain.Sealer) {
	t.Helper()
	c := dialTemporal(t, startTemporal(t))
	sealer, err := domain.NewSealer(strings.Repeat("k", 32))
	require.NoError(t, err)
	return c, sealer
}

// TestAlertDeliveryOnTheTemporalDevServer delivers an instance's crash through the real Temporal dev server, on
// SQLite and Postgres: by e-mail to the team's owner through a real SMTP server, and to a real webhook receiver
// that fails the first request, so the delivery is retried and accepted once with a valid signature. The same
// crash emitted twice and its workflow started twice deliver once. A webhook on loopback, with private
// destinations not allowed, is refused at the connection and logged failed without retries.
func TestAlertDeliveryOnTheTemporalDevServer(t *testing.T) {
	c, sealer := alertsDevServer(t)

	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			st := storagetest.New(t, dialect)
			smtp := mailtest.Start(t, "")
			receiver := alertstest.Start(t, 1)
			secret := alerts.NewSecret()
			receiver.SetSecret(secret)
			team := newAlertTeam(t, st, sealer, receiver.URL, secret)
			wc := runAlerts(t, c, st, sealer, smtp.URL(), true)

			crash := alerts.Event{TeamID: team.id, Kind: alerts.KindInstanceCrashed, SubjectType: "instance", SubjectID: "inst-1",
				SubjectName: "line-<1>", Message: "exit code 1; last output: boom", DedupKey: "crash:inst-1:1"}
			fresh, err := alerts.Emit(ctx, st, crash)
			require.NoError(t, err)
			require.True(t, fresh)
			fresh, err = alerts.Emit(ctx, st, crash)
			require.NoError(t, err)
			assert.False(t, fresh, "the same occurrence is recorded once")

			got := receiver.WaitAccepted(t, 1, time.Minute)
			assert.Equal(t, alerts.KindInstanceCrashed, got[0].Event)
			assert.Equal(t, "Instance line-<1> crashed", got[0].Payload.Title)
			assert.Equal(t, "http://flowyard.test/teams/"+team.id+"/instances/inst-1", got[0].Payload.URL)
			all := receiver.Requests()
			require.Len(t, all, 2, "one failed attempt, then the retry")
			assert.True(t, all[0].SignedOK && all[1].SignedOK)
			assert.Equal(t, all[0].DeliveryID, all[1].DeliveryID, "a retry is the same delivery")

			msg := smtp.Wait(t, 1, time.Minute)
			assert.Len(t, msg.To, 1)
			assert.True(t, strings.HasPrefix(msg.To[0], "owner+"), "only members of at least the rule's role: %v", msg.To)
			assert.Contains(t, msg.Header("Subject"), "Instance line-<1> crashed")

			var log map[string]storage.AlertDeliveryView
			waitFor(t, 45*time.Second, "both deliveries are logged delivered", func() bool {
				log = deliveriesOf(t, st, team.id)
				return log["webhook"].Status == storage.DeliverySucceeded && log["email"].Status == storage.DeliverySucceeded
			})
			assert.Equal(t, 2, log["webhook"].Attempts)
			assert.Equal(t, 204, log["webhook"].LastStatus)
			assert.Equal(t, 1, log["email"].Attempts)

			require.NoError(t, wc.Start(ctx, log["webhook"].EventID, team.id), "dispatching the event again")
			require.NoError(t, c.GetWorkflow(ctx, alert.WorkflowID(log["webhook"].EventID), "").Get(ctx, nil))
			assert.Len(t, receiver.Requests(), 2, "nothing delivered twice")
			assert.Len(t, smtp.Messages(), 1)
			replaytest.Record(t, c, alert.WorkflowID(log["webhook"].EventID), "", "alert", "replay_deliver_retried.json")

			guarded := storagetest.New(t, dialect)
			loopback := alertstest.Start(t, 0)
			other := newAlertTeam(t, guarded, sealer, loopback.URL, secret)
			runAlerts(t, c, guarded, sealer, smtp.URL(), false)
			_, err = alerts.Emit(ctx, guarded, alerts.Event{TeamID: other.id, Kind: alerts.KindTest, SubjectType: "webhook",
				SubjectID: other.hookID, DedupKey: "test:1", WebhookID: other.hookID})
			require.NoError(t, err)
			waitFor(t, 45*time.Second, "the loopback delivery is logged failed", func() bool {
				return deliveriesOf(t, guarded, other.id)["webhook"].Status == storage.DeliveryFailed
			})
			failed := deliveriesOf(t, guarded, other.id)["webhook"]
			assert.Equal(t, 1, failed.Attempts, "a refused destination is not retried")
			assert.Contains(t, failed.LastError, "refused")
			assert.Empty(t, loopback.Requests())
		})
	}
}

// TestAThrottledStormIsDeliveredOnceThenSummarised: twenty instances of a team crash at once under a rule that
// throttles for 15 minutes; through the real Temporal dev server, on SQLite and Postgres, the webhook and the
// owner's mail get the first crash only, the other deliveries are logged throttled, and when the window ends
// one summary of the 19 others is delivered to each.
func TestAThrottledStormIsDeliveredOnceThenSummarised(t *testing.T) {
	c, sealer := alertsDevServer(t)

	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			st := storagetest.New(t, dialect)
			smtp := mailtest.Start(t, "")
			receiver := alertstest.Start(t, 0)
			secret := alerts.NewSecret()
			receiver.SetSecret(secret)
			team := newAlertTeam(t, st, sealer, receiver.URL, secret)
			rule, err := st.GetAlertRule(ctx, team.ruleID)
			require.NoError(t, err)
			rule.ThrottleMinutes = 15
			require.NoError(t, st.UpdateAlertRule(ctx, rule, "throttle_minutes"))
			runAlerts(t, c, st, sealer, smtp.URL(), true)

			for i := range 20 {
				_, err := alerts.Emit(ctx, st, alerts.Event{TeamID: team.id, Kind: alerts.KindInstanceCrashed, SubjectType: "instance",
					SubjectID: fmt.Sprintf("inst-%d", i), SubjectName: fmt.Sprintf("line-%d", i), DedupKey: fmt.Sprintf("crash:inst-%d:1", i)})
				require.NoError(t, err)
			}
			waitFor(t, 45*time.Second, "every crash is planned: 2 deliveries sent, 38 throttled", func() bool {
				rows, _, err := st.ListAlertDeliveries(ctx, team.id, storage.Page{Limit: storage.MaxPageLimit})
				require.NoError(t, err)
				n := map[string]int{}
				for _, r := range rows {
					n[r.Status]++
				}
				return n[storage.DeliverySucceeded] == 2 && n[storage.DeliveryThrottled] == 38
			})
			assert.Len(t, receiver.Accepted(), 1)
			assert.Len(t, smtp.Messages(), 1)

			require.NoError(t, (&alerts.Dispatcher{Store: st}).Summarise(ctx, time.Now().Add(16*time.Minute)))
			got := receiver.WaitAccepted(t, 2, time.Minute)
			assert.Equal(t, 19, got[1].Payload.Count)
			assert.Equal(t, "19 more instance crashed alerts (19 subjects)", got[1].Payload.Title)
			assert.Contains(t, got[1].Payload.Message, "Instance line-")
			assert.Contains(t, smtp.Wait(t, 2, time.Minute).Header("Subject"), "19 more instance crashed alerts")
			summary, err := st.GetAlertDelivery(ctx, got[1].DeliveryID)
			require.NoError(t, err)
			require.NoError(t, c.GetWorkflow(ctx, alert.WorkflowID(summary.EventID), "").Get(ctx, nil))
			replaytest.Record(t, c, alert.WorkflowID(summary.EventID), "", "alert", "replay_deliver_summary.json")
			rows, _, err := st.ListAlertDeliveries(ctx, team.id, storage.Page{Limit: storage.MaxPageLimit})
			require.NoError(t, err)
			for _, r := range rows {
				if r.Status == storage.DeliveryThrottled {
					replaytest.Record(t, c, alert.WorkflowID(r.EventID), "", "alert", "replay_deliver_throttled.json")
					break
				}
			}
		})
	}
}
