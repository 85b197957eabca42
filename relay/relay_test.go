package relay_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/flowyard/flowyard/broker"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/internal/mqttdevice"
	"github.com/flowyard/flowyard/relay"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// The relay between processes, on Postgres: two "replicas" (a store, an embedded broker and a relay each, as
// `flowyard serve` has) and a "worker" (a store and a relay without a broker) share one database, and a device
// speaking the protocol (internal/mqttdevice) is connected to replica A only. Devices never heartbeat here:
// whatever reaches the device was pushed.

// replica is one process's store, broker (nil for a worker) and relay.
type replica struct {
	store  *storage.Store
	broker *broker.Broker
	relay  *relay.Relay
}

type world struct {
	url          string
	a, b, worker *replica
	svc          *devices.Service
	team, app    string
	snaps        [2]string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{url: storagetest.NewDatabase(t, "postgres")}
	w.a = w.start(t, true)
	w.b = w.start(t, true)
	w.worker = w.start(t, false)
	ctx := context.Background()
	st := w.a.store
	require.NoError(t, st.SeedDefaults(ctx))
	tts, _, err := storage.ListObjects[storage.TeamType](ctx, st, storage.Page{})
	require.NoError(t, err)
	w.team, w.app = domain.NewID(), domain.NewID()
	require.NoError(t, st.InsertTeam(ctx, &storage.Team{ID: w.team, Name: "T", Slug: "t-" + strings.ToLower(w.team), TeamTypeID: tts[0].ID}))
	require.NoError(t, st.InsertApplication(ctx, &storage.Application{ID: w.app, TeamID: w.team, Name: "app"}))
	for i := range w.snaps {
		snap := &storage.Snapshot{ID: domain.NewID(), ApplicationID: w.app, TeamID: w.team, Name: fmt.Sprint("v", i), Flows: "[]", Credentials: "{}"}
		_, err := st.InsertSnapshot(ctx, snap)
		require.NoError(t, err)
		w.snaps[i] = snap.ID
	}
	return w
}

// start opens a store of its own on the world's database, with a broker and a listening relay when withBroker.
func (w *world) start(t *testing.T, withBroker bool) *replica {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, w.url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		require.NoError(t, err)
	}
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	w.svc = &devices.Service{Store: st, Sealer: sealer, BrokerURL: "mqtt://broker.test"}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	r := &replica{store: st, relay: relay.New(st, log)}
	r.relay.PingEvery = time.Second  // a lost connection is noticed quickly in tests
	r.relay.LeaseEvery = time.Second // and a watch of a device's log that is not renewed ends
	if !withBroker {
		return r
	}
	r.broker, err = broker.Start(ctx, broker.Config{Listen: "127.0.0.1:0", Devices: w.svc, Log: log})
	require.NoError(t, err)
	r.relay.Attach(r.broker)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); r.relay.Listen(lctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = r.broker.Close() })
	waitListening(t, r)
	return r
}

func waitListening(t *testing.T, r *replica) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for r.relay.Check(context.Background()) != nil {
		require.True(t, time.Now().Before(deadline), "the relay did not listen within 30 s")
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *world) register(t *testing.T) (*storage.Device, *devices.Credentials) {
	t.Helper()
	d, err := w.svc.NewDevice(w.team, "dev", "test")
	require.NoError(t, err)
	d.ApplicationID = &w.app
	var creds *devices.Credentials
	require.NoError(t, w.a.store.RunInTx(context.Background(), func(ctx context.Context, tx *storage.Store) error {
		creds, err = w.svc.Register(ctx, tx, d)
		return err
	}))
	return d, creds
}

// agent is a device connected to one replica's broker.
type agent struct {
	*mqttdevice.Device
	id string
}

func connectAgent(t *testing.T, r *replica, d *storage.Device, creds *devices.Credentials) *agent {
	t.Helper()
	return &agent{Device: mqttdevice.Connect(t, "tcp://"+r.broker.Addr(), creds.Broker.Username, creds.Broker.Password), id: d.ID}
}

// report publishes a status saying the device runs snapshot with the settings hash, and waits until the
// broker has recorded it.
func (a *agent) report(t *testing.T, st *storage.Store, app, snapshot, settings string) {
	t.Helper()
	a.Status(t, app, snapshot, settings)
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := st.GetDevice(context.Background(), a.id)
		require.NoError(t, err)
		if d.State == "running" && d.ActiveSnapshotID != nil && *d.ActiveSnapshotID == snapshot {
			return
		}
		require.True(t, time.Now().Before(deadline), "the status was not recorded within 30 s")
		time.Sleep(20 * time.Millisecond)
	}
}

// setTarget changes a device's target in the store, with its settings hash, as the API or an activity does,
// and returns the new hash. Nothing is notified.
func (w *world) setTarget(t *testing.T, st *storage.Store, id, snapshot string) string {
	t.Helper()
	var hash string
	require.NoError(t, st.RunInTx(context.Background(), func(ctx context.Context, tx *storage.Store) error {
		d, err := tx.GetDevice(ctx, id)
		if err != nil {
			return err
		}
		d.TargetSnapshotID = &snapshot
		if err := w.svc.Rehash(ctx, tx, d); err != nil {
			return err
		}
		hash = d.SettingsHash
		return tx.UpdateDevice(ctx, d, "target_snapshot_id", "settings_hash")
	}))
	return hash
}

// connected registers a device running snapshot 0 and connects it to replica A.
func (w *world) connected(t *testing.T) *agent {
	t.Helper()
	d, creds := w.register(t)
	hash := w.setTarget(t, w.a.store, d.ID, w.snaps[0])
	a := connectAgent(t, w.a, d, creds)
	a.report(t, w.a.store, w.app, w.snaps[0], hash)
	return a
}

