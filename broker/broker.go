// Package broker is Flowyard's embedded MQTT broker for devices (mochi-mqtt): MQTT 3.1.1 over TCP (or TLS) and
// over WebSocket, each device signing in with the username and password it got at registration, topic ACLs exactly
// as FlowFuse's device protocol sets them (acl.go) for every message a device makes the broker publish, its
// publishes and its Last Will alike, and the platform's side of the conversation: it consumes devices' status
// messages, records them, answers with `update` commands when a device runs something other than its target,
// tells devices at once when their target changes, and asks them for their flows (`upload`).
package broker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/internal/lanes"
	"github.com/flowyard/flowyard/storage"
)

// Defaults.
const (
	// DefaultMaxPacketBytes caps one MQTT packet; a larger one closes the connection. Status messages are a
	// few hundred bytes; a log burst of the agent's whole buffer stays well under it.
	DefaultMaxPacketBytes = 1 << 20
	// writesPending bounds the packets queued to one client; devices receive few.
	writesPending = 64
	// DefaultConnectTimeout is how long a new connection may take to sign in (its TLS handshake or WebSocket
	// upgrade included) before it is closed, so that nobody holds connections open on a public port without.
	DefaultConnectTimeout = 20 * time.Second
)

// Config configures the broker.
type Config struct {
	Listen   string // MQTT over TCP, host:port; "" for none
	WSListen string // MQTT over WebSocket, host:port; "" for none
	Devices  *devices.Service
	Log      *slog.Logger
	// TLSCertFile and TLSKeyFile (PEM) make the TCP listener speak MQTT over TLS; both are read again when they
	// change (see certFiles).
	TLSCertFile, TLSKeyFile string
	// ConnectTimeout overrides DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// MaxPacketBytes overrides DefaultMaxPacketBytes.
	MaxPacketBytes int
	// MessagesPerSecond and Burst override DefaultMessagesPerSecond and DefaultBurst, the publish rate allowed
	// to each device.
	MessagesPerSecond int
	Burst             int
}

// Broker is the running broker.
type Broker struct {
	srv        *mqtt.Server
	devices    *devices.Service
	store      *storage.Store
	log        *slog.Logger
	platformID string
	tcpAddr    string
	tcpTLS     bool
	wsAddr     string

	doors    doors     // the listeners and their connections
	handover *handover // a device's new connection waits for its earlier one to end
	mu       sync.Mutex
	clients  map[string]*connection // by device ID

	rate    rate          // publishes allowed to each device
	dropped atomic.Uint64 // publishes dropped for going over the rate, since start
	replies devices.Replies
	logs    *logWatch // the devices whose log someone watches here, and their recent lines
	closed  atomic.Bool
	stop    chan struct{} // closed by Close: ends keepAlive
	// work carries the store's work for devices (authentication, connection flags, status messages) from the
	// clients' read loops to a few workers, one queue per worker and each device always on the same one, so a
	// device's events stay in order and the store's deep stacks stay off the thousands of connection goroutines.
	work *lanes.Lanes
	// statuses holds, by device, the latest status message not yet taken by its lane: a device's newer status
	// replaces the queued one (see queueStatus).
	statuses devices.StatusQueue
	// signingIn counts the sign-ins waiting for the store; past maxSigningIn a device is refused at once and
	// reconnects later (an agent waits 13–25 s). A fleet connecting at once otherwise queued without bound, each
	// waiting connection holding its goroutines and buffers, and agents whose CONNECT timed out reconnected
	// beside their old connection: 14,000 waited while 10,000 simulated devices joined.
	signingIn    atomic.Int64
	maxSigningIn int64
	refusedBusy  atomic.Uint64 // sign-ins refused because too many waited, since start
}

// RefusedBusy counts the sign-ins refused because too many were waiting for the store.
func (b *Broker) RefusedBusy() uint64 { return b.refusedBusy.Load() }

