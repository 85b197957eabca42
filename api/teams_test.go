package api_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// teamTypeNamed finds a team type in the list every user may read.
func teamTypeNamed(t *testing.T, w *world, name string) map[string]any {
	t.Helper()
	for _, it := range w.byRole["owner"].Must(200, "GET", "/api/v1/team-types", nil).Body["items"].([]any) {
		if tt := it.(map[string]any); tt["name"] == name {
			return tt
		}
	}
	t.Fatalf("no team type %q", name)
	return nil
}

// Team owners pick among the self-service team types; the others (an admin's internal type) only platform
// admins assign, for a new team as for an existing one.
func TestTeamOwnersChooseOnlySelfServiceTeamTypes(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		owner := w.byRole["owner"]
		starter := teamTypeNamed(t, w, "Starter")
		assert.Equal(t, true, starter["selfService"], "the seeded type is offered to owners")
		internal := w.admin.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Internal"})
		assert.Equal(t, false, internal.Body["selfService"], "a new type is not self-service unless an admin says so")
		plus := w.admin.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Plus", "selfService": true}).String("id")
		team := "/api/v1/teams/" + w.teamID
		auditLog := func() string { return string(w.admin.Must(200, "GET", team+"/audit-log?limit=500", nil).Raw) }
		before := auditLog()

		r := owner.Do("PATCH", team, map[string]any{"teamTypeId": internal.String("id")})
		assert.Equal(t, 403, r.Status, "%s", r.Raw)
		assert.Equal(t, "team_type_admin_only", r.String("code"))
		assert.Contains(t, string(r.Raw), `"field":"teamTypeId"`)
		assert.Equal(t, starter["id"], owner.Must(200, "GET", team, nil).String("teamTypeId"), "the team stays on its type")
		assert.Equal(t, before, auditLog(), "and nothing is recorded")
		r = owner.Do("POST", "/api/v1/teams", map[string]any{"name": "Mine", "teamTypeId": internal.String("id")})
		assert.Equal(t, 403, r.Status, "%s", r.Raw)
		assert.Equal(t, "team_type_admin_only", r.String("code"))
		assert.Equal(t, starter["id"], owner.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Mine"}).String("teamTypeId"),
			"a new team without a named type gets the first self-service one")

		assert.Equal(t, plus, owner.Must(200, "PATCH", team, map[string]any{"teamTypeId": plus}).String("teamTypeId"))
		assert.Equal(t, internal.String("id"), w.admin.Must(200, "PATCH", team, map[string]any{"teamTypeId": internal.String("id")}).String("teamTypeId"))
		renamed := owner.Must(200, "PATCH", team, map[string]any{"name": "Renamed", "teamTypeId": internal.String("id")})
		assert.Equal(t, internal.String("id"), renamed.String("teamTypeId"), "sending the team's own type back is no change")

		w.admin.Must(200, "PATCH", "/api/v1/team-types/"+plus, map[string]any{"selfService": false})
		assert.Equal(t, 403, owner.Do("PATCH", team, map[string]any{"teamTypeId": plus}).Status, "an admin withdraws a type from owners")
	})
}

// A team moves to another type only if what it holds fits every limit of that type, checked in the
// transaction that moves it; a refusal names the limit and changes nothing.
func TestTeamTypeChangeChecksEveryLimit(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		ctx := context.Background()
		owner := w.byRole["owner"]
		team := "/api/v1/teams/" + w.teamID
		app := owner.Must(201, "POST", team+"/applications", map[string]any{"name": "app"}).String("id")
		instanceType := storeInstance(t, w.env.Store, w.teamID, app, "one").InstanceTypeID
		storeInstance(t, w.env.Store, w.teamID, app, "two")
		for _, name := range []string{"press", "lathe"} {
			require.NoError(t, w.env.Store.InsertDevice(ctx, &storage.Device{ID: domain.NewID(), TeamID: w.teamID, Name: name, Type: "pi", Mode: "autonomous"}))
		}
		// The team holds 4 members, 2 instances (of one instance type) and 2 devices.
		newType := func(name string, limits map[string]any) string {
			return w.admin.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": name, "selfService": true,
				"properties": map[string]any{"limits": limits}}).String("id")
		}
		before := owner.Must(200, "GET", team, nil).String("teamTypeId")
		auditLog := string(w.admin.Must(200, "GET", team+"/audit-log?limit=500", nil).Raw)
		for i, tc := range []struct {
			limits map[string]any
			code   string
		}{
			{map[string]any{"members": 3}, "limit_members"},
			{map[string]any{"instances": 1}, "limit_instances"},
			{map[string]any{"instancesPerType": map[string]int{instanceType: 1}}, "limit_instances_per_type"},
			{map[string]any{"devices": 1}, "limit_devices"},
		} {
			r := owner.Do("PATCH", team, map[string]any{"teamTypeId": newType(fmt.Sprint("Small ", i), tc.limits)})
			assert.Equal(t, 409, r.Status, "%s", r.Raw)
			assert.Equal(t, tc.code, r.String("code"))
			assert.NotEmpty(t, r.String("message"))
		}
		r := w.admin.Do("PATCH", team, map[string]any{"teamTypeId": newType("Small for admins too", map[string]any{"devices": 1})})
		assert.Equal(t, "limit_devices", r.String("code"), "a platform admin's change meets the limits too")
		assert.Equal(t, before, owner.Must(200, "GET", team, nil).String("teamTypeId"), "no refused change moved the team")
		assert.Equal(t, auditLog, string(w.admin.Must(200, "GET", team+"/audit-log?limit=500", nil).Raw), "nor recorded anything")

		fits := newType("Exact", map[string]any{"members": 4, "instances": 2, "instancesPerType": map[string]int{instanceType: 2}, "devices": 2})
		assert.Equal(t, fits, owner.Must(200, "PATCH", team, map[string]any{"teamTypeId": fits}).String("teamTypeId"))
	})
}

