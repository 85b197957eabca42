// Package mosquitto is Flowyard's external broker mode: instead of embedding a broker (broker), the platform
// manages an existing Mosquitto 2 with its dynamic-security plugin. Each device is one client of the plugin,
// signing in with the username and password the device got at registration, with a role holding exactly the
// device's topic ACL (accounts.go); the platform creates, disables and deletes them over the plugin's
// $CONTROL/dynamic-security/v1 API (control.go), connected as the plugin's admin client. Through the same
// connection it consumes the devices' status messages and replies and publishes their commands, so every
// process, a worker included, reaches every device: delivery needs no relay between processes.
package mosquitto

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/internal/lanes"
	"github.com/flowyard/flowyard/storage"
)

// Config configures the platform's connection to the broker.
type Config struct {
	// URL is the broker as the platform reaches it: mqtt://, mqtts://, ws:// or wss://host:port.
	URL string
	// Username and Password sign in the dynamic-security admin client (the one `mosquitto_ctrl dynsec init` makes).
	Username, Password string
	Devices            *devices.Service
	Log                *slog.Logger
	// Consume makes this process one of those that consume the devices' status messages (the API's; a worker
	// only sends commands): the one elected records them, the others stand by (election.go).
	Consume bool
	// Timeout bounds each exchange with the plugin; default 10 s.
	Timeout time.Duration
	// ReconcileGrace is how long an account that disagrees with the store is left before it is put right, when
	// a consuming process starts (reconcile.go); default 30 s.
	ReconcileGrace time.Duration
}

// statusWorkers record status messages at once, each device always on the same one so that its messages stay in
// order within this process; statusQueue is how many devices' statuses may wait; statusBatch how many devices'
// statuses one lane records in one statement.
const (
	statusWorkers = 8
	statusQueue   = 16384
	statusBatch   = 256
)

// Broker is the platform's connection to an external Mosquitto.
type Broker struct {
	cfg        Config
	cl         paho.Client
	ctl        *control
	store      *storage.Store
	log        *slog.Logger
	platformID string
	replies    devices.Replies
	work       *lanes.Lanes // records status messages, each device's in order
	// statuses holds, by device, the latest status message not yet taken by its lane: a device's newer status
	// replaces the queued one (devices.StatusQueue).
	statuses   devices.StatusQueue
	stop       chan struct{}
	closed     atomic.Bool
	subscribed chan struct{} // closed once the first connection has subscribed
	once       sync.Once
	// connections counts the connections that subscribed, this one included.
	connections atomic.Uint64
	granting    atomic.Bool // the admin client is being given the platform's role, which closes its connections
	election    election    // which consuming process records the status messages (election.go)
}

// Start connects to the broker, makes sure the admin client may publish the devices' commands and subscribes
// to the devices' replies (and, with Consume, to their status messages).
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.ReconcileGrace <= 0 {
		cfg.ReconcileGrace = 30 * time.Second
	}
	addr, err := pahoAddress(cfg.URL)
	if err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, store: cfg.Devices.Store, log: cfg.Log.With("component", "broker", "broker", "external"), platformID: domain.NewID(),
		stop: make(chan struct{}), subscribed: make(chan struct{})}
	b.work = lanes.NewBatching(statusWorkers, statusQueue/statusWorkers, statusBatch, b.onStatuses)
	b.ctl = &control{}
	opts := paho.NewClientOptions().AddBroker(addr).SetClientID("flowyard-" + b.platformID).SetUsername(cfg.Username).
		SetPassword(cfg.Password).SetProtocolVersion(4).SetCleanSession(true).SetKeepAlive(30 * time.Second).
		SetAutoReconnect(true).SetMaxReconnectInterval(5 * time.Second).SetOrderMatters(true).SetOnConnectHandler(b.onConnect).
		SetConnectionLostHandler(b.onLost)
	b.cl = paho.NewClient(opts)
	b.ctl.cl = b.cl
	if err := b.connect(ctx); err != nil {
		_ = b.Close()
		return nil, err
	}
	if err := b.grantPlatform(ctx); err != nil {
		_ = b.Close()
		return nil, err
	}
	if cfg.Consume {
		// Devices connect to the broker, not to this process: none is known connected (a device shows online
		// while its status heartbeats arrive), whatever an embedded broker left behind.
		if err := b.store.ResetDeviceConnections(ctx, time.Now()); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("reset device connections: %w", err)
		}
		b.reconcileInBackground(cfg.ReconcileGrace)
		b.electInBackground()
	}
	b.log.Info("connected to the external MQTT broker", "url", cfg.URL, "username", cfg.Username, "consumesStatus", cfg.Consume)
	return b, nil
}

