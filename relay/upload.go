package relay

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// A request to a device connected to another process goes out as a notification naming the device, the
// request and the asker. The process holding the device acknowledges at once (so a device connected nowhere is
// known as such within AckTimeout, not at the end of the wait), asks the device, stores the answer in the
// device_replies table and notifies the asker, which reads it from there: an upload's flows do not fit in a
// notification.

// pending is a request of this process waiting for its acknowledgement and its answer.
type pending struct {
	acked, replied chan struct{}
}

// replyBody is what the holding process stores: the device's flows (upload), or why it could not get them or
// the action failed; an action's success is a body without an error.
type replyBody struct {
	Upload *devices.Upload `json:"upload,omitempty"`
	Editor json.RawMessage `json:"editor,omitempty"` // a device's answer to startEditor
	Error  *replyError     `json:"error,omitempty"`
}

type replyError struct {
	Kind    domain.Kind `json:"kind"`
	Code    string      `json:"code"`
	Message string      `json:"message"`
}

// replyMargin is the part of the asker's wait kept for the answer to travel back.
const replyMargin = time.Second

// errOffline says a device connected nowhere cannot do what: "send its flows", "be asked".
func errOffline(what string) error {
	return domain.Conflict("device_offline", "The device is not connected to any broker, so it cannot "+what+".")
}

func errTimeout() error {
	return domain.Unavailable("device_timeout", "The device did not answer in time.")
}

// RequestUpload asks a device for its flows (`upload`) wherever it is connected and waits for them until ctx
// ends (10 s without a deadline).
func (r *Relay) RequestUpload(ctx context.Context, d *storage.Device) (*devices.Upload, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	c := r.local()
	if c != nil && c.Holds(d.ID) {
		return c.RequestUpload(ctx, d)
	}
	body, err := r.requestElsewhere(ctx, d, message{Kind: kindUpload}, "send its flows")
	if err != nil {
		return nil, err
	}
	if body.Upload == nil {
		return nil, errors.New("a device's stored answer holds neither flows nor an error")
	}
	return body.Upload, nil
}

// requestElsewhere sends m (its kind and arguments) to the process holding the device and waits for the answer
// it stores; an error the device or that process answered comes back as the error. what completes "the device
// cannot …" when no process holds it.
func (r *Relay) requestElsewhere(ctx context.Context, d *storage.Device, m message, what string) (*replyBody, error) {
	if !r.store.Notifies() {
		return nil, errOffline(what)
	}
	if !r.listening.Load() {
		return nil, domain.Unavailable("relay_unavailable", "This replica cannot reach devices connected to the others right now; try again.")
	}
	req := domain.NewID()
	p := &pending{acked: make(chan struct{}, 1), replied: make(chan struct{}, 1)}
	r.pending.Store(req, p)
	defer r.pending.Delete(req)
	deadline, _ := ctx.Deadline()
	m.From, m.Req, m.IDs, m.WaitMS = r.id, req, []string{d.ID}, time.Until(deadline.Add(-replyMargin)).Milliseconds()
	if err := r.publish(ctx, m); err != nil {
		return nil, err
	}
	ack, cancel := context.WithTimeout(ctx, r.AckTimeout)
	defer cancel()
	select {
	case <-p.acked:
	case <-p.replied: // the acknowledgement may come second
	case <-ack.Done():
		if ctx.Err() != nil {
			return nil, errTimeout()
		}
		return nil, errOffline(what)
	}
	select {
	case <-p.replied:
	case <-ctx.Done():
		return nil, errTimeout()
	}
	row, err := r.store.TakeDeviceReply(context.WithoutCancel(ctx), req, d.ID)
	if err != nil {
		return nil, err
	}
	return readReply(row.Body)
}

// answered hands an acknowledgement or an answer to the request waiting for it.
func (r *Relay) answered(m message) {
	v, ok := r.pending.Load(m.Req)
	if !ok {
		return
	}
	ch := v.(*pending).acked
	if m.Kind == kindReply {
		ch = v.(*pending).replied
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// answerUpload runs in the process holding the device: acknowledge, ask the device for its flows, store what it
// answered (or why not) and tell the asker.
func (r *Relay) answerUpload(c Connections, m message) {
	r.answer(m, func(ctx context.Context, d *storage.Device) (body replyBody, err error) {
		body.Upload, err = c.RequestUpload(ctx, d)
		return body, err
	})
}

// answer runs in the process holding the device: acknowledge, ask the device (ask), store what it answered (or
// why not) and tell the asker.
func (r *Relay) answer(m message, ask func(ctx context.Context, d *storage.Device) (replyBody, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(m.WaitMS)*time.Millisecond)
	defer cancel()
	deviceID := m.IDs[0]
	if err := r.publish(ctx, message{Kind: kindAck, To: m.From, Req: m.Req}); err != nil {
		r.log.Warn("could not acknowledge a request for a device", "device", deviceID, "err", err)
		return
	}
	body := replyBody{}
	d, err := r.store.GetDevice(ctx, deviceID)
	if err == nil {
		body, err = ask(ctx, d)
	}
	if err != nil {
		body.Error = errorOf(err)
		if _, known := domain.AsError(err); !known {
			r.log.Warn("ask a device", "device", deviceID, "request", m.Kind, "err", err)
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		r.log.Error("encode a device's answer", "device", deviceID, "err", err)
		return
	}
	// The asker's deadline may have passed; the answer is still stored, and deleted later, unread.
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := r.store.InsertDeviceReply(sctx, &storage.DeviceReply{ID: m.Req, DeviceID: deviceID, Body: string(b)}); err != nil {
		r.log.Warn("store a device's answer", "device", deviceID, "err", err)
		return
	}
	if err := r.publish(sctx, message{Kind: kindReply, To: m.From, Req: m.Req}); err != nil {
		r.log.Warn("could not tell the asker that a device answered", "device", deviceID, "err", err)
	}
}

// errorOf keeps what the asker should say of an error: a domain error as it is, anything else as the device
// not answering (its details stay in this process's log).
func errorOf(err error) *replyError {
	if de, ok := domain.AsError(err); ok {
		return &replyError{Kind: de.Kind, Code: de.Code, Message: de.Message}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &replyError{Kind: domain.KindUnavailable, Code: "device_timeout", Message: "The device did not answer in time."}
	}
	return &replyError{Kind: domain.KindUnavailable, Code: "device_unreachable", Message: "The process holding the device's connection could not ask it."}
}

func readReply(body string) (*replyBody, error) {
	var rb replyBody
	if err := json.Unmarshal([]byte(body), &rb); err != nil {
		return nil, err
	}
	if rb.Error != nil {
		return nil, &domain.Error{Kind: rb.Error.Kind, Code: rb.Error.Code, Message: rb.Error.Message}
	}
	return &rb, nil
}
