package platform_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/driver/pgdriver"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/flowyard/flowyard/broker/mosquitto/mosquittotest"
	"github.com/flowyard/flowyard/internal/proctest"
	"github.com/flowyard/flowyard/workflows/rollout"
)

// TestMeasureRollout rolls a snapshot out to FLOWYARD_BENCH_DEVICES (default 10,000) simulated devices run by
// a separate flowyard-agent process, and reports the time from POST …/rollouts to succeeded, the platform's
// peak RSS (this test process holds the platform; the fleet runs elsewhere) and the largest history length
// of any run of the rollout workflow. Only under make bench (FLOWYARD_BENCH=1); writes bench/rollout.json. With
// FLOWYARD_BENCH_BROKER=external the devices connect to a throwaway Mosquitto the platform manages, and the
// broker's memory is reported too (bench/rollout-external.json).
func TestMeasureRollout(t *testing.T) {
	n := benchFleet(t, 10000)
	flags, mb := slices.Clone(bulkProvisioning), externalBroker(t)
	if mb != nil {
		flags = append(flags, "--mqtt-broker", "external", "--mqtt-external-url", mb.URL(), "--mqtt-external-username", mb.AdminUsername,
			"--mqtt-external-password", mb.AdminPassword)
	}
	w := prepareFleet(t, startDev(t, flags...))
	var brokerBaseline float64
	if mb != nil {
		brokerBaseline = rssMiB(mb.PID())
	}
	group := w.c.Must(201, "POST", "/api/v1/applications/"+w.app+"/device-groups", map[string]any{"name": "bench"}).String("id")
	tok := w.c.Must(201, "POST", "/api/v1/teams/"+w.team+"/provisioning-tokens", map[string]any{"name": "bench", "applicationId": w.app,
		"deviceGroupId": group}).String("token")

	sim := startSimulator(t, buildAgent(t), w.dev.URL, tok, n)

	simPID, self := pidString(sim.Process.Pid), os.Getpid()
	prof := profilePhase(t, "provision")
	provisionStart := time.Now()
	waitFor(t, provisionTimeout(), fmt.Sprintf("%d devices to provision", n), func() bool { return groupSize(t, w, group) == n })
	provision := time.Since(provisionStart)
	time.Sleep(5 * time.Second) // let every agent finish its first check-in and MQTT connect
	prof.stop()
	provisionPeak := peakRSSMiB()
	connected := procStatus("self", "VmRSS")
	// What the connected fleet costs once the burst's garbage is collected and returned (as TestMeasureDevices
	// takes it: the lowest RSS over the settling time), and the platform's CPU meanwhile.
	resetPeakRSS(t) // from here VmHWM is the settling fleet's own peak
	settledKiB, idleCPU := settle(t, self, settleTime())
	settlePeak := peakRSSMiB()
	simBefore, platformBefore := cpuSeconds(t, sim.Process.Pid), cpuSeconds(t, self)
	resetPeakRSS(t) // from here VmHWM is the rollout's own peak

	prof = profilePhase(t, "rollout")
	start := time.Now()
	ro := w.rolloutWithin(t, 15*time.Minute, group, w.snapV1, map[string]any{"waveTimeout": "10m", "batchSize": 500})
	took := time.Since(start)
	prof.stop()
	rolloutPeak := peakRSSMiB()
	require.Equal(t, "succeeded", ro["status"], "%v", ro)

	longest := longestHistory(t, w.dev.TemporalAddress, ro["id"].(string))
	report := map[string]any{"devices": n, "provisionSeconds": provision.Seconds(), "rolloutSeconds": took.Seconds(),
		"peakRSSMiB": max(provisionPeak, rolloutPeak), "provisionPeakRSSMiB": provisionPeak, "connectedRSSMiB": connected,
		"settledRSSMiB": float64(settledKiB) / 1024, "settlePeakRSSMiB": settlePeak, "settleSeconds": settleTime().Seconds(), "idleCpuPercentOfOneCore": idleCPU,
		"rolloutPeakRSSMiB": rolloutPeak, "rolloutPeakKiBPerDevice": rolloutPeak * 1024 / float64(n),
		"platformRolloutCPUSeconds": cpuSeconds(t, self) - platformBefore,
		"simulatorPeakRSSMiB":       procStatus(simPID, "VmHWM"), "simulatorRSSMiB": procStatus(simPID, "VmRSS"),
		"simulatorCPUSeconds": cpuSeconds(t, sim.Process.Pid), "simulatorRolloutCPUSeconds": cpuSeconds(t, sim.Process.Pid) - simBefore,
		"longestHistoryEvents": longest, "counts": ro["counts"], "broker": "embedded"}
	file := "rollout.json"
	if mb != nil {
		report["broker"], file = "external", "rollout-external.json"
		report["mosquittoRSSMiB"] = rssMiB(mb.PID())
		report["mosquittoKiBPerDevice"] = (rssMiB(mb.PID()) - brokerBaseline) * 1024 / float64(n)
	}
	b, _ := json.MarshalIndent(report, "", "  ")
	t.Logf("rollout: %s", b)
	require.NoError(t, os.WriteFile(filepath.Join("..", "bench", file), b, 0o644))
}

