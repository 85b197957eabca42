package relay

import (
	"context"
	"encoding/json"
	"time"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// A device's remote editor (docs/device-protocol.md §3.6) starts with `startEditor`, asked like an action: of the
// process holding the device, whose answer comes back through device_replies. That process makes the editor token,
// stores its digest with the device and sends the token to the agent: the notification names the device and the
// request only, and the stored answer carries the digest, never the token. `stopEditor` travels like `update`: the
// notification names the devices, and the process holding one sends it the command.

// Editor is what a process's broker does for devices' remote editors (broker.Broker).
type Editor interface {
	// StartEditor sends a device connected here `startEditor` with the token and waits for its answer.
	StartEditor(ctx context.Context, d *storage.Device, token string) (json.RawMessage, error)
	// StopEditor sends a device connected here `stopEditor`.
	StopEditor(d *storage.Device)
}

func (r *Relay) editor() Editor {
	e, _ := r.local().(Editor)
	return e
}

// StartEditor asks a device to open its editor tunnel with a new token, wherever it is connected, and returns its
// answer ({connected, error?, affinity?, tokenHash}: the token's digest, now the device's), waiting until ctx ends
// (15 s without a deadline).
func (r *Relay) StartEditor(ctx context.Context, d *storage.Device) (json.RawMessage, error) {
	if e, c := r.editor(), r.local(); e != nil && c.Holds(d.ID) {
		return r.startEditorHere(ctx, e, d)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
	}
	body, err := r.requestElsewhere(ctx, d, message{Kind: kindEditor}, "open its editor")
	if err != nil {
		return nil, err
	}
	return body.Editor, nil
}

// answerEditor runs in the process holding the device: the agent's answer is the stored one.
func (r *Relay) answerEditor(e Editor, m message) {
	r.answer(m, func(ctx context.Context, d *storage.Device) (body replyBody, err error) {
		body.Editor, err = r.startEditorHere(ctx, e, d)
		return body, err
	})
}

// startEditorHere makes the device's new editor token, stores its digest and sends the token to the device
// connected here. The answer keeps the agent's fields but the token, and adds the digest as tokenHash.
func (r *Relay) startEditorHere(ctx context.Context, e Editor, d *storage.Device) (json.RawMessage, error) {
	token := devices.NewEditorToken(d.ID)
	hash := domain.HashToken(token)
	if err := r.store.SetDeviceEditorToken(ctx, d.ID, hash); err != nil {
		return nil, err
	}
	raw, err := e.StartEditor(ctx, d, token)
	if err != nil {
		return nil, err
	}
	var answer map[string]json.RawMessage
	if json.Unmarshal(raw, &answer) != nil || answer == nil {
		return nil, domain.Unprocessable("bad_device_reply", "The device's reply to startEditor is not {connected, token}.")
	}
	delete(answer, "token")
	answer["tokenHash"], _ = json.Marshal(hash)
	return json.Marshal(answer)
}

// StopEditor tells a device to close its editor tunnel and forget its token (`stopEditor`), wherever it is
// connected: here, or through the other processes (the notification names the device only). A device connected
// nowhere is not told: its agent forgets the token when the platform next refuses it (4004).
func (r *Relay) StopEditor(ctx context.Context, d *storage.Device) {
	if e, c := r.editor(), r.local(); e != nil && c.Holds(d.ID) {
		e.StopEditor(d)
		return
	}
	if err := r.publishIDs(ctx, kindStopEditor, []string{d.ID}); err != nil {
		r.log.Warn("could not ask the other processes to stop a device's editor", "device", d.ID, "err", err)
	}
}

// stopEditors runs in every other process: those holding the devices send them `stopEditor`.
func (r *Relay) stopEditors(ctx context.Context, e Editor, ids []string) {
	for _, id := range ids {
		if !r.local().Holds(id) {
			continue
		}
		d, err := r.store.GetDevice(ctx, id)
		if err != nil {
			r.log.Warn("stop a device's editor", "device", id, "err", err)
			continue
		}
		e.StopEditor(d)
	}
}