// connect makes the first connection and waits until its subscriptions are in place.
func (b *Broker) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if err := wait(ctx, b.cl.Connect()); err != nil {
		return fmt.Errorf("connect to the MQTT broker at %s as %s: %w", b.cfg.URL, b.cfg.Username, err)
	}
	select {
	case <-b.subscribed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("subscribe at the MQTT broker at %s: %w", b.cfg.URL, ctx.Err())
	}
}

// onLost logs a lost connection; paho connects again.
func (b *Broker) onLost(_ paho.Client, err error) {
	if b.granting.Load() {
		b.log.Info("the broker closed the admin client's connections as it gave it the platform's role; connecting again")
		return
	}
	b.log.Warn("lost the connection to the MQTT broker; connecting again", "err", err)
}

// onConnect subscribes again on every connection (the session is clean): the plugin's answers, the replies to
// this process's requests and, when consuming, the devices' status messages.
func (b *Broker) onConnect(cl paho.Client) {
	filters := map[string]byte{responseTopic: 0, devices.DeviceTopic("+", "+", "response/"+b.platformID): 0}
	if b.cfg.Consume {
		filters[devices.DeviceTopic("+", "+", "status")] = 0
	}
	tok := cl.SubscribeMultiple(filters, b.route)
	go func() {
		if !tok.WaitTimeout(b.cfg.Timeout) || tok.Error() != nil {
			b.log.Error("could not subscribe at the MQTT broker; devices' messages will not arrive", "err", tok.Error())
			return
		}
		if st, ok := tok.(*paho.SubscribeToken); ok {
			for filter, code := range st.Result() {
				if code >= 0x80 {
					b.log.Error("the MQTT broker refused a subscription of the platform's client", "filter", filter)
					return
				}
			}
		}
		b.once.Do(func() { close(b.subscribed) })
		b.connections.Add(1)
	}()
}

// route hands each incoming message to its handler.
func (b *Broker) route(cl paho.Client, m paho.Message) {
	topic := m.Topic()
	if topic == responseTopic {
		b.ctl.onResponse(cl, m)
		return
	}
	teamID, deviceID, rest, ok := devices.ParseDeviceTopic(topic)
	switch {
	case !ok:
	case rest == "status":
		b.election.receive(teamID, deviceID, m.Payload(), b.record)
	default:
		if !b.replies.Deliver(topic, m.Payload()) {
			b.log.Warn("dropped a malformed command reply", "topic", topic)
		}
	}
}

// record queues a status to be recorded, coalesced with the device's status waiting on its lane
// (devices.StatusQueue). When the lanes are behind this waits, which slows the delivery of messages to this
// process rather than dropping a status a rollout waits for.
func (b *Broker) record(teamID, deviceID string, payload []byte) {
	if item := b.statuses.Queue(devices.Status{TeamID: teamID, DeviceID: deviceID, Payload: payload}); item != nil {
		b.work.Batch(deviceID, item)
	}
}

