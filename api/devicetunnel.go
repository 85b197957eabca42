package api

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/flowyard/flowyard/domain"
)

// A device's editor tunnel (docs/device-protocol.md §3.6): the websocket the agent of a device in developer mode
// opens to the platform, over which the platform sends the editor's HTTP requests and websocket messages and the
// agent answers them from its local Node-RED. Each frame is a JSON text message naming the request or the
// websocket stream it belongs to by id.

// tunnelFrame is one message of the tunnel, either way.
type tunnelFrame struct {
	ID      int64           `json:"id"`
	Method  string          `json:"method,omitempty"`  // an HTTP request
	URL     string          `json:"url,omitempty"`     // relative to the editor's root: "/flows", "/comms"
	Headers json.RawMessage `json:"headers,omitempty"` // {name: value} (an answer's values may be arrays)
	Body    json.RawMessage `json:"body,omitempty"`    // a string, or a Node.js Buffer as JSON (internal/nodebuffer)
	Status  int             `json:"status,omitempty"`  // an HTTP answer
	WS      bool            `json:"ws,omitempty"`      // a websocket stream's open, message or close
	Closed  bool            `json:"closed,omitempty"`  // the websocket stream ended
}

// jsonText is a string's JSON form.
func jsonText(b []byte) json.RawMessage {
	raw, _ := json.Marshal(string(b))
	return raw
}

// Close codes the platform ends an agent's tunnel with (the FlowFuse agent does not reconnect after 4004).
const (
	tunnelCloseSetupFailed  = 4000
	tunnelCloseInvalidToken = 4001
	tunnelCloseNoTunnel     = 4004
)

// tunnelReadLimit bounds one frame from the agent: an answer's body comes as a JSON array of numbers, about four
// bytes a byte.
const tunnelReadLimit = 256 << 20

// deviceTunnel is one agent's open tunnel, held by the process whose listener accepted it.
type deviceTunnel struct {
	id       string // this connection, recorded with the device so that its end clears only its own record
	deviceID string
	ws       *websocket.Conn

	writeMu sync.Mutex
	mu      sync.Mutex
	next    int64
	waiting map[int64]chan tunnelFrame // HTTP requests waiting for their answer
	streams map[int64]chan tunnelFrame // websocket streams
	done    chan struct{}
	once    sync.Once
}

func newDeviceTunnel(deviceID string) *deviceTunnel {
	return &deviceTunnel{id: domain.NewID(), deviceID: deviceID, waiting: map[int64]chan tunnelFrame{},
		streams: map[int64]chan tunnelFrame{}, done: make(chan struct{})}
}

var errTunnelClosed = errors.New("the device's editor tunnel closed")

// send writes a frame to the agent.
func (t *deviceTunnel) send(f tunnelFrame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	select {
	case <-t.done:
		return errTunnelClosed
	default:
	}
	_ = t.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return t.ws.WriteMessage(websocket.TextMessage, b)
}

// tunnelIdle is how long a tunnel may stay silent before it counts as gone (a device that lost its network without
// closing it): the agent pings every 40 s.
const tunnelIdle = 2 * time.Minute

// run reads the agent's frames and hands each to the request or stream it answers, until the tunnel ends.
func (t *deviceTunnel) run() {
	defer t.close()
	alive := func() { _ = t.ws.SetReadDeadline(time.Now().Add(tunnelIdle)) }
	alive()
	t.ws.SetPingHandler(func(data string) error {
		alive()
		t.writeMu.Lock()
		defer t.writeMu.Unlock()
		err := t.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		_, msg, err := t.ws.ReadMessage()
		if err != nil {
			return
		}
		select {
		case <-t.done: // closed while this message came in
			return
		default:
		}
		alive()
		var f tunnelFrame
		if json.Unmarshal(msg, &f) != nil {
			continue
		}
		t.mu.Lock()
		ch := t.waiting[f.ID]
		if f.WS {
			ch = t.streams[f.ID]
		}
		t.mu.Unlock()
		if ch == nil {
			continue
		}
		select {
		case ch <- f:
		case <-t.done:
			return
		}
	}
}

// close ends the tunnel: every waiting request fails, every stream ends.
func (t *deviceTunnel) close() {
	t.once.Do(func() {
		close(t.done)
		_ = t.ws.SetReadDeadline(time.Unix(1, 0))
	})
}

// roundTrip sends an HTTP request and waits for its answer until ctx ends.
func (t *deviceTunnel) roundTrip(ctx context.Context, f tunnelFrame) (tunnelFrame, error) {
	ch := make(chan tunnelFrame, 1)
	t.mu.Lock()
	t.next++
	f.ID = t.next
	t.waiting[f.ID] = ch
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.waiting, f.ID)
		t.mu.Unlock()
	}()
	if err := t.send(f); err != nil {
		return tunnelFrame{}, err
	}
	select {
	case res := <-ch:
		return res, nil
	case <-t.done:
		return tunnelFrame{}, errTunnelClosed
	case <-ctx.Done():
		return tunnelFrame{}, ctx.Err()
	}
}

// openStream starts a websocket stream to the agent's Node-RED at url; the agent's messages for it arrive on the
// channel. End it with endStream.
func (t *deviceTunnel) openStream(url string) (int64, <-chan tunnelFrame, error) {
	ch := make(chan tunnelFrame, 64)
	t.mu.Lock()
	t.next++
	id := t.next
	t.streams[id] = ch
	t.mu.Unlock()
	if err := t.send(tunnelFrame{ID: id, WS: true, URL: url}); err != nil {
		t.endStream(id, false)
		return 0, nil, err
	}
	return id, ch, nil
}

// endStream forgets a stream, and tells the agent unless it was the agent that ended it.
func (t *deviceTunnel) endStream(id int64, tell bool) {
	t.mu.Lock()
	delete(t.streams, id)
	t.mu.Unlock()
	if tell {
		_ = t.send(tunnelFrame{ID: id, WS: true, Closed: true})
	}
}

// deviceTunnels are the tunnels this process holds, one a device.
type deviceTunnels struct {
	mu       sync.Mutex
	byDevice map[string]*deviceTunnel
}

func newDeviceTunnels() *deviceTunnels { return &deviceTunnels{byDevice: map[string]*deviceTunnel{}} }

// add holds a device's new tunnel, and ends the one it replaces.
func (h *deviceTunnels) add(t *deviceTunnel) {
	h.mu.Lock()
	old := h.byDevice[t.deviceID]
	h.byDevice[t.deviceID] = t
	h.mu.Unlock()
	if old != nil {
		old.close()
	}
}

// remove forgets a tunnel that ended, if it is still the device's.
func (h *deviceTunnels) remove(t *deviceTunnel) {
	h.mu.Lock()
	if h.byDevice[t.deviceID] == t {
		delete(h.byDevice, t.deviceID)
	}
	h.mu.Unlock()
}

// get is the device's open tunnel here, or nil.
func (h *deviceTunnels) get(deviceID string) *deviceTunnel {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.byDevice[deviceID]
	if t != nil {
		select {
		case <-t.done:
			return nil
		default:
		}
	}
	return t
}

// end closes the device's tunnel here, if there is one (its editor was turned off).
func (h *deviceTunnels) end(deviceID string) {
	if t := h.get(deviceID); t != nil {
		t.close()
	}
}