// maxSigningIn is how many sign-ins may wait for the store at once. A waiting connection costs about 45 KiB
// (its goroutines, buffers and packet); 1,024 of them are a few seconds of the store's work on a busy machine.
const maxSigningIn = 1024

// statusWorkers is how many lanes record devices' work at once; statusQueue how many jobs may wait; statusBatch
// how many devices' statuses one lane records in one transaction.
const (
	statusWorkers = 8
	statusQueue   = 4096
	statusBatch   = 256
)

// connection is one signed-in device.
type connection struct {
	client *mqtt.Client
	grant  grant
	flow   *bucket         // its publish rate
	last   *devices.Report // what its last status said it runs (nil before its first)
	// logAsked is set once this connection was sent startLog: a device that reconnects while watched is asked
	// again at its first status (sent once it has subscribed to its commands).
	logAsked atomic.Bool
}

// Start binds the listeners and serves until Close.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	max := cfg.MaxPacketBytes
	if max <= 0 {
		max = DefaultMaxPacketBytes
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(max)
	caps.MaximumClientWritesPending = writesPending
	caps.MaximumQos = 1
	// No retained messages: the device protocol uses none, and a retained message outlives the check made when
	// it was published (its device deleted, its credentials revoked). mochi-mqtt then keeps no retained publish
	// and refuses a retained will at CONNECT. Its own $SYS messages are retained regardless, out of the devices'
	// reach: the ACL refuses devices every filter that starts with "$".
	caps.RetainAvailable = 0
	// Advertised only: mochi-mqtt does not enforce it. The ACL refuses shared and wildcard filters.
	caps.SharedSubAvailable = 0
	b := &Broker{devices: cfg.Devices, store: cfg.Devices.Store, log: cfg.Log.With("component", "broker"),
		platformID: domain.NewID(), clients: map[string]*connection{}, stop: make(chan struct{}), logs: newLogWatch(), handover: newHandover(), rate: newRate(cfg.MessagesPerSecond, cfg.Burst),
		maxSigningIn: maxSigningIn}
	b.work = lanes.NewBatching(statusWorkers, statusQueue/statusWorkers, statusBatch, b.onStatuses)
	b.doors.signIn = cfg.ConnectTimeout
	if b.doors.signIn <= 0 {
		b.doors.signIn = DefaultConnectTimeout
	}
	b.srv = mqtt.New(&mqtt.Options{InlineClient: true, Capabilities: caps, Logger: slog.New(slog.DiscardHandler),
		ClientNetReadBufferSize: 1024, ClientNetWriteBufferSize: 1024, SysTopicResendInterval: 3600})
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		return nil, err
	}
	if err := b.listen(cfg); err != nil {
		_ = b.Close()
		return nil, err
	}
	if err := b.alive(ctx); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("record the broker's device connections: %w", err)
	}
	handlers := []struct {
		filter string
		fn     mqtt.InlineSubFn
	}{{deviceTopic("+", "+", "status"), b.queueStatus}, {deviceTopic("+", "+", "response/"+b.platformID), b.onResponse},
		{deviceTopic("+", "+", "logs"), b.onLogs}}
	for i, h := range handlers {
		if err := b.srv.Subscribe(h.filter, i+1, h.fn); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("subscribe %s: %w", h.filter, err)
		}
	}
	if err := b.srv.Serve(); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("serve MQTT: %w", err)
	}
	go b.keepAlive()
	b.log.Info("MQTT broker listening", "tcp", b.tcpAddr, "tls", b.tcpTLS, "websocket", b.wsAddr)
	return b, nil
}

