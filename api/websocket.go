package api

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gorilla/websocket"
)

// acceptWebsocket answers a websocket upgrade on the API's own listener (fasthttp, which has no websocket server
// of its own): it takes over the connection and lets gorilla/websocket do the handshake and the framing on it,
// then runs fn until it returns. fn runs on the connection's goroutine; the connection is closed after it.
func acceptWebsocket(c *fiber.Ctx, readLimit int64, fn func(ws *websocket.Conn)) error {
	req := &http.Request{Method: http.MethodGet, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
		Host: string(c.Request().Host())}
	c.Request().Header.VisitAll(func(k, v []byte) { req.Header.Add(string(k), string(v)) })
	c.Context().HijackSetNoResponse(true)
	c.Context().Hijack(func(conn net.Conn) {
		_ = conn.SetDeadline(time.Time{})
		up := websocket.Upgrader{HandshakeTimeout: 10 * time.Second,
			// The callers check where the upgrade comes from themselves (an editor origin's sameOrigin, a token).
			CheckOrigin: func(*http.Request) bool { return true }}
		ws, err := up.Upgrade(&hijackedWriter{conn: conn, header: http.Header{}}, req, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.SetReadLimit(readLimit)
		fn(ws)
	})
	return nil
}

// hijackedWriter is the http.ResponseWriter gorilla/websocket upgrades: it hands over the connection fasthttp
// gave up, and writes a refusal (a malformed upgrade) straight to it.
type hijackedWriter struct {
	conn   net.Conn
	header http.Header
	wrote  bool
}

func (w *hijackedWriter) Header() http.Header { return w.header }

func (w *hijackedWriter) WriteHeader(status int) {
	if w.wrote {
		return
	}
	w.wrote = true
	_, _ = fmt.Fprintf(w.conn, "HTTP/1.1 %d %s\r\nConnection: close\r\n\r\n", status, http.StatusText(status))
}

func (w *hijackedWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusBadRequest)
	return w.conn.Write(b)
}

func (w *hijackedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}
