package mosquitto_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/broker/mosquitto"
	"github.com/flowyard/flowyard/broker/mosquitto/mosquittotest"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// TestMeasureDynamicSecurity measures what a device account costs Mosquitto's dynamic-security plugin when it
// already holds 0, 1,000, 10,000 and 50,000 of them (FLOWYARD_BENCH_DYNSEC_SIZES overrides the list): for
// each size a throwaway broker starts on a plugin file seeded with that many accounts as the external broker
// mode makes them (a role and a client per device), and the test times ten adds (role and client, as a
// registration makes them), ten bare clients without a role (the least any per-device account could cost),
// and five disables and deletes; it also reports the broker's start (loading the file), the file's size and
// the broker's memory. The plugin rewrites its whole file after every change, so each change costs in
// proportion to the accounts already there; the time a fleet's sequential registrations take is added up from
// the per-add figures. Only under make bench (FLOWYARD_BENCH=1); writes bench/dynsec.json.
func TestMeasureDynamicSecurity(t *testing.T) {
	if os.Getenv("FLOWYARD_BENCH") != "1" {
		t.Skip("a measurement, not a test: run it with make bench")
	}
	sizes := benchSizes(t, 0, 1000, 10000, 50000)
	var results []atSize
	for _, n := range sizes {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			r := measureAt(t, n)
			t.Logf("%+v", r)
			results = append(results, r)
		})
	}
	report := map[string]any{"sizes": results, "sequentialAddSeconds": sequentialAdds(results)}
	out, _ := json.MarshalIndent(report, "", "  ")
	t.Logf("dynamic security: %s", out)
	require.NoError(t, os.WriteFile(filepath.Join("..", "..", "bench", "dynsec.json"), out, 0o644))
}

// atSize is what the plugin costs with Accounts device accounts in it.
type atSize struct {
	Accounts       int     `json:"accounts"`
	StartSeconds   float64 `json:"brokerStartSeconds"`
	FileMiB        float64 `json:"fileMiB"`
	RSSMiB         float64 `json:"mosquittoRSSMiB"`
	AddMs          float64 `json:"addMs"`        // role and client
	BareClientMs   float64 `json:"bareClientMs"` // a client without a role
	DisableMs      float64 `json:"disableMs"`
	DeleteMs       float64 `json:"deleteMs"` // client and role
	AddMsSpreadMin float64 `json:"addMsMin"`
	AddMsSpreadMax float64 `json:"addMsMax"`
	// AddCPUMs is the broker's own CPU time per add, which other processes on the machine do not inflate.
	AddCPUMs float64 `json:"addMosquittoCpuMs"`
	// LongestPauseMs is the longest round trip of a message through the broker while the adds ran: Mosquitto
	// runs in one thread, so every device waits while the plugin saves its file.
	LongestPauseMs float64 `json:"longestPauseMs"`
}

func measureAt(t *testing.T, n int) atSize {
	mb := mosquittotest.StartSeeded(t, func(config map[string]any) { seedAccounts(config, n) })
	ctx := context.Background()
	b, err := mosquitto.Start(ctx, mosquitto.Config{URL: mb.URL(), Username: mb.AdminUsername, Password: mb.AdminPassword,
		Devices: &devices.Service{}, Timeout: 5 * time.Minute})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	r := atSize{Accounts: n, StartSeconds: mb.StartedIn.Seconds(), FileMiB: fileMiB(t, mb.ConfigFile()), RSSMiB: rssMiB(t, mb.PID())}

	added := make([]*storage.Device, 10)
	stopProbe := probe(t, mb)
	cpu := cpuMs(t, mb.PID())
	adds := repeat(t, len(added), func(i int) error {
		added[i] = newDevice(domain.NewID())
		return b.Create(ctx, added[i], password())
	})
	r.AddCPUMs = (cpuMs(t, mb.PID()) - cpu) / float64(len(added))
	r.LongestPauseMs = stopProbe()
	r.AddMs, r.AddMsSpreadMin, r.AddMsSpreadMax = median(adds), adds[0], adds[len(adds)-1]
	r.BareClientMs = median(repeat(t, 10, func(int) error { return b.CreateBareClient(ctx, "bare-"+domain.NewID(), password()) }))
	r.DisableMs = median(repeat(t, 5, func(i int) error { return b.Disable(ctx, added[i].TeamID, added[i].ID) }))
	r.DeleteMs = median(repeat(t, 5, func(i int) error { return b.Delete(ctx, added[i].TeamID, added[i].ID) }))
	return r
}

