package local

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowyard/flowyard/drivers"
)

// instance is the driver's record of one instance directory.
type instance struct {
	id, dir string
	op      sync.Mutex // serialises Start, Stop and Remove of this instance within the driver
	logs    *logBook

	mu     sync.Mutex
	proc   *process // the live runtime; nil when none
	status drivers.Status
}

// process is one Node-RED run: a child of this driver, or one re-adopted from an earlier driver.
type process struct {
	pid        int
	startTicks uint64
	port       int
	specHash   string // "" when unknown (a process found without its pidfile)
	safe       bool
	adopted    bool      // not our child: watched by polling /proc, exit code unknown
	cmd        *exec.Cmd // nil when adopted
	startedAt  time.Time
	limited    bool
	sandboxed  bool // cmd is bwrap, which reports a signal's death as exit code 128+signal
	// The sandbox's init (pid 1 inside) and its start time; 0 when unsandboxed. Killing it ends the
	// sandbox, with whatever the flows left running.
	initPID   int
	initTicks uint64
	net       *netMember // its entry in the network filter; nil when it runs as the platform's uid

	stopping atomic.Bool // set (under instance.mu) before the driver signals it, so its exit is no crash
	exitOnce sync.Once
	done     chan struct{} // closed once the process is gone
	exitCode int

	token        string        // admin token for readiness probes; guarded by instance.mu
	readyDone    chan struct{} // closed when readiness is decided; nil while nobody probes; guarded by instance.mu
	readyErr     error         // valid after readyDone is closed
	missingTypes atomic.Bool   // Node-RED logged "Waiting for missing types" during this run
	startedFlows atomic.Bool   // Node-RED logged "Started flows" during this run
}

// newProcess records a runtime found running (re-adopted or a stray), with its sandbox if it has one.
func newProcess(pid int, startTicks uint64) *process {
	p := &process{pid: pid, startTicks: startTicks, done: make(chan struct{})}
	p.initPID, p.initTicks = sandboxInit(pid)
	return p
}

