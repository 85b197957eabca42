package comms

import (
	"context"
	"encoding/json"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// commandRequest is a command that expects a reply (docs/device-protocol.md §3.4): the correlation travels inside the
// payload.
type commandRequest struct {
	Command         string         `json:"command"`
	DeviceID        string         `json:"deviceId"`
	TeamID          string         `json:"teamId"`
	CorrelationData string         `json:"correlationData"`
	CreatedAt       int64          `json:"createdAt"`
	ExpiresAt       int64          `json:"expiresAt"`
	ResponseTopic   string         `json:"responseTopic"`
	Payload         map[string]any `json:"payload"`
}

// commandReply is the agent's answer.
type commandReply struct {
	DeviceID        string          `json:"deviceId"`
	Command         string          `json:"command"`
	CorrelationData string          `json:"correlationData"`
	Payload         json.RawMessage `json:"payload"`
}

// waiter is a request waiting for the reply of one device.
type waiter struct {
	deviceID string
	reply    chan json.RawMessage
}

// RequestUpload asks a connected device for its flows with the `upload` command and waits for the reply, up
// to ctx's deadline.
func (b *Broker) RequestUpload(ctx context.Context, d *storage.Device) (*devices.Upload, error) {
	if b.connection(d.ID) == nil {
		return nil, domain.Conflict("device_offline", "The device is not connected to the broker, so it cannot send its flows.")
	}
	raw, err := b.request(ctx, d, "upload", map[string]any{})
	if err != nil {
		return nil, err
	}
	return parseUpload(raw)
}

// parseUpload reads a device's reply to upload: its flows, credentials and package.
func parseUpload(raw json.RawMessage) (*devices.Upload, error) {
	var up devices.Upload
	if err := json.Unmarshal(raw, &up); err != nil || len(up.Flows) == 0 {
		return nil, domain.Unprocessable("bad_device_reply", "The device's reply to upload is not flows.")
	}
	return &up, nil
}

func (b *Broker) request(ctx context.Context, d *storage.Device, command string, body map[string]any) (json.RawMessage, error) {
	id := domain.NewID()
	reply := make(chan json.RawMessage, 1)
	b.replies.Store(id, waiter{deviceID: d.ID, reply: reply})
	defer b.replies.Delete(id)
	now := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = now.Add(10 * time.Second)
	}
	req := commandRequest{Command: command, DeviceID: d.ID, TeamID: d.TeamID, CorrelationData: id, CreatedAt: now.UnixMilli(),
		ExpiresAt: deadline.UnixMilli(), ResponseTopic: deviceTopic(d.TeamID, d.ID, "response/"+b.platformID), Payload: body}
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if err := b.srv.Publish(deviceTopic(d.TeamID, d.ID, "command"), payload, false, 0); err != nil {
		return nil, err
	}
	select {
	case raw := <-reply:
		return raw, nil
	case <-ctx.Done():
		return nil, domain.Unavailable("device_timeout", "The device did not answer in time.")
	}
}

// onResponse hands a reply to the request waiting for its correlation ID; a reply from another device than
// the one asked, or one nobody waits for, is dropped.
func (b *Broker) onResponse(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	_, deviceID, _, ok := parseDeviceTopic(pk.TopicName)
	r, valid := parseReply(pk.Payload)
	if !ok || !valid {
		b.log.Warn("dropped a malformed command reply", "topic", pk.TopicName)
		return
	}
	v, found := b.replies.Load(r.CorrelationData)
	if !found || v.(waiter).deviceID != deviceID {
		return
	}
	select {
	case v.(waiter).reply <- r.Payload:
	default:
	}
}

// parseReply reads a device's reply to a command; it must name the command, its correlation and a payload.
func parseReply(payload []byte) (commandReply, bool) {
	var r commandReply
	if json.Unmarshal(payload, &r) != nil || r.CorrelationData == "" || r.Command == "" || len(r.Payload) == 0 {
		return r, false
	}
	return r, true
}
