package platform_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/nodered"
	"github.com/flowyard/flowyard/storage"
)

// TestMeasureInstances measures provisioning (POST until the platform reports running), Node-RED's RSS per
// instance, and ten instances created at once, beside a bare `node red.js` start. It runs only under
// `make bench` (FLOWYARD_BENCH=1) and writes bench/instances.json.
func TestMeasureInstances(t *testing.T) {
	if os.Getenv("FLOWYARD_BENCH") != "1" {
		t.Skip("a measurement, not a test: run it with make bench")
	}
	const n = 10
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	objects := seededObjects(c)

	var provision []float64
	var rss []float64
	for i := 0; i < n; i++ {
		app := newApp(t, c, fmt.Sprintf("seq-%d", i))
		start := time.Now()
		id, op := postInstance(t, c, app, fmt.Sprintf("seq-%d", i), objects)
		require.Equal(t, "succeeded", waitOperation(t, c, op).String("status"))
		provision = append(provision, time.Since(start).Seconds())
		pids := nodeRedProcesses(t, filepath.Join(dev.DataDir, "instances", id))
		require.Len(t, pids, 1)
		rss = append(rss, rssMiB(pids[0]))
		c.Must(202, "POST", "/api/v1/instances/"+id+"/actions/stop", nil)
	}

	app := newApp(t, c, "burst")
	burstStart := time.Now()
	var wg sync.WaitGroup
	results := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, op := postInstance(t, c, app, fmt.Sprintf("burst-%d", i), objects)
			final := waitOperation(t, c, op)
			results[i] = final.String("status")
			if results[i] != "succeeded" {
				t.Logf("burst-%d: %s", i, final.Raw)
			}
		}()
	}
	wg.Wait()
	burst := time.Since(burstStart).Seconds()
	running := 0
	for _, r := range results {
		if r == "succeeded" {
			running++
		}
	}
	bare := bareStarts(t, n)
	report := map[string]any{
		"provisionSeconds": summary(provision), "bareNodeRedSeconds": summary(bare), "rssMiB": summary(rss),
		"tenAtOnce": map[string]any{"seconds": burst, "running": running, "of": n},
	}
	b, _ := json.MarshalIndent(report, "", "  ")
	t.Logf("instances: %s", b)
	require.NoError(t, os.WriteFile(filepath.Join("..", "bench", "instances.json"), b, 0o644))
}

func seededObjects(c *apitest.Client) map[string]any {
	return map[string]any{
		"instanceTypeId": firstID(c.Must(200, "GET", "/api/v1/instance-types", nil)),
		"stackId":        firstID(c.Must(200, "GET", "/api/v1/stacks", nil)),
		"templateId":     firstID(c.Must(200, "GET", "/api/v1/templates", nil)),
	}
}

func newApp(t *testing.T, c *apitest.Client, name string) string {
	team := c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Team " + name}).String("id")
	return c.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": "app"}).String("id")
}

func postInstance(t *testing.T, c *apitest.Client, app, name string, objects map[string]any) (string, string) {
	body := map[string]any{"name": name}
	for k, v := range objects {
		body[k] = v
	}
	r := c.Must(202, "POST", "/api/v1/applications/"+app+"/instances", body)
	return r.Body["instance"].(map[string]any)["id"].(string), r.Body["operation"].(map[string]any)["id"].(string)
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// bareStarts times `node red.js` on a fresh user dir from spawn until Node-RED logs "Started flows".
func bareStarts(t *testing.T, n int) []float64 {
	stacks := os.Getenv("FLOWYARD_TEST_STACKS_DIR")
	if stacks == "" {
		stacks = "/tmp/flowyard-test-stacks"
	}
	rt, err := nodered.EnsureStack(context.Background(), stacks, storage.DefaultNodeRedVersion, "", nil)
	require.NoError(t, err)
	var out []float64
	for i := 0; i < n; i++ {
		dir := t.TempDir()
		cmd := exec.Command(rt.NodeBin, rt.RedJS, "-u", dir, "-p", strconv.Itoa(freePort(t)))
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Started flows") {
				break
			}
		}
		out = append(out, time.Since(start).Seconds())
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	return out
}

func summary(xs []float64) map[string]float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return map[string]float64{"median": s[len(s)/2], "min": s[0], "max": s[len(s)-1]}
}
