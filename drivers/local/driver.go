// Package local runs Node-RED instances as child processes of the platform, one `node red.js` per
// instance, with its data under DataDir/instances/<id>/.
//
// Children run in their own process group and outlive the platform on purpose: a new driver over the
// same DataDir re-adopts them through their pidfiles instead of starting second copies. Their output goes
// straight into a log file in the instance directory, which the driver tails.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/nodered"
)

// Config configures a local driver. Only DataDir is required.
type Config struct {
	DataDir      string           // instances live in DataDir/instances/<id>/
	StacksDir    string           // installed Node-RED stacks; default DataDir/stacks
	PortMin      int              // default 12000
	PortMax      int              // default 12999
	Logger       *slog.Logger     // default: discard
	OnExit       drivers.ExitFunc // called when a runtime exits without being asked to; may be nil
	ReadyTimeout time.Duration    // how long a start may take to run its flows; default 60s
	StopTimeout  time.Duration    // SIGTERM to SIGKILL; default 20s (Node-RED waits nodeCloseTimeout, 5s in Flowyard's settings, per slow node)
	// CgroupParent is a delegated cgroup v2 directory (memory and cpu controllers available) under which
	// each instance gets a child cgroup. Empty: <cgroup2 root>/flowyard when the platform runs in a cgroup
	// namespace root, else limits are not enforced.
	CgroupParent string
	PollInterval time.Duration // log tailing and liveness of re-adopted processes; default 250ms
	MaxLogBytes  int64         // log file size that triggers rotation; default 5 MiB
	// Sandbox isolates each Node-RED with bubblewrap (see sandbox.go); default SandboxAuto.
	Sandbox SandboxMode
	// SandboxUIDBase + an instance's port is the uid its Node-RED runs as when the platform runs as root;
	// default 200000.
	SandboxUIDBase int
	// DenyNetworks are refused to sandboxed instances besides the host's own addresses and the link-local
	// ranges (see netfilter.go): a database or Temporal on another host, say.
	DenyNetworks []netip.Prefix

	networkFilterOff bool // benchmarks compare the sandbox with and without the network filter
}

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return errors.New("local driver: DataDir is required")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("local driver: data dir: %w", err)
	}
	c.DataDir = abs
	if c.StacksDir == "" {
		c.StacksDir = filepath.Join(c.DataDir, "stacks")
	}
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = 12000, 12999
	}
	if c.PortMin < 1 || c.PortMax > 65535 || c.PortMin > c.PortMax {
		return fmt.Errorf("local driver: bad port range %d-%d", c.PortMin, c.PortMax)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.ReadyTimeout = orDefault(c.ReadyTimeout, 60*time.Second)
	c.StopTimeout = orDefault(c.StopTimeout, 20*time.Second)
	c.PollInterval = orDefault(c.PollInterval, 250*time.Millisecond)
	if c.MaxLogBytes == 0 {
		c.MaxLogBytes = 5 << 20
	}
	if c.Sandbox == "" {
		c.Sandbox = SandboxAuto
	}
	if c.SandboxUIDBase == 0 {
		c.SandboxUIDBase = defaultSandboxUIDBase
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Driver runs Node-RED instances as local processes. Create it with New.
type Driver struct {
	cfg Config
	log *slog.Logger
	cg  cgroups
	sb  sandbox
	// net filters the instances' traffic (network.go); nil when it cannot, for netReason.
	net        *netFilter
	netReason  string
	netChecked time.Time // by pollLoop only
	client     *http.Client
	closing    chan struct{}
	once       sync.Once
	wg         sync.WaitGroup

	usage usageState // previous CPU readings, for Usage's rates

	mu        sync.Mutex
	instances map[string]*instance
	stacks    map[string]nodered.Runtime // found by EnsureStack, by "nodeRedVersion/nodeVersion"
}

var _ drivers.Driver = (*Driver)(nil)

// New creates a driver over cfg.DataDir and re-adopts every Node-RED still running from an earlier
// driver (one whose pidfile names a live process of that instance). Instances whose runtime died while no
// driver watched are reported as crashed; OnExit is not called for them (reconciliation sees them).
func New(cfg Config) (*Driver, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "instances"), 0o755); err != nil {
		return nil, fmt.Errorf("local driver: %w", err)
	}
	sb, err := newSandbox(context.Background(), cfg.Sandbox, cfg.SandboxUIDBase)
	if err != nil {
		return nil, err
	}
	d := &Driver{
		cfg:       cfg,
		log:       cfg.Logger.With("driver", "local"),
		cg:        detectCgroups(cfg.CgroupParent),
		sb:        sb,
		client:    &http.Client{Timeout: 2 * time.Second},
		closing:   make(chan struct{}),
		instances: map[string]*instance{},
		stacks:    map[string]nodered.Runtime{},
	}
	if d.cg.parent == "" {
		d.log.Warn("memory and cpu limits are not enforced", "reason", d.cg.reason)
	}
	d.net, d.netReason = d.networkFilter() // before adoption, which takes runs that ended unwatched out of it
	if err := d.loadInstances(); err != nil {
		return nil, err
	}
	if err := d.startNetwork(); err != nil {
		return nil, err
	}
	d.warnIfNotIsolated()
	d.wg.Add(1)
	go d.pollLoop()
	return d, nil
}

