package api_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
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
