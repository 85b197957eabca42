// Package fake is a scripted, in-memory drivers.Driver for workflow and activity tests. It runs no
// processes: instances move through the same states as with a real driver, and a test scripts failures
// per call (fail Start N times, never become ready, crash before or after ready) and inspects the calls made.
package fake

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/flowyard/flowyard/drivers"
)

// Op names a Driver method, for scripting failures and counting calls.
type Op string

// The Driver methods.
const (
	OpStart     Op = "Start"
	OpWaitReady Op = "WaitReady"
	OpStop      Op = "Stop"
	OpRemove    Op = "Remove"
	OpStatus    Op = "Status"
	OpLogs      Op = "Logs"
	OpRunning   Op = "Running"
)

// AnyInstance, used as the instance ID of a script, matches every instance.
const AnyInstance = ""

// ErrInjected is the error a scripted failure returns when the script gives none.
var ErrInjected = errors.New("fake driver: injected failure")

// Call records one call made to the driver.
type Call struct {
	Op         Op
	InstanceID string
}

// Driver is the fake. The zero value is not usable; call New.
type Driver struct {
	mu        sync.Mutex
	onExit    drivers.ExitFunc
	now       func() time.Time
	instances map[string]*instance
	failures  []*failure
	calls     []Call
	nextPID   int
	nextPort  int
}

type instance struct {
	spec       drivers.InstanceSpec
	status     drivers.Status
	logs       []drivers.LogLine
	neverReady bool
	crashes    int // how many of the next starts crash before becoming ready
	exitCode   int
}

type failure struct {
	op        Op
	id        string
	remaining int
	err       error
}

// New returns an empty fake driver. onExit may be nil.
func New(onExit drivers.ExitFunc) *Driver {
	return &Driver{
		onExit:    onExit,
		now:       time.Now,
		instances: map[string]*instance{},
		nextPID:   1000,
		nextPort:  12000,
	}
}

var _ drivers.Driver = (*Driver)(nil)

// SetOnExit replaces the function called on a (scripted) crash.
func (d *Driver) SetOnExit(fn drivers.ExitFunc) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.onExit = fn
}

// SetClock makes the driver stamp statuses and log lines with now() (e.g. a Temporal test clock).
func (d *Driver) SetClock(now func() time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.now = now
}

// Fail makes the next n calls of op for instance id (AnyInstance for all) return err (ErrInjected when nil).
// Scripts stack: the oldest matching script is used up first.
func (d *Driver) Fail(op Op, id string, n int, err error) {
	if err == nil {
		err = ErrInjected
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failures = append(d.failures, &failure{op: op, id: id, remaining: n, err: err})
}

// NeverReady makes WaitReady for id fail with drivers.ErrNeverReady (at once, not after a timeout) until
// Ready is called.
func (d *Driver) NeverReady(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.get(id).neverReady = true
}

// Ready undoes NeverReady.
func (d *Driver) Ready(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.get(id).neverReady = false
}

// CrashOnStart makes the next n starts of id crash before becoming ready: WaitReady returns a
// drivers.RuntimeError with drivers.ErrExited and OnExit is called with StateCrashed.
func (d *Driver) CrashOnStart(id string, n, exitCode int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	inst := d.get(id)
	inst.crashes, inst.exitCode = n, exitCode
}

// Crash makes a live instance exit now with exitCode, as if the runtime died: it becomes crashed and
// OnExit is called (synchronously, after the driver's lock is released). It returns ErrNotFound when the
// instance is not live.
func (d *Driver) Crash(id string, exitCode int, lastLines ...string) error {
	d.mu.Lock()
	inst, ok := d.instances[id]
	if !ok || !isLive(inst.status.State) {
		d.mu.Unlock()
		return fmt.Errorf("crash %s: %w", id, drivers.ErrNotFound)
	}
	for _, l := range lastLines {
		inst.logs = append(inst.logs, drivers.LogLine{Time: d.now(), Level: "raw", Msg: l})
	}
	st := d.crashLocked(inst, exitCode)
	fn := d.onExit
	d.mu.Unlock()
	if fn != nil {
		fn(id, st)
	}
	return nil
}

// AppendLog adds a line to an instance's log.
func (d *Driver) AppendLog(id, level, msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	inst := d.get(id)
	inst.logs = append(inst.logs, drivers.LogLine{Time: d.now(), Level: level, Msg: msg})
}

// Calls returns the calls made so far, oldest first.
func (d *Driver) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

// CallCount counts the calls of op for id (AnyInstance for all).
func (d *Driver) CallCount(op Op, id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.calls {
		if c.Op == op && (id == AnyInstance || c.InstanceID == id) {
			n++
		}
	}
	return n
}

// Spec returns the spec an instance was last started with.
func (d *Driver) Spec(id string) (drivers.InstanceSpec, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	inst, ok := d.instances[id]
	if !ok || inst.spec.InstanceID == "" {
		return drivers.InstanceSpec{}, false
	}
	return inst.spec, true
}

// Start implements drivers.Driver.
func (d *Driver) Start(ctx context.Context, spec drivers.InstanceSpec) (drivers.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpStart, spec.InstanceID); err != nil {
		return drivers.Status{}, err
	}
	if err := drivers.ValidateID(spec.InstanceID); err != nil {
		return drivers.Status{}, err
	}
	inst := d.get(spec.InstanceID)
	if isLive(inst.status.State) && reflect.DeepEqual(inst.spec, spec) {
		return inst.status, nil
	}
	port := inst.status.Port
	if port == 0 {
		port = d.nextPort
		d.nextPort++
	}
	d.nextPID++
	inst.spec = spec
	inst.status = drivers.Status{
		State:     drivers.StateStarting,
		PID:       d.nextPID,
		Port:      port,
		URL:       fmt.Sprintf("http://127.0.0.1:%d", port),
		StartedAt: d.now(),
	}
	inst.logs = append(inst.logs, drivers.LogLine{Time: d.now(), Level: "system", Msg: "started"})
	return inst.status, nil
}