// probe sends messages through the broker one after the other, as the admin client, until the returned function
// is called; that returns the longest round trip in milliseconds.
func probe(t *testing.T, mb *mosquittotest.Broker) func() float64 {
	topic := devices.DeviceTopic("probe", domain.NewID(), "command")
	got := make(chan struct{}, 1)
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + mb.Addr).SetClientID("probe-" + domain.NewID()).
		SetUsername(mb.AdminUsername).SetPassword(mb.AdminPassword).SetOrderMatters(false))
	require.True(t, cl.Connect().WaitTimeout(10*time.Second))
	tok := cl.Subscribe(topic, 0, func(paho.Client, paho.Message) { got <- struct{}{} })
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	stop, longest := make(chan struct{}), make(chan time.Duration, 1)
	go func() {
		defer cl.Disconnect(0)
		var most time.Duration
		for {
			select {
			case <-stop:
				longest <- most
				return
			default:
			}
			t0 := time.Now()
			cl.Publish(topic, 0, false, "ping")
			select {
			case <-got:
			case <-time.After(time.Minute):
			}
			most = max(most, time.Since(t0))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() float64 {
		close(stop)
		return float64((<-longest).Microseconds()) / 1000
	}
}

// seedAccounts adds n device accounts to the plugin's file, as the external broker mode makes them, in 100 teams.
func seedAccounts(config map[string]any, n int) {
	clients, roles := config["clients"].([]any), config["roles"].([]any)
	teams := make([]string, 100)
	for i := range teams {
		teams[i] = domain.NewID()
	}
	for i := range n {
		d := newDevice(teams[i%len(teams)])
		name := devices.BrokerUsername(d.TeamID, d.ID)
		clients = append(clients, map[string]any{"username": name, "clientid": name, "roles": []any{map[string]any{"rolename": name}},
			"password": randomBase64(64), "salt": randomBase64(12), "iterations": 101})
		roles = append(roles, map[string]any{"rolename": name, "acls": mosquitto.DeviceACLs(d)})
	}
	config["clients"], config["roles"] = clients, roles
}

func newDevice(teamID string) *storage.Device {
	app := domain.NewID()
	return &storage.Device{ID: domain.NewID(), TeamID: teamID, ApplicationID: &app}
}

func password() string {
	p, _ := domain.NewToken(devices.BrokerPasswordPrefix)
	return p
}

func randomBase64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// repeat times fn k times, sorted, in milliseconds.
func repeat(t *testing.T, k int, fn func(i int) error) []float64 {
	out := make([]float64, k)
	for i := range k {
		t0 := time.Now()
		require.NoError(t, fn(i))
		out[i] = float64(time.Since(t0).Microseconds()) / 1000
	}
	slices.Sort(out)
	return out
}

func median(sorted []float64) float64 { return sorted[len(sorted)/2] }

// sequentialAdds adds up what registering a fleet one device after the other costs, for each measured size, from
// the per-add figures: an add's cost grows linearly between two measured sizes.
func sequentialAdds(rs []atSize) map[string]float64 {
	out := map[string]float64{}
	total := 0.0
	for i := 1; i < len(rs); i++ {
		lo, hi := rs[i-1], rs[i]
		total += float64(hi.Accounts-lo.Accounts) * (lo.AddMs + hi.AddMs) / 2 / 1000
		out[strconv.Itoa(hi.Accounts)] = total
	}
	return out
}

// cpuMs is the CPU time a process has used (user and system), in milliseconds.
func cpuMs(t *testing.T, pid int) float64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) * 10 // clock ticks of 10 ms
}

func fileMiB(t *testing.T, path string) float64 {
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return float64(fi.Size()) / (1 << 20)
}

// rssMiB is a process's resident memory.
func rssMiB(t *testing.T, pid int) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// benchSizes is the account counts a measurement runs at: FLOWYARD_BENCH_DYNSEC_SIZES (comma-separated) when
// set, else the defaults.
func benchSizes(t *testing.T, defaults ...int) []int {
	v := os.Getenv("FLOWYARD_BENCH_DYNSEC_SIZES")
	if v == "" {
		return defaults
	}
	var sizes []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(f)
		require.NoError(t, err)
		sizes = append(sizes, n)
	}
	return sizes
}
