// Package metrics exposes Flowyard's Prometheus metrics: a registry per process with the Go runtime and
// process collectors, the HTTP server that serves it at /metrics, HTTP request counts and latencies for the
// API, gauges counted from the database at scrape time (instances by state), and a Temporal SDK metrics
// handler so the worker's polls, task latencies and failures reach Prometheus too.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes Flowyard's own metrics.
const Namespace = "flowyard"

// NewRegistry returns a registry holding the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus exposition format. A collector that fails (the database is
// unreachable, say) is reported in the answer while the other metrics are still served.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError})
}

// Serve answers GET /metrics on addr until ctx ends. It returns once listening fails or the server stops.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen: %w", err)
	}
	return ServeListener(ctx, ln, reg, log)
}

// ServeListener is Serve on an open listener (tests pass one on port 0).
func ServeListener(ctx context.Context, ln net.Listener, reg *prometheus.Registry, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(reg))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("metrics listening", "address", ln.Addr().String(), "path", "/metrics")
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}

// HTTP records the API's requests: counts and latencies by method, route pattern (never the raw path, so
// IDs do not explode the series) and status code.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// NewHTTP registers the HTTP request metrics on reg.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "http",
			Name: "requests_total", Help: "HTTP requests answered by the API, by method, route and status code."},
			[]string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: "http",
			Name: "request_duration_seconds", Help: "Time from receiving a request to having its answer, by method and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "http",
			Name: "requests_in_flight", Help: "Requests being handled now."}),
	}
	reg.MustRegister(h.requests, h.duration, h.inFlight)
	return h
}

// Begin counts a request in flight; call the returned function with its route and status when answered.
func (h *HTTP) Begin(method string) func(route string, code int) {
	start := time.Now()
	h.inFlight.Inc()
	return func(route string, code int) {
		h.inFlight.Dec()
		h.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
		h.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
	}
}

// CountFunc counts the rows having one value (e.g. the instances in one state).
type CountFunc func(ctx context.Context, value string) (int, error)

// countCollector is a gauge per value of one label, counted at each scrape.
type countCollector struct {
	desc   *prometheus.Desc
	values []string
	count  CountFunc
}

// NewCountCollector returns a collector that asks count for every value at each scrape and reports one
// gauge series per value, e.g. flowyard_instances{state="running"}. Each scrape runs len(values) queries,
// bounded by a five-second timeout.
func NewCountCollector[V ~string](name, help, label string, values []V, count CountFunc) prometheus.Collector {
	names := make([]string, len(values))
	for i, v := range values {
		names[i] = string(v)
	}
	return &countCollector{
		desc:   prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, []string{label}, nil),
		values: names, count: count,
	}
}

func (c *countCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *countCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, v := range c.values {
		n, err := c.count(ctx, v)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("count %s: %w", v, err))
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), v)
	}
}

// InstanceUsage is one instance's latest measurement.
type InstanceUsage struct {
	InstanceID, TeamID string
	CPUPercent         float64
	MemoryBytes        int64
}

// usageCollector reports each instance's latest CPU and memory, read at each scrape.
type usageCollector struct {
	cpu, memory *prometheus.Desc
	read        func(ctx context.Context) ([]InstanceUsage, error)
}

// NewInstanceUsageCollector returns a collector of flowyard_instance_cpu_percent and
// flowyard_instance_memory_bytes, one series per instance (labels instance and team) that read returns: the
// same figures as the dashboard's chart, so every API replica reports the same values.
func NewInstanceUsageCollector(read func(ctx context.Context) ([]InstanceUsage, error)) prometheus.Collector {
	labels := []string{"instance", "team"}
	return &usageCollector{
		cpu: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "instance", "cpu_percent"),
			"CPU of the instance's runtime in percent of one core, from its latest sample (every 15 s).", labels, nil),
		memory: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "instance", "memory_bytes"),
			"Resident memory of the instance's runtime in bytes, from its latest sample.", labels, nil),
		read: read,
	}
}

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.cpu
	ch <- c.memory
}

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	usage, err := c.read(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.cpu, fmt.Errorf("read instance samples: %w", err))
		return
	}
	for _, u := range usage {
		ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.GaugeValue, u.CPUPercent, u.InstanceID, u.TeamID)
		ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, float64(u.MemoryBytes), u.InstanceID, u.TeamID)
	}
}