// Close stops the driver's background work without touching the runtimes: they keep running and a new
// driver re-adopts them. No OnExit is called after Close.
// The network filter stays while it filters an instance; an empty one goes.
func (d *Driver) Close() error {
	d.once.Do(func() {
		close(d.closing)
		d.wg.Wait()
		if d.net != nil {
			if err := d.net.remove(true); err != nil {
				d.log.Warn("could not remove the instances' empty network filter", "table", d.net.table.Name, "err", err)
			}
		}
	})
	d.wg.Wait()
	return nil
}

func (d *Driver) closed() bool {
	select {
	case <-d.closing:
		return true
	default:
		return false
	}
}

// MemoryLimitsEnforced reports whether instances get a cgroup with memory.max and cpu.max, and if not, why.
func (d *Driver) MemoryLimitsEnforced() (bool, string) {
	return d.cg.parent != "", d.cg.reason
}

func (d *Driver) instanceDir(id string) string {
	return filepath.Join(d.cfg.DataDir, "instances", id)
}

// loadInstances registers every instance directory and re-adopts live runtimes.
func (d *Driver) loadInstances() error {
	entries, err := os.ReadDir(filepath.Join(d.cfg.DataDir, "instances"))
	if err != nil {
		return fmt.Errorf("local driver: list instances: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || drivers.ValidateID(e.Name()) != nil {
			continue
		}
		inst := d.register(e.Name())
		d.adopt(inst, true)
	}
	return nil
}

// register returns the in-memory record of instance id, creating it.
func (d *Driver) register(id string) *instance {
	d.mu.Lock()
	defer d.mu.Unlock()
	if inst, ok := d.instances[id]; ok {
		return inst
	}
	dir := d.instanceDir(id)
	inst := &instance{id: id, dir: dir, status: drivers.Status{State: drivers.StateStopped}}
	inst.logs = openLogBook(filepath.Join(dir, logFileName), d.cfg.MaxLogBytes)
	d.instances[id] = inst
	return inst
}

