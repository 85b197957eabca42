// Package proctest stops the processes tests start, with a deadline: one that has not exited in time gets
// SIGQUIT, which makes a Go program print every goroutine's stack, so a hang fails the test at once with the
// stack that explains it instead of eating the package's whole timeout.
package proctest

import (
	"bytes"
	"os"
	"os/exec"
	"runtime/pprof"
	"sync"
	"syscall"
	"testing"
	"time"
)

// dumpWait is how long a process gets to write its goroutine dump after SIGQUIT.
const dumpWait = 5 * time.Second

// Stop sends sig to cmd's process and waits up to deadline for it to exit. On expiry it sends SIGQUIT,
// kills the process after dumpWait, and fails the test with output() (the process's captured output, where
// the dump lands); output may be nil when the process writes to the test's own stderr.
func Stop(t testing.TB, cmd *exec.Cmd, sig syscall.Signal, deadline time.Duration, output func() string) {
	t.Helper()
	if cmd == nil || cmd.Process == nil {
		return
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return
	case <-time.After(deadline):
	}
	_ = cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-exited:
	case <-time.After(dumpWait):
		_ = cmd.Process.Kill()
		<-exited
	}
	msg := ""
	if output != nil {
		msg = output()
	}
	t.Errorf("%s did not exit within %s of %s; sent SIGQUIT for its goroutines:\n%s", cmd.Path, deadline, sig, msg)
}

// DumpGoroutines writes every goroutine of this test process to stderr: the in-process twin of SIGQUIT,
// for a part run inside the test binary that did not stop in time.
func DumpGoroutines() {
	_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
}

// Output collects a child process's output; the child writes while the test reads.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
