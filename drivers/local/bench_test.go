package local

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowyard/flowyard/nodered"
)

// rssSettle is how long after readiness RSS is sampled, as for the figures in docs/node-red.md §1.
const rssSettle = 3 * time.Second

// BenchmarkStartToReady measures Start → WaitReady of one instance through the driver (the first
// iteration creates the userDir, later ones restart it) and the RSS of the runtime 3 s after ready, with
// the instance in its bubblewrap sandbox and without one.
// Run: go test ./drivers/local -run '^$' -bench StartToReady -benchtime 10x
func BenchmarkStartToReady(b *testing.B) {
	for _, mode := range []SandboxMode{SandboxBwrap, SandboxNone} {
		b.Run("sandbox="+string(mode), func(b *testing.B) { benchmarkStartToReady(b, mode) })
	}
}

func benchmarkStartToReady(b *testing.B, mode SandboxMode) {
	ctx := context.Background()
	d := newTestDriver(b, "", func(c *Config) { c.Sandbox = mode })
	spec := testSpec("bench")
	if _, err := d.stack(ctx, spec.NodeRedVersion, ""); err != nil { // install outside the timing
		b.Fatal(err)
	}
	var took []time.Duration
	var rss int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := d.Start(ctx, spec); err != nil {
			b.Fatal(err)
		}
		st, err := d.WaitReady(ctx, spec.InstanceID)
		if err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
		b.StopTimer()
		if i == 0 {
			time.Sleep(rssSettle)
			if rss, err = processRSS(st.PID); err != nil {
				b.Fatal(err)
			}
		}
		if err := d.Stop(ctx, spec.InstanceID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	report(b, took, rss)
}

// BenchmarkBareNodeRed is the baseline: `node red.js -u dir -p port` with Node-RED's default settings,
// timed from spawn to its "Started flows" log line.
// Run: go test ./drivers/local -run '^$' -bench BareNodeRed -benchtime 5x
func BenchmarkBareNodeRed(b *testing.B) {
	rt, err := nodered.EnsureStack(context.Background(), stacksDir(), testNodeRedVersion, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	userDir := b.TempDir()
	port := freePort(b)
	var took []time.Duration
	var rss int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		cmd := exec.Command(rt.NodeBin, rt.RedJS, "-u", userDir, "-p", fmt.Sprint(port))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() && !strings.Contains(sc.Text(), "Started flows") {
		}
		took = append(took, time.Since(t0))
		b.StopTimer()
		go func() {
			for sc.Scan() {
			}
		}()
		if i == 0 {
			time.Sleep(rssSettle)
			if rss, err = processRSS(cmd.Process.Pid); err != nil {
				b.Fatal(err)
			}
		}
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		b.StartTimer()
	}
	report(b, took, rss)
}

// report gives the median, the fastest and the slowest start, and the RSS.
func report(b *testing.B, took []time.Duration, rss int64) {
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "ms-median-ready")
	b.ReportMetric(float64(took[0].Milliseconds()), "ms-min-ready")
	b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "ms-max-ready")
	b.ReportMetric(float64(rss)/(1<<20), "MiB-rss")
	b.Logf("start to ready: %v; RSS %.1f MiB", took, float64(rss)/(1<<20))
}
