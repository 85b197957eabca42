package comms

import (
	"net"
	"strings"

	"github.com/gorilla/websocket"
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
