package broker

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Live logs and actions (docs/device-protocol.md §3.3, §3.5): the broker asks a device for its log (`startLog`)
// while someone watches it and stops asking (`stopLog`) when the last watcher leaves; the lines the device
// publishes meanwhile are kept, a bounded number per device, for the streams to read.

// logLinesKept is how many recent lines of a watched device the broker keeps (the FlowFuse agent's own buffer).
const logLinesKept = 1000

// logWatch counts the watchers of each device's log and keeps the lines of the watched ones.
type logWatch struct {
	mu       sync.Mutex
	watchers map[string]int
	ring     *devices.LogRing
}

func newLogWatch() *logWatch {
	return &logWatch{watchers: map[string]int{}, ring: devices.NewLogRing(logLinesKept)}
}

func (w *logWatch) watched(deviceID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.watchers[deviceID] > 0
}

// WatchLog starts a watcher of the device's log: the first one sends `startLog`. The returned function ends
// it; the last one out sends `stopLog` and the lines kept go.
func (b *Broker) WatchLog(teamID, deviceID string) (stop func()) {
	b.logs.mu.Lock()
	b.logs.watchers[deviceID]++
	first := b.logs.watchers[deviceID] == 1
	b.logs.mu.Unlock()
	if first {
		b.sendCommand(teamID, deviceID, "startLog")
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			b.logs.mu.Lock()
			b.logs.watchers[deviceID]--
			last := b.logs.watchers[deviceID] <= 0
			if last {
				delete(b.logs.watchers, deviceID)
				b.logs.ring.Forget(deviceID)
			}
			b.logs.mu.Unlock()
			if last {
				b.sendCommand(teamID, deviceID, "stopLog")
			}
		})
	}
}

// LogLines returns up to limit lines of a watched device's log received after since.
func (b *Broker) LogLines(deviceID string, since time.Time, limit int) []devices.LogLine {
	return b.logs.ring.Since(deviceID, since, limit)
}

// sendCommand publishes a command without a reply (startLog, stopLog) to a connected device.
func (b *Broker) sendCommand(teamID, deviceID, command string) {
	conn := b.connection(deviceID)
	if conn == nil {
		return // it is asked again when it connects (resumeLog)
	}
	conn.logAsked.Store(command == "startLog")
	payload, _ := json.Marshal(map[string]string{"command": command})
	if err := b.srv.Publish(deviceTopic(teamID, deviceID, "command"), payload, false, 0); err != nil {
		b.log.Warn("publish "+command, "device", deviceID, "err", err)
	}
}

// resumeLog asks a device that (re)connected for its log again while someone watches it: its agent forgot.
func (b *Broker) resumeLog(teamID, deviceID string) {
	conn := b.connection(deviceID)
	if conn != nil && !conn.logAsked.Load() && b.logs.watched(deviceID) {
		b.sendCommand(teamID, deviceID, "startLog")
	}
}

// onLogs keeps the lines of a watched device's log; only the device may publish on its logs topic (ACL). Lines
// of a device nobody watches (a late message after stopLog) are dropped.
func (b *Broker) onLogs(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	_, deviceID, _, ok := parseDeviceTopic(pk.TopicName)
	if !ok || !b.logs.watched(deviceID) {
		return
	}
	lines, valid := devices.ParseLogMessage(pk.Payload, time.Now())
	if !valid {
		b.log.Debug("dropped a malformed log message", "device", deviceID)
		return
	}
	b.logs.ring.Add(deviceID, lines)
}

// DeviceAction asks a connected device to start, restart or suspend its Node-RED (the `action` command) and waits
// for its answer; the state it then reports says how it went.
func (b *Broker) DeviceAction(ctx context.Context, d *storage.Device, action string) error {
	command, err := devices.ActionCommand(action)
	if err != nil {
		return err
	}
	if b.connection(d.ID) == nil {
		return domain.Conflict("device_offline", "The device is not connected to the broker, so it cannot be asked.")
	}
	raw, err := b.request(ctx, d, "action", map[string]any{"action": command})
	if err != nil {
		return err
	}
	return devices.ActionResult(raw)
}
