package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// A device's live log and the actions on its Node-RED (docs/device-protocol.md §3.3, §3.5). The log stream
// follows the instance log stream's conventions (logstream.go); while any replica streams a device's log, the
// replica holding the device asks it for it (DeviceLive, the relay).

// DeviceLive reaches a device for its live log and for actions on its Node-RED, wherever it is connected
// (relay.Relay implements it).
type DeviceLive interface {
	// WatchLog asks the device for its log while someone watches (`startLog` for the first, `stopLog` when the
	// returned function has been called by the last); LogLines reads the lines received meanwhile.
	WatchLog(teamID, deviceID string) (stop func())
	LogLines(deviceID string, since time.Time, limit int) []devices.LogLine
	// DeviceAction asks a connected device to start, stop, restart or suspend its Node-RED and waits for its answer.
	DeviceAction(ctx context.Context, d *storage.Device, action string) error
}

func (s *Server) registerDeviceLogs() {
	s.route(routeDoc{Method: "GET", Path: "/api/v1/devices/:deviceId/logs/stream", Tag: "devices", Stream: true,
		Summary: "The device's Node-RED log as Server-Sent Events: recent lines, then new ones; the device is asked for its log while someone watches."}, s.deviceLogStream)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/devices/:deviceId/actions/:action", Tag: "devices", Status: 202,
		Summary: "start, stop, restart or suspend the device's Node-RED (members; 202 once the device accepted, its state follows)."}, s.deviceAction)
}

// deviceLogEvent is a device's log line as an event: ordered and resumed by when the platform received it,
// showing when the device wrote it.
func deviceLogEvent(l devices.LogLine) liveEvent {
	data, _ := json.Marshal(logEventJSON{TS: l.Time, Level: l.Level, Msg: l.Msg})
	return liveEvent{id: l.Received.UTC().Format(time.RFC3339Nano), name: "log", at: l.Received, data: data}
}

func (s *Server) deviceLogStream(c *fiber.Ctx) error {
	d, err := s.store.GetDevice(c.UserContext(), c.Params("deviceId"))
	if err != nil {
		return err
	}
	_, role, err := s.teamAccess(c, d.TeamID, domain.ActionDeviceRead, "device")
	if err != nil {
		return err
	}
	if s.deviceLive == nil {
		return errNoDeviceLive()
	}
	teamID, id, broker := d.TeamID, d.ID, s.deviceLive
	read := func(_ context.Context, since time.Time, limit int) ([]liveEvent, error) {
		lines := broker.LogLines(id, since.Add(-time.Nanosecond), limit) // since is inclusive here
		events := make([]liveEvent, 0, len(lines))
		for _, l := range lines {
			events = append(events, deviceLogEvent(l))
		}
		return events, nil
	}
	watch := func() func() { return broker.WatchLog(teamID, id) }
	return s.serveLogStream(c, "devicelogs:"+id, s.sameAccess(c, d.TeamID, role), read, watch)
}

func errNoDeviceLive() error {
	return domain.Unavailable("broker_unavailable", "This API runs without a broker, so it cannot reach devices.")
}

// deviceActionTimeout bounds the wait for the device's answer to an action.
const deviceActionTimeout = 15 * time.Second

func (s *Server) deviceAction(c *fiber.Ctx) error {
	action := c.Params("action")
	if _, err := devices.ActionCommand(action); err != nil {
		return err
	}
	who, d, err := s.deviceFor(c, domain.ActionDeviceChangeStatus)
	if err != nil {
		return err
	}
	if s.deviceLive == nil {
		return errNoDeviceLive()
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), deviceActionTimeout)
	defer cancel()
	result := s.deviceLive.DeviceAction(ctx, d, action)
	if de, ok := domain.AsError(result); ok && (de.Code == "device_offline" || de.Code == "relay_unavailable") {
		return result // nothing was asked of the device
	}
	body := map[string]any{"action": action}
	if de, ok := domain.AsError(result); ok {
		body["error"] = de.Code
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		return audit(c, tx, who, d.TeamID, "device.action", "device", d.ID, body)
	})
	if result != nil {
		return result
	}
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"action": action, "accepted": true})
}
