package alerts_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/alerts"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

func newTeam(t *testing.T, st *storage.Store) *storage.Team {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, st.SeedDefaults(ctx))
	types, _, err := storage.ListObjects[storage.TeamType](ctx, st, storage.Page{})
	require.NoError(t, err)
	team := &storage.Team{ID: domain.NewID(), Name: "t", Slug: "t-" + domain.NewID()[18:], TeamTypeID: types[0].ID}
	require.NoError(t, st.InsertTeam(ctx, team))
	return team
}

// TestSignatureVerifiesOnlyTheSignedBodyAtItsTime: a receiver accepts the body as signed, and refuses it with
// another secret, another body, or a timestamp outside its tolerance (a replayed request).
func TestSignatureVerifiesOnlyTheSignedBodyAtItsTime(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"e1","type":"instance_crashed"}`)
	sig := alerts.Sign("whsec_a", at, body)
	assert.Regexp(t, `^t=1800000000,v1=[0-9a-f]{64}$`, sig)
	require.NoError(t, alerts.Verify("whsec_a", sig, body, at.Add(time.Minute), 5*time.Minute))
	assert.Error(t, alerts.Verify("whsec_b", sig, body, at, 5*time.Minute))
	assert.Error(t, alerts.Verify("whsec_a", sig, []byte(`{"id":"e2","type":"instance_crashed"}`), at, 5*time.Minute))
	assert.Error(t, alerts.Verify("whsec_a", sig, body, at.Add(10*time.Minute), 5*time.Minute))
	assert.Error(t, alerts.Verify("whsec_a", "v1=00", body, at, 5*time.Minute))
}

func TestPrivateAddresses(t *testing.T) {
	for addr, private := range map[string]bool{
		"127.0.0.1": true, "127.1.46.224": true, "::1": true, "10.0.0.1": true, "172.16.5.4": true, "192.168.1.1": true,
		"169.254.169.254": true, "fe80::1": true, "fd00::1": true, "0.0.0.0": true, "::": true, "100.64.1.1": true,
		"::ffff:127.0.0.1": true, "::ffff:10.0.0.1": true, "224.0.0.1": true, "64:ff9b::a00:1": true,
		"203.0.113.5": false, "8.8.8.8": false, "2001:4860:4860::8888": false, "::ffff:8.8.8.8": false,
	} {
		assert.Equal(t, private, alerts.PrivateAddress(netip.MustParseAddr(addr)), addr)
	}
}

// TestOfflineDevicesAlertOncePerStretch: a device offline longer than a rule's minutes (after a broker
// disconnection, or silent over HTTP past the offline window) gets one event per rule and stretch, however
// often the watcher looks; one offline for less, one connected, and one that came back do not; a device that
// goes offline again later gets a new event.
func TestOfflineDevicesAlertOncePerStretch(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		team := newTeam(t, st)
		now := time.Now().UTC().Truncate(time.Second)
		device := func(name string, connected bool, lastSeen, disconnected time.Duration) *storage.Device {
			d := &storage.Device{ID: domain.NewID(), TeamID: team.ID, Name: name, CredentialSecret: "x", Mode: "autonomous", SettingsHash: "h", Connected: connected}
			seen := now.Add(-lastSeen)
			d.LastSeenAt = &seen
			if disconnected > 0 {
				at := now.Add(-disconnected)
				d.DisconnectedAt = &at
			}
			require.NoError(t, st.InsertDevice(ctx, d))
			return d
		}
		gone := device("gone", false, 20*time.Minute, 20*time.Minute)
		silent := device("silent", false, 30*time.Minute, 0) // HTTP only: offline from 3.5 min after its last check-in
		device("brief", false, 3*time.Minute, 3*time.Minute)
		device("connected", true, 40*time.Minute, 0)
		device("never", false, 0, 0).LastSeenAt = nil
		rule := &storage.AlertRule{ID: domain.NewID(), TeamID: team.ID, Name: "offline", Kinds: []string{alerts.KindDeviceOffline},
			OfflineMinutes: 10, EmailRole: domain.RoleOwner, Enabled: true}
		require.NoError(t, st.InsertAlertRule(ctx, rule))
		d := &alerts.Dispatcher{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}

		for range 3 {
			require.NoError(t, d.WatchDevices(ctx, now))
		}
		events, err := st.UndispatchedAlertEvents(ctx, 100)
		require.NoError(t, err)
		subjects := map[string]bool{}
		for _, e := range events {
			assert.Equal(t, alerts.KindDeviceOffline, e.Kind)
			assert.Equal(t, rule.ID, *e.RuleID, "narrowed to the rule whose minutes it passed")
			subjects[e.SubjectName] = true
		}
		assert.Equal(t, map[string]bool{"gone": true, "silent": true}, subjects)

		back := now.Add(time.Minute)
		require.NoError(t, st.SetDeviceConnected(ctx, gone.ID, true, back))
		require.NoError(t, st.SetDeviceConnected(ctx, gone.ID, false, back.Add(time.Minute)))
		require.NoError(t, d.WatchDevices(ctx, back.Add(5*time.Minute)))
		events, err = st.UndispatchedAlertEvents(ctx, 100)
		require.NoError(t, err)
		assert.Len(t, events, 2, "offline again for less than the rule's minutes")
		require.NoError(t, d.WatchDevices(ctx, back.Add(12*time.Minute)))
		events, err = st.UndispatchedAlertEvents(ctx, 100)
		require.NoError(t, err)
		names := []string{}
		for _, e := range events[2:] {
			names = append(names, e.SubjectName)
		}
		assert.ElementsMatch(t, []string{"gone", "brief"}, names, "a new stretch offline of gone, and brief's, now past the minutes")
		assert.NotEqual(t, events[1].DedupKey, events[3].DedupKey)
		_ = silent
	})
}

// TestEventsWaitForTheWorkflowEngine: an event recorded while no delivery can start (Temporal down, the
// process that detected it gone) stays in the store and is dispatched by the next dispatcher that can, once;
// the log drops it with its deliveries once past the retention.
func TestEventsWaitForTheWorkflowEngine(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		team := newTeam(t, st)
		_, err := alerts.Emit(ctx, st, alerts.Event{TeamID: team.ID, Kind: alerts.KindRolloutFailed, SubjectType: "device-group", SubjectID: "g", DedupKey: "rollout_failed:r1"})
		require.NoError(t, err)

		down := &alerts.Dispatcher{Store: st, Start: func(context.Context, string, string) error { return errors.New("temporal unavailable") }}
		assert.Error(t, down.DispatchPending(ctx))
		pending, err := st.UndispatchedAlertEvents(ctx, 10)
		require.NoError(t, err)
		require.Len(t, pending, 1, "kept for later")

		var started []string
		up := &alerts.Dispatcher{Store: st, Start: func(_ context.Context, id, _ string) error { started = append(started, id); return nil }}
		require.NoError(t, up.DispatchPending(ctx))
		require.NoError(t, up.DispatchPending(ctx))
		assert.Equal(t, []string{pending[0].ID}, started)

		_, err = st.PutAlertDelivery(ctx, &storage.AlertDelivery{ID: domain.NewID(), TeamID: team.ID, EventID: pending[0].ID,
			Channel: "email", Target: "a@example.com", Status: storage.DeliverySucceeded})
		require.NoError(t, err)
		kept, err := st.DeleteAlertEventsBefore(ctx, time.Now().Add(-time.Hour))
		require.NoError(t, err)
		assert.Zero(t, kept, "the log keeps recent events")
		dropped, err := st.DeleteAlertEventsBefore(ctx, time.Now().Add(time.Hour))
		require.NoError(t, err)
		assert.Equal(t, 1, dropped)
		log, _, err := st.ListAlertDeliveries(ctx, team.ID, storage.Page{})
		require.NoError(t, err)
		assert.Empty(t, log, "an event's deliveries go with it")
	})
}
