// Package relay hands what the platform has to tell a device to the process that holds the device's broker
// connection: its new target (`update`), its deletion (disconnect it at once), a request for its flows
// (`upload`) or an action on its Node-RED (`action`), whose answers come back to the process that asked, and the
// watches of its live log, whose lines go to the processes that watch it (live.go). Any process may change what a device should
// run: an API replica, or a worker running a rollout or a promotion; only the `flowyard serve` replica whose
// broker the device is connected to can reach it.
//
// On Postgres the processes share a channel (LISTEN/NOTIFY, channel "flowyard_devices"): a notification names
// devices and requests, never their content, and each listening process acts on the devices connected to it.
// On SQLite there is one process, and the relay calls its broker directly. A lost notification costs time,
// never the change: the devices' check-ins and status heartbeats stay the source of truth, and a process whose
// listening connection was lost re-sends `update` to its connected devices that run something else than their
// target once it listens again.
//
// The broker side is the Connections interface, and Live for live logs and actions (the embedded broker,
// broker.Broker, implements both), so the relay knows nothing of how devices are connected.
package relay

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Connections is a process's own reach: the devices connected to its broker and what it can do with them.
type Connections interface {
	// Holds reports whether the device is connected here.
	Holds(deviceID string) bool
	// NotifyDevices sends each of the devices connected here the `update` command for its current target;
	// the others are left out.
	NotifyDevices(ctx context.Context, deviceIDs []string) error
	// DisconnectDevice closes the device's connection here, if it has one (its credentials are gone).
	DisconnectDevice(deviceID string)
	// RequestUpload asks a device connected here for its flows (`upload`) and waits for them until ctx ends.
	RequestUpload(ctx context.Context, d *storage.Device) (*devices.Upload, error)
	// PushMissed sends `update` to every device connected here whose last status shows it runs something else
	// than what it should: after notifications may have been missed.
	PushMissed(ctx context.Context)
}

// Defaults; a Relay's fields of the same names override them.
const (
	// DefaultAckTimeout is how long a request waits for the process holding the device to say so, after which
	// the device counts as connected nowhere.
	DefaultAckTimeout = 3 * time.Second
	// DefaultPingEvery is how long the listening connection may stay quiet before it is tested with a
	// notification to itself; it counts as lost when that does not come back within as long again.
	DefaultPingEvery = 15 * time.Second
)

// Relay is one process's side of delivery. Its zero value is not usable: use New.
type Relay struct {
	store *storage.Store
	log   *slog.Logger
	id    string // this process, in notifications

	AckTimeout time.Duration
	PingEvery  time.Duration
	LeaseEvery time.Duration
	LinesEvery time.Duration

	conns     atomic.Pointer[connections]
	listening atomic.Bool
	pending   sync.Map // request id -> *pending
	work      chan func()
	logs      *logs
}

type connections struct{ Connections }

// New makes a relay over the store. A process with a broker attaches it (Attach) and, on Postgres, listens
// (Listen); a worker only sends.
func New(st *storage.Store, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{store: st, log: log.With("component", "relay"), id: domain.NewID(), AckTimeout: DefaultAckTimeout,
		PingEvery: DefaultPingEvery, LeaseEvery: DefaultLeaseEvery, LinesEvery: DefaultLinesEvery, work: make(chan func(), 256), logs: newLogs()}
}

// Attach gives the relay this process's broker; until then (and in a worker) it reaches devices only through
// the other processes.
func (r *Relay) Attach(c Connections) { r.conns.Store(&connections{c}) }

func (r *Relay) local() Connections {
	if c := r.conns.Load(); c != nil {
		return c.Connections
	}
	return nil
}

// NotifyDevices tells the devices their target or settings changed (`update`), wherever they are connected.
// A device connected nowhere learns it at its next check-in, so an error here loses nothing.
func (r *Relay) NotifyDevices(ctx context.Context, ids []string) error {
	rest := ids
	if c := r.local(); c != nil {
		held, others := split(ids, c.Holds)
		if err := c.NotifyDevices(ctx, held); err != nil {
			r.log.Warn("notify devices", "devices", len(held), "err", err)
		}
		rest = others
	}
	return r.publishIDs(ctx, kindUpdate, rest)
}

// DisconnectDevice closes a deleted device's connection, wherever it is: here and, since a device that just
// moved to this replica may still hold a dying connection to another, on every other replica too.
func (r *Relay) DisconnectDevice(ctx context.Context, id string) {
	if c := r.local(); c != nil {
		c.DisconnectDevice(id)
	}
	if err := r.publishIDs(ctx, kindDisconnect, []string{id}); err != nil {
		r.log.Warn("could not ask the other processes to disconnect a deleted device", "device", id, "err", err)
	}
}

// split separates the ids for which in holds from the others.
func split(ids []string, in func(string) bool) (yes, no []string) {
	for _, id := range ids {
		if in(id) {
			yes = append(yes, id)
		} else {
			no = append(no, id)
		}
	}
	return yes, no
}

// publishIDs notifies the other processes of devices, as many notifications as the ids need. On SQLite there
// are no other processes.
func (r *Relay) publishIDs(ctx context.Context, kind string, ids []string) error {
	if len(ids) == 0 || !r.store.Notifies() {
		return nil
	}
	for len(ids) > 0 {
		n := min(len(ids), idsPerMessage)
		if err := r.publish(ctx, message{Kind: kind, From: r.id, IDs: ids[:n]}); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

func (r *Relay) publish(ctx context.Context, m message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return r.store.Notify(ctx, channel, string(b))
}

// Check answers readiness: a process that should listen and does not reaches its devices only at their next
// heartbeat for changes made elsewhere.
func (r *Relay) Check(context.Context) error {
	if r.store.Notifies() && r.local() != nil && !r.listening.Load() {
		return errNotListening
	}
	return nil
}
