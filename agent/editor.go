package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/flowyard/flowyard/internal/nodebuffer"
)

// The remote editor tunnel (docs/device-protocol.md §3.6): in developer mode the platform sends `startEditor`
// with a token; the agent opens a websocket to <forgeURL>/api/v1/devices/<id>/editor/comms/<token> and answers,
// over it, the editor's HTTP requests and websocket messages from its local Node-RED (under /device-editor).

// tunnelFrame is one message of the tunnel (the platform's api/devicetunnel.go reads the same shape).
type tunnelFrame struct {
	ID      int64           `json:"id"`
	Method  string          `json:"method,omitempty"`
	URL     string          `json:"url,omitempty"`
	Headers json.RawMessage `json:"headers,omitempty"`
	Body    json.RawMessage `json:"body,omitempty"`
	Status  int             `json:"status,omitempty"`
	WS      bool            `json:"ws,omitempty"`
	Closed  bool            `json:"closed,omitempty"`
}

// Close codes after which the agent does not reconnect: the platform has no editor for it, or another token.
const (
	tunnelNoTunnel     = 4004
	tunnelInvalidToken = 4001
)

// editorTunnel is the agent's open tunnel.
type editorTunnel struct {
	a     *Agent
	token string
	port  int
	stop  chan struct{}
	once  sync.Once

	wmu     sync.Mutex
	ws      *websocket.Conn
	mu      sync.Mutex
	streams map[int64]*websocket.Conn // the editor's websockets to the local Node-RED
}