// lookup returns the record of instance id, registering it when its directory exists (created by
// another driver after this one started), or nil.
func (d *Driver) lookup(id string) *instance {
	if drivers.ValidateID(id) != nil {
		return nil
	}
	d.mu.Lock()
	inst, ok := d.instances[id]
	d.mu.Unlock()
	if ok {
		return inst
	}
	if _, err := os.Stat(d.instanceDir(id)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	inst = d.register(id)
	d.adopt(inst, true)
	return inst
}

// Start implements drivers.Driver.
func (d *Driver) Start(ctx context.Context, spec drivers.InstanceSpec) (drivers.Status, error) {
	if err := validateSpec(spec); err != nil {
		return drivers.Status{}, err
	}
	inst := d.register(spec.InstanceID)
	inst.op.Lock()
	defer inst.op.Unlock()
	if err := os.MkdirAll(inst.dir, 0o755); err != nil {
		return drivers.Status{}, fmt.Errorf("start %s: %w", spec.InstanceID, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(inst.dir, ".lock"))
	if err != nil {
		return drivers.Status{}, fmt.Errorf("start %s: lock: %w", spec.InstanceID, err)
	}
	defer unlock()

	hash := specHash(spec)
	if st, ok := d.reuse(inst, spec, hash); ok {
		return st, nil
	}
	if err := d.stopProcess(ctx, inst, "restarting with a new spec"); err != nil {
		return drivers.Status{}, fmt.Errorf("start %s: stop old runtime: %w", spec.InstanceID, err)
	}
	st, err := d.launch(ctx, inst, spec, hash)
	if err != nil {
		return st, fmt.Errorf("start %s: %w", spec.InstanceID, err)
	}
	return st, nil
}

// WaitReady implements drivers.Driver.
func (d *Driver) WaitReady(ctx context.Context, id string) (drivers.Status, error) {
	inst := d.lookup(id)
	if inst == nil {
		return drivers.Status{State: drivers.StateMissing}, fmt.Errorf("wait ready %s: %w", id, drivers.ErrNotFound)
	}
	inst.mu.Lock()
	p := inst.proc
	var readyDone chan struct{}
	if p != nil {
		readyDone = p.readyDone
	}
	inst.mu.Unlock()
	if p == nil {
		st := d.snapshot(inst)
		return st, &drivers.RuntimeError{Kind: drivers.ErrExited, Detail: fmt.Sprintf("%s: %s", st.State, st.Reason), LastLines: st.LastLines}
	}
	if readyDone == nil {
		return d.snapshot(inst), fmt.Errorf("wait ready %s: readiness of a re-adopted runtime is unknown until Start is called with its spec", id)
	}
	select {
	case <-readyDone:
		return d.snapshot(inst), p.readyErr
	case <-ctx.Done():
		return d.snapshot(inst), ctx.Err()
	}
}

// Stop implements drivers.Driver.
func (d *Driver) Stop(ctx context.Context, id string) error {
	inst := d.lookup(id)
	if inst == nil {
		return nil
	}
	inst.op.Lock()
	defer inst.op.Unlock()
	unlock, err := lockFile(ctx, filepath.Join(inst.dir, ".lock"))
	if err != nil {
		return fmt.Errorf("stop %s: lock: %w", id, err)
	}
	defer unlock()
	if err := d.stopProcess(ctx, inst, "stopped"); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	return nil
}

// Remove implements drivers.Driver.
func (d *Driver) Remove(ctx context.Context, id string) error {
	inst := d.lookup(id)
	if inst == nil {
		return nil
	}
	inst.op.Lock()
	defer inst.op.Unlock()
	unlock, err := lockFile(ctx, filepath.Join(inst.dir, ".lock"))
	if err != nil {
		return fmt.Errorf("remove %s: lock: %w", id, err)
	}
	defer unlock()
	if err := d.stopProcess(ctx, inst, "removed"); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	d.cg.remove(id)
	if err := os.RemoveAll(inst.dir); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	d.mu.Lock()
	delete(d.instances, id)
	d.mu.Unlock()
	inst.mu.Lock()
	inst.status = drivers.Status{State: drivers.StateMissing, Reason: "removed"}
	inst.mu.Unlock()
	d.log.Info("instance removed", "instance", id)
	return nil
}

// Status implements drivers.Driver.
func (d *Driver) Status(ctx context.Context, id string) (drivers.Status, error) {
	inst := d.lookup(id)
	if inst == nil {
		return drivers.Status{State: drivers.StateMissing}, nil
	}
	return d.snapshot(inst), nil
}

// Logs implements drivers.Driver.
func (d *Driver) Logs(ctx context.Context, id string, since time.Time, limit int) ([]drivers.LogLine, error) {
	inst := d.lookup(id)
	if inst == nil {
		return nil, fmt.Errorf("logs %s: %w", id, drivers.ErrNotFound)
	}
	inst.logs.poll()
	return inst.logs.lines(since, limit), nil
}

// Running implements drivers.Driver; the IDs are sorted.
func (d *Driver) Running(ctx context.Context) ([]string, error) {
	var ids []string
	for _, inst := range d.allInstances() {
		if inst.live() {
			ids = append(ids, inst.id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// allInstances are the records of every instance the driver knows, in no order.
func (d *Driver) allInstances() []*instance {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Collect(maps.Values(d.instances))
}

// pollLoop tails the logs of live instances and watches re-adopted processes, which cannot be wait()ed.
func (d *Driver) pollLoop() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-d.closing:
			return
		case <-t.C:
		}
		for _, inst := range d.allInstances() {
			d.pollInstance(inst)
		}
		d.watchNetwork()
	}
}

func (d *Driver) pollInstance(inst *instance) {
	inst.mu.Lock()
	p := inst.proc
	inst.mu.Unlock()
	if p == nil {
		return
	}
	inst.logs.poll()
	if p.adopted && !processAlive(p.pid, p.startTicks) {
		d.exited(inst, p, -1, "exited (re-adopted process, exit code unknown)")
	}
}
