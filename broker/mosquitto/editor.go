package mosquitto

import (
	"context"
	"encoding/json"
	"time"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// StartEditor asks a device to open its editor tunnel with the token (`startEditor`, docs/device-protocol.md §3.6)
// and waits for its answer. Every process reaches every device through the external broker.
func (b *Broker) StartEditor(ctx context.Context, d *storage.Device, token string) (json.RawMessage, error) {
	if b.cfg.Devices.Status(d, time.Now()) != devices.StatusOnline {
		return nil, domain.Conflict("device_offline", "The device is not connected to the broker, so it cannot open its editor.")
	}
	return b.replies.Ask(ctx, d, "startEditor", map[string]any{"token": token}, b.platformID, b.publish)
}

// StopEditor tells a device to close its editor tunnel and forget its token (`stopEditor`).
func (b *Broker) StopEditor(d *storage.Device) {
	payload, _ := json.Marshal(map[string]string{"command": "stopEditor"})
	if err := b.publish(devices.DeviceTopic(d.TeamID, d.ID, "command"), payload); err != nil {
		b.log.Warn("publish stopEditor", "device", d.ID, "err", err)
	}
}