// WaitReady implements drivers.Driver. It never blocks: the outcome is decided by the script.
func (d *Driver) WaitReady(ctx context.Context, id string) (drivers.Status, error) {
	d.mu.Lock()
	if err := d.enter(ctx, OpWaitReady, id); err != nil {
		d.mu.Unlock()
		return drivers.Status{}, err
	}
	inst, ok := d.instances[id]
	switch {
	case !ok || inst.status.State == drivers.StateMissing || inst.status.State == "":
		d.mu.Unlock()
		return drivers.Status{State: drivers.StateMissing}, fmt.Errorf("wait ready %s: %w", id, drivers.ErrNotFound)
	case inst.status.State == drivers.StateRunning:
		defer d.mu.Unlock()
		return inst.status, nil
	case !isLive(inst.status.State):
		defer d.mu.Unlock()
		return inst.status, &drivers.RuntimeError{Kind: drivers.ErrExited, Detail: inst.status.Reason, LastLines: inst.status.LastLines}
	case inst.crashes > 0:
		inst.crashes--
		st := d.crashLocked(inst, inst.exitCode)
		fn := d.onExit
		d.mu.Unlock()
		if fn != nil {
			fn(id, st)
		}
		return st, &drivers.RuntimeError{Kind: drivers.ErrExited, Detail: st.Reason, LastLines: st.LastLines}
	case inst.neverReady:
		defer d.mu.Unlock()
		return inst.status, &drivers.RuntimeError{Kind: drivers.ErrNeverReady, Detail: "scripted", LastLines: lastLines(inst.logs)}
	}
	defer d.mu.Unlock()
	inst.status.State = drivers.StateRunning
	return inst.status, nil
}

// Stop implements drivers.Driver.
func (d *Driver) Stop(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpStop, id); err != nil {
		return err
	}
	if inst, ok := d.instances[id]; ok && isLive(inst.status.State) {
		inst.status.State, inst.status.PID, inst.status.Reason = drivers.StateStopped, 0, "stopped"
		inst.logs = append(inst.logs, drivers.LogLine{Time: d.now(), Level: "system", Msg: "stopped"})
	}
	return nil
}

// Remove implements drivers.Driver.
func (d *Driver) Remove(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpRemove, id); err != nil {
		return err
	}
	delete(d.instances, id)
	return nil
}

// Status implements drivers.Driver.
func (d *Driver) Status(ctx context.Context, id string) (drivers.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpStatus, id); err != nil {
		return drivers.Status{}, err
	}
	inst, ok := d.instances[id]
	if !ok || inst.status.State == "" {
		return drivers.Status{State: drivers.StateMissing}, nil
	}
	st := inst.status
	st.LastLines = slices.Clone(st.LastLines)
	return st, nil
}

// Logs implements drivers.Driver.
func (d *Driver) Logs(ctx context.Context, id string, since time.Time, limit int) ([]drivers.LogLine, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpLogs, id); err != nil {
		return nil, err
	}
	inst, ok := d.instances[id]
	if !ok {
		return nil, fmt.Errorf("logs %s: %w", id, drivers.ErrNotFound)
	}
	var out []drivers.LogLine
	for _, l := range inst.logs {
		if !l.Time.Before(since) {
			out = append(out, l)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return slices.Clone(out), nil
}

// Running implements drivers.Driver; the IDs are sorted.
func (d *Driver) Running(ctx context.Context) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpRunning, AnyInstance); err != nil {
		return nil, err
	}
	var ids []string
	for id, inst := range d.instances {
		if isLive(inst.status.State) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// enter records a call and returns the scripted failure for it, if any. d.mu must be held.
func (d *Driver) enter(ctx context.Context, op Op, id string) error {
	d.calls = append(d.calls, Call{Op: op, InstanceID: id})
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, f := range d.failures {
		if f.op == op && f.remaining > 0 && (f.id == AnyInstance || f.id == id) {
			f.remaining--
			return fmt.Errorf("%s %s: %w", op, id, f.err)
		}
	}
	return nil
}

// get returns the instance record for id, creating an empty (missing) one. d.mu must be held.
func (d *Driver) get(id string) *instance {
	inst, ok := d.instances[id]
	if !ok {
		inst = &instance{}
		d.instances[id] = inst
	}
	return inst
}

// crashLocked marks inst crashed and returns its status. d.mu must be held.
func (d *Driver) crashLocked(inst *instance, exitCode int) drivers.Status {
	inst.logs = append(inst.logs, drivers.LogLine{Time: d.now(), Level: "system", Msg: fmt.Sprintf("exited with code %d", exitCode)})
	inst.status.State = drivers.StateCrashed
	inst.status.PID = 0
	inst.status.ExitCode = exitCode
	inst.status.Reason = fmt.Sprintf("exited with code %d", exitCode)
	inst.status.LastLines = lastLines(inst.logs)
	st := inst.status
	st.LastLines = slices.Clone(st.LastLines)
	return st
}

func isLive(s drivers.State) bool { return s == drivers.StateStarting || s == drivers.StateRunning }

func lastLines(logs []drivers.LogLine) []string {
	var out []string
	for _, l := range logs[max(0, len(logs)-20):] {
		out = append(out, l.Msg)
	}
	return out
}
