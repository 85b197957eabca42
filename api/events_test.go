package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// eventWait bounds every wait for an event; polls run every 50 ms here.
const eventWait = 15 * time.Second

// fastLive polls, sends keep-alives and rechecks access often, so that tests see changes and gone clients
// quickly.
func fastLive(d *api.Deps) {
	d.Config.Live = api.LiveConfig{PollInterval: 50 * time.Millisecond, KeepAlive: 100 * time.Millisecond, Recheck: 100 * time.Millisecond}
}

// storeInstance inserts an instance row of a team as provisioning would.
func storeInstance(t testing.TB, st *storage.Store, teamID, appID, name string) *storage.Instance {
	t.Helper()
	in := newInstanceRow(t, st, teamID, appID, name)
	require.NoError(t, st.InsertInstance(context.Background(), in))
	return in
}

// eventFor matches an event of a kind about one object (and, when state is set, in that state).
func eventFor(kind, id, state string) func(apitest.Event) bool {
	return func(ev apitest.Event) bool {
		var body map[string]any
		if ev.Name != kind || json.Unmarshal([]byte(ev.Data), &body) != nil {
			return false
		}
		return body["id"] == id && (state == "" || body["state"] == state || body["status"] == state)
	}
}

// assertSameAsGet checks that an event's data is what the object's GET route answers.
func assertSameAsGet(t *testing.T, c *apitest.Client, ev apitest.Event, path string) {
	t.Helper()
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(ev.Data), &got))
	assert.Equal(t, c.Must(200, "GET", path, nil).Body, got, "the %s event is the same JSON as GET %s", ev.Name, path)
}

// recorder keeps every event a stream delivered while a test waits for particular ones.
type recorder struct {
	s   *apitest.Stream
	mu  sync.Mutex
	all []apitest.Event
}

func (r *recorder) until(t *testing.T, what string, match func(apitest.Event) bool) apitest.Event {
	t.Helper()
	return r.s.Until(eventWait, what, func(ev apitest.Event) bool {
		r.mu.Lock()
		r.all = append(r.all, ev)
		r.mu.Unlock()
		return match(ev)
	})
}

func (r *recorder) mentions(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.all {
		if strings.Contains(ev.Data, s) {
			return true
		}
	}
	return false
}

func TestTeamEvents(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) { testTeamEvents(t, dialect) })
	}
}

func testTeamEvents(t *testing.T, dialect string) {
	w := newWorld(t, dialect, fastLive)
	ctx := context.Background()
	st := w.env.Store
	owner, viewer, outsider := w.byRole["owner"], w.byRole["viewer"], w.byRole["outsider"]
	appID := owner.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/applications", map[string]any{"name": "app"}).String("id")
	otherApp := outsider.Must(201, "POST", "/api/v1/teams/"+w.otherTID+"/applications", map[string]any{"name": "theirs"}).String("id")
	mine := storeInstance(t, st, w.teamID, appID, "mine")
	theirs := storeInstance(t, st, w.otherTID, otherApp, "theirs")

	events := func(c *apitest.Client, team, lastID string) *recorder {
		return &recorder{s: c.Stream("/api/v1/teams/"+team+"/events", lastID)}
	}
	asViewer, asOwner, asOutsider := events(viewer, w.teamID, ""), events(owner, w.teamID, ""), events(outsider, w.otherTID, "")

	// A state change written through the store (as a worker on any host would) arrives as an event; the other
	// team's change reaches only the other team.
	_, err := st.SetInstanceState(ctx, theirs.ID, "stopped", "")
	require.NoError(t, err)
	asOutsider.until(t, "for their instance", eventFor("instance", theirs.ID, "stopped"))
	_, err = st.SetInstanceState(ctx, mine.ID, "stopped", "")
	require.NoError(t, err)
	stopped := asViewer.until(t, "for my instance", eventFor("instance", mine.ID, "stopped"))
	assertSameAsGet(t, viewer, stopped, "/api/v1/instances/"+mine.ID)
	assert.NotEmpty(t, stopped.ID, "every event carries an id to resume from")

	// Operations, devices and rollouts too, each as its GET route answers it; a viewer gets no rollouts
	// (reading one needs a member), the owner does.
	op := &storage.Operation{ID: domain.NewID(), Kind: "restart", SubjectType: "instance", SubjectID: mine.ID, TeamID: &w.teamID,
		Status: domain.OperationRunning, WorkflowID: "wf"}
	_, _, err = st.InsertOperation(ctx, op)
	require.NoError(t, err)
	assertSameAsGet(t, viewer, asViewer.until(t, "for the operation", eventFor("operation", op.ID, "running")), "/api/v1/operations/"+op.ID)
	dev := &storage.Device{ID: domain.NewID(), TeamID: w.teamID, Name: "dev", Type: "pi", CredentialSecret: "x", Mode: "autonomous"}
	require.NoError(t, st.InsertDevice(ctx, dev))
	assertSameAsGet(t, viewer, asViewer.until(t, "for the device", eventFor("device", dev.ID, "")), "/api/v1/devices/"+dev.ID)
	// A device that checks in over HTTP turns offline by time, which changes no row; it still gets an event.
	seen := time.Now().Add(-devices.DefaultOfflineAfter + 300*time.Millisecond)
	silent := &storage.Device{ID: domain.NewID(), TeamID: w.teamID, Name: "silent", Type: "pi", CredentialSecret: "x", Mode: "autonomous", LastSeenAt: &seen}
	require.NoError(t, st.InsertDevice(ctx, silent))
	assertSameAsGet(t, viewer, asViewer.until(t, "for the device gone offline", eventFor("device", silent.ID, "offline")), "/api/v1/devices/"+silent.ID)
	ro := insertRollout(t, st, w.teamID, appID)
	assertSameAsGet(t, owner, asOwner.until(t, "for the rollout", eventFor("rollout", ro.ID, "running")), "/api/v1/rollouts/"+ro.ID)
	_, err = st.SetInstanceState(ctx, mine.ID, "suspended", "")
	require.NoError(t, err)
	asViewer.until(t, "after the rollout", eventFor("instance", mine.ID, "suspended"))
	assert.False(t, asViewer.mentions(ro.ID), "a viewer is not sent rollouts")
	assert.False(t, asViewer.mentions(theirs.ID), "another team's objects never appear")
	assert.False(t, asOutsider.mentions(mine.ID), "another team's objects never appear")

	// A client that reconnects with Last-Event-ID gets what changed while it was away.
	lastID := asViewer.s.LastID()
	asViewer.s.Close()
	_, err = st.SetInstanceState(ctx, mine.ID, "running", "")
	require.NoError(t, err)
	events(viewer, w.teamID, lastID).until(t, "missed while away", eventFor("instance", mine.ID, "running"))

	// An id that is not ours asks the client to reload.
	events(viewer, w.teamID, "not-a-cursor").until(t, "resync", func(ev apitest.Event) bool { return ev.Name == "resync" })
}

// TestTeamEventsAcrossReplicas: two API replicas on one database (each with its own store pool and poller). A
// change made through one replica's API reaches a stream on the other, and a stream's Last-Event-ID resumes on
// either: the change source and the cursor are the database's.
func TestTeamEventsAcrossReplicas(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			url := storagetest.NewDatabase(t, dialect)
			open := func() *storage.Store {
				st, err := storage.Open(ctx, url)
				require.NoError(t, err)
				t.Cleanup(func() { _ = st.Close() })
				return st
			}
			st := open()
			_, err := st.Migrate(ctx)
			require.NoError(t, err)
			require.NoError(t, st.SeedDefaults(ctx))
			a, b := apitest.Serve(t, st, fastLive), apitest.Serve(t, open(), fastLive)
			u, err := api.NewUser("owner@example.com", "owner", testPassword, false)
			require.NoError(t, err)
			require.NoError(t, st.InsertUser(ctx, u))
			viaA, viaB := a.Client(t), b.Client(t)
			viaA.Login("owner@example.com", testPassword)
			viaB.Login("owner@example.com", testPassword)
			team := viaA.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Replicated"}).String("id")
			app := viaA.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": "app"}).String("id")
			in := storeInstance(t, st, team, app, "shared")
			onB := &recorder{s: viaB.Stream("/api/v1/teams/"+team+"/events", "")}

			viaA.Must(200, "PATCH", "/api/v1/instances/"+in.ID, map[string]any{"env": []map[string]string{{"name": "WHERE", "value": "replica-a"}}})
			ev := onB.until(t, "on B for a change through A", func(ev apitest.Event) bool {
				return eventFor("instance", in.ID, "")(ev) && strings.Contains(ev.Data, "replica-a")
			})
			assertSameAsGet(t, viaB, ev, "/api/v1/instances/"+in.ID)

			lastID := onB.s.LastID()
			onB.s.Close()
			_, err = st.SetInstanceState(ctx, in.ID, "stopped", "")
			require.NoError(t, err)
			(&recorder{s: viaA.Stream("/api/v1/teams/"+team+"/events", lastID)}).until(t, "on A resuming B's stream", eventFor("instance", in.ID, "stopped"))
		})
	}
}

// insertRollout inserts a running rollout of a new group, as the rollout route would.
func insertRollout(t *testing.T, st *storage.Store, teamID, appID string) *storage.Rollout {
	t.Helper()
	ctx := context.Background()
	snap := &storage.Snapshot{ID: domain.NewID(), ApplicationID: appID, TeamID: teamID, Name: "s", Flows: "[]", Credentials: "{}"}
	_, err := st.InsertSnapshot(ctx, snap)
	require.NoError(t, err)
	g := &storage.DeviceGroup{ID: domain.NewID(), ApplicationID: appID, TeamID: teamID, Name: "g"}
	require.NoError(t, st.InsertDeviceGroup(ctx, g))
	r := &storage.Rollout{ID: domain.NewID(), GroupID: g.ID, TeamID: teamID, ApplicationID: appID, SnapshotID: snap.ID, Status: "running"}
	require.NoError(t, st.InsertRollout(ctx, r))
	return r
}

// TestTeamEventsFreeEverything: streams of one team share one poller; when the last client leaves, the poller
// stops and no goroutine is left behind.
func TestTeamEventsFreeEverything(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			w := newWorld(t, dialect, fastLive)
			path := "/api/v1/teams/" + w.teamID + "/events"
			// Warm up: the server's idle connection workers and the store's pool stay for a while after any
			// request; two streams first leave what two streams need, so the count below sees only leaks.
			warm := []*apitest.Stream{w.byRole["owner"].Stream(path, ""), w.byRole["owner"].Stream(path, "")}
			for _, s := range warm {
				s.Close()
			}
			waitFor(t, "the warm-up poller to stop", func() bool { return w.env.Server.LivePollers() == 0 })
			before := runtime.NumGoroutine()
			a, b := w.byRole["owner"].Stream(path, ""), w.byRole["dashboard"].Stream(path, "")
			assert.Equal(t, 1, w.env.Server.LivePollers(), "one poller per team, not per connection")
			a.Close()
			require.Positive(t, waitKeepAlives(b, 1))
			assert.Equal(t, 1, w.env.Server.LivePollers(), "the poller stays while someone listens")
			b.Close()
			waitFor(t, "the poller to stop", func() bool { return w.env.Server.LivePollers() == 0 })
			waitFor(t, fmt.Sprintf("goroutines back to %d", before), func() bool { return runtime.NumGoroutine() <= before })
		})
	}
}

// waitKeepAlives waits until the stream has received n keep-alive comments (or eventWait passed) and returns
// how many came.
func waitKeepAlives(s *apitest.Stream, n int) int {
	deadline := time.Now().Add(eventWait)
	for s.KeepAlives() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return s.KeepAlives()
}

// waitFor polls cond for up to 45 s (fasthttp retires idle workers 10 to 20 s after their last request).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStreamsEndWhenAccessDoes: a stream outlives no revocation: removing the member, changing their role or
// signing out ends theirs (their reconnect then meets the usual checks); the others go on.
func TestStreamsEndWhenAccessDoes(t *testing.T) {
	w := newWorld(t, "sqlite", fastLive)
	owner := w.byRole["owner"]
	appID := owner.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/applications", map[string]any{"name": "app"}).String("id")
	in := storeInstance(t, w.env.Store, w.teamID, appID, "watched")
	events := "/api/v1/teams/" + w.teamID + "/events"
	removed, demoted := w.byRole["viewer"].Stream(events, ""), w.byRole["member"].Stream(events, "")
	logs := w.byRole["member"].Stream("/api/v1/instances/"+in.ID+"/logs/stream", "")
	signedOut, kept := w.byRole["dashboard"].Stream(events, ""), owner.Stream(events, "")

	owner.Must(204, "DELETE", "/api/v1/teams/"+w.teamID+"/members/"+w.userIDs["viewer"], nil)
	assert.True(t, removed.Ended(eventWait), "a removed member's stream ends")
	owner.Must(200, "PATCH", "/api/v1/teams/"+w.teamID+"/members/"+w.userIDs["member"], map[string]any{"role": "viewer"})
	assert.True(t, demoted.Ended(eventWait), "a changed role ends the stream (its events depend on the role)")
	assert.True(t, logs.Ended(eventWait), "log streams too")
	w.byRole["dashboard"].Must(204, "POST", "/api/v1/auth/logout", nil)
	assert.True(t, signedOut.Ended(eventWait), "signing out ends the stream")

	before := kept.KeepAlives()
	assert.Greater(t, waitKeepAlives(kept, before+1), before, "the owner's stream goes on")
	w.byRole["viewer"].Must(404, "GET", events, nil)
}

// TestShutdownEndsStreams: Shutdown does not wait for open streams to end by themselves.
func TestShutdownEndsStreams(t *testing.T) {
	w := newWorld(t, "sqlite", fastLive)
	s := w.byRole["viewer"].Stream("/api/v1/teams/"+w.teamID+"/events", "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, w.env.Server.Shutdown(ctx), "shutdown finished before its deadline")
	assert.True(t, s.Ended(eventWait), "the stream ended")
}

// TestStreamOutlivesWriteTimeout: the server's WriteTimeout bounds each write, not a stream's life.
func TestStreamOutlivesWriteTimeout(t *testing.T) {
	w := newWorld(t, "sqlite", fastLive, func(d *api.Deps) { d.Config.WriteTimeout = 300 * time.Millisecond })
	appID := w.byRole["owner"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/applications", map[string]any{"name": "app"}).String("id")
	in := storeInstance(t, w.env.Store, w.teamID, appID, "long")
	s := &recorder{s: w.byRole["viewer"].Stream("/api/v1/teams/"+w.teamID+"/events", "")}
	// A second of keep-alives: three times the write timeout.
	require.GreaterOrEqual(t, waitKeepAlives(s.s, 10), 10, "the stream ended early")
	_, err := w.env.Store.SetInstanceState(context.Background(), in.ID, "stopped", "")
	require.NoError(t, err)
	s.until(t, "after the write timeout", eventFor("instance", in.ID, "stopped"))
}

// fakeLogs is a runtime log that a test appends to (the drivers' own logs are tested with the drivers).
type fakeLogs struct {
	mu    sync.Mutex
	lines []api.LogLineJSON
}

func (f *fakeLogs) add(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lines = append(f.lines, api.LogLineJSON{Time: time.Now().UTC(), Level: "info", Msg: msg})
}

func (f *fakeLogs) read(_ context.Context, _ string, since time.Time, limit int) ([]api.LogLineJSON, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.LogLineJSON
	for _, l := range f.lines {
		if !l.Time.Before(since) {
			out = append(out, l)
		}
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

func TestInstanceLogStream(t *testing.T) {
	logs := &fakeLogs{}
	w := newWorld(t, "sqlite", fastLive, func(d *api.Deps) { d.Logs = logs.read })
	appID := w.byRole["owner"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/applications", map[string]any{"name": "app"}).String("id")
	in := storeInstance(t, w.env.Store, w.teamID, appID, "logger")
	for i := range 3 {
		logs.add(fmt.Sprint("old ", i))
	}
	for _, path := range []string{"/logs/stream?limit=0", "/logs/stream?since=yesterday", "/logs?limit=1001"} {
		r := w.byRole["viewer"].Must(400, "GET", "/api/v1/instances/"+in.ID+path, nil)
		assert.Equal(t, "invalid_request", r.String("code"), "%s: %s", path, r.Raw)
	}
	s := w.byRole["viewer"].Stream("/api/v1/instances/"+in.ID+"/logs/stream?limit=2", "")
	msg := func(ev apitest.Event) string {
		var l struct {
			TS    time.Time `json:"ts"`
			Level string    `json:"level"`
			Msg   string    `json:"msg"`
		}
		require.NoError(t, json.Unmarshal([]byte(ev.Data), &l))
		assert.Equal(t, "log", ev.Name)
		assert.False(t, l.TS.IsZero())
		assert.Equal(t, "info", l.Level)
		return l.Msg
	}
	var got []string
	for len(got) < 4 {
		if len(got) == 2 {
			logs.add("new 0")
			logs.add("new 1")
		}
		ev, ok := s.Next(eventWait)
		require.True(t, ok, "got %v", got)
		got = append(got, msg(ev))
	}
	assert.Equal(t, []string{"old 1", "old 2", "new 0", "new 1"}, got, "the recent lines (?limit=2), then new ones, each once")
	resumed := w.byRole["viewer"].Stream("/api/v1/instances/"+in.ID+"/logs/stream", s.LastID())
	s.Close()
	logs.add("new 2")
	ev, ok := resumed.Next(eventWait)
	require.True(t, ok)
	assert.Equal(t, "new 2", msg(ev), "a reconnect resumes after the last line it saw")
}

// TestStreamRoutesDocumented: the OpenAPI document says the live routes answer text/event-stream.
func TestStreamRoutesDocumented(t *testing.T) {
	env := apitest.Start(t, "sqlite")
	paths := env.Client(t).Must(200, "GET", "/api/v1/openapi.json", nil).Body["paths"].(map[string]any)
	for _, p := range []string{"/api/v1/teams/{teamId}/events", "/api/v1/instances/{instanceId}/logs/stream", "/api/v1/devices/{deviceId}/logs/stream"} {
		get, _ := paths[p].(map[string]any)["get"].(map[string]any)
		require.NotNil(t, get, p)
		ok := get["responses"].(map[string]any)["200"].(map[string]any)
		assert.Contains(t, ok["content"], "text/event-stream", p)
	}
}