// Concurrent requests never take a team past a limit: the count and the insert of each happen under the
// team's lock, so of many registrations racing for the last free device slot exactly one wins.
func TestConcurrentRequestsMeetTheTeamLimits(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
		require.NoError(t, err)
		w := newWorld(t, dialect, func(d *api.Deps) { d.Sealer = sealer })
		team := "/api/v1/teams/" + w.teamID
		const devicesAllowed = 2
		small := w.admin.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Two devices", "selfService": true,
			"properties": map[string]any{"limits": map[string]any{"devices": devicesAllowed}}}).String("id")
		w.byRole["owner"].Must(200, "PATCH", team, map[string]any{"teamTypeId": small})

		statuses := make([]int, 12)
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := w.byRole["owner"].Do("POST", "/api/v1/devices",
					map[string]any{"name": fmt.Sprint("racer-", i), "type": "pi", "team": w.teamID})
				statuses[i] = r.Status
				if r.Status != 200 && r.Status != 409 {
					t.Logf("%s", r.Raw)
				}
			}()
		}
		wg.Wait()
		registered := 0
		for _, s := range statuses {
			assert.Contains(t, []int{200, 409}, s)
			if s == 200 {
				registered++
			}
		}
		assert.Equal(t, devicesAllowed, registered, "statuses %v", statuses)
		n, err := w.env.Store.CountTeamDevices(context.Background(), w.teamID)
		require.NoError(t, err)
		assert.Equal(t, devicesAllowed, n, "the team holds no more devices than its type allows")
	})
}

// Devices join a team whose type sets no device limit side by side: a registration does not wait for the team's
// other registrations (behind the team's lock, 10,000 devices provisioning at once joined one at a time across
// every replica), only for a move of the team to another type, whose limit it then meets. Postgres only: SQLite
// runs one writing transaction at a time anyway.
func TestRegistrationsUnderNoDeviceLimitGoSideBySide(t *testing.T) {
	url := storagetest.NewDatabase(t, "postgres")
	st, err := storage.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Migrate(context.Background())
	require.NoError(t, err)
	require.NoError(t, st.SeedDefaults(context.Background()))
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	w := worldOn(t, apitest.Serve(t, st, func(d *api.Deps) { d.Sealer = sealer }))
	owner := w.byRole["owner"]
	unlimited := w.admin.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "No limits"}).String("id")
	w.admin.Must(200, "PATCH", "/api/v1/teams/"+w.teamID, map[string]any{"teamTypeId": unlimited})
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(url)))
	t.Cleanup(func() { _ = db.Close() })
	waitingForALock := func() bool {
		var n int
		require.NoError(t, db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock'`).Scan(&n))
		return n > 0
	}
	register := func(name string) chan *apitest.Response {
		done := make(chan *apitest.Response, 1)
		go func() {
			done <- owner.Do("POST", "/api/v1/devices", map[string]any{"name": name, "type": "pi", "team": w.teamID})
		}()
		return done
	}

	// Another registration of the team, its transaction still open, holds the team's row as a registration does.
	other, err := db.Begin()
	require.NoError(t, err)
	_, err = other.Exec(`SELECT id FROM teams WHERE id = $1 FOR SHARE`, w.teamID)
	require.NoError(t, err)
	done := register("beside")
	for r := (*apitest.Response)(nil); r == nil; {
		select {
		case r = <-done:
			assert.Equal(t, 200, r.Status, "%s", r.Raw)
		default:
			require.False(t, waitingForALock(), "the registration waits for the team's other registration")
			time.Sleep(20 * time.Millisecond)
		}
	}
	require.NoError(t, other.Rollback())

	// A move of the team to a type allowing one device, in progress: a registration waits for it, then meets its limit.
	one := w.admin.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "One device", "selfService": true,
		"properties": map[string]any{"limits": map[string]any{"devices": 1}}}).String("id")
	move, err := db.Begin()
	require.NoError(t, err)
	_, err = move.Exec(`UPDATE teams SET team_type_id = $1 WHERE id = $2`, one, w.teamID)
	require.NoError(t, err)
	done = register("after the move")
	waitFor(t, "the registration to wait for the move", waitingForALock)
	require.NoError(t, move.Commit())
	r := <-done
	assert.Equal(t, 409, r.Status, "%s", r.Raw)
	assert.Equal(t, "limit_devices", r.String("code"))
	n, err := st.CountTeamDevices(context.Background(), w.teamID)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}
