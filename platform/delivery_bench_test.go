package platform_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
)

// BenchmarkDelivery measures, on the production layout (two `flowyard serve` replicas, a worker, Postgres), how
// long a change takes to reach a device connected to replica A as `update`: from the PATCH of its target to the
// command at the device, with the PATCH sent to A itself (same replica: the broker is called directly) and to B
// (across replicas: a Postgres notification to A), and from the POST of a one-device rollout through B to the
// command (the worker's wave, notified from the worker's process). Each reports the median and the spread in
// ms; run 50 of each with
//
//	go test ./platform -run '^$' -bench BenchmarkDelivery -benchtime 50x -timeout 30m
func BenchmarkDelivery(b *testing.B) {
	w := newDeliveryWorld(b)
	changes := 0
	next := func() string { changes++; return w.snaps[1+changes%2] } // another target than the last, never the first
	for _, via := range []struct {
		name string
		c    *apitest.Client
	}{{"same-replica", w.a}, {"across-replicas", w.b}} {
		b.Run(via.name, func(b *testing.B) {
			var took []time.Duration
			for i := 0; i < b.N; i++ {
				snap := next()
				start := time.Now()
				via.c.Must(200, "PATCH", "/api/v1/devices/"+w.device, map[string]any{"targetSnapshotId": snap})
				require.Equal(b, snap, w.agent.Next(b, "update")["snapshot"])
				took = append(took, time.Since(start))
			}
			reportMedian(b, took)
		})
	}
	group := w.b.Must(201, "POST", "/api/v1/applications/"+w.app+"/device-groups", map[string]any{"name": "bench"}).String("id")
	w.b.Must(200, "PUT", "/api/v1/device-groups/"+group+"/devices", map[string]any{"add": []string{w.device}})
	w.apply(b, w.agent.Next(b, "update"))
	b.Run("rollout-from-worker", func(b *testing.B) {
		var took []time.Duration
		for i := 0; i < b.N; i++ {
			snap := next()
			start := time.Now()
			r := w.b.Must(202, "POST", "/api/v1/device-groups/"+group+"/rollouts", map[string]any{"snapshotId": snap,
				"strategy": map[string]any{"waves": []int{100}}})
			upd := w.agent.Next(b, "update")
			took = append(took, time.Since(start))
			require.Equal(b, snap, upd["snapshot"])
			w.apply(b, upd)
			id := r.Body["rollout"].(map[string]any)["id"].(string)
			waitFor(b, 2*time.Minute, "the rollout to succeed", func() bool {
				return w.b.Must(200, "GET", "/api/v1/rollouts/"+id, nil).String("status") == "succeeded"
			})
		}
		reportMedian(b, took)
	})
}
