package api_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/metrics"
)

func TestRequestsAreCountedByRoutePatternAndFinalStatus(t *testing.T) {
	reg := prometheus.NewRegistry()
	env := apitest.Start(t, "sqlite", func(d *api.Deps) { d.HTTPMetrics = metrics.NewHTTP(reg) })
	c := env.Client(t)
	c.Must(200, "GET", "/healthz", nil)
	c.Must(401, "GET", "/api/v1/teams/01hzzzzzzzzzzzzzzzzzzzzzzz", nil)
	c.Must(401, "GET", "/api/v1/teams/01hyyyyyyyyyyyyyyyyyyyyyyy", nil)
	c.Must(404, "GET", "/api/v1/no/such/path/1", nil)
	c.Must(404, "GET", "/api/v1/no/such/path/2", nil)

	counts := map[string]int{}
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != "flowyard_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			counts[l["method"]+" "+l["route"]+" "+l["code"]] = int(m.GetCounter().GetValue())
		}
	}
	assert.Equal(t, map[string]int{
		"GET /healthz 200":              1,
		"GET /api/v1/teams/:teamId 401": 2,
		"GET unmatched 404":             2,
	}, counts, "IDs and unknown paths never become label values")
	assert.Equal(t, 0.0, testutil.ToFloat64(metricsInFlight(t, reg)))
}

func metricsInFlight(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() == "flowyard_http_requests_in_flight" {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "copy"}, func() float64 { return f.GetMetric()[0].GetGauge().GetValue() })
		}
	}
	t.Fatal("no in-flight gauge")
	return nil
}