// TestUpdateReachesTheReplicaHoldingTheDevice: a target changed through replica B, and one changed by a worker,
// reach the device connected to replica A as `update` with the new snapshot and settings hash.
func TestUpdateReachesTheReplicaHoldingTheDevice(t *testing.T) {
	w := newWorld(t)
	a := w.connected(t)
	ctx := context.Background()
	for i, from := range []*replica{w.b, w.worker} {
		snap := w.snaps[(i+1)%2]
		hash := w.setTarget(t, from.store, a.id, snap)
		require.NoError(t, from.relay.NotifyDevices(ctx, []string{a.id}))
		upd := a.Next(t, "update")
		assert.Equal(t, snap, upd["snapshot"])
		assert.Equal(t, hash, upd["settings"])
		assert.Equal(t, w.app, upd["application"])
	}
}

// TestManyDevicesInOneCall: more devices than one notification holds, spread over both replicas, all get
// their update from one call on the worker.
func TestManyDevicesInOneCall(t *testing.T) {
	w := newWorld(t)
	var agents []*agent
	var ids []string
	for i := range 3 {
		d, creds := w.register(t)
		at := w.a
		if i == 1 {
			at = w.b
		}
		agents = append(agents, connectAgent(t, at, d, creds))
		ids = append(ids, d.ID)
	}
	// Devices connected nowhere fill the notification past one message's worth of ids.
	for range 450 {
		ids = append(ids, domain.NewID())
	}
	require.NoError(t, w.worker.relay.NotifyDevices(context.Background(), ids))
	for _, a := range agents {
		a.Next(t, "update")
	}
}

// TestDeleteDisconnectsOnAnotherReplica: a device deleted through B loses its connection to A at once.
func TestDeleteDisconnectsOnAnotherReplica(t *testing.T) {
	w := newWorld(t)
	a := w.connected(t)
	require.NoError(t, w.b.store.DeleteDevice(context.Background(), a.id))
	w.b.relay.DisconnectDevice(context.Background(), a.id)
	select {
	case <-a.Lost:
	case <-time.After(60 * time.Second):
		t.Fatal("the device on A was not disconnected")
	}
	assert.False(t, w.a.broker.Holds(a.id))
}

// TestUploadThroughAnotherReplica: B asks the device on A for its flows; the answer comes back to B. A device
// connected nowhere is refused as offline, and one that does not answer times out.
func TestUploadThroughAnotherReplica(t *testing.T) {
	w := newWorld(t)
	a := w.connected(t)
	ctx := context.Background()
	d, err := w.b.store.GetDevice(ctx, a.id)
	require.NoError(t, err)

	type result struct {
		up  *devices.Upload
		err error
	}
	answer := make(chan result, 1)
	go func() {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		up, err := w.b.relay.RequestUpload(rctx, d)
		answer <- result{up, err}
	}()
	a.Reply(t, a.Next(t, "upload"), mqttdevice.UploadAnswer("Line 3"))
	got := <-answer
	require.NoError(t, got.err)
	assert.Contains(t, string(got.up.Flows), "Line 3")
	assert.Equal(t, "4.1.15", got.up.Package.Modules["node-red"])

	// Asked again, the device stays silent: B's wait ends with device_timeout.
	rctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	_, err = w.b.relay.RequestUpload(rctx, d)
	de, ok := domain.AsError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "device_timeout", de.Code)
	a.Next(t, "upload")

	// A device connected nowhere: no replica acknowledges, B answers device_offline.
	other, _ := w.register(t)
	_, err = w.b.relay.RequestUpload(ctx, other)
	de, ok = domain.AsError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "device_offline", de.Code)
}

// TestListenerReconnects: A's listening connection is killed (pg_terminate_backend). A target written meanwhile
// without any notification reaches the device once A listens again (it compares its connected devices' last
// status with their targets), and notifications from B reach it again.
func TestListenerReconnects(t *testing.T) {
	w := newWorld(t)
	a := w.connected(t)
	ctx := context.Background()
	admin := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(w.url)))
	defer admin.Close()
	// A and B listen on one connection each (a connection closed a moment ago may still be listed: wait).
	var before []int
	deadline := time.Now().Add(30 * time.Second)
	for before = listenerPIDs(t, admin); len(before) != 2; before = listenerPIDs(t, admin) {
		require.True(t, time.Now().Before(deadline), "A and B listen, one connection each: %v", before)
		time.Sleep(50 * time.Millisecond)
	}
	// Written while A will not be listening: no notification at all, as if the process that wrote it had
	// died before it notified.
	hash := w.setTarget(t, w.b.store, a.id, w.snaps[1])
	for _, pid := range before {
		_, err := admin.ExecContext(ctx, "SELECT pg_terminate_backend($1)", pid)
		require.NoError(t, err)
	}
	upd := a.Next(t, "update")
	assert.Equal(t, w.snaps[1], upd["snapshot"])
	assert.Equal(t, hash, upd["settings"])
	waitListening(t, w.a)
	waitListening(t, w.b)

	a.report(t, w.a.store, w.app, w.snaps[1], hash)
	w.setTarget(t, w.b.store, a.id, w.snaps[0])
	require.NoError(t, w.b.relay.NotifyDevices(ctx, []string{a.id}))
	assert.Equal(t, w.snaps[0], a.Next(t, "update")["snapshot"])
}

// listenerPIDs are the backends of the database that listen for notifications.
func listenerPIDs(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'")
	require.NoError(t, err)
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var pid int
		require.NoError(t, rows.Scan(&pid))
		pids = append(pids, pid)
	}
	return pids
}