// endSandbox kills the sandbox's init once Node-RED is gone: the kernel then kills every process left in
// its PID namespace, so nothing a flow started outlives the instance. It waits for the init's end, which
// comes after every process of the namespace has ended and closed its files: only then is the port free
// (a multi-threaded Node-RED shows as a zombie while its last threads still hold the socket).
func (p *process) endSandbox() {
	if p.initPID == 0 || !processAlive(p.initPID, p.initTicks) { // checked first: the PID may be another's by now
		return
	}
	syscall.Kill(p.initPID, syscall.SIGKILL)
	for deadline := time.Now().Add(5 * time.Second); processAlive(p.initPID, p.initTicks) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

func (inst *instance) live() bool {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	return inst.proc != nil
}

// snapshot returns the instance's status with its last log lines.
func (d *Driver) snapshot(inst *instance) drivers.Status {
	inst.mu.Lock()
	st := inst.status
	inst.mu.Unlock()
	if st.State != drivers.StateMissing {
		inst.logs.poll()
		st.LastLines = inst.logs.last(lastLinesInErr)
	}
	return st
}

// adopt looks for a runtime of inst that no driver in this process watches: one named by a pidfile that
// is still alive and really belongs to the instance (start time and environment match), or, without a
// valid pidfile, any process carrying the instance's marker (a platform killed between starting Node-RED
// and writing the pidfile). With initial set (the instance is new to this driver) it also derives the
// status of an instance without a runtime from its files: stopped, or crashed when a pidfile outlived
// its process.
func (d *Driver) adopt(inst *instance, initial bool) {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.proc != nil {
		return
	}
	pf, havePF, err := readPidFile(inst.dir)
	if err != nil {
		d.log.Warn("ignoring unreadable pidfile", "instance", inst.id, "err", err)
		havePF = false
	}
	port, _ := readPort(inst.dir)
	if havePF && processAlive(pf.PID, pf.StartTicks) && belongsTo(pf.PID, inst.dir) {
		p := newProcess(pf.PID, pf.StartTicks)
		p.adopted, p.port, p.specHash, p.safe, p.limited, p.startedAt = true, pf.Port, pf.SpecHash, pf.SafeMode, pf.Limited, pf.StartedAt
		p.startedFlows.Store(true) // its start is over: its log lines were written before this driver existed
		if pf.Host != listenAddress(pf.Port) {
			// Started when Node-RED listened on 127.0.0.1, where browsers send the platform's cookie: an
			// unknown spec makes the next Start replace it.
			p.specHash = ""
		}
		var legacy bool
		if p.net, legacy = d.adoptedNetRun(pf.PID, pf.Port, pf); legacy {
			p.specHash = "" // started before the network filter: the next Start replaces it
			d.log.Warn("re-adopted an instance started before its network was filtered: it is filtered now, and "+
				"its flows cannot be saved until it restarts", "instance", inst.id, "pid", p.pid)
		}
		state := drivers.StateStarting
		if !pf.ReadyAt.IsZero() {
			state = drivers.StateRunning
			p.readyDone = make(chan struct{})
			close(p.readyDone)
		}
		inst.proc = p
		inst.status = runningStatus(p, state)
		d.log.Info("re-adopted running node-red", "instance", inst.id, "pid", p.pid, "port", p.port)
		return
	}
	if pids := findInstanceProcesses(inst.dir); len(pids) > 0 {
		st, err := readProcStat(pids[0])
		if err == nil {
			p := newProcess(pids[0], st.startTicks)
			p.adopted, p.port, p.startedAt = true, port, time.Now()
			p.net, _ = d.adoptedNetRun(pids[0], port, pidFile{})
			p.startedFlows.Store(true)
			inst.proc = p
			inst.status = runningStatus(p, drivers.StateStarting)
			d.log.Warn("adopted node-red without a pidfile; it will be restarted on the next Start", "instance", inst.id, "pid", p.pid)
			return
		}
	}
	if !initial {
		return
	}
	inst.status = drivers.Status{State: drivers.StateStopped, Port: port}
	if havePF {
		inst.status = drivers.Status{State: drivers.StateCrashed, Port: pf.Port, ExitCode: -1,
			Reason: "exited while no driver was watching", StartedAt: pf.StartedAt}
		if pf.NetRun != "" {
			d.releaseNet(&netMember{uid: d.cfg.SandboxUIDBase + pf.Port, run: pf.NetRun})
		}
	}
}

func runningStatus(p *process, state drivers.State) drivers.Status {
	return drivers.Status{
		State: state, PID: p.pid, Port: p.port, URL: runtimeURL(p.port),
		StartedAt: p.startedAt, MemoryLimitEnforced: p.limited,
	}
}

// reuse returns the status of inst's runtime when it already runs with spec (hash).
func (d *Driver) reuse(inst *instance, spec drivers.InstanceSpec, hash string) (drivers.Status, bool) {
	d.adopt(inst, false)
	inst.mu.Lock()
	p := inst.proc
	if p == nil || p.specHash != hash {
		inst.mu.Unlock()
		return drivers.Status{}, false
	}
	p.token = spec.AdminToken
	unknown := p.readyDone == nil
	inst.mu.Unlock()
	if unknown {
		d.watchReady(inst, p)
	}
	return d.snapshot(inst), true
}

// exited records the end of p. A process the driver did not stop is a crash: the status says so and
// OnExit is called.
func (d *Driver) exited(inst *instance, p *process, code int, reason string) {
	p.exitOnce.Do(func() {
		p.endSandbox()
		if !d.closed() { // a closed driver no longer speaks for the instance: its successor may run it again
			d.releaseNet(p.net)
		}
		p.exitCode = code
		close(p.done)
		if d.closed() {
			return // a closed driver no longer speaks for the instance; its successor reports the exit
		}
		inst.logs.poll()
		inst.mu.Lock()
		if inst.proc == p {
			inst.proc = nil
		}
		crashed := !p.stopping.Load()
		if crashed {
			inst.status = drivers.Status{State: drivers.StateCrashed, Port: p.port, ExitCode: code, Reason: reason,
				StartedAt: p.startedAt, MemoryLimitEnforced: p.limited}
		}
		inst.mu.Unlock()
		if !crashed {
			return
		}
		inst.logs.system("node-red %s", reason)
		d.log.Warn("node-red exited unexpectedly", "instance", inst.id, "pid", p.pid, "reason", reason)
		if fn := d.cfg.OnExit; fn != nil {
			fn(inst.id, d.snapshot(inst))
		}
	})
}

// exitReason describes how a child ended, with a shell-style code (128+signal when killed). bwrap passes
// its payload's code on, and a death by signal as 128+signal.
func exitReason(cmd *exec.Cmd, sandboxed bool) (int, string) {
	ps := cmd.ProcessState
	if ps == nil {
		return -1, "exited (unknown status)"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), killedBy(ws.Signal())
	}
	if code := ps.ExitCode(); sandboxed && code > 128 && code < 128+65 {
		return code, killedBy(syscall.Signal(code - 128))
	}
	return ps.ExitCode(), fmt.Sprintf("exited with code %d", ps.ExitCode())
}