// onStatuses records devices' statuses (a lane's batch, each device's latest) in one statement and answers each
// device that does not run what it should with `update`; a process no longer elected leaves the statuses it had
// queued to the one elected since (election.go).
func (b *Broker) onStatuses(items []any) {
	sts := b.statuses.Take(items)
	if !b.election.leads() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	ds, rs, failed := b.cfg.Devices.RecordStatuses(ctx, b.log, sts, time.Now())
	b.statuses.Requeue(failed, b.work.Batch)
	for i, d := range ds {
		if devices.NeedsUpdate(d, rs[i]) {
			b.sendUpdate(d)
		}
	}
}

// publish sends a message to devices at QoS 0, as the protocol does.
func (b *Broker) publish(topic string, payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	return wait(ctx, b.cl.Publish(topic, 0, false, payload))
}

func (b *Broker) sendUpdate(d *storage.Device) {
	if err := b.publish(devices.DeviceTopic(d.TeamID, d.ID, "command"), updatePayload(d)); err != nil {
		b.log.Warn("publish update", "device", d.ID, "err", err)
	}
}

// NotifyDevice sends a device the `update` command for its current target (docs/device-protocol.md §3.3). The
// broker delivers it if the device is connected; one that is not learns it at its next check-in.
func (b *Broker) NotifyDevice(ctx context.Context, deviceID string) {
	d, err := b.store.GetDevice(ctx, deviceID)
	if err != nil {
		b.log.Warn("notify device", "device", deviceID, "err", err)
		return
	}
	b.sendUpdate(d)
}

// NotifyDevices notifies each device (rollouts, promotions: activities.DeviceNotifier).
func (b *Broker) NotifyDevices(ctx context.Context, ids []string) error {
	for _, id := range ids {
		b.NotifyDevice(ctx, id)
	}
	return nil
}

// Holds is true for every device: every process reaches every device through the external broker, so the
// relay never needs to hand a message to another process.
func (b *Broker) Holds(string) bool { return true }

// PushMissed does nothing: messages for devices never travel between processes in this mode (see Holds), so
// none can have been missed by this process's relay; a device that was offline learns its target at its next
// check-in, as always.
func (b *Broker) PushMissed(context.Context) {}

// DisconnectDevice does nothing here: the plugin closed the device's connections already, when its account was
// disabled with its deletion or given new credentials.
func (b *Broker) DisconnectDevice(string) {}

// RequestUpload asks a device for its flows with the `upload` command and waits for the reply, up to ctx's
// deadline. A device that has not reported within the offline window is not asked.
func (b *Broker) RequestUpload(ctx context.Context, d *storage.Device) (*devices.Upload, error) {
	if b.cfg.Devices.Status(d, time.Now()) != devices.StatusOnline {
		return nil, domain.Conflict("device_offline", "The device is not connected to the broker, so it cannot send its flows.")
	}
	raw, err := b.replies.Ask(ctx, d, "upload", nil, b.platformID, b.publish)
	if err != nil {
		return nil, err
	}
	return devices.ParseUpload(raw)
}

// Check answers readiness probes: connected to the broker.
func (b *Broker) Check(context.Context) error {
	if b.closed.Load() || !b.cl.IsConnectionOpen() {
		return fmt.Errorf("not connected to the MQTT broker at %s", b.cfg.URL)
	}
	return nil
}

// Close disconnects from the broker and stops recording status messages.
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	close(b.stop)
	if b.election.done != nil {
		<-b.election.done
	}
	b.work.Stop()
	b.cl.Disconnect(250)
	return nil
}

// pahoAddress turns a broker URL into paho's: mqtt→tcp, mqtts→ssl; WebSocket URLs keep their scheme and path.
func pahoAddress(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("MQTT broker URL %q: want mqtt://, mqtts://, ws:// or wss://host:port", raw)
	}
	switch u.Scheme {
	case "mqtt", "tcp":
		u.Scheme = "tcp"
	case "mqtts", "ssl":
		u.Scheme = "ssl"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("MQTT broker URL %q: scheme must be mqtt, mqtts, ws or wss", raw)
	}
	return u.String(), nil
}
