package broker

import (
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// handover lets a device's new connection take over only once every earlier connection of the device has ended.
//
// mochi-mqtt 2.7.9 does not order the two itself. A connection that ends with a clean session checks that it
// was not taken over and then removes its client from the server's clients by client ID (attachClient:
// `if expire && !cl.IsTakenOver() { …; s.Clients.Delete(cl.ID) }`); a new connection with the same client ID
// marks the old one taken over only after unsubscribing it (inheritClientSession), then registers itself. When
// the old connection checks between the two and deletes after the new one registered, the delete removes the
// new connection: it stays connected and subscribed, but nothing published to it is delivered (publishes look
// their subscribers up in the server's clients) until it reconnects. A device that reconnects while its dropped
// connection is still ending is exactly that case.
//
// So the listeners tell the handover when mochi-mqtt is done with each connection (serve), and a device that
// signs in first closes its earlier connection, if any, and waits for it to be done (takeOver): mochi-mqtt then
// finds no earlier client, or one that has ended and removes nothing more.
type handover struct {
	mu     sync.Mutex
	served map[net.Conn]*session // each connection mochi-mqtt serves, until it is done with it
	newest map[string]*session   // each device's newest signed-in connection, until it is done with it
	// waiting, when set (tests), is called when a connection starts waiting for an earlier one to end.
	waiting func(deviceID string)
}

// session is one connection as the handover sees it.
type session struct {
	done     chan struct{} // closed when mochi-mqtt is done with the connection
	deviceID string        // once signed in
	client   *mqtt.Client  // once signed in
}

func newHandover() *handover {
	return &handover{served: map[net.Conn]*session{}, newest: map[string]*session{}}
}

// serve wraps the broker's connection handler: it records each connection for as long as mochi-mqtt serves it.
func (h *handover) serve(establish listeners.EstablishFn) listeners.EstablishFn {
	return func(id string, c net.Conn) error {
		s := &session{done: make(chan struct{})}
		h.mu.Lock()
		h.served[c] = s
		h.mu.Unlock()
		defer func() {
			h.mu.Lock()
			delete(h.served, c)
			if s.deviceID != "" && h.newest[s.deviceID] == s {
				delete(h.newest, s.deviceID)
			}
			h.mu.Unlock()
			close(s.done)
		}()
		return establish(id, c)
	}
}

// takeOver makes cl, just signed in as the device, its newest connection, closes the earlier one and waits up
// to wait for mochi-mqtt to be done with it. It reports false when cl must be refused: the earlier connection
// did not end in time, or a newer connection of the device signed in meanwhile.
func (h *handover) takeOver(srv *mqtt.Server, cl *mqtt.Client, deviceID string, wait time.Duration) bool {
	h.mu.Lock()
	me := h.served[cl.Net.Conn]
	if me == nil {
		h.mu.Unlock()
		return true // not one of the listeners' connections
	}
	me.deviceID, me.client = deviceID, cl
	prev := h.newest[deviceID]
	h.newest[deviceID] = me
	waiting := h.waiting
	h.mu.Unlock()
	if prev == nil {
		return true
	}
	_ = srv.DisconnectClient(prev.client, packets.ErrSessionTakenOver)
	if waiting != nil {
		waiting(deviceID)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-prev.done:
	case <-timer.C:
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.newest[deviceID] == me
}
