package alerts_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/alerts"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// throttledRule is a team with a webhook and a rule for kinds that sends there, throttled for minutes.
func throttledRule(t *testing.T, st *storage.Store, minutes int, kinds ...string) *storage.AlertRule {
	t.Helper()
	ctx := context.Background()
	team := newTeam(t, st)
	hook := &storage.AlertWebhook{ID: domain.NewID(), TeamID: team.ID, Name: "ops", URL: "https://example.com/hook", Secret: "sealed"}
	require.NoError(t, st.InsertAlertWebhook(ctx, hook))
	rule := &storage.AlertRule{ID: domain.NewID(), TeamID: team.ID, Name: "ops", Kinds: kinds, OfflineMinutes: 5,
		ThrottleMinutes: minutes, WebhookID: &hook.ID, Enabled: true}
	require.NoError(t, st.InsertAlertRule(ctx, rule))
	return rule
}

// planAll emits one event per subject for the rule and plans them all at once, as their delivery workflows do;
// it returns how many deliveries were planned to be made.
func planAll(t *testing.T, st *storage.Store, rule *storage.AlertRule, kind string, subjects []string) int {
	t.Helper()
	ctx := context.Background()
	for i, s := range subjects {
		ev := alerts.Event{TeamID: rule.TeamID, Kind: kind, SubjectType: "device", SubjectID: s, SubjectName: "name-" + s,
			RuleID: rule.ID, DedupKey: fmt.Sprintf("%s:%s:%d:%s", kind, s, i, domain.NewID())}
		_, err := alerts.Emit(ctx, st, ev)
		require.NoError(t, err)
	}
	events, err := st.UndispatchedAlertEvents(ctx, 1000)
	require.NoError(t, err)
	var ids []string
	for _, e := range events {
		if e.TeamID != rule.TeamID || e.SummaryCount > 0 {
			continue
		}
		ids = append(ids, e.ID)
		require.NoError(t, st.MarkAlertEventDispatched(ctx, e.ID))
	}
	d := &alerts.Deliverer{Store: st}
	var mu sync.Mutex
	var wg sync.WaitGroup
	planned := 0
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			plan, err := d.Plan(ctx, id)
			assert.NoError(t, err)
			mu.Lock()
			planned += len(plan)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return planned
}

func statuses(t *testing.T, st *storage.Store, teamID string) map[string]int {
	t.Helper()
	log, _, err := st.ListAlertDeliveries(context.Background(), teamID, storage.Page{Limit: storage.MaxPageLimit})
	require.NoError(t, err)
	out := map[string]int{}
	for _, d := range log {
		out[d.Status]++
	}
	return out
}

func summaries(t *testing.T, st *storage.Store) []storage.AlertEvent {
	t.Helper()
	events, err := st.UndispatchedAlertEvents(context.Background(), 1000)
	require.NoError(t, err)
	var out []storage.AlertEvent
	for _, e := range events {
		if e.SummaryCount > 0 {
			out = append(out, e)
		}
	}
	return out
}

// TestAFleetGoingOfflineSendsOneNotificationThenASummary: 50 devices going offline at once for one rule make
// one delivery; the other 49 are logged as throttled and told of in one summary when the window ends, however
// many dispatchers look; the summary itself is sent, and it opens the next window.
func TestAFleetGoingOfflineSendsOneNotificationThenASummary(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		rule := throttledRule(t, st, 15, alerts.KindDeviceOffline)
		subjects := make([]string, 50)
		for i := range subjects {
			subjects[i] = fmt.Sprintf("d%02d", i)
		}
		assert.Equal(t, 1, planAll(t, st, rule, alerts.KindDeviceOffline, subjects))
		assert.Equal(t, map[string]int{storage.DeliveryPending: 1, storage.DeliveryThrottled: 49}, statuses(t, st, rule.TeamID))

		d := &alerts.Dispatcher{Store: st}
		require.NoError(t, d.Summarise(ctx, time.Now()))
		assert.Empty(t, summaries(t, st), "no summary while the window is open")

		later := time.Now().Add(16 * time.Minute)
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() { defer wg.Done(); assert.NoError(t, d.Summarise(ctx, later)) }()
		}
		wg.Wait()
		sums := summaries(t, st)
		require.Len(t, sums, 1, "one summary however many dispatchers look")
		sum := sums[0]
		assert.Equal(t, 49, sum.SummaryCount)
		assert.Equal(t, rule.ID, *sum.RuleID)
		assert.Equal(t, "", sum.SubjectID, "about many devices")
		assert.Equal(t, "49 more device offline alerts (49 subjects)", alerts.Title(&sum))
		assert.Contains(t, sum.Message, "Device name-d")
		assert.Contains(t, sum.Message, "and 29 more")

		plan, err := (&alerts.Deliverer{Store: st}).Plan(ctx, sum.ID)
		require.NoError(t, err)
		assert.Len(t, plan, 1, "a summary is never throttled")
		require.NoError(t, d.Summarise(ctx, later.Add(time.Hour)))
		assert.Len(t, summaries(t, st), 1, "nothing is summarised twice")
	})
}

// TestAFlappingInstanceIsSummarisedPerWindow: a rule hears of every crash of an instance but sends the first,
// then one summary about that instance; an event planned again (a retried activity) is counted once; a rule
// without a throttle sends every event.
func TestAFlappingInstanceIsSummarisedPerWindow(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		rule := throttledRule(t, st, 10, alerts.KindInstanceCrashed)
		assert.Equal(t, 1, planAll(t, st, rule, alerts.KindInstanceCrashed, []string{"i1", "i1", "i1", "i1"}))
		log, _, err := st.ListAlertDeliveries(ctx, rule.TeamID, storage.Page{})
		require.NoError(t, err)
		for _, row := range log {
			again, err := (&alerts.Deliverer{Store: st}).Plan(ctx, row.EventID)
			require.NoError(t, err)
			assert.Len(t, again, map[string]int{storage.DeliveryPending: 1}[row.Status], "a retried plan finds its rows")
		}
		require.NoError(t, (&alerts.Dispatcher{Store: st}).Summarise(ctx, time.Now().Add(11*time.Minute)))
		sums := summaries(t, st)
		require.Len(t, sums, 1)
		assert.Equal(t, 3, sums[0].SummaryCount, "counted once each")
		assert.Equal(t, "i1", sums[0].SubjectID)
		assert.Equal(t, "3 more alerts: Instance name-i1 crashed", alerts.Title(&sums[0]))

		open := throttledRule(t, st, 0, alerts.KindInstanceCrashed)
		assert.Equal(t, 3, planAll(t, st, open, alerts.KindInstanceCrashed, []string{"i2", "i2", "i2"}))
	})
}
