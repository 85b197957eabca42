package local

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
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
// iteration creates the userDir, later ones restart it) and the RSS of the runtime 3 s after ready: in its
// bubblewrap sandbox with its network filtered (as root; what a platform runs), in the sandbox without
// the filter, and without either.
// Run: go test ./drivers/local -run '^$' -bench StartToReady -benchtime 10x
func BenchmarkStartToReady(b *testing.B) {
	for _, c := range []struct {
		name  string
		tweak func(*Config)
	}{
		{"sandbox=bwrap,network=filtered", func(c *Config) { c.Sandbox = SandboxBwrap }},
		{"sandbox=bwrap,network=unfiltered", func(c *Config) { c.Sandbox, c.networkFilterOff = SandboxAuto, true }},
		{"sandbox=none", func(c *Config) { c.Sandbox = SandboxNone }},
	} {
		b.Run(c.name, func(b *testing.B) { benchmarkStartToReady(b, c.tweak) })
	}
}

func benchmarkStartToReady(b *testing.B, tweak func(*Config)) {
	ctx := context.Background()
	d := newTestDriver(b, "", tweak)
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

// BenchmarkNetworkFilterAdmitRelease measures what the network filter adds to an instance's start and
// stop: putting its uid and endpoints in the table (beside 100 other instances) and taking them out.
// Run: go test ./drivers/local -run '^$' -bench NetworkFilterAdmitRelease
func BenchmarkNetworkFilterAdmitRelease(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the network filter needs root")
	}
	dataDir := b.TempDir()
	f := newNetFilter(dataDir, nil)
	var others []netMember
	for i := range 100 {
		others = append(others, newNetMember(defaultSandboxUIDBase+1000+i, "other", ownEndpoint(1000+i)))
	}
	if err := f.sync(others); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.remove(false) })
	m := newNetMember(defaultSandboxUIDBase+1, "run", netip.MustParseAddrPort("127.0.0.1:8080"), ownEndpoint(1))
	b.ResetTimer()
	for range b.N {
		if err := f.admit(m); err != nil {
			b.Fatal(err)
		}
		if err := f.release(m.uid, m.run); err != nil {
			b.Fatal(err)
		}
	}
}
