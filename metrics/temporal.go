package metrics

import (
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// TimerBuckets are the histogram buckets (seconds) of the SDK's timers: task latencies are milliseconds,
// end-to-end workflow latencies can be hours.
var TimerBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// NewTemporalHandler returns a Temporal SDK metrics handler (client.Options.MetricsHandler) that records
// into reg. Counters are exported as <name>_total, timers as <name>_seconds histograms, gauges as they are,
// e.g. temporal_request_total{namespace="flowyard",operation="PollWorkflowTaskQueue"}.
//
// The SDK tags one metric name with different tag sets at different call sites, while Prometheus wants one
// label set per name; at each scrape every series of a name gets the union of the names' labels, with ""
// for the ones it lacks.
func NewTemporalHandler(reg prometheus.Registerer) client.MetricsHandler {
	store := &sdkStore{series: map[string]*sdkSeries{}}
	reg.MustRegister(store)
	return &sdkHandler{store: store}
}

type sdkHandler struct {
	store *sdkStore
	tags  map[string]string
}

func (h *sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := maps.Clone(h.tags)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, tags)
	return &sdkHandler{store: h.store, tags: merged}
}

func (h *sdkHandler) Counter(name string) client.MetricsCounter {
	s := h.store.get(kindCounter, name, h.tags)
	return counterFunc(func(d int64) { s.add(float64(d)) })
}

func (h *sdkHandler) Gauge(name string) client.MetricsGauge {
	s := h.store.get(kindGauge, name, h.tags)
	return gaugeFunc(func(v float64) { s.set(v) })
}

func (h *sdkHandler) Timer(name string) client.MetricsTimer {
	s := h.store.get(kindTimer, name, h.tags)
	return timerFunc(func(d time.Duration) { s.observe(d.Seconds()) })
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }

type sdkKind int

const (
	kindCounter sdkKind = iota
	kindGauge
	kindTimer
)

// sdkSeries is one metric name with one tag set. Counters and gauges keep their value as float64 bits in
// an atomic; timers keep a histogram under a mutex.
type sdkSeries struct {
	kind sdkKind
	name string
	tags map[string]string
	bits atomic.Uint64

	mu      sync.Mutex
	count   uint64
	sum     float64
	buckets []uint64 // cumulative counts are computed at scrape time
}

func (s *sdkSeries) add(d float64) {
	for {
		old := s.bits.Load()
		if s.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

func (s *sdkSeries) set(v float64) { s.bits.Store(math.Float64bits(v)) }

func (s *sdkSeries) observe(v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	s.sum += v
	if i, _ := slices.BinarySearch(TimerBuckets, v); i < len(s.buckets) {
		s.buckets[i]++
	}
}

// sdkStore holds every series the SDK has asked for and exports them at scrape time.
type sdkStore struct {
	mu     sync.Mutex
	series map[string]*sdkSeries
}

func (st *sdkStore) get(kind sdkKind, name string, tags map[string]string) *sdkSeries {
	key := seriesKey(kind, name, tags)
	st.mu.Lock()
	defer st.mu.Unlock()
	if s, ok := st.series[key]; ok {
		return s
	}
	s := &sdkSeries{kind: kind, name: name, tags: maps.Clone(tags)}
	if kind == kindTimer {
		s.buckets = make([]uint64, len(TimerBuckets))
	}
	st.series[key] = s
	return s
}

func seriesKey(kind sdkKind, name string, tags map[string]string) string {
	var b strings.Builder
	b.WriteByte(byte('0' + kind))
	b.WriteString(name)
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		b.WriteString("\x00" + k + "\x00" + tags[k])
	}
	return b.String()
}

// Describe sends nothing: the series appear as the SDK creates them (an unchecked collector).
func (st *sdkStore) Describe(chan<- *prometheus.Desc) {}

func (st *sdkStore) Collect(ch chan<- prometheus.Metric) {
	st.mu.Lock()
	byName := map[string][]*sdkSeries{}
	for _, s := range st.series {
		name := exportName(s)
		byName[name] = append(byName[name], s)
	}
	st.mu.Unlock()
	for name, list := range byName {
		labels := unionLabels(list)
		desc := prometheus.NewDesc(name, "Temporal SDK metric "+list[0].name+".", sanitizedLabels(labels), nil)
		for _, s := range list {
			values := make([]string, len(labels))
			for i, l := range labels {
				values[i] = s.tags[l]
			}
			if m, err := s.metric(desc, values); err == nil {
				ch <- m
			}
		}
	}
}

func (s *sdkSeries) metric(desc *prometheus.Desc, values []string) (prometheus.Metric, error) {
	switch s.kind {
	case kindCounter:
		return prometheus.NewConstMetric(desc, prometheus.CounterValue, math.Float64frombits(s.bits.Load()), values...)
	case kindGauge:
		return prometheus.NewConstMetric(desc, prometheus.GaugeValue, math.Float64frombits(s.bits.Load()), values...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cumulative := make(map[float64]uint64, len(TimerBuckets))
	var running uint64
	for i, upper := range TimerBuckets {
		running += s.buckets[i]
		cumulative[upper] = running
	}
	return prometheus.NewConstHistogram(desc, s.count, s.sum, cumulative, values...)
}

func exportName(s *sdkSeries) string {
	name := sanitize(s.name)
	switch s.kind {
	case kindCounter:
		if !strings.HasSuffix(name, "_total") {
			name += "_total"
		}
	case kindTimer:
		if !strings.HasSuffix(name, "_seconds") {
			name += "_seconds"
		}
	}
	return name
}

func unionLabels(list []*sdkSeries) []string {
	set := map[string]bool{}
	for _, s := range list {
		for k := range s.tags {
			set[k] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func sanitizedLabels(labels []string) []string {
	out := make([]string, len(labels))
	for i, l := range labels {
		out[i] = sanitize(l)
	}
	return out
}

// sanitize makes a metric or label name valid: letters, digits and '_', not starting with a digit.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}
