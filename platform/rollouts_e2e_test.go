package platform_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/agent"
	"github.com/flowyard/flowyard/api/apitest"
)

// fleetWorld is a running platform with an instance, two snapshots of it and a helper to start fleets of
// simulated agents in an application.
type fleetWorld struct {
	dev       devEnv
	c         *apitest.Client
	team, app string
	snapV1    string
}

func newFleetWorld(t *testing.T) *fleetWorld {
	return prepareFleet(t, startDev(t))
}

// prepareFleet gives a running platform a team without a device limit, an application, a running instance
// and a snapshot of it.
func prepareFleet(t *testing.T, dev devEnv) *fleetWorld {
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	w := fleetTeam(dev, c)
	objects := seededObjects(c)
	id, op := postInstance(t, c, w.app, "fleet-source", objects)
	require.Equal(t, "succeeded", waitOperation(t, c, op).String("status"))
	w.snapV1 = c.Must(201, "POST", "/api/v1/instances/"+id+"/snapshots", map[string]any{"name": "v1"}).String("id")
	return w
}

// fleetTeam gives the signed-in admin a team without a device limit (fleets outgrow the seeded Starter type's)
// and an application in it.
func fleetTeam(dev devEnv, c *apitest.Client) *fleetWorld {
	w := &fleetWorld{dev: dev, c: c}
	unlimited := c.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Unlimited fleet"}).String("id")
	w.team = c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Fleet", "teamTypeId": unlimited}).String("id")
	w.app = c.Must(201, "POST", "/api/v1/teams/"+w.team+"/applications", map[string]any{"name": "plant"}).String("id")
	return w
}

// fleet provisions n simulated agents into a new group and returns the group's ID once all have joined it.
func (w *fleetWorld) fleet(t *testing.T, name string, n int, failureRate float64) string {
	t.Helper()
	group := w.c.Must(201, "POST", "/api/v1/applications/"+w.app+"/device-groups", map[string]any{"name": name}).String("id")
	w.join(t, group, name, n, failureRate)
	return group
}

// join provisions n more simulated agents into a group and waits until they are in it.
func (w *fleetWorld) join(t *testing.T, group, name string, n int, failureRate float64) {
	t.Helper()
	before := int(w.c.Must(200, "GET", "/api/v1/device-groups/"+group, nil).Body["deviceCount"].(float64))
	tok := w.c.Must(201, "POST", "/api/v1/teams/"+w.team+"/provisioning-tokens", map[string]any{"name": name, "applicationId": w.app,
		"deviceGroupId": group}).String("token")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = agent.Simulate(ctx, agent.SimulateOptions{ForgeURL: w.dev.URL, ProvisioningToken: tok, Count: n, FailureRate: failureRate,
			Delay: 20 * time.Millisecond, Dir: t.TempDir(), Interval: time.Minute})
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, 2*time.Minute, fmt.Sprintf("%d devices to join %s", n, name), func() bool {
		g := w.c.Must(200, "GET", "/api/v1/device-groups/"+group, nil)
		return int(g.Body["deviceCount"].(float64)) == before+n
	})
}

func (w *fleetWorld) rollout(t *testing.T, group, snapshot string, strategy map[string]any) map[string]any {
	t.Helper()
	return w.rolloutWithin(t, 3*time.Minute, group, snapshot, strategy)
}

// rolloutWithin starts a rollout and waits up to d for it to end.
func (w *fleetWorld) rolloutWithin(t *testing.T, d time.Duration, group, snapshot string, strategy map[string]any) map[string]any {
	t.Helper()
	r := w.c.Must(202, "POST", "/api/v1/device-groups/"+group+"/rollouts", map[string]any{"snapshotId": snapshot, "strategy": strategy})
	id := r.Body["rollout"].(map[string]any)["id"].(string)
	var ro *apitest.Response
	waitFor(t, d, "rollout "+id+" to finish", func() bool {
		ro = w.c.Must(200, "GET", "/api/v1/rollouts/"+id, nil)
		switch ro.String("status") {
		case "succeeded", "failed", "rolled_back", "aborted":
			return true
		}
		return false
	})
	return ro.Body
}

func (w *fleetWorld) devicesOf(t *testing.T, group string) []map[string]any {
	var out []map[string]any
	for _, d := range w.c.Must(200, "GET", "/api/v1/applications/"+w.app+"/devices?limit=500", nil).Body["items"].([]any) {
		dev := d.(map[string]any)
		if dev["deviceGroupId"] == group {
			out = append(out, dev)
		}
	}
	return out
}

// TestRolloutToSimulatedFleets runs two rollouts against simulated agents: one where every device succeeds,
// and one to a 100-device group where 3 % of the devices fail, which stops at the canary wave (default strategy:
// 1 %, 10 %, 50 %, 100 %) and rolls back exactly the device it changed.
func TestRolloutToSimulatedFleets(t *testing.T) {
	w := newFleetWorld(t)

	good := w.fleet(t, "good", 30, 0)
	ro := w.rollout(t, good, w.snapV1, map[string]any{"waves": []int{10, 50, 100}, "waveTimeout": "2m"})
	require.Equal(t, "succeeded", ro["status"], "%v", ro)
	counts := ro["counts"].(map[string]any)
	assert.EqualValues(t, 30, counts["updated"])
	assert.EqualValues(t, 0, counts["failed"])
	for _, d := range w.devicesOf(t, good) {
		assert.Equal(t, w.snapV1, d["targetSnapshotId"])
		assert.Equal(t, w.snapV1, d["activeSnapshotId"], "every device reports running the snapshot")
	}

	// 3 % of a 100-device group fail every install; they registered first, so the 1 % canary is one of them.
	bad := w.fleet(t, "mixed", 3, 1)
	w.join(t, bad, "mixed-good", 97, 0)
	ro = w.rollout(t, bad, w.snapV1, map[string]any{"waveTimeout": "2m"})
	require.Equal(t, "rolled_back", ro["status"], "%v", ro)
	failed := ro["failedDevices"].([]any)
	require.Len(t, failed, 1, "only the canary was changed")
	assert.EqualValues(t, 1, ro["counts"].(map[string]any)["rolledBack"], "exactly the changed device was rolled back")
	assert.EqualValues(t, 0, ro["wave"], "stopped in the canary wave")
	assert.NotEmpty(t, failed[0].(map[string]any)["error"])
	for _, d := range w.devicesOf(t, bad) {
		assert.Nil(t, d["targetSnapshotId"], "every device ends on its previous target (none)")
	}
}
