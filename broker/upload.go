package broker

import (
	"context"
	"encoding/json"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// RequestUpload asks a connected device for its flows with the `upload` command and waits for the reply, up
// to ctx's deadline.
func (b *Broker) RequestUpload(ctx context.Context, d *storage.Device) (*devices.Upload, error) {
	if b.connection(d.ID) == nil {
		return nil, domain.Conflict("device_offline", "The device is not connected to the broker, so it cannot send its flows.")
	}
	raw, err := b.request(ctx, d, "upload", nil)
	if err != nil {
		return nil, err
	}
	return parseUpload(raw)
}

// parseUpload and parseReply read a device's replies (docs/device-protocol.md §3.4).
var (
	parseUpload = devices.ParseUpload
	parseReply  = devices.ParseReply
)

// request sends a device a command (docs/device-protocol.md §3.2) and waits for its reply until ctx ends.
func (b *Broker) request(ctx context.Context, d *storage.Device, command string, body map[string]any) (json.RawMessage, error) {
	return b.replies.Ask(ctx, d, command, body, b.platformID, func(topic string, payload []byte) error {
		return b.srv.Publish(topic, payload, false, 0)
	})
}

// onResponse hands a device's reply to the request waiting for it.
func (b *Broker) onResponse(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	if !b.replies.Deliver(pk.TopicName, pk.Payload) {
		b.log.Warn("dropped a malformed command reply", "topic", pk.TopicName)
	}
}