// editorHTTP performs the editor's requests on the local Node-RED; redirects are passed back as they are.
var editorHTTP = &http.Client{Timeout: 5 * time.Minute,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// startEditor handles `startEditor`: open the tunnel with the token, then answer {connected, token, affinity}
// (or {connected:false, token, error}).
func (a *Agent) startEditor(token string) map[string]any {
	a.mu.Lock()
	running := a.state == "running"
	a.mu.Unlock()
	if token == "" {
		return map[string]any{"connected": false, "token": token, "error": "no token"}
	}
	if !running || a.editorPort == 0 {
		return map[string]any{"connected": false, "token": token, "error": "noNRRunning"}
	}
	a.stopEditor()
	t := &editorTunnel{a: a, token: token, port: a.editorPort, stop: make(chan struct{}), streams: map[int64]*websocket.Conn{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, err := t.dial(ctx)
	if err != nil {
		a.log.Warn("editor tunnel: connect", "err", err)
		return map[string]any{"connected": false, "token": token, "error": err.Error()}
	}
	t.ws = ws
	a.writeEditorToken(token)
	a.mu.Lock()
	a.tunnel = t
	a.st.EditorToken = token
	a.saveState()
	a.mu.Unlock()
	go t.serve(ws)
	a.log.Info("editor tunnel open")
	return map[string]any{"connected": true, "token": token, "affinity": ""}
}

// stopEditor handles `stopEditor`: close the tunnel and forget the token.
func (a *Agent) stopEditor() {
	a.mu.Lock()
	t := a.tunnel
	a.tunnel = nil
	if a.st.EditorToken != "" {
		a.st.EditorToken = ""
		a.saveState()
	}
	a.mu.Unlock()
	a.writeEditorToken("")
	if t != nil {
		t.close()
	}
}

// writeEditorToken keeps the editor token where the local Node-RED's login accepts it ("" removes it), when a
// real Node-RED runs.
func (a *Agent) writeEditorToken(token string) {
	n, ok := a.runner.(*NodeRED)
	if !ok {
		return
	}
	path := filepath.Join(n.Dir, EditorTokenFile)
	if token == "" {
		_ = os.Remove(path)
		return
	}
	if err := writeFileAtomic(path, []byte(token), 0o600); err != nil {
		a.log.Warn("editor tunnel: keep the token for Node-RED", "err", err)
	}
}

// closeEditor closes the tunnel as the agent stops, keeping the token for its next start.
func (a *Agent) closeEditor() {
	a.mu.Lock()
	t := a.tunnel
	a.tunnel = nil
	a.mu.Unlock()
	if t != nil {
		t.close()
	}
}

// resumeEditor reopens the tunnel of a token kept from before the agent restarted, once Node-RED runs.
func (a *Agent) resumeEditor() {
	a.mu.Lock()
	token, open := a.st.EditorToken, a.tunnel != nil
	developer := a.st.Mode == "developer"
	a.mu.Unlock()
	if token != "" && !open && developer {
		go a.startEditor(token)
	}
}

func (t *editorTunnel) close() {
	t.once.Do(func() {
		close(t.stop)
		t.wmu.Lock()
		if t.ws != nil {
			_ = t.ws.Close()
		}
		t.wmu.Unlock()
	})
}

func (t *editorTunnel) stopped() bool {
	select {
	case <-t.stop:
		return true
	default:
		return false
	}
}

// dial opens the websocket to the platform.
func (t *editorTunnel) dial(ctx context.Context) (*websocket.Conn, error) {
	u, err := url.Parse(t.a.cfg.ForgeURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/api/v1/devices/" + url.PathEscape(t.a.cfg.DeviceID) + "/editor/comms/" + url.PathEscape(t.token)
	h := http.Header{}
	h.Set("x-access-token", t.token)
	h.Set("User-Agent", "flowyard-agent")
	ws, res, err := websocket.DefaultDialer.DialContext(ctx, u.String(), h)
	if res != nil && res.Body != nil {
		res.Body.Close()
	}
	return ws, err
}

// serve reads the platform's frames, reconnecting (1.5 s, doubling, at most 10 s) until stopped or refused.
func (t *editorTunnel) serve(ws *websocket.Conn) {
	backoff := 1500 * time.Millisecond
	for {
		t.wmu.Lock()
		t.ws = ws
		t.wmu.Unlock()
		if t.stopped() { // closed while it connected: close() may have missed this connection
			ws.Close()
			return
		}
		pinger := time.NewTicker(40 * time.Second)
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-done:
					return
				case <-pinger.C:
					t.wmu.Lock()
					_ = ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second))
					t.wmu.Unlock()
				}
			}
		}()
		err := t.read(ws)
		pinger.Stop()
		close(done)
		t.closeStreams()
		if t.stopped() {
			return
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) && (ce.Code == tunnelNoTunnel || ce.Code == tunnelInvalidToken) {
			t.a.log.Info("editor tunnel refused by the platform; not reconnecting", "code", ce.Code)
			t.a.mu.Lock()
			if t.a.tunnel == t {
				t.a.tunnel, t.a.st.EditorToken = nil, ""
				t.a.saveState()
			}
			t.a.mu.Unlock()
			t.close()
			return
		}
		for {
			select {
			case <-t.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			next, err := t.dial(ctx)
			cancel()
			if err == nil {
				ws, backoff = next, 1500*time.Millisecond
				break
			}
			t.a.log.Debug("editor tunnel: reconnect", "err", err)
		}
	}
}

func (t *editorTunnel) read(ws *websocket.Conn) error {
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		var f tunnelFrame
		if json.Unmarshal(msg, &f) != nil {
			continue
		}
		switch {
		case f.WS && f.URL != "":
			go t.openStream(f)
		case f.WS:
			t.streamMessage(f)
		case f.Method != "":
			go t.request(f)
		}
	}
}