// benchFleet skips a measurement outside make bench (FLOWYARD_BENCH=1) and returns its fleet size:
// FLOWYARD_BENCH_DEVICES, else def.
func benchFleet(t *testing.T, def int) int {
	if os.Getenv("FLOWYARD_BENCH") != "1" {
		t.Skip("a measurement, not a test: run it with make bench")
	}
	if n, err := strconv.Atoi(os.Getenv("FLOWYARD_BENCH_DEVICES")); err == nil {
		return n
	}
	return def
}

// groupSize counts a group's devices; a platform too busy to answer within the client's timeout (a fleet
// provisioning at once on a loaded machine) counts as not there yet, and is logged.
func groupSize(t *testing.T, w *fleetWorld, group string) int {
	resp, err := w.c.HTTP().Get(w.dev.URL + "/api/v1/device-groups/" + group)
	if err != nil {
		t.Logf("GET the group: %v (counted as not yet)", err)
		return -1
	}
	defer resp.Body.Close()
	var g struct{ DeviceCount int }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&g))
	return g.DeviceCount
}

// provisionTimeout is how long a measured fleet may take to provision (FLOWYARD_BENCH_PROVISION_TIMEOUT, default
// 10 min): with the external broker each account costs Mosquitto more the more there are.
func provisionTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("FLOWYARD_BENCH_PROVISION_TIMEOUT")); err == nil {
		return d
	}
	return 10 * time.Minute
}

// settleTime is how long a measured fleet idles, connected, before its rollout (FLOWYARD_BENCH_SETTLE, default 90 s).
func settleTime() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("FLOWYARD_BENCH_SETTLE")); err == nil {
		return d
	}
	return 90 * time.Second
}

// buildAgent builds flowyard-agent, whose simulate subcommand runs a fleet in a process of its own.
func buildAgent(t *testing.T) string {
	agentBin := filepath.Join(t.TempDir(), "flowyard-agent")
	out, err := exec.Command("go", "build", "-o", agentBin, "../cmd/flowyard-agent").CombinedOutput()
	require.NoError(t, err, string(out))
	return agentBin
}

// startSimulator runs n simulated devices (install 100 ms, check-in every 60 s) against the platform at url.
func startSimulator(t *testing.T, agentBin, url, tok string, n int) *exec.Cmd {
	sim := exec.Command(agentBin, "simulate", "--forge-url", url, "--provisioning-token", tok, "--count", strconv.Itoa(n),
		"--delay", "100ms", "--interval", "60s", "--dir", t.TempDir())
	sim.Stderr = os.Stderr
	require.NoError(t, sim.Start())
	t.Cleanup(func() { proctest.Stop(t, sim, syscall.SIGKILL, 30*time.Second, nil) })
	return sim
}

// externalBroker is a throwaway Mosquitto for the fleet with FLOWYARD_BENCH_BROKER=external (the platform then
// manages its device accounts), nil for the embedded broker.
func externalBroker(t *testing.T) *mosquittotest.Broker {
	if os.Getenv("FLOWYARD_BENCH_BROKER") != "external" {
		return nil
	}
	return mosquittotest.Start(t)
}

