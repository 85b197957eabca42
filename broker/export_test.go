package broker

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// WSConn is the broker's own WebSocket stream adapter, for the tests' raw MQTT client.
func WSConn(ws *websocket.Conn) net.Conn { return &wsConn{Conn: ws.NetConn(), ws: ws} }

// RetainedDeviceMessages counts the messages the broker keeps for later subscribers on the device protocol's
// topics (the broker's own $SYS messages left out).
func (b *Broker) RetainedDeviceMessages() int {
	n := 0
	for topic := range b.srv.Topics.Retained.GetAll() {
		if strings.HasPrefix(topic, topicPrefix) {
			n++
		}
	}
	return n
}

// ParkDisconnects holds every disconnecting client just before the broker forgets it (mochi-mqtt then removes it
// from its clients), each one sending on parked, until release is closed.
func (b *Broker) ParkDisconnects(parked chan<- struct{}, release <-chan struct{}) {
	_ = b.srv.AddHook(&parkHook{parked: parked, release: release}, nil)
}

type parkHook struct {
	mqtt.HookBase
	parked  chan<- struct{}
	release <-chan struct{}
}

func (h *parkHook) ID() string           { return "park" }
func (h *parkHook) Provides(b byte) bool { return b == mqtt.OnDisconnect }
func (h *parkHook) OnDisconnect(*mqtt.Client, error, bool) {
	h.parked <- struct{}{}
	<-h.release
}

// HoldEnding holds the first connection of clientID that ends where mochi-mqtt is about to remove it from its
// clients (after checking it was not taken over: its UnsubscribeClient calls OnUnsubscribed), sending on held,
// until a later connection of the client has registered with mochi-mqtt (OnSessionEstablished) or waits for it
// to end (the handover).
func (b *Broker) HoldEnding(clientID string, held chan<- struct{}) {
	released := make(chan struct{})
	free := sync.OnceFunc(func() { close(released) })
	b.handover.mu.Lock()
	b.handover.waiting = func(string) { free() }
	b.handover.mu.Unlock()
	_ = b.srv.AddHook(&holdHook{clientID: clientID, held: held, released: released, free: free}, nil)
}

type holdHook struct {
	mqtt.HookBase
	clientID string
	held     chan<- struct{}
	released chan struct{}
	free     func()
	holding  atomic.Bool
}

func (h *holdHook) ID() string { return "hold-ending" }
func (h *holdHook) Provides(b byte) bool {
	return b == mqtt.OnUnsubscribed || b == mqtt.OnSessionEstablished
}

func (h *holdHook) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) {
	if cl.ID != h.clientID || !cl.Closed() || !h.holding.CompareAndSwap(false, true) {
		return // only the first to end is held; the later calls for it (a takeover's) go through
	}
	h.held <- struct{}{}
	<-h.released
}

func (h *holdHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.ID == h.clientID && h.holding.Load() {
		h.free()
	}
}

// HoldSignIns makes the broker count n sign-ins as waiting for the store, and lowers the cap to max.
func (b *Broker) HoldSignIns(n, max int64) {
	b.signingIn.Store(n)
	b.maxSigningIn = max
}

// HoldLane holds the lane of deviceID's work until release is closed: what is queued for the device meanwhile
// waits.
func (b *Broker) HoldLane(deviceID string, release <-chan struct{}) {
	b.work.Later(deviceID, func() { <-release })
}

// CommandAfterQueued sends the device a command once the work queued for it before has run.
func (b *Broker) CommandAfterQueued(teamID, deviceID, command string) bool {
	return b.work.Wait(deviceID, func() { b.sendCommand(teamID, deviceID, command) })
}
