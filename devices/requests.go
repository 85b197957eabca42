package devices

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Request is a command that expects a reply (docs/device-protocol.md §3.4): the correlation travels inside the
// payload, and the agent answers on ResponseTopic.
type Request struct {
	Command         string         `json:"command"`
	DeviceID        string         `json:"deviceId"`
	TeamID          string         `json:"teamId"`
	CorrelationData string         `json:"correlationData"`
	CreatedAt       int64          `json:"createdAt"`
	ExpiresAt       int64          `json:"expiresAt"`
	ResponseTopic   string         `json:"responseTopic"`
	Payload         map[string]any `json:"payload"`
}

// NewRequest is the command for a device, answered on its response topic named after the asking platform
// process, valid until deadline.
func NewRequest(d *storage.Device, command string, body map[string]any, correlation, platformID string, now, deadline time.Time) Request {
	if body == nil {
		body = map[string]any{}
	}
	return Request{Command: command, DeviceID: d.ID, TeamID: d.TeamID, CorrelationData: correlation, CreatedAt: now.UnixMilli(),
		ExpiresAt: deadline.UnixMilli(), ResponseTopic: DeviceTopic(d.TeamID, d.ID, "response/"+platformID), Payload: body}
}

// Reply is the agent's answer to a Request.
type Reply struct {
	DeviceID        string          `json:"deviceId"`
	Command         string          `json:"command"`
	CorrelationData string          `json:"correlationData"`
	Payload         json.RawMessage `json:"payload"`
}

// ParseReply reads a device's reply to a command; it must name the command, its correlation and a payload.
func ParseReply(payload []byte) (Reply, bool) {
	var r Reply
	if json.Unmarshal(payload, &r) != nil || r.CorrelationData == "" || r.Command == "" || len(r.Payload) == 0 {
		return r, false
	}
	return r, true
}

// ParseUpload reads a device's reply to upload: its flows, credentials and package.
func ParseUpload(raw json.RawMessage) (*Upload, error) {
	var up Upload
	if err := json.Unmarshal(raw, &up); err != nil || len(up.Flows) == 0 {
		return nil, domain.Unprocessable("bad_device_reply", "The device's reply to upload is not flows.")
	}
	return &up, nil
}

// Replies matches devices' replies to the platform's requests waiting for them. The zero value is ready.
type Replies struct {
	waiting sync.Map // correlation data -> waiter
}

// waiter is a request waiting for the reply of one device.
type waiter struct {
	deviceID string
	reply    chan json.RawMessage
}

// Ask sends a device a command with publish (its command topic, the request) and waits for the reply, up to
// ctx's deadline, or 10 s without one. platformID names the asking process's response topic.
func (r *Replies) Ask(ctx context.Context, d *storage.Device, command string, body map[string]any, platformID string, publish func(topic string, payload []byte) error) (json.RawMessage, error) {
	id := domain.NewID()
	reply := make(chan json.RawMessage, 1)
	r.waiting.Store(id, waiter{deviceID: d.ID, reply: reply})
	defer r.waiting.Delete(id)
	now := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = now.Add(10 * time.Second)
	}
	payload, err := json.Marshal(NewRequest(d, command, body, id, platformID, now, deadline))
	if err != nil {
		return nil, err
	}
	if err := publish(DeviceTopic(d.TeamID, d.ID, "command"), payload); err != nil {
		return nil, err
	}
	select {
	case raw := <-reply:
		return raw, nil
	case <-ctx.Done():
		return nil, domain.Unavailable("device_timeout", "The device did not answer in time.")
	}
}

// Deliver hands a reply published on topic (a device's response topic) to the request waiting for its
// correlation data, and reports false for a malformed one. A reply from another device than the one asked, or
// one nobody waits for, is dropped.
func (r *Replies) Deliver(topic string, payload []byte) bool {
	_, deviceID, _, ok := ParseDeviceTopic(topic)
	reply, valid := ParseReply(payload)
	if !ok || !valid {
		return false
	}
	v, found := r.waiting.Load(reply.CorrelationData)
	if !found || v.(waiter).deviceID != deviceID {
		return true
	}
	select {
	case v.(waiter).reply <- reply.Payload:
	default:
	}
	return true
}