// bulkProvisioning lifts the provisioning rate limits (1,000 a minute by default): a measured fleet joins all at
// once from one loopback address, and its provisioning time is part of what is measured.
var bulkProvisioning = []string{"--provisions-per-token", "1000000", "--provisions-per-ip", "1000000"}

// longestHistory is the largest history of any run of the rollout's workflow (continue-as-new makes runs).
func longestHistory(t *testing.T, address, rolloutID string) int64 {
	c, err := client.Dial(client.Options{HostPort: address, Namespace: "flowyard"})
	require.NoError(t, err)
	defer c.Close()
	resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: "flowyard", Query: fmt.Sprintf("WorkflowId = %q", rollout.WorkflowID(rolloutID))})
	require.NoError(t, err)
	var longest int64
	for _, e := range resp.Executions {
		if e.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && e.HistoryLength > longest {
			longest = e.HistoryLength
		}
	}
	return longest
}

// peakRSSMiB reads this process's high-water RSS.
func peakRSSMiB() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		var kb float64
		if _, err := fmt.Sscanf(line, "VmHWM: %f kB", &kb); err == nil {
			return kb / 1024
		}
	}
	return 0
}

// TestMeasureRolloutLayout is TestMeasureRollout on the production layout (platform/topology_test.go): Postgres, a
// Temporal dev server, `flowyard worker` and two `flowyard serve` replicas, each holding half of the fleet (one
// simulator process per replica, provisioning through that replica's API and connecting to its broker). It reports
// each flowyard process's RSS with the fleet connected (as it came, and settled: the lowest over
// FLOWYARD_BENCH_SETTLE), its own peak during provisioning and during the rollout and its CPU, the devices each
// broker holds, and the simulators' RSS and CPU. Only under make bench (FLOWYARD_BENCH=1, FLOWYARD_BENCH_DEVICES,
// default 10,000); writes bench/rollout-layout.json and logs its progress every 10 s (go test -v).
func TestMeasureRolloutLayout(t *testing.T) {
	n := benchFleet(t, 10000)
	tp := startTopology(t, 2, withServeFlags(bulkProvisioning...))
	// The snapshot is stored directly: an instance of the worker would need the platform's public URL.
	w := fleetTeam(devEnv{URL: tp.serves[0].url, TemporalAddress: tp.temporal}, tp.serves[0].client(t))
	w.snapV1 = tp.insertSnapshots(tp.store(), w.team, w.app, 1)[0]
	group := w.c.Must(201, "POST", "/api/v1/applications/"+w.app+"/device-groups", map[string]any{"name": "bench"}).String("id")
	tok := w.c.Must(201, "POST", "/api/v1/teams/"+w.team+"/provisioning-tokens", map[string]any{"name": "bench", "applicationId": w.app,
		"deviceGroupId": group}).String("token")
	agentBin := buildAgent(t)
	procs := []layoutProcess{{"worker", tp.worker.cmd.Process.Pid}}
	var sims []int
	for i, r := range tp.serves {
		procs = append(procs, layoutProcess{r.name, r.cmd.Process.Pid})
		sims = append(sims, startSimulator(t, agentBin, r.url, tok, n/2+i*(n%2)).Process.Pid)
	}
	connected := func() []int { // devices on each replica's broker
		var out []int
		for _, r := range tp.serves {
			out = append(out, establishedTo(t, r.mqtt))
		}
		return out
	}
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(tp.dbURL)))
	defer db.Close()
	var lastCounts string
	stopProgress := layoutProgress(t, procs, sims, func() string {
		line := fmt.Sprintf("%d in the group, on the brokers %v", groupSize(t, w, group), connected())
		if r := w.c.Do("GET", "/api/v1/device-groups/"+group+"/rollouts", nil); r.Status == 200 {
			if items, _ := r.Body["items"].([]any); len(items) > 0 {
				ro := items[0].(map[string]any)
				counts := fmt.Sprint(ro["counts"])
				line += fmt.Sprintf("; rollout %v wave %v: %v", ro["status"], ro["wave"], counts)
				if counts == lastCounts && ro["status"] == "running" {
					line += "; still updating: " + updatingDevices(db, ro["id"].(string))
				}
				lastCounts = counts
			}
		}
		return line
	})
	if dir := os.Getenv("FLOWYARD_BENCH_PROFILE"); dir != "" { // what each flowyard process logged, for the record
		require.NoError(t, os.MkdirAll(dir, 0o755))
		t.Cleanup(func() {
			for _, c := range append([]*child{tp.worker}, tp.serves[0].child, tp.serves[1].child) {
				_ = os.WriteFile(filepath.Join(dir, "layout-"+c.name+".log"), []byte(c.out.String()), 0o644)
			}
		})
	}
	defer stopProgress()

	provisionStart := time.Now()
	waitFor(t, provisionTimeout(), fmt.Sprintf("%d devices to provision", n), func() bool { return groupSize(t, w, group) == n })
	provision := time.Since(provisionStart)
	waitFor(t, 10*time.Minute, fmt.Sprintf("%d devices connected to the brokers", n), func() bool {
		c := connected()
		return c[0]+c[1] >= n
	})
	onBrokers := connected()
	report := map[string]any{"devices": n, "provisionSeconds": provision.Seconds(), "connectedSeconds": time.Since(provisionStart).Seconds(),
		"layout": "2 × serve + worker, Postgres", "devicesOnBrokers": map[string]int{tp.serves[0].name: onBrokers[0], tp.serves[1].name: onBrokers[1]},
		"settleSeconds": settleTime().Seconds(), "loadAverage": loadAverage()}
	for _, p := range procs {
		report[p.name+"ProvisionPeakRSSMiB"] = procStatus(pidString(p.pid), "VmHWM")
		report[p.name+"ConnectedRSSMiB"] = procStatus(pidString(p.pid), "VmRSS")
	}
	settled, idle := settleAll(t, procs, settleTime())
	cpuBefore := map[string]float64{}
	for _, p := range procs {
		report[p.name+"SettledRSSMiB"] = settled[p.name]
		report[p.name+"IdleCpuPercentOfOneCore"] = idle[p.name]
		report[p.name+"RolloutStartRSSMiB"] = procStatus(pidString(p.pid), "VmRSS") // after settling
		cpuBefore[p.name] = cpuSeconds(t, p.pid)
		require.NoError(t, os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.pid), []byte("5"), 0o200)) // VmHWM from here is the rollout's
	}
	var simCPUBefore float64
	for _, pid := range sims {
		simCPUBefore += cpuSeconds(t, pid)
	}

	t.Logf("rollout to %d devices starts", n)
	start := time.Now()
	ro := w.rolloutWithin(t, 30*time.Minute, group, w.snapV1, map[string]any{"waveTimeout": "10m", "batchSize": 500})
	report["rolloutSeconds"] = time.Since(start).Seconds()
	require.Equal(t, "succeeded", ro["status"], "%v", ro)
	for _, p := range procs {
		report[p.name+"RolloutPeakRSSMiB"] = procStatus(pidString(p.pid), "VmHWM")
		report[p.name+"RolloutCPUSeconds"] = cpuSeconds(t, p.pid) - cpuBefore[p.name]
		report[p.name+"CPUSeconds"] = cpuSeconds(t, p.pid)
	}
	var simRSS, simCPU float64
	for _, pid := range sims {
		simRSS += procStatus(pidString(pid), "VmHWM")
		simCPU += cpuSeconds(t, pid)
	}
	report["simulatorsPeakRSSMiB"], report["simulatorsCPUSeconds"], report["simulatorsRolloutCPUSeconds"] = simRSS, simCPU, simCPU-simCPUBefore
	// The rollout reads succeeded a moment before its workflow's run closes (1,000 devices once gave 0 here).
	var longest int64
	waitFor(t, time.Minute, "the rollout's workflow to close", func() bool {
		longest = longestHistory(t, tp.temporal, ro["id"].(string))
		return longest > 0
	})
	report["longestHistoryEvents"] = longest
	report["counts"] = ro["counts"]
	report["loadAverageAfter"] = loadAverage()
	b, _ := json.MarshalIndent(report, "", "  ")
	t.Logf("rollout on the production layout: %s", b)
	require.NoError(t, os.WriteFile(filepath.Join("..", "bench", "rollout-layout.json"), b, 0o644))
}

