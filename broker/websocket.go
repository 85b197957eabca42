package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener serves MQTT over WebSocket (sub-protocol "mqtt") on every path, "/" included: the FlowFuse agent hands
// MQTT.js only the broker URL's host and port, so it always connects to "/" (docs/device-protocol.md §3.1). It binds in
// Init, so a taken address fails the broker's start instead of only being logged.
type wsListener struct {
	id       string
	ln       net.Listener
	signIn   time.Duration // how long a new connection has to send its CONNECT
	srv      *http.Server
	upgrader websocket.Upgrader
	log      *slog.Logger
	// establish carries the broker's handler from Serve to the requests (a one-slot mailbox).
	establish chan listeners.EstablishFn
	handover  *handover // learns when each connection is done
}

func newWSListener(id string, ln net.Listener, signIn time.Duration, h *handover) *wsListener {
	return &wsListener{id: id, ln: ln, signIn: signIn, handover: h, upgrader: websocket.Upgrader{Subprotocols: []string{"mqtt"},
		// Agents are not browsers; a browser page gains nothing from a connection it cannot authenticate.
		CheckOrigin: func(*http.Request) bool { return true }}}
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Address() string  { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string { return "ws" }

// Init builds the HTTP server; Serve hands it the broker's connection handler.
func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	l.establish = make(chan listeners.EstablishFn, 1)
	l.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(l.handle)}
	return nil
}

func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	establish := <-l.establish
	l.establish <- establish
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	// The HTTP server moved the read deadline set at accept (doors) while it read the upgrade request and then
	// cleared it: the CONNECT gets a deadline of its own, which mochi-mqtt replaces with the keepalive's.
	_ = c.NetConn().SetDeadline(time.Now().Add(l.signIn))
	if err := establish(l.id, &wsConn{Conn: c.NetConn(), ws: c}); err != nil && l.log != nil {
		l.log.Debug("websocket client ended", "err", err)
	}
}

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish <- l.handover.serve(establish)
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && l.log != nil {
		l.log.Error("MQTT websocket listener stopped", "err", err)
	}
}

// Close stops the HTTP server; the clients' connections are Broker.Close's to close (see doors).
func (l *wsListener) Close(listeners.CloseFn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.srv.Shutdown(ctx)
	_ = l.ln.Close()
}

// errNotBinary refuses text frames: MQTT over WebSocket travels in binary frames.
var errNotBinary = errors.New("mqtt over websocket needs binary frames")

// wsConn is a WebSocket connection as the byte stream the broker reads MQTT packets from.
type wsConn struct {
	net.Conn // the underlying connection, for addresses and deadlines
	ws       *websocket.Conn
	r        io.Reader
	wmu      sync.Mutex
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, errNotBinary
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }
