package api_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/snapshotschedule"
)

// recordingScheduler stands in for Temporal's Schedules: it keeps the spec each instance was given and
// answers err when set.
type recordingScheduler struct {
	mu    sync.Mutex
	specs map[string]snapshotschedule.Spec
	calls int
	err   error
}

func (r *recordingScheduler) SetSchedule(_ context.Context, instanceID, _ string, spec snapshotschedule.Spec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.err != nil {
		return r.err
	}
	r.specs[instanceID] = spec
	return nil
}

func (r *recordingScheduler) DeleteSchedule(_ context.Context, instanceID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.err != nil {
		return r.err
	}
	delete(r.specs, instanceID)
	return nil
}

func (r *recordingScheduler) state() (int, map[string]snapshotschedule.Spec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]snapshotschedule.Spec, len(r.specs))
	for k, v := range r.specs {
		out[k] = v
	}
	return r.calls, out
}

// newScheduleWorld is a snapWorld whose API has a recording scheduler.
func newScheduleWorld(t *testing.T, dialect string) (*snapWorld, *recordingScheduler) {
	t.Helper()
	sched := &recordingScheduler{specs: map[string]snapshotschedule.Spec{}}
	return newSnapWorld(t, dialect, func(d *api.Deps) { d.SnapshotSchedules = sched }), sched
}

func schedulePath(in *storage.Instance) string {
	return "/api/v1/instances/" + in.ID + "/snapshot-schedule"
}

// TestSnapshotScheduleSetReadReplaceDelete goes through a schedule's life on both dialects: an interval, then
// a cron that replaces it (names become numbers, keep defaults to 10), read back, deleted twice.
func TestSnapshotScheduleSetReadReplaceDelete(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			w, sched := newScheduleWorld(t, dialect)
			in := w.mine(t, 0, "nightly", "s")
			member := w.as["member"]
			member.Must(404, "GET", schedulePath(in), nil)

			got := member.Must(200, "PUT", schedulePath(in), map[string]any{"every": "24h", "keep": 3})
			assert.Equal(t, "24h", got.String("every"))
			assert.Equal(t, float64(3), got.Body["keep"])
			assert.Equal(t, "snapshot-schedule/"+in.ID, got.String("scheduleId"))
			_, specs := sched.state()
			assert.Equal(t, snapshotschedule.Spec{Every: 24 * time.Hour}, specs[in.ID])
			created := got.String("createdAt")

			got = member.Must(200, "PUT", schedulePath(in), map[string]any{"cron": "30 3 * * mon-fri"})
			assert.Equal(t, "30 3 * * 1-5", got.String("cron"))
			assert.Empty(t, got.String("every"))
			assert.Equal(t, float64(snapshotschedule.DefaultKeep), got.Body["keep"])
			assert.Equal(t, created, got.String("createdAt"), "replacing keeps the creation time")
			_, specs = sched.state()
			assert.Equal(t, snapshotschedule.Spec{Cron: "30 3 * * 1-5"}, specs[in.ID])

			read := w.as["viewer"].Must(200, "GET", schedulePath(in), nil)
			assert.Equal(t, "30 3 * * 1-5", read.String("cron"))
			keep, err := w.env.Store.AutoSnapshotRetention(context.Background(), in.ID, 99)
			require.NoError(t, err)
			assert.Equal(t, snapshotschedule.DefaultKeep, keep)

			member.Must(204, "DELETE", schedulePath(in), nil)
			member.Must(204, "DELETE", schedulePath(in), nil)
			member.Must(404, "GET", schedulePath(in), nil)
			_, specs = sched.state()
			assert.NotContains(t, specs, in.ID)
			audit := w.audit(t)
			assert.Contains(t, audit, "snapshot_schedule.set")
			assert.Equal(t, 1, strings.Count(audit, "snapshot_schedule.deleted"), "the second delete deleted nothing")
		})
	}
}

// TestSnapshotScheduleBadInputChangesNothing sends bad schedules on both dialects: each answers 400 with the
// envelope naming the field, and neither the store nor the scheduler hears of it.
func TestSnapshotScheduleBadInputChangesNothing(t *testing.T) {
	bad := []struct {
		body  any
		field string
	}{
		{map[string]any{}, "every"},
		{map[string]any{"every": "30m"}, "every"},
		{map[string]any{"every": "daily"}, "every"},
		{map[string]any{"every": "24h", "cron": "0 3 * * *"}, "cron"},
		{map[string]any{"cron": "0 3 * *"}, "cron"},
		{map[string]any{"cron": "*/5 * * * *"}, "cron"},
		{map[string]any{"cron": "0 25 * * *"}, "cron"},
		{map[string]any{"every": "24h", "keep": 0}, "keep"},
		{map[string]any{"every": "24h", "keep": 101}, "keep"},
		{map[string]any{"every": "24h", "keep": "ten"}, ""},
		{map[string]any{"every": "24h", "often": true}, ""},
		{`{"every": "24h"`, ""},
	}
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			w, sched := newScheduleWorld(t, dialect)
			in := w.mine(t, 0, "picky", "s")
			w.as["member"].Must(200, "PUT", schedulePath(in), map[string]any{"every": "12h", "keep": 4})
			callsBefore, _ := sched.state()
			for i, c := range bad {
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					got := w.as["member"].Do("PUT", schedulePath(in), c.body)
					require.Equal(t, 400, got.Status, string(got.Raw))
					assert.NotEmpty(t, got.String("code"), "the error envelope")
					assert.NotEmpty(t, got.String("message"))
					if c.field != "" {
						assert.Contains(t, string(got.Raw), `"field":"`+c.field+`"`)
					}
				})
			}
			calls, specs := sched.state()
			assert.Equal(t, callsBefore, calls, "the scheduler heard nothing")
			assert.Equal(t, snapshotschedule.Spec{Every: 12 * time.Hour}, specs[in.ID])
			kept := w.as["member"].Must(200, "GET", schedulePath(in), nil)
			assert.Equal(t, "12h", kept.String("every"))
			assert.Equal(t, float64(4), kept.Body["keep"])
		})
	}
}

// TestSnapshotSchedulePermissionsAndEngineFailure: members and owners set and delete, viewers read, others
// are refused; a schedule the engine refuses is not stored.
func TestSnapshotSchedulePermissionsAndEngineFailure(t *testing.T) {
	w, sched := newScheduleWorld(t, "sqlite")
	in := w.mine(t, 0, "guarded", "s")
	want := map[string][3]int{ // PUT, GET, DELETE
		"owner":     {200, 200, 204},
		"member":    {200, 200, 204},
		"admin":     {200, 200, 204},
		"viewer":    {403, 200, 403},
		"dashboard": {403, 403, 403},
		"outsider":  {404, 404, 404},
		"anonymous": {401, 401, 401},
	}
	for who, codes := range want {
		t.Run(who, func(t *testing.T) {
			w.as["owner"].Must(200, "PUT", schedulePath(in), map[string]any{"every": "2h"})
			c := w.as[who]
			assert.Equal(t, codes[0], c.Do("PUT", schedulePath(in), map[string]any{"every": "3h"}).Status)
			assert.Equal(t, codes[1], c.Do("GET", schedulePath(in), nil).Status)
			assert.Equal(t, codes[2], c.Do("DELETE", schedulePath(in), nil).Status)
		})
	}

	w.as["owner"].Must(204, "DELETE", schedulePath(in), nil)
	sched.mu.Lock()
	sched.err = domain.Unavailable("temporal_unavailable", "The workflow engine did not accept the schedule change; try again.")
	sched.mu.Unlock()
	got := w.as["owner"].Do("PUT", schedulePath(in), map[string]any{"every": "2h"})
	assert.Equal(t, 503, got.Status, string(got.Raw))
	assert.Equal(t, "temporal_unavailable", got.String("code"))
	w.as["owner"].Must(404, "GET", schedulePath(in), nil)
}
