package platform_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/internal/proctest"
)

// TestCrashDuringRollout SIGKILLs `flowyard dev` in the middle of a rollout to 1,000 simulated devices (run by a
// separate agent process that keeps going), starts it again, and checks that the rollout finishes with every
// device on the target, counts that add up, no device rolled back and a final operation.
func TestCrashDuringRollout(t *testing.T) {
	const n = 1000
	d := newDevProcess(t, bulkProvisioning...)
	d.start()
	w := prepareFleet(t, devEnv{URL: d.url, DataDir: d.dataDir})
	group := w.c.Must(201, "POST", "/api/v1/applications/"+w.app+"/device-groups", map[string]any{"name": "crash"}).String("id")
	tok := w.c.Must(201, "POST", "/api/v1/teams/"+w.team+"/provisioning-tokens", map[string]any{"name": "crash", "applicationId": w.app,
		"deviceGroupId": group}).String("token")

	agentBin := filepath.Join(t.TempDir(), "flowyard-agent")
	out, err := exec.Command("go", "build", "-o", agentBin, "../cmd/flowyard-agent").CombinedOutput()
	require.NoError(t, err, string(out))
	sim := exec.Command(agentBin, "simulate", "--forge-url", d.url, "--provisioning-token", tok, "--count", strconv.Itoa(n),
		"--delay", "200ms", "--interval", "20s", "--dir", t.TempDir())
	require.NoError(t, sim.Start())
	t.Cleanup(func() { proctest.Stop(t, sim, syscall.SIGKILL, 30*time.Second, nil) })
	waitFor(t, 5*time.Minute, fmt.Sprintf("%d devices to provision", n), func() bool {
		return int(w.c.Must(200, "GET", "/api/v1/device-groups/"+group, nil).Body["deviceCount"].(float64)) == n
	})

	r := w.c.Must(202, "POST", "/api/v1/device-groups/"+group+"/rollouts", map[string]any{"snapshotId": w.snapV1,
		"strategy": map[string]any{"waves": []int{1, 10, 50, 100}, "batchSize": 100, "waveTimeout": "5m"}})
	id := r.Body["rollout"].(map[string]any)["id"].(string)
	opID := r.Body["operation"].(map[string]any)["id"].(string)
	var before *apitest.Response
	waitFor(t, 3*time.Minute, "the rollout to reach its third wave", func() bool {
		before = w.c.Must(200, "GET", "/api/v1/rollouts/"+id, nil)
		return before.Body["wave"].(float64) >= 2 || before.String("status") != "running"
	})
	d.kill(syscall.SIGKILL)
	require.Equal(t, "running", before.String("status"), "the platform must die in the middle of the rollout: %s", before.Raw)
	updatedBefore := before.Body["counts"].(map[string]any)["updated"].(float64)
	require.Less(t, updatedBefore, float64(n), "devices were still waiting when the platform died")

	d.start()
	c := d.client()
	var ro *apitest.Response
	waitFor(t, 5*time.Minute, "the rollout to finish after the restart", func() bool {
		ro = c.Must(200, "GET", "/api/v1/rollouts/"+id, nil)
		return ro.String("status") != "running"
	})
	require.Equal(t, "succeeded", ro.String("status"), "%s\n%s", ro.Raw, d.out.String())
	counts := ro.Body["counts"].(map[string]any)
	assert.EqualValues(t, n, counts["total"])
	assert.EqualValues(t, n, counts["updated"])
	assert.EqualValues(t, 0, counts["failed"])
	assert.EqualValues(t, 0, counts["pending"])
	assert.EqualValues(t, 0, counts["rolledBack"], "no device was rolled back")
	op := waitOperation(t, c, opID)
	assert.Equal(t, "succeeded", op.String("status"), "the rollout's operation is final: %s", op.Raw)
	w.c = c
	onTarget := 0
	for cursor := ""; ; {
		page := c.Must(200, "GET", "/api/v1/applications/"+w.app+"/devices?limit=500&cursor="+cursor, nil)
		for _, it := range page.Body["items"].([]any) {
			dev := it.(map[string]any)
			if dev["targetSnapshotId"] == w.snapV1 && dev["activeSnapshotId"] == w.snapV1 {
				onTarget++
			}
		}
		if cursor = page.String("next"); cursor == "" {
			break
		}
	}
	assert.Equal(t, n, onTarget, "every device runs the target")
}