// layoutProcess is one measured flowyard process of the layout.
type layoutProcess struct {
	name string
	pid  int
}

// settleAll samples the processes' RSS every 10 s for d and returns each one's lowest (MiB), with the CPU each
// used meanwhile (percent of one core).
func settleAll(t *testing.T, procs []layoutProcess, d time.Duration) (map[string]float64, map[string]float64) {
	t.Helper()
	low, idle, before := map[string]float64{}, map[string]float64{}, map[string]float64{}
	for _, p := range procs {
		low[p.name], before[p.name] = procStatus(pidString(p.pid), "VmRSS"), cpuSeconds(t, p.pid)
	}
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(10 * time.Second)
		for _, p := range procs {
			low[p.name] = min(low[p.name], procStatus(pidString(p.pid), "VmRSS"))
		}
	}
	for _, p := range procs {
		idle[p.name] = (cpuSeconds(t, p.pid) - before[p.name]) / d.Seconds() * 100
	}
	return low, idle
}

// layoutProgress logs every 10 s what the fleet has reached (what()), each process's RSS and CPU over the last
// 10 s, the simulators' and the machine's load, until the returned function is called.
func layoutProgress(t *testing.T, procs []layoutProcess, sims []int, what func() string) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start, last := time.Now(), map[int]float64{}
		cpu := func(pid int) float64 { // CPU since the last line, percent of one core
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				return 0
			}
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
			u, _ := strconv.ParseFloat(f[11], 64)
			s, _ := strconv.ParseFloat(f[12], 64)
			d := (u + s) - last[pid]
			last[pid] = u + s
			return d / 10
		}
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Second):
			}
			line := fmt.Sprintf("%4.0f s: %s;", time.Since(start).Seconds(), what())
			for _, p := range procs {
				line += fmt.Sprintf(" %s %.0f MiB %.0f%%", p.name, procStatus(pidString(p.pid), "VmRSS"), cpu(p.pid))
			}
			var simCPU float64
			for _, pid := range sims {
				simCPU += cpu(pid)
			}
			t.Logf("%s; simulators %.0f%%; load %s", line, simCPU, loadAverage())
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// establishedTo counts the established TCP connections to a local address (host:port on 127.0.0.1), as the
// kernel sees them: the devices connected to one replica's broker.
func establishedTo(t *testing.T, addr string) int {
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	b, err := os.ReadFile("/proc/net/tcp")
	require.NoError(t, err)
	local, n := fmt.Sprintf("0100007F:%04X", p), 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 3 && f[1] == local && f[3] == "01" { // 01: ESTABLISHED
			n++
		}
	}
	return n
}

