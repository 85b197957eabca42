package platform_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/storage"
)

// BenchmarkPromotion measures, on `flowyard dev` with real Temporal and real Node-RED, a pipeline promotion of
// flows of about 1 MB between two running instances: from the promote request to the promotion reported
// succeeded (snapshot of the source, automatic snapshot of the target, stop, write with credentials
// re-encrypted and env merged, start, flows running). It reports the median in ms; run 5 with
//
//	go test ./platform -run '^$' -bench BenchmarkPromotion -benchtime 5x -timeout 30m
func BenchmarkPromotion(b *testing.B) {
	c, _ := runDev(b)
	stack := c.Must(201, "POST", "/api/v1/stacks", map[string]any{"name": "bench", "nodeRedVersion": storage.DefaultNodeRedVersion,
		"memoryMB": 1024, "cpuPercent": 100}).String("id")
	create := map[string]any{"stackId": stack, "settings": map[string]any{"apiMaxLength": "32mb"}}
	f := newRunningInstance(b, c, "promo-source", create)
	target := f.create("promo-target", create)
	f.deploy(f.id, sizedFlows(1<<20))
	pid := c.Must(201, "POST", "/api/v1/applications/"+f.app+"/pipelines", map[string]any{"name": "bench"}).String("id")
	stages := "/api/v1/pipelines/" + pid + "/stages"
	source := c.Must(201, "POST", stages, map[string]any{"name": "source", "target": map[string]any{"instanceId": f.id}, "action": "create_snapshot"}).String("id")
	c.Must(201, "POST", stages, map[string]any{"name": "target", "target": map[string]any{"instanceId": target}})

	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		id := c.Must(202, "POST", stages+"/"+source+"/promote", nil).Body["promotion"].(map[string]any)["id"].(string)
		for {
			status := c.Must(200, "GET", "/api/v1/promotions/"+id, nil).String("status")
			if status == "succeeded" {
				break
			}
			require.NotEqual(b, "failed", status, fmt.Sprintf("promotion %s failed", id))
			require.Less(b, time.Since(start), 5*time.Minute, "promotion did not finish")
			time.Sleep(25 * time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	reportMedian(b, took)
}
