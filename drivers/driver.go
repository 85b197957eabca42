// Package drivers defines how Flowyard runs Node-RED instances: the Driver interface that the local
// (child process) and kubernetes drivers implement, and the types they exchange with the platform.
//
// A driver only runs what it is told to run. It never restarts a crashed runtime on its own: it reports
// the exit through an ExitFunc and the instance workflow decides what to do (back-off, safe mode, give up).
package drivers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Paths under which every instance serves Node-RED's admin API (and editor) and its http-in nodes. The
// http-in routes are at the root, as on FlowFuse, so a flow's endpoints are at the root of the instance's own
// address (<name>.<apps domain>). A request the admin app does not handle falls through to the http-in routes,
// where a flow could read the admin token the editor proxy injects: settings.js makes every http-in route
// answer 404 under AdminRoot (nodered.SettingsParams.HTTPAdminRoot), and the platform's app proxy never
// forwards a path under it (docs/ARCHITECTURE.md §12).
const (
	AdminRoot = "/admin/"
	NodeRoot  = "/"
)

// InstanceSpec is everything a driver needs to run one Node-RED instance.
type InstanceSpec struct {
	InstanceID, Name            string
	NodeRedVersion, NodeVersion string
	MemoryMB, CPUPercent        int
	Env                         map[string]string // user env (template + instance merged)
	Settings                    map[string]any    // extra Node-RED settings from the template
	CredentialSecret            string
	AdminToken                  string // raw platform token for Node-RED's admin API (full access); the driver stores only its hash in settings.js
	ReadToken                   string // raw token giving read-only admin access (viewers' editor), may be empty
	ForgeURL, InstanceToken     string // for the storage plugin; empty ForgeURL = Node-RED's own file storage
	Modules                     map[string]string
	SafeMode                    bool // start with `--safe` (flows loaded, not started)
}

// State is the lifecycle state of an instance's runtime as seen by a driver.
type State string

// The states a driver reports.
const (
	StateStarting State = "starting" // process started, flows not (yet) running
	StateRunning  State = "running"  // flows running (or loaded in safe mode)
	StateStopped  State = "stopped"  // stopped on request, data kept
	StateCrashed  State = "crashed"  // exited without being asked to
	StateMissing  State = "missing"  // the driver knows nothing about this instance
)

// Status describes an instance's runtime.
type Status struct {
	State               State
	PID, Port           int
	URL                 string // how the platform and browsers reach it (the local driver: http://127.1.x.y:port, an address of its own)
	ExitCode            int    // of the last exit; -1 when unknown (e.g. a re-adopted process)
	Reason              string // human-readable cause of the state, e.g. "exited with code 1"
	LastLines           []string
	StartedAt           time.Time
	MemoryLimitEnforced bool
}

// LogLine is one line of a runtime's output. Node-RED's JSON log lines are parsed; any other output
// (stack traces, npm noise) is kept verbatim with Level "raw". The driver's own lifecycle lines have
// Level "system".
type LogLine struct {
	Time       time.Time
	Level, Msg string
}

// Driver runs Node-RED instances somewhere (child processes, Kubernetes pods, ...).
// All methods are safe for concurrent use.
type Driver interface {
	// Start runs the instance. It is idempotent: an instance already running with this spec returns its
	// status; one running with another spec is restarted with the new one.
	Start(ctx context.Context, spec InstanceSpec) (Status, error)
	// WaitReady waits until the flows run (GET flows/state == start, or safe in safe mode), the process
	// exits (an error carrying the last log lines), or ctx ends.
	WaitReady(ctx context.Context, instanceID string) (Status, error)
	// Stop stops the runtime gracefully (SIGTERM, then SIGKILL) and keeps its data. Idempotent.
	Stop(ctx context.Context, instanceID string) error
	// Remove stops the runtime and deletes its data and port. Idempotent.
	Remove(ctx context.Context, instanceID string) error
	// Status reports the runtime's state; an unknown instance has StateMissing (not an error).
	Status(ctx context.Context, instanceID string) (Status, error)
	// Logs returns up to limit lines logged at or after since (the newest ones when there are more).
	Logs(ctx context.Context, instanceID string, since time.Time, limit int) ([]LogLine, error)
	// Running lists the IDs of instances with a live runtime, for reconciliation.
	Running(ctx context.Context) ([]string, error)
}

// Usage is what an instance's runtime uses at one moment: CPU in percent of one core (200 = two cores busy),
// averaged since the previous reading, and resident memory in bytes.
type Usage struct {
	CPUPercent  float64
	MemoryBytes int64
}

// UsageReader is a driver that can measure its instances (the local driver from their processes, the
// kubernetes driver from the cluster's metrics API when it has one).
type UsageReader interface {
	// Usage measures every instance with a live runtime that this driver can see.
	Usage(ctx context.Context) (map[string]Usage, error)
}

// ExitFunc is called (from a driver goroutine) when a runtime exits without being asked to, so the platform can
// mark the instance crashed and restart it with back-off (the restart policy lives in the workflow, not the driver).
type ExitFunc func(instanceID string, st Status)

// Errors a driver returns; test them with errors.Is.
var (
	ErrNoFreePort   = errors.New("no free port")
	ErrNotFound     = errors.New("instance not found")
	ErrInvalidSpec  = errors.New("invalid instance spec")
	ErrNodeMissing  = errors.New("node.js runtime missing")
	ErrNeverReady   = errors.New("node-red never became ready")
	ErrExited       = errors.New("node-red exited")
	ErrMissingTypes = errors.New("flows wait for missing node types")
)

// RuntimeError is an error about a runtime that carries its last log lines, so that the platform can show
// the user why Node-RED failed. errors.Is(err, ErrNeverReady) etc. match its Kind.
type RuntimeError struct {
	Kind      error  // one of the Err* values above
	Detail    string // e.g. "exited with code 1"
	LastLines []string
}

func (e *RuntimeError) Error() string {
	msg := e.Kind.Error()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if n := len(e.LastLines); n > 0 {
		msg += "; last output: " + strings.Join(e.LastLines[max(0, n-3):], " | ")
	}
	return msg
}

// Unwrap lets errors.Is match the Kind.
func (e *RuntimeError) Unwrap() error { return e.Kind }

// ValidateID reports whether id can name an instance: it becomes a directory and a cgroup name, so it is
// limited to letters, digits, '-' and '_' (at most 128 characters).
func ValidateID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("%w: instance id must have 1 to 128 characters", ErrInvalidSpec)
	}
	for _, r := range id {
		ok := r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return fmt.Errorf("%w: instance id %q may hold only letters, digits, '-' and '_'", ErrInvalidSpec, id)
		}
	}
	return nil
}
