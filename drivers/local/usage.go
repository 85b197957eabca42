package local

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowyard/flowyard/drivers"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on every Linux architecture Flowyard
// runs on (it is fixed in the kernel's ABI, whatever CONFIG_HZ is).
const clockTicks = 100

// cpuReading is an instance's cumulative CPU time at a moment, to turn the next reading into a rate.
type cpuReading struct {
	pid     int
	seconds float64
	at      time.Time
}

// usageState keeps the previous reading of each instance.
type usageState struct {
	mu   sync.Mutex
	prev map[string]cpuReading
}

var _ drivers.UsageReader = (*Driver)(nil)

// Usage implements drivers.UsageReader. An instance with its own cgroup (limits enforced) is measured there
// (cpu.stat and memory.current count everything in it, exited children included); otherwise its process tree
// is: the sandbox's init and all below it, or the unsandboxed Node-RED and its descendants, summing their CPU
// times and resident memory (pages shared between them count once per process).
func (d *Driver) Usage(ctx context.Context) (map[string]drivers.Usage, error) {
	tree := readProcessTree()
	now := time.Now()
	out := map[string]drivers.Usage{}
	for _, inst := range d.allInstances() {
		inst.mu.Lock()
		p := inst.proc
		inst.mu.Unlock()
		if p == nil || ctx.Err() != nil {
			continue
		}
		cpu, mem, ok := d.cgroupUsage(inst.id, p.limited)
		if !ok {
			root := p.pid
			if p.initPID != 0 {
				root = p.initPID
			}
			cpu, mem = tree.usage(root)
		}
		out[inst.id] = drivers.Usage{CPUPercent: d.usage.rate(inst.id, p, cpu, now), MemoryBytes: mem}
	}
	d.usage.forgetAllBut(out)
	return out, ctx.Err()
}

// rate turns a cumulative CPU time into percent of a core since the previous reading of the same process, or
// since the process started for its first reading.
func (u *usageState) rate(id string, p *process, seconds float64, now time.Time) float64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.prev == nil {
		u.prev = map[string]cpuReading{}
	}
	prev, ok := u.prev[id]
	u.prev[id] = cpuReading{pid: p.pid, seconds: seconds, at: now}
	if !ok || prev.pid != p.pid {
		prev = cpuReading{at: p.startedAt}
	}
	elapsed := now.Sub(prev.at).Seconds()
	if prev.at.IsZero() || elapsed <= 0 {
		return 0
	}
	return max(0, (seconds-prev.seconds)/elapsed*100)
}

func (u *usageState) forgetAllBut(live map[string]drivers.Usage) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id := range u.prev {
		if _, ok := live[id]; !ok {
			delete(u.prev, id)
		}
	}
}

// cgroupUsage reads an instance's cgroup: CPU seconds (cpu.stat usage_usec) and memory.current.
func (d *Driver) cgroupUsage(id string, limited bool) (float64, int64, bool) {
	if !limited || d.cg.parent == "" {
		return 0, 0, false
	}
	dir := filepath.Join(d.cg.parent, id)
	memText, err1 := os.ReadFile(filepath.Join(dir, "memory.current"))
	stat, err2 := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	mem, err := strconv.ParseInt(strings.TrimSpace(string(memText)), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			usec, err := strconv.ParseFloat(v, 64)
			return usec / 1e6, mem, err == nil
		}
	}
	return 0, 0, false
}

// processTree is every live process with its children, read once per measurement.
type processTree struct {
	stats    map[int]procStat
	children map[int][]int
}

func readProcessTree() processTree {
	t := processTree{stats: map[int]procStat{}, children: map[int][]int{}}
	for pid, st := range liveProcesses() {
		t.stats[pid] = st
		t.children[st.ppid] = append(t.children[st.ppid], pid)
	}
	return t
}

// usage sums the CPU seconds and resident bytes of root and everything below it.
func (t processTree) usage(root int) (float64, int64) {
	var ticks uint64
	var rss int64
	stack := []int{root}
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		st, ok := t.stats[pid]
		if !ok {
			continue
		}
		ticks += st.cpuTicks
		if r, err := processRSS(pid); err == nil {
			rss += r
		}
		stack = append(stack, t.children[pid]...)
	}
	return float64(ticks) / clockTicks, rss
}