// loadAverage is the machine's 1, 5 and 15-minute load (uptime's).
func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// updatingDevices describes (at most 5 of) a rollout's devices told to update that have not reported the
// snapshot yet, as the store holds them: what the rollout waits for when its counts stand still.
func updatingDevices(db *sql.DB, rolloutID string) string {
	rows, err := db.Query(`SELECT d.name, d.state, coalesce(d.active_snapshot_id, ''), coalesce(rd.dispatched_at, 'epoch'),
		coalesce(d.last_seen_at, 'epoch'), coalesce(d.changed_at, 'epoch')
		FROM rollout_devices rd JOIN devices d ON d.id = rd.device_id WHERE rd.rollout_id = $1 AND rd.status = 'updating'
		ORDER BY d.name LIMIT 5`, rolloutID)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name, state, active string
		var dispatched, seen, changed time.Time
		if err := rows.Scan(&name, &state, &active, &dispatched, &seen, &changed); err != nil {
			return err.Error()
		}
		out = append(out, fmt.Sprintf("%s %s (active %s) told %s, seen %s, changed %s", name, state, active,
			dispatched.UTC().Format("15:04:05.000"), seen.UTC().Format("15:04:05.000"), changed.UTC().Format("15:04:05.000")))
	}
	return strings.Join(out, "; ")
}