func killedBy(sig syscall.Signal) string {
	return fmt.Sprintf("killed by signal %d (%s)", int(sig), sig)
}

// stopProcess stops inst's runtime, if any, and every stray process of the instance, and marks it
// stopped with reason why. ctx only shortens the graceful period; the process is always gone on success.
func (d *Driver) stopProcess(ctx context.Context, inst *instance, why string) error {
	d.adopt(inst, false)
	inst.mu.Lock()
	p := inst.proc
	if p != nil {
		p.stopping.Store(true)
	}
	inst.mu.Unlock()
	var errs []error
	if p != nil {
		inst.logs.system("stopping node-red (pid %d): %s", p.pid, why)
		errs = append(errs, d.terminate(ctx, inst, p))
	}
	for _, pid := range findInstanceProcesses(inst.dir) {
		d.log.Warn("stopping a stray node-red of the instance", "instance", inst.id, "pid", pid)
		if st, err := readProcStat(pid); err == nil {
			stray := newProcess(pid, st.startTicks)
			stray.adopted = true
			stray.stopping.Store(true)
			errs = append(errs, d.terminate(ctx, inst, stray))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := removePidFile(inst.dir); err != nil {
		return fmt.Errorf("remove pidfile: %w", err)
	}
	inst.mu.Lock()
	defer inst.mu.Unlock()
	inst.status = drivers.Status{State: drivers.StateStopped, Port: inst.status.Port, Reason: why, ExitCode: inst.status.ExitCode}
	if p != nil {
		inst.status.ExitCode = p.exitCode
	}
	return nil
}

// terminate sends SIGTERM to p's process group, then SIGKILL after StopTimeout (or as soon as ctx ends),
// and waits until the process is gone.
func (d *Driver) terminate(ctx context.Context, inst *instance, p *process) error {
	if err := signalGroup(p.pid, syscall.SIGTERM); err != nil && d.alive(inst, p) {
		return fmt.Errorf("sigterm %d: %w", p.pid, err)
	}
	grace, cancel := context.WithTimeout(ctx, d.cfg.StopTimeout)
	defer cancel()
	if d.waitGone(grace, inst, p) {
		return nil
	}
	d.log.Warn("node-red ignored SIGTERM, killing it", "instance", inst.id, "pid", p.pid)
	if err := signalGroup(p.pid, syscall.SIGKILL); err != nil && d.alive(inst, p) {
		return fmt.Errorf("sigkill %d: %w", p.pid, err)
	}
	hard, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if d.waitGone(hard, inst, p) {
		return nil
	}
	return fmt.Errorf("process %d still alive after SIGKILL", p.pid)
}

// waitGone waits until p has exited or ctx ends. Children are reaped by their Wait goroutine; adopted
// processes are polled.
func (d *Driver) waitGone(ctx context.Context, inst *instance, p *process) bool {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if !d.alive(inst, p) {
			return true
		}
		select {
		case <-p.done:
			return true
		case <-ctx.Done():
			return !d.alive(inst, p)
		case <-tick.C:
		}
	}
}

// alive reports whether p still runs; for an adopted process it records the exit when it does not.
func (d *Driver) alive(inst *instance, p *process) bool {
	select {
	case <-p.done:
		return false
	default:
	}
	if p.cmd != nil {
		return true // our child: only its Wait goroutine knows, and it closes done
	}
	if processAlive(p.pid, p.startTicks) {
		return true
	}
	d.exited(inst, p, -1, "exited (re-adopted process, exit code unknown)")
	return false
}
