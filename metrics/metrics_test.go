package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/flowyard/flowyard/temporalenv"
)

func family(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() == name {
			return f
		}
	}
	t.Fatalf("no metric family %s", name)
	return nil
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestTemporalHandlerExportsCountersGaugesAndTimers(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := NewTemporalHandler(reg).WithTags(map[string]string{"namespace": "flowyard"})
	h.Counter("temporal_request").Inc(2)
	h.Counter("temporal_request").Inc(1)
	h.WithTags(map[string]string{"operation": "StartWorkflowExecution"}).Counter("temporal_request").Inc(5)
	h.Gauge("temporal_num_pollers").Update(3)
	timer := h.WithTags(map[string]string{"task_queue": "instances"}).Timer("temporal_workflow_task_execution_latency")
	timer.Record(30 * time.Millisecond)
	timer.Record(2 * time.Second)
	timer.Record(3 * time.Hour) // beyond the last bucket: counted, in +Inf only

	requests := family(t, reg, "temporal_request_total")
	assert.Equal(t, dto.MetricType_COUNTER, requests.GetType())
	got := map[string]float64{}
	for _, m := range requests.GetMetric() {
		l := labels(m)
		assert.Equal(t, "flowyard", l["namespace"])
		assert.Contains(t, l, "operation", "every series of a name gets the union of its labels")
		got[l["operation"]] = m.GetCounter().GetValue()
	}
	assert.Equal(t, map[string]float64{"": 3, "StartWorkflowExecution": 5}, got)

	assert.Equal(t, 3.0, family(t, reg, "temporal_num_pollers").GetMetric()[0].GetGauge().GetValue())

	hist := family(t, reg, "temporal_workflow_task_execution_latency_seconds").GetMetric()[0]
	assert.Equal(t, "instances", labels(hist)["task_queue"])
	assert.Equal(t, uint64(3), hist.GetHistogram().GetSampleCount())
	assert.InDelta(t, 10802.03, hist.GetHistogram().GetSampleSum(), 1e-6)
	cumulative := map[float64]uint64{}
	for _, b := range hist.GetHistogram().GetBucket() {
		cumulative[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	assert.Equal(t, uint64(0), cumulative[0.025])
	assert.Equal(t, uint64(1), cumulative[0.05])
	assert.Equal(t, uint64(2), cumulative[2.5])
	assert.Equal(t, uint64(2), cumulative[3600])
}

func TestTemporalHandlerSanitizesNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewTemporalHandler(reg).WithTags(map[string]string{"worker-type": "x"}).Counter("temporal.odd-name").Inc(1)
	m := family(t, reg, "temporal_odd_name_total").GetMetric()[0]
	assert.Equal(t, map[string]string{"worker_type": "x"}, labels(m))
}

func TestHTTPMetricsCountAndTimeByRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := NewHTTP(reg)
	h.Begin("GET")("/api/v1/teams/:teamId", 200)
	h.Begin("GET")("/api/v1/teams/:teamId", 200)
	done := h.Begin("POST")
	assert.Equal(t, 1.0, testutil.ToFloat64(h.inFlight))
	done("/api/v1/teams", 422)
	assert.Equal(t, 0.0, testutil.ToFloat64(h.inFlight))
	assert.Equal(t, 2.0, testutil.ToFloat64(h.requests.WithLabelValues("GET", "/api/v1/teams/:teamId", "200")))
	assert.Equal(t, 1.0, testutil.ToFloat64(h.requests.WithLabelValues("POST", "/api/v1/teams", "422")))
	assert.Equal(t, 2, testutil.CollectAndCount(h.duration), "one latency series per method and route")
}

func TestCountCollectorAsksAtEachScrapeAndReportsFailures(t *testing.T) {
	reg := prometheus.NewRegistry()
	counts := map[string]int{"running": 4, "stopped": 1}
	reg.MustRegister(NewCountCollector("instances", "Instances by state.", "state", []string{"running", "stopped", "crashed"},
		func(_ context.Context, state string) (int, error) {
			if state == "crashed" {
				return 0, errors.New("database is locked")
			}
			return counts[state], nil
		}))
	_, err := reg.Gather()
	assert.ErrorContains(t, err, "count crashed: database is locked")

	srv := httptestServer(t, reg)
	body := get(t, srv+"/metrics")
	assert.Contains(t, body, `flowyard_instances{state="running"} 4`)
	assert.Contains(t, body, `flowyard_instances{state="stopped"} 1`, "one failing value does not hide the others")
	counts["running"] = 5
	assert.Contains(t, get(t, srv+"/metrics"), `flowyard_instances{state="running"} 5`)
}

func TestNewRegistryHasRuntimeCollectors(t *testing.T) {
	reg := NewRegistry()
	family(t, reg, "go_goroutines")
	family(t, reg, "process_resident_memory_bytes")
}

// httptestServer serves reg with ServeListener on a free loopback port.
func httptestServer(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, reg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestServeRejectsABusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	err = Serve(context.Background(), ln.Addr().String(), NewRegistry(), slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "metrics listen")
}

// TestTemporalSDKMetricsFromARealClient dials the Temporal dev server with the handler and finds the
// client's own requests in the scrape.
func TestTemporalSDKMetricsFromARealClient(t *testing.T) {
	bin, err := filepath.Abs("../bin/temporal")
	require.NoError(t, err)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the Temporal CLI is missing at %s: run `make bin/temporal` (go install github.com/temporalio/cli/cmd/temporal@v1.5.1)", bin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := temporalenv.StartDevServer(ctx, temporalenv.DevServerOptions{Bin: bin, DataDir: t.TempDir(), Headless: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })

	reg := NewRegistry()
	c, err := client.DialContext(ctx, client.Options{HostPort: srv.Address(), Namespace: srv.Namespace(),
		MetricsHandler: NewTemporalHandler(reg), Logger: nil})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	require.NoError(t, err)
	_, err = c.DescribeTaskQueue(ctx, "instances", 1)
	require.NoError(t, err)

	body := get(t, httptestServer(t, reg)+"/metrics")
	var found bool
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "temporal_request_total{") && strings.Contains(line, `operation="DescribeTaskQueue"`) &&
			strings.Contains(line, `namespace="`+srv.Namespace()+`"`) {
			found = true
		}
	}
	assert.True(t, found, "temporal_request_total for DescribeTaskQueue in:\n%s", body)
	assert.Contains(t, body, "temporal_request_latency_seconds_bucket{")
}

func TestInstanceUsageCollectorReportsEachInstancesLatestSample(t *testing.T) {
	reg := prometheus.NewRegistry()
	usage := []InstanceUsage{{InstanceID: "i1", TeamID: "t1", CPUPercent: 12.5, MemoryBytes: 104857600}}
	reg.MustRegister(NewInstanceUsageCollector(func(context.Context) ([]InstanceUsage, error) { return usage, nil }))
	srv := httptestServer(t, reg)
	body := get(t, srv+"/metrics")
	assert.Contains(t, body, `flowyard_instance_cpu_percent{instance="i1",team="t1"} 12.5`)
	assert.Contains(t, body, `flowyard_instance_memory_bytes{instance="i1",team="t1"} 1.048576e+08`)
	usage = nil
	assert.NotContains(t, get(t, srv+"/metrics"), "flowyard_instance_cpu_percent{", "an instance no longer sampled drops out")
}