func (b *Broker) listen(cfg Config) error {
	if cfg.Listen != "" {
		ln, err := b.doors.listen(cfg.Listen)
		if err != nil {
			return fmt.Errorf("MQTT listen on %s: %w", cfg.Listen, err)
		}
		b.tcpAddr = ln.Addr().String()
		if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
			certs, err := newCertFiles(cfg.TLSCertFile, cfg.TLSKeyFile, b.log)
			if err != nil {
				return err
			}
			ln, b.tcpTLS = tls.NewListener(ln, certs.tlsConfig()), true
		}
		if err := b.srv.AddListener(tcpListener{Net: listeners.NewNet("tcp", ln), handover: b.handover}); err != nil {
			return err
		}
	}
	if cfg.WSListen != "" {
		ln, err := b.doors.listen(cfg.WSListen)
		if err != nil {
			return fmt.Errorf("MQTT websocket listen on %s: %w", cfg.WSListen, err)
		}
		b.wsAddr = ln.Addr().String()
		if err := b.srv.AddListener(newWSListener("ws", ln, b.doors.signIn, b.handover)); err != nil {
			return err
		}
	}
	return nil
}

// Addr is the TCP listener's address; WSAddr the WebSocket listener's.
func (b *Broker) Addr() string   { return b.tcpAddr }
func (b *Broker) WSAddr() string { return b.wsAddr }

// Close disconnects every client and stops the listeners.
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	// Stop the workers first: closing the server waits for every client's goroutine, and a client that is
	// disconnecting waits for room in its worker's queue. With thousands of devices gone at once, draining those
	// queues one database write at a time kept `flowyard dev` from stopping within a minute. The connection
	// flags they would have written are reset at once afterwards (forget: one write for all of this broker's).
	b.work.Stop()
	close(b.stop)
	// Then close every connection here, not through mochi-mqtt, whose way deadlocks (see doors); closing the
	// server then only waits for the clients' goroutines to end.
	b.doors.close()
	err := b.srv.Close()
	b.forget()
	return err
}

// Check answers readiness probes: the broker is serving.
func (b *Broker) Check(context.Context) error {
	if b.closed.Load() {
		return errors.New("the MQTT broker is closed")
	}
	return nil
}

// Connected counts the devices connected now.
func (b *Broker) Connected() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.clients)
}

func (b *Broker) connection(deviceID string) *connection {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.clients[deviceID]
}

// Holds reports whether the device is connected to this broker.
func (b *Broker) Holds(deviceID string) bool { return b.connection(deviceID) != nil }

// NotifyDevice refreshes what a connected device may subscribe to and sends it the `update` command for its
// current target (docs/device-protocol.md §3.3). A device that is not connected learns it at its next check-in.
func (b *Broker) NotifyDevice(ctx context.Context, deviceID string) {
	if err := b.NotifyDevices(ctx, []string{deviceID}); err != nil {
		b.log.Warn("notify device", "device", deviceID, "err", err)
	}
}

// NotifyDevices does what NotifyDevice does for each of the devices connected here, reading them in batches.
func (b *Broker) NotifyDevices(ctx context.Context, deviceIDs []string) error {
	return b.eachConnected(ctx, deviceIDs, func(d *storage.Device, _ *devices.Report) {
		b.mu.Lock()
		if cur := b.clients[d.ID]; cur != nil {
			cur.grant = grantOf(d)
		}
		b.mu.Unlock()
		b.sendUpdate(d)
	})
}

// PushMissed sends `update` to every connected device whose last status says it runs something else than what
// it should (devices.NeedsUpdate): a change notified while this process was not listening reaches it now rather
// than at its next heartbeat. A device that has not sent a status yet gets its `update` in answer to its first.
func (b *Broker) PushMissed(ctx context.Context) {
	b.mu.Lock()
	ids := make([]string, 0, len(b.clients))
	for id, c := range b.clients {
		if c.last != nil {
			ids = append(ids, id)
		}
	}
	b.mu.Unlock()
	sent := 0
	err := b.eachConnected(ctx, ids, func(d *storage.Device, last *devices.Report) {
		if last != nil && devices.NeedsUpdate(d, last) {
			b.sendUpdate(d)
			sent++
		}
	})
	if len(ids) > 0 || err != nil {
		b.log.Info("re-sent update to connected devices that run something else than their target", "devices", sent, "connected", len(ids), "err", err)
	}
}

