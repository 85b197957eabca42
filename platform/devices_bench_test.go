package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/agent"
	"github.com/flowyard/flowyard/api/apitest"
)

// TestMeasureDevices measures a fleet of simulated agents (MQTT + HTTP) against `flowyard dev` running as its
// own process: the platform's memory per connected device, the time for all of them to report running after
// their target changes, and the platform's CPU while they idle. It runs only under `make bench`
// (FLOWYARD_BENCH=1; FLOWYARD_BENCH_DEVICES sets the fleet, default 1000) and writes bench/devices.json.
func TestMeasureDevices(t *testing.T) {
	n := benchFleet(t, 1000)
	dev, metricsURL := startDevProcess(t)
	url := dev.url
	c := (&apitest.Env{URL: url}).Client(t)
	c.Login("admin@example.com", "admin-password")
	// The default team type allows 100 devices; the fleet needs more.
	tt := firstID(c.Must(200, "GET", "/api/v1/team-types", nil))
	c.Must(200, "PATCH", "/api/v1/team-types/"+tt, map[string]any{"properties": map[string]any{"limits": map[string]any{"members": 20, "instances": 10, "devices": 0}}})
	instID, _ := createInstance(t, c, "fleet")
	inst := c.Must(200, "GET", "/api/v1/instances/"+instID, nil)
	team, app := inst.String("teamId"), inst.String("applicationId")
	snaps := make([]string, 2)
	for i := range snaps {
		snaps[i] = c.Must(201, "POST", "/api/v1/instances/"+instID+"/snapshots/import", map[string]any{
			"snapshot": map[string]any{"name": fmt.Sprintf("v%d", i), "flows": helloFlows(fmt.Sprintf("v%d", i)), "nodeRedVersion": "4.1.15"},
		}).String("id")
	}
	tok := c.Must(201, "POST", "/api/v1/teams/"+team+"/provisioning-tokens", map[string]any{"name": "fleet", "applicationId": app}).String("token")
	// Provision the fleet and disconnect it: the baseline holds the devices' rows and warm store caches, so the
	// difference with the fleet connected again is what the connections cost.
	simDir := t.TempDir()
	simulate := func() func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- agent.Simulate(ctx, agent.SimulateOptions{ForgeURL: url, ProvisioningToken: tok, Count: n, Delay: time.Second, Dir: simDir, Interval: 60 * time.Second})
		}()
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				cancel()
				<-done
			}
		}
		t.Cleanup(stop)
		return stop
	}
	stop := simulate()
	waitFleet(t, c, team, n, func(d map[string]any) bool { return d["status"] == "online" }, 5*time.Minute)
	stop()
	waitFleet(t, c, team, n, func(d map[string]any) bool { return d["status"] == "offline" }, time.Minute)
	// Settled: the Go runtime returns a burst's garbage to the OS within minutes (forced GC every 2 min,
	// then the scavenger), so memory is sampled over three idle minutes and the lowest value taken.
	baseline, _ := settle(t, dev.pid(), 3*time.Minute)
	goBaseline := goMemory(t, metricsURL)

	simulate()
	ids := waitFleet(t, c, team, n, func(d map[string]any) bool { return d["status"] == "online" }, 3*time.Minute)
	connectedPeak := rssKiB(t, dev.pid())
	connected, idleCPU := settle(t, dev.pid(), 3*time.Minute)
	goConnected := goMemory(t, metricsURL)

	start := time.Now()
	patchAll(t, c, ids, map[string]any{"targetSnapshotId": snaps[0]})
	patched := time.Since(start)
	waitFleet(t, c, team, n, func(d map[string]any) bool { return d["state"] == "running" && d["activeSnapshotId"] == snaps[0] }, 5*time.Minute)
	allRunning := time.Since(start)

	report := map[string]any{
		"devices":                   n,
		"platformRssBaselineMiB":    float64(baseline) / 1024,
		"platformRssConnectedMiB":   float64(connected) / 1024,
		"platformRssConnectPeakMiB": float64(connectedPeak) / 1024,
		"idleSeconds":               180,
		"goroutinesPerDevice":       (goConnected["go_goroutines"] - goBaseline["go_goroutines"]) / float64(n),
		"goStackKiBPerDevice":       (goConnected["go_memstats_stack_inuse_bytes"] - goBaseline["go_memstats_stack_inuse_bytes"]) / 1024 / float64(n),
		"goHeapKiBPerDevice":        (goConnected["go_memstats_heap_alloc_bytes"] - goBaseline["go_memstats_heap_alloc_bytes"]) / 1024 / float64(n),
		"platformKiBPerDevice":      float64(connected-baseline) / float64(n),
		"targetChangeToAllRunningS": allRunning.Seconds(),
		"targetChangePatchesS":      patched.Seconds(),
		"simulatedInstallS":         1.0,
		"idleCpuPercentOfOneCore":   idleCPU,
		"heartbeatIntervalSeconds":  60,
	}
	b, _ := json.MarshalIndent(report, "", "  ")
	t.Logf("%s", b)
	require.NoError(t, os.WriteFile(filepath.Join("..", "bench", "devices.json"), b, 0o644))
}

// startDevProcess runs `flowyard dev` as a child process (crash_test.go's), so its memory and CPU are its own.
func startDevProcess(t *testing.T) (*devProcess, string) {
	t.Helper()
	d := newDevProcess(t, bulkProvisioning...)
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d.args = append(d.args, "--mqtt-ws-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--metrics-listen", metrics, "--log-level", "warn")
	d.start()
	return d, "http://" + metrics + "/metrics"
}

// goMemory reads the Go runtime's gauges from the platform's /metrics.
func goMemory(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[0] == "go_goroutines" || strings.HasPrefix(f[0], "go_memstats_")) {
			out[f[0]], _ = strconv.ParseFloat(f[1], 64)
		}
	}
	return out
}

func (d *devProcess) pid() int { return d.cmd.Process.Pid }

// waitFleet waits until n devices of the team satisfy ok and returns their IDs.
func waitFleet(t *testing.T, c *apitest.Client, team string, n int, ok func(map[string]any) bool, d time.Duration) []string {
	t.Helper()
	var ids []string
	waitFor(t, d, fmt.Sprintf("%d devices", n), func() bool {
		ids = ids[:0]
		good := 0
		cursor := ""
		for {
			page := c.Must(200, "GET", "/api/v1/teams/"+team+"/devices?limit=500&cursor="+cursor, nil)
			for _, it := range page.Body["items"].([]any) {
				dev := it.(map[string]any)
				ids = append(ids, dev["id"].(string))
				if ok(dev) {
					good++
				}
			}
			if cursor = page.String("next"); cursor == "" {
				break
			}
		}
		return good == n
	})
	return ids
}

// patchAll sends the same PATCH to every device, 16 at a time.
func patchAll(t *testing.T, c *apitest.Client, ids []string, body map[string]any) {
	t.Helper()
	work := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				c.Must(200, "PATCH", "/api/v1/devices/"+id, body)
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
}

func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// settle samples the process's RSS every 10 s for d and returns the lowest, with the CPU it used meanwhile.
func settle(t *testing.T, pid int, d time.Duration) (int, float64) {
	t.Helper()
	before := cpuTicks(t, pid)
	low := rssKiB(t, pid)
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(10 * time.Second)
		low = min(low, rssKiB(t, pid))
	}
	return low, float64(cpuTicks(t, pid)-before) / 100 / d.Seconds() * 100
}

// cpuTicks is the process's user and system CPU time in clock ticks (1/100 s).
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}
