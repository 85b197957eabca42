package comms

import (
	"net"
	"strings"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
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
