package platform_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// procStatus reads a number (kB) of /proc/<pid>/status, such as VmRSS or VmHWM, in MiB ("self" for this process).
func procStatus(pid, field string) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// resetPeakRSS starts a new high-water mark of this process's RSS (VmHWM), so a phase's own peak can be read.
func resetPeakRSS(t *testing.T) {
	require.NoError(t, os.WriteFile("/proc/self/clear_refs", []byte("5"), 0o200))
}

// phaseProfile profiles one phase of a measurement in this process when FLOWYARD_BENCH_PROFILE names a
// directory: a CPU profile of the phase, and a heap profile written whenever the RSS reaches a new high (at most
// every 2 s), so the last one shows what the peak held. Stop ends it. Without the variable it does nothing.
type phaseProfile struct {
	stop func()
}

func profilePhase(t *testing.T, name string) *phaseProfile {
	dir := os.Getenv("FLOWYARD_BENCH_PROFILE")
	if dir == "" {
		return &phaseProfile{stop: func() {}}
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	cpu, err := os.Create(filepath.Join(dir, name+"-cpu.pprof"))
	require.NoError(t, err)
	require.NoError(t, pprof.StartCPUProfile(cpu))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		high, last := 0.0, time.Time{}
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if rss := procStatus("self", "VmRSS"); rss > high*1.02 && time.Since(last) > 2*time.Second {
				high, last = rss, time.Now()
				writeHeap(filepath.Join(dir, name+"-heap-peak.pprof"))
				writeProfile(filepath.Join(dir, name+"-goroutine-peak.pprof"), "goroutine")
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				logTo(filepath.Join(dir, name+".log"), "%s: RSS %.0f MiB; Go: sys %d MiB, heap in use %d MiB, heap idle %d MiB (released %d MiB), stacks %d MiB, %d goroutines",
					name, rss, m.Sys>>20, m.HeapInuse>>20, m.HeapIdle>>20, m.HeapReleased>>20, m.StackInuse>>20, runtime.NumGoroutine())
			}
		}
	}()
	var once sync.Once
	return &phaseProfile{stop: func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			pprof.StopCPUProfile()
			_ = cpu.Close()
			writeHeap(filepath.Join(dir, name+"-heap-end.pprof"))
		})
	}}
}

// logTo appends a line to a file of the profile directory (t.Logf shows only with -v, which also logs the
// whole platform).
func logTo(path, format string, args ...any) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

func writeHeap(path string) { writeProfile(path, "heap") }

func writeProfile(path, name string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup(name).WriteTo(f, 0)
}

func pidString(pid int) string { return fmt.Sprint(pid) }

// cpuSeconds is the user and system CPU a process has used so far.
func cpuSeconds(t *testing.T, pid int) float64 { return float64(cpuTicks(t, pid)) / 100 }
