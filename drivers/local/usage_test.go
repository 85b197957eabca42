package local

import (
	"context"
	"encoding/json"
	"testing"
)

// TestUsageMeasuresTheInstanceTree starts a real Node-RED whose flow spins for a second at start and leaves a
// child process running: Usage reports CPU used and at least Node-RED's own resident memory plus its child's;
// a stopped instance is no longer measured.
func TestUsageMeasuresTheInstanceTree(t *testing.T) {
	ctx := context.Background()
	port := freePort(t)
	d := newTestDriver(t, "", func(c *Config) { c.PortMin, c.PortMax = port, port })
	spec := testSpec("usage")
	flows, _ := json.Marshal([]map[string]any{
		{"id": "tab1", "type": "tab", "label": "Main"},
		{"id": "go", "type": "inject", "z": "tab1", "once": true, "onceDelay": 0.1, "repeat": "", "wires": [][]string{{"spin", "child"}}},
		{"id": "spin", "type": "function", "z": "tab1", "outputs": 1, "wires": [][]string{},
			"func": "const end = Date.now() + 1000; while (Date.now() < end) {} return null;"},
		{"id": "child", "type": "exec", "z": "tab1", "command": "sleep 120", "addpay": "", "append": "", "useSpawn": "true",
			"timer": "", "winHide": false, "oldrc": false, "wires": [][]string{{}, {}, {}}},
	})
	writeFlows(t, d, spec.InstanceID, string(flows))
	st := startReady(t, d, spec)

	var child int
	eventually(t, "the flow's child process runs", func() bool {
		tree := readProcessTree()
		for pid, s := range tree.stats {
			if s.ppid == st.PID {
				child = pid
				return true
			}
		}
		return false
	})
	usage, err := d.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := usage[spec.InstanceID]
	if !ok {
		t.Fatalf("the running instance is not measured: %v", usage)
	}
	own, err1 := processRSS(st.PID)
	childRSS, err2 := processRSS(child)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if u.MemoryBytes < own+childRSS || u.MemoryBytes < 20<<20 {
		t.Fatalf("memory %d B, want at least Node-RED's %d B plus its child's %d B", u.MemoryBytes, own, childRSS)
	}
	if u.CPUPercent <= 0 {
		t.Fatalf("CPU %.2f %%, want more than nothing after a second of spinning", u.CPUPercent)
	}
	t.Logf("instance tree: %.1f %% CPU since start, %.1f MiB", u.CPUPercent, float64(u.MemoryBytes)/(1<<20))

	if err := d.Stop(ctx, spec.InstanceID); err != nil {
		t.Fatal(err)
	}
	usage, err = d.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := usage[spec.InstanceID]; ok {
		t.Fatal("a stopped instance is still measured")
	}
}