func (t *editorTunnel) send(f any) {
	b, err := json.Marshal(f)
	if err != nil {
		return
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.ws != nil {
		_ = t.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_ = t.ws.WriteMessage(websocket.TextMessage, b)
	}
}

// Request headers not passed to the local Node-RED (its own request sets them).
var localDroppedHeaders = map[string]bool{"host": true, "connection": true, "content-length": true, "upgrade": true,
	"transfer-encoding": true, "keep-alive": true, "accept-encoding": true}

// request performs one of the editor's HTTP requests on the local Node-RED and sends the answer back:
// {id, status, headers, body} with the body as a Node.js Buffer's JSON form, or {id, status:404} on failure.
func (t *editorTunnel) request(f tunnelFrame) {
	body, err := nodebuffer.Decode(f.Body) // a string, or a Buffer for a binary body
	if err != nil {
		t.send(tunnelFrame{ID: f.ID, Status: 404})
		return
	}
	req, err := http.NewRequest(f.Method, "http://127.0.0.1:"+strconv.Itoa(t.port)+"/device-editor"+f.URL, bytes.NewReader(body))
	if err != nil || !strings.HasPrefix(f.URL, "/") {
		t.send(tunnelFrame{ID: f.ID, Status: 404})
		return
	}
	var headers map[string]string
	_ = json.Unmarshal(f.Headers, &headers)
	for k, v := range headers {
		if !localDroppedHeaders[strings.ToLower(k)] {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set("x-access-token", t.token)
	req.Header.Set("Authorization", "Bearer "+t.token) // what the local login's tokens() checks
	res, err := editorHTTP.Do(req)
	if err != nil {
		t.send(tunnelFrame{ID: f.ID, Status: 404})
		return
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.send(tunnelFrame{ID: f.ID, Status: 404})
		return
	}
	out := map[string]any{}
	for k, vs := range res.Header {
		name := strings.ToLower(k)
		if len(vs) == 1 {
			out[name] = vs[0]
		} else {
			out[name] = vs
		}
	}
	rawHeaders, _ := json.Marshal(out)
	t.send(tunnelFrame{ID: f.ID, Status: res.StatusCode, Headers: rawHeaders, Body: nodebuffer.Encode(b)})
}

// openStream opens one of the editor's websockets (/comms) on the local Node-RED and pipes its messages back.
func (t *editorTunnel) openStream(f tunnelFrame) {
	target := "ws://127.0.0.1:" + strconv.Itoa(t.port) + "/device-editor" + f.URL
	h := http.Header{}
	h.Set("x-access-token", t.token)
	h.Set("Authorization", "Bearer "+t.token)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	local, res, err := websocket.DefaultDialer.DialContext(ctx, target, h)
	cancel()
	if res != nil && res.Body != nil {
		res.Body.Close()
	}
	if err != nil {
		t.send(tunnelFrame{ID: f.ID, WS: true, Closed: true})
		return
	}
	t.mu.Lock()
	t.streams[f.ID] = local
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		_, ours := t.streams[f.ID]
		delete(t.streams, f.ID)
		t.mu.Unlock()
		local.Close()
		if ours {
			t.send(tunnelFrame{ID: f.ID, WS: true, Closed: true})
		}
	}()
	for {
		_, msg, err := local.ReadMessage()
		if err != nil {
			return
		}
		text, _ := json.Marshal(string(msg))
		t.send(tunnelFrame{ID: f.ID, WS: true, Body: text})
	}
}

// streamMessage passes a message (or the close) of the editor's websocket to the local Node-RED. An
// authentication packet ({"auth": …}) is sent with the agent's token.
func (t *editorTunnel) streamMessage(f tunnelFrame) {
	t.mu.Lock()
	local := t.streams[f.ID]
	if f.Closed {
		delete(t.streams, f.ID)
	}
	t.mu.Unlock()
	if local == nil {
		return
	}
	if f.Closed {
		local.Close()
		return
	}
	var text string
	if json.Unmarshal(f.Body, &text) != nil {
		return
	}
	var packet map[string]json.RawMessage
	if json.Unmarshal([]byte(text), &packet) == nil {
		if _, ok := packet["auth"]; ok {
			packet["auth"], _ = json.Marshal(t.token)
			b, _ := json.Marshal(packet)
			text = string(b)
		}
	}
	_ = local.WriteMessage(websocket.TextMessage, []byte(text))
}

func (t *editorTunnel) closeStreams() {
	t.mu.Lock()
	streams := t.streams
	t.streams = map[int64]*websocket.Conn{}
	t.mu.Unlock()
	for _, s := range streams {
		s.Close()
	}
}