// readBatch is how many devices one query reads.
const readBatch = 200

// eachConnected reads the devices of ids that are connected here, a batch at a time, and calls fn with each and
// its last status.
func (b *Broker) eachConnected(ctx context.Context, ids []string, fn func(*storage.Device, *devices.Report)) error {
	held := make([]string, 0, len(ids))
	for _, id := range ids {
		if b.Holds(id) {
			held = append(held, id)
		}
	}
	for len(held) > 0 {
		n := min(len(held), readBatch)
		list, err := b.store.GetDevices(ctx, held[:n])
		if err != nil {
			return err
		}
		held = held[n:]
		for i := range list {
			d := &list[i]
			b.mu.Lock()
			c := b.clients[d.ID]
			var last *devices.Report
			if c != nil {
				last = c.last
			}
			b.mu.Unlock()
			if c != nil {
				fn(d, last)
			}
		}
	}
	return nil
}

// remember keeps what a connected device's status said it runs, for PushMissed.
func (b *Broker) remember(deviceID string, r *devices.Report) {
	last := &devices.Report{Project: r.Project, Application: r.Application, Snapshot: r.Snapshot, Settings: r.Settings,
		HasProject: r.HasProject, HasApplication: r.HasApplication, HasSnapshot: r.HasSnapshot, HasSettings: r.HasSettings, State: r.State}
	b.mu.Lock()
	if c := b.clients[deviceID]; c != nil {
		c.last = last
	}
	b.mu.Unlock()
}

func (b *Broker) sendUpdate(d *storage.Device) {
	payload, err := json.Marshal(devices.UpdateCommand(d))
	if err == nil {
		err = b.srv.Publish(deviceTopic(d.TeamID, d.ID, "command"), payload, false, 0)
	}
	if err != nil {
		b.log.Warn("publish update", "device", d.ID, "err", err)
	}
}

// DisconnectDevice closes a device's connection at once (its credentials were revoked).
func (b *Broker) DisconnectDevice(deviceID string) {
	b.mu.Lock()
	conn := b.clients[deviceID]
	delete(b.clients, deviceID)
	b.mu.Unlock()
	if conn == nil {
		return
	}
	b.log.Info("disconnecting a device whose credentials were revoked", "device", deviceID)
	_ = b.srv.DisconnectClient(conn.client, packets.ErrNotAuthorized)
}

func grantOf(d *storage.Device) grant {
	g := grant{teamID: d.TeamID, deviceID: d.ID}
	if d.ApplicationID != nil {
		g.applicationID = *d.ApplicationID
	}
	if d.InstanceID != nil {
		g.instanceID = *d.InstanceID
	}
	return g
}

// queueStatus hands a status message to its device's lane, coalesced with the one waiting there
// (devices.StatusQueue). When the lanes are full the first status of a device waits, which slows only the
// publishing device's connection: a dropped status would leave a rollout waiting for a report that comes again
// only at the device's next heartbeat.
func (b *Broker) queueStatus(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	teamID, deviceID, _, ok := parseDeviceTopic(pk.TopicName)
	if !ok {
		return
	}
	if item := b.statuses.Queue(devices.Status{TeamID: teamID, DeviceID: deviceID, Payload: pk.Payload}); item != nil {
		b.work.Batch(deviceID, item)
	}
}

// onStatuses consumes devices' status messages (one each, a lane's batch): record them in one transaction and,
// to each device that does not run what it should, answer with an `update` command (docs/device-protocol.md
// §4.4). Only the device itself may publish on its status topic (ACL).
func (b *Broker) onStatuses(items []any) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, rs, failed := b.devices.RecordStatuses(ctx, b.log, b.statuses.Take(items), time.Now())
	b.statuses.Requeue(failed, b.work.Batch)
	for i, d := range ds {
		b.remember(d.ID, rs[i])
		if devices.NeedsUpdate(d, rs[i]) {
			b.sendUpdate(d)
		}
		b.resumeLog(d.TeamID, d.ID)
	}
}
