package broker_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/broker"
)

// rawClient speaks MQTT packet by packet, over TCP or WebSocket, so a test can send what a well-behaved client
// library will not: a will on any topic, a second CONNECT, a QoS 2 publish it never completes, a connection
// dropped without DISCONNECT (which is what makes the broker publish a will).
type rawClient struct {
	conn    net.Conn
	r       *bufio.Reader
	version byte
	id      uint16 // last packet ID used
}

// will is the Last Will of a CONNECT.
type will struct {
	topic   string
	payload any
	qos     byte
	retain  bool
}

// dialRaw opens a connection to tcp://host:port or ws://host:port/.
func dialRaw(t *testing.T, rawURL string) *rawClient {
	t.Helper()
	c, err := dialRawErr(rawURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.conn.Close() })
	return c
}

func dialRawErr(rawURL string) (*rawClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var conn net.Conn
	switch u.Scheme {
	case "tcp":
		conn, err = net.DialTimeout("tcp", u.Host, 5*time.Second)
	case "ws":
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		var ws *websocket.Conn
		ws, _, err = d.Dial(rawURL, nil)
		if err == nil {
			conn = broker.WSConn(ws)
		}
	default:
		err = fmt.Errorf("unknown scheme %q", u.Scheme)
	}
	if err != nil {
		return nil, err
	}
	return &rawClient{conn: conn, r: bufio.NewReader(conn), version: 4}, nil
}

// connectAs sends CONNECT as the device (client ID = username) with an optional will and returns the CONNACK
// code; an error means the broker closed the connection without one.
func (c *rawClient) connectAs(d device, w *will) (byte, error) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: c.version,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: d.username,
			UsernameFlag: true, Username: []byte(d.username), PasswordFlag: true, Password: []byte(d.password)}}
	if w != nil {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillQos, pk.Connect.WillRetain = true, w.topic, w.qos, w.retain
		pk.Connect.WillPayload = jsonOf(w.payload)
	}
	if err := c.write(pk); err != nil {
		return 0, err
	}
	ack, err := c.read(5 * time.Second)
	if err != nil {
		return 0, err
	}
	if ack.FixedHeader.Type != packets.Connack {
		return 0, fmt.Errorf("got packet type %d instead of CONNACK", ack.FixedHeader.Type)
	}
	return ack.ReasonCode, nil
}

// subscribe sends SUBSCRIBE for one filter and returns the SUBACK code (0x80 or above: refused).
func (c *rawClient) subscribe(t *testing.T, filter string, qos byte) byte {
	t.Helper()
	c.id++
	require.NoError(t, c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: c.id,
		Filters: packets.Subscriptions{{Filter: filter, Qos: qos}}}))
	for {
		pk, err := c.read(5 * time.Second)
		require.NoError(t, err, "SUBACK for %s", filter)
		if pk.FixedHeader.Type == packets.Suback && pk.PacketID == c.id {
			require.Len(t, pk.ReasonCodes, 1)
			return pk.ReasonCodes[0]
		}
	}
}

// publish sends PUBLISH; for QoS 1 and 2 it does not wait for the broker's answer.
func (c *rawClient) publish(topic string, payload any, qos byte, retain bool) error {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain}, TopicName: topic, Payload: jsonOf(payload)}
	if qos > 0 {
		c.id++
		pk.PacketID = c.id
	}
	return c.write(pk)
}

// nextMessage returns the payload of the next PUBLISH the broker sends, decoded.
func (c *rawClient) nextMessage(t *testing.T) (topic string, msg map[string]any) {
	t.Helper()
	for {
		pk, err := c.read(10 * time.Second)
		require.NoError(t, err, "no message arrived")
		if pk.FixedHeader.Type == packets.Publish {
			require.NoError(t, json.Unmarshal(pk.Payload, &msg))
			return pk.TopicName, msg
		}
	}
}

// closed reports whether the broker closes the connection within the timeout, reading past what it sends.
func (c *rawClient) closed(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := c.read(time.Until(deadline)); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
	return false
}

// handled reports whether the broker answers a QoS 1 or 2 publish (PUBACK, PUBREC) or closes the connection
// within the timeout: either way it has dealt with the publish.
func (c *rawClient) handled(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		pk, err := c.read(time.Until(deadline))
		if err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
		if pk.FixedHeader.Type == packets.Puback || pk.FixedHeader.Type == packets.Pubrec {
			return true
		}
	}
	return false
}

// drop closes the connection without DISCONNECT, as a device that loses power or network.
func (c *rawClient) drop() { _ = c.conn.Close() }

func (c *rawClient) write(pk packets.Packet) error {
	pk.ProtocolVersion = c.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	default:
		err = fmt.Errorf("the raw client does not send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = c.conn.Write(buf.Bytes())
	return err
}

func (c *rawClient) read(timeout time.Duration) (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	pk := packets.Packet{ProtocolVersion: c.version}
	b, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	}
	return pk, err
}

func jsonOf(v any) []byte {
	if b, ok := v.([]byte); ok {
		return b
	}
	b, _ := json.Marshal(v)
	return b
}
