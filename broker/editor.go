package broker

import (
	"context"
	"encoding/json"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// StartEditor asks a connected device to open its editor tunnel with the token (`startEditor`,
// docs/device-protocol.md §3.6) and waits for its answer: {connected, token, affinity} or {connected:false, error}.
func (b *Broker) StartEditor(ctx context.Context, d *storage.Device, token string) (json.RawMessage, error) {
	if b.connection(d.ID) == nil {
		return nil, domain.Conflict("device_offline", "The device is not connected to the broker, so it cannot open its editor.")
	}
	return b.request(ctx, d, "startEditor", map[string]any{"token": token})
}

// StopEditor tells a device connected here to close its editor tunnel and forget its token (`stopEditor`).
func (b *Broker) StopEditor(d *storage.Device) {
	if b.connection(d.ID) == nil {
		return
	}
	payload, _ := json.Marshal(map[string]string{"command": "stopEditor"})
	if err := b.srv.Publish(deviceTopic(d.TeamID, d.ID, "command"), payload, false, 0); err != nil {
		b.log.Warn("publish stopEditor", "device", d.ID, "err", err)
	}
}
