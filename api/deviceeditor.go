package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gorilla/websocket"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/internal/nodebuffer"
	"github.com/flowyard/flowyard/storage"
)

// The remote editor of a device in developer mode (docs/device-protocol.md §3.6, docs/ARCHITECTURE.md §12).
//
// The editor is served on the device's own editor origin, <device id>.<editor domain>, exactly like an instance's
// (editororigin.go): POST /api/v1/devices/{id}/editor-link issues the single-use code, the origin spends it for
// its flowyard_editor cookie, and every request is checked against the caller's role again. Members and owners
// edit; viewers read: the platform refuses their writes (the device's Node-RED sees one token, the agent's).
//
// Behind the origin is the tunnel the agent opens (devicetunnel.go). When the link is asked for and no tunnel is
// open, the replica holding the device's broker connection makes a new editor token, stores its digest and sends
// the agent `startEditor` (relay.StartEditor: only ids cross between replicas); the agent
// connects to GET /api/v1/devices/{id}/editor/comms/{token}, through the load balancer, to any replica. That
// replica records itself (its --internal-url) with the device; a replica serving the browser that does not hold
// the tunnel forwards the editor's requests and websockets to the recorded one, with a credential sealed with
// the platform's master key (forwardPrefix).

// DeviceEditorCommands sends the editor commands to a connected device (broker.Broker implements it).
type DeviceEditorCommands interface {
	// StartEditor has the replica holding the device make a new editor token, store its digest and send it
	// `startEditor`; it returns the agent's answer without the token, with the digest as tokenHash.
	StartEditor(ctx context.Context, d *storage.Device) (json.RawMessage, error)
	// StopEditor sends `stopEditor` to the device, wherever it is connected.
	StopEditor(ctx context.Context, d *storage.Device)
}

const (
	// deviceEditorRoot is where the agent's Node-RED serves its editor (httpAdminRoot), to strip from redirects.
	deviceEditorRoot = "/device-editor"
	// deviceEditorTimeout bounds one request through the tunnel (a palette install runs npm inside it).
	deviceEditorTimeout = 5 * time.Minute
	// forwardPrefix is the path on which a replica serves, to the others, the editor of a device whose tunnel it
	// holds: /_flowyard/device-editor/<device id>/<editor path>, with the sealed forward credential as bearer.
	forwardPrefix = "/_flowyard/device-editor/"
	// forwardTTL is how long a forward credential is good for (it is made for each request).
	forwardTTL = time.Minute
	// tunnelWait bounds how long a link waits for the agent to open its tunnel once it answered startEditor.
	tunnelWait = 10 * time.Second
)

var (
	errDeviceNotDeveloper = domain.Conflict("device_not_in_developer_mode",
		"The device's editor opens only in developer mode: put the device in developer mode first.")
	errDeviceEditorOffline = &domain.Error{Kind: domain.KindUnavailable, Code: "device_editor_unavailable",
		Message: "The device's editor tunnel is not open: the device may be offline. Open the editor again from the dashboard."}
	errDeviceEditorReadOnly = &domain.Error{Kind: domain.KindForbidden, Code: "editor_read_only",
		Message: "Your role lets you read this device's flows, not change them."}
	errEditorToken = &domain.Error{Kind: domain.KindUnauthorized, Code: "invalid_editor_token",
		Message: "Send the device's current editor token in x-access-token."}
)

// deviceEditorEnabled tells whether a device's editor may be used: developer mode, and a token handed out.
func deviceEditorEnabled(d *storage.Device) bool {
	return d.Mode == devices.ModeDeveloper && d.EditorTokenHash != ""
}

// sameDigest compares a token with a stored digest in constant time.
func sameDigest(token, hash string) bool {
	return hash != "" && subtle.ConstantTimeCompare([]byte(domain.HashToken(token)), []byte(hash)) == 1
}

func (s *Server) registerDeviceEditor() {
	base := "/api/v1/devices/:deviceId/"
	s.route(routeDoc{Method: "POST", Path: base + "editor-link", Tag: "devices", Status: 201,
		Summary: "A single-use link (valid for a minute) that opens the editor of a device in developer mode on its own origin in the signed-in browser, " +
			"through the tunnel its agent opens: members and owners edit, viewers read."}, s.createDeviceEditorLink)
	s.route(routeDoc{Method: "GET", Path: base + "editor/token", Tag: "device-protocol", Public: true,
		Summary: "The device's Node-RED checks an editor token (x-access-token): 200 {username, permissions} while it is the device's current one."}, s.checkDeviceEditorToken)
	s.route(routeDoc{Method: "GET", Path: base + "editor/comms/:token", Tag: "device-protocol", Public: true,
		Summary: "The agent's editor tunnel (a websocket); closed with 4004 when no editor is enabled, 4001 for another token."}, s.acceptDeviceTunnel)
}

// createDeviceEditorLink makes sure the device's tunnel is open (asking the agent to open it) and issues the code.
// Someone who may not see the device's editor gets the same 404 as for a missing device.
func (s *Server) createDeviceEditorLink(c *fiber.Ctx) error {
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	d, err := s.store.GetDevice(ctx, c.Params("deviceId"))
	if err != nil {
		return err
	}
	access, err := s.editorLinkAccess(c, who, d.TeamID, "device")
	if err != nil {
		return err
	}
	if d.Mode != devices.ModeDeveloper {
		return errDeviceNotDeveloper
	}
	if !s.tunnelReachable(ctx, d) {
		if err := s.startDeviceEditor(ctx, d); err != nil {
			return err
		}
	}
	return s.issueEditorLink(c, who, storage.EditorGrant{DeviceID: d.ID, Access: access})
}

// tunnelReachable tells whether the device's recorded tunnel answers: held here, or by the replica recorded.
func (s *Server) tunnelReachable(ctx context.Context, d *storage.Device) bool {
	if d.EditorTokenHash == "" || d.EditorTunnelID == "" {
		return false
	}
	if s.tunnels.get(d.ID) != nil {
		return true
	}
	if d.EditorTunnelAddr == "" || d.EditorTunnelAddr == s.cfg.InternalURL {
		return false // recorded here but gone: this process restarted
	}
	status, err := s.probePeerTunnel(ctx, d)
	return err == nil && status == fiber.StatusNoContent
}

// startDeviceEditor has the agent handed a new editor token and waits for its tunnel.
func (s *Server) startDeviceEditor(ctx context.Context, d *storage.Device) error {
	if s.deviceEditor == nil {
		return domain.Unavailable("device_editor_unavailable", "This server cannot reach devices.")
	}
	askCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	raw, err := s.deviceEditor.StartEditor(askCtx, d)
	if err != nil {
		return err
	}
	var reply struct {
		Connected bool   `json:"connected"`
		Error     string `json:"error"`
		TokenHash string `json:"tokenHash"`
	}
	if json.Unmarshal(raw, &reply) != nil {
		return domain.Unprocessable("bad_device_reply", "The device's reply to startEditor is not {connected, token}.")
	}
	if !reply.Connected {
		msg := "The device could not open its editor tunnel."
		if reply.Error == "noNRRunning" {
			msg = "The device could not open its editor: its Node-RED is not running."
		} else if reply.Error != "" {
			msg += " " + truncate(reply.Error, 300)
		}
		return domain.Conflict("device_editor_failed", msg)
	}
	// The agent answers once its websocket is open; the replica that took it records it as it switches
	// protocols, so this is at most a read or two.
	deadline := time.Now().Add(tunnelWait)
	for {
		cur, err := s.store.GetDevice(ctx, d.ID)
		if err != nil {
			return err
		}
		if cur.EditorTunnelID != "" && cur.EditorTokenHash != "" && cur.EditorTokenHash == reply.TokenHash {
			return nil
		}
		if time.Now().After(deadline) {
			return errDeviceEditorOffline
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// stopDeviceEditor turns a device's editor off (it left developer mode): the token is forgotten, the agent told,
// the tunnel held here closed (one held elsewhere serves nothing more: every request checks the token).
func (s *Server) stopDeviceEditor(ctx context.Context, d *storage.Device) error {
	if d.EditorTokenHash == "" {
		return nil
	}
	if err := s.store.SetDeviceEditorToken(ctx, d.ID, ""); err != nil {
		return err
	}
	if s.deviceEditor != nil {
		s.deviceEditor.StopEditor(ctx, d)
	}
	s.tunnels.end(d.ID)
	return nil
}

// checkDeviceEditorToken is H9: the device's Node-RED asks whether an editor token is the device's current one.
func (s *Server) checkDeviceEditorToken(c *fiber.Ctx) error {
	d, err := s.store.GetDevice(c.UserContext(), c.Params("deviceId"))
	if domain.IsKind(err, domain.KindNotFound) {
		return errEditorToken
	}
	if err != nil {
		return err
	}
	if !deviceEditorEnabled(d) || !sameDigest(c.Get("x-access-token"), d.EditorTokenHash) {
		return errEditorToken
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"username": "forge", "permissions": "*"})
}

// acceptDeviceTunnel is H10: the agent's tunnel. A device without an editor, or in autonomous mode, is told 4004
// (the agent then stops trying); another token 4001.
func (s *Server) acceptDeviceTunnel(c *fiber.Ctx) error {
	if !isWebsocketUpgrade(c) {
		return &domain.Error{Kind: domain.KindInvalid, Code: "websocket_required", Message: "This is a websocket: send an upgrade request."}
	}
	ctx := c.UserContext()
	token := c.Params("token")
	d, err := s.store.GetDevice(ctx, c.Params("deviceId"))
	if err != nil && !domain.IsKind(err, domain.KindNotFound) {
		return err
	}
	code, reason := 0, ""
	switch {
	case err != nil || !deviceEditorEnabled(d):
		code, reason = tunnelCloseNoTunnel, "No tunnel"
	case !sameDigest(token, d.EditorTokenHash) || c.Get("x-access-token") != "" && c.Get("x-access-token") != token:
		code, reason = tunnelCloseInvalidToken, "Invalid token"
	}
	if code != 0 {
		return acceptWebsocket(c, 1<<10, func(ws *websocket.Conn) { closeWebsocket(ws, code, reason) })
	}
	t := newDeviceTunnel(d.ID)
	tokenHash := d.EditorTokenHash
	return acceptWebsocket(c, tunnelReadLimit, func(ws *websocket.Conn) {
		t.ws = ws
		s.tunnels.add(t)
		defer s.tunnels.remove(t)
		bg := context.Background()
		if err := s.store.OpenDeviceEditorTunnel(bg, d.ID, tokenHash, t.id, s.cfg.InternalURL); err != nil {
			s.log.Warn("device editor tunnel: record it", "device", d.ID, "err", err)
			closeWebsocket(ws, tunnelCloseSetupFailed, "Tunnel setup failed")
			return
		}
		defer func() {
			if err := s.store.CloseDeviceEditorTunnel(bg, d.ID, t.id); err != nil {
				s.log.Warn("device editor tunnel: forget it", "device", d.ID, "err", err)
			}
		}()
		s.log.Info("device editor tunnel open", "device", d.ID)
		t.run()
		s.log.Info("device editor tunnel closed", "device", d.ID)
	})
}

func closeWebsocket(ws *websocket.Conn, code int, reason string) {
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(5*time.Second))
}

// proxyDeviceEditor serves a request of a device's editor origin: through the tunnel held here, or forwarded to
// the replica holding it.
func (s *Server) proxyDeviceEditor(c *fiber.Ctx, session *editorSession) error {
	rawPath := string(c.Request().URI().PathOriginal())
	if !strings.HasPrefix(rawPath, "/") {
		return errRouteNotFound
	}
	query := c.Request().URI().QueryString()
	if !plainEditorPath(rawPath) || !plainEditorQuery(query) {
		return errEditorPath
	}
	ws := isWebsocketUpgrade(c)
	if session.access != editorEdit && !ws && c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
		return errDeviceEditorReadOnly
	}
	d := session.device
	stillValid := func() bool { return s.editorSessionHolds(session) }
	if t := s.tunnels.get(d.ID); t != nil {
		body, err := editorBody(c)
		if err != nil {
			return err
		}
		return s.serveThroughTunnel(c, t, rawPath, query, body, session.platformSession, stillValid)
	}
	peer, err := s.tunnelPeer(d)
	if err != nil {
		return err
	}
	forwarded := *session
	forwarded.token = s.forwardCredential(d.ID, session.access)
	path := forwardPrefix + d.ID + rawPath
	if ws {
		return s.proxyEditorWebsocket(c, &forwarded, peer, path)
	}
	return s.proxyEditorHTTP(c, d.ID, peer, path, forwarded.token)
}

// tunnelPeer is the internal address of the replica holding the device's tunnel, if another one does.
func (s *Server) tunnelPeer(d *storage.Device) (*url.URL, error) {
	if d.EditorTunnelID == "" || d.EditorTunnelAddr == "" || d.EditorTunnelAddr == s.cfg.InternalURL {
		return nil, errDeviceEditorOffline
	}
	u, err := url.Parse(d.EditorTunnelAddr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errDeviceEditorOffline
	}
	return u, nil
}

// editorBody reads the body of an editor origin's request (a stream, counted against the body limit).
func editorBody(c *fiber.Ctx) ([]byte, error) {
	if stream := streamedBodyOf(c); stream != nil {
		b, err := io.ReadAll(stream)
		if err != nil {
			if bodyErr := stream.failure(); bodyErr != nil {
				return nil, bodyErr
			}
			return nil, errBodyUnreadable
		}
		return b, nil
	}
	return c.Body(), nil
}

// Headers never sent through the tunnel: the browser's credentials, hop-by-hop headers, and what the agent's own
// request sets. Names are lower-case, as the agent's Node.js sees them.
var tunnelDroppedRequestHeaders = map[string]bool{"host": true, "content-length": true, "accept-encoding": true,
	"sec-websocket-key": true, "sec-websocket-version": true, "sec-websocket-extensions": true, "x-access-token": true,
	"x-flowyard-declared-too-long": true}

func init() {
	for _, h := range editorDroppedRequestHeaders {
		tunnelDroppedRequestHeaders[strings.ToLower(h)] = true
	}
}

// Answer headers not passed back beyond those of an instance's editor: the body is re-framed here (and the
// FlowFuse agent's HTTP client has already decompressed it).
var tunnelDroppedResponseHeaders = []string{fiber.HeaderContentLength, fiber.HeaderContentEncoding, fiber.HeaderTransferEncoding}

// serveThroughTunnel sends the request (or opens the websocket) through the tunnel held here.
func (s *Server) serveThroughTunnel(c *fiber.Ctx, t *deviceTunnel, rawPath string, query, body []byte, platformSession string, stillValid func() bool) error {
	target := rawPath
	if len(query) > 0 {
		target += "?" + string(query)
	}
	if isWebsocketUpgrade(c) {
		return s.tunnelWebsocket(c, t, target, platformSession, stillValid)
	}
	headers := map[string]string{}
	c.Request().Header.VisitAll(func(k, v []byte) {
		if name := strings.ToLower(string(k)); !tunnelDroppedRequestHeaders[name] {
			headers[name] = string(v)
		}
	})
	rawHeaders, _ := json.Marshal(headers)
	req := tunnelFrame{Method: c.Method(), URL: target, Headers: rawHeaders}
	if len(body) > 0 {
		req.Body = nodebuffer.Body(body) // a string when it is text, a Buffer when binary
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), deviceEditorTimeout)
	defer cancel()
	res, err := t.roundTrip(ctx, req)
	if err != nil {
		s.log.Warn("device editor: request through the tunnel", "device", t.deviceID, "err", err)
		return errDeviceEditorOffline
	}
	resBody, err := nodebuffer.Decode(res.Body)
	if err != nil {
		s.log.Warn("device editor: malformed answer", "device", t.deviceID, "err", err)
		return errDeviceEditorOffline
	}
	status := res.Status
	if status < 200 || status > 599 {
		status = fiber.StatusBadGateway
	}
	var resHeaders map[string]json.RawMessage
	_ = json.Unmarshal(res.Headers, &resHeaders)
	h := &c.Response().Header
	for name, raw := range resHeaders {
		if !validHeaderName(name) {
			continue
		}
		for _, v := range headerValues(raw) {
			if validHeaderValue(v) {
				h.Add(name, v)
			}
		}
	}
	for _, name := range append(editorDroppedResponseHeaders, tunnelDroppedResponseHeaders...) {
		h.Del(name)
	}
	h.DelAllCookies()
	setEditorHeaders(h)
	if loc := h.Peek(fiber.HeaderLocation); len(loc) > 0 {
		if rest, ok := strings.CutPrefix(string(loc), deviceEditorRoot); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
			h.Set(fiber.HeaderLocation, "/"+strings.TrimPrefix(rest, "/"))
		}
	}
	c.Status(status)
	return c.Send(resBody)
}

// validHeaderName and validHeaderValue keep what a device answers to one header a line: a name of token
// characters, a value without control characters (a device must not split the answer it is put into).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// headerValues reads one header of a tunnel answer: a string, a number, or an array of them.
func headerValues(raw json.RawMessage) []string {
	var many []any
	if json.Unmarshal(raw, &many) != nil {
		var one any
		if json.Unmarshal(raw, &one) != nil || one == nil {
			return nil
		}
		many = []any{one}
	}
	var out []string
	for _, v := range many {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case float64:
			out = append(out, strconv.FormatFloat(v, 'f', -1, 64))
		}
	}
	return out
}

// tunnelWebsocket takes the browser's websocket and carries its messages through the tunnel both ways, for as
// long as the editor session holds (checked every LiveConfig.Recheck; a sign-out ends it within a second).
func (s *Server) tunnelWebsocket(c *fiber.Ctx, t *deviceTunnel, target, platformSession string, stillValid func() bool) error {
	return acceptWebsocket(c, 64<<20, func(ws *websocket.Conn) {
		id, in, err := t.openStream(target)
		if err != nil {
			closeWebsocket(ws, websocket.CloseGoingAway, "The device's editor tunnel closed")
			return
		}
		end := func() { _ = ws.NetConn().SetDeadline(time.Unix(1, 0)) }
		if platformSession != "" {
			release := s.live.hold(credentialSession+platformSession, end)
			defer release()
		}
		ended := make(chan struct{})
		defer close(ended)
		go recheckUntil(ended, s.live.cfg.Recheck, stillValid, end)
		fromAgent := make(chan struct{})
		go func() {
			defer close(fromAgent)
			for {
				select {
				case f := <-in:
					if f.Closed {
						closeWebsocket(ws, websocket.CloseNormalClosure, "")
						end()
						return
					}
					text, err := nodebuffer.Decode(f.Body)
					if err != nil {
						continue
					}
					_ = ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
					if ws.WriteMessage(websocket.TextMessage, text) != nil {
						end()
						return
					}
				case <-t.done:
					end()
					return
				case <-ended:
					return
				}
			}
		}()
		agentEnded := false
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				break
			}
			if t.send(tunnelFrame{ID: id, WS: true, Body: jsonText(msg)}) != nil {
				break
			}
		}
		select {
		case <-fromAgent:
			agentEnded = true
		default:
		}
		t.endStream(id, !agentEnded)
	})
}

// forwardCredential is what a replica sends the one holding a device's tunnel: the device, the access and an
// expiry, sealed with the platform's master key, which only Flowyard's processes hold.
func (s *Server) forwardCredential(deviceID, access string) string {
	if s.sealer == nil {
		return ""
	}
	return s.sealer.Seal(strings.Join([]string{"device-editor", deviceID, access, strconv.FormatInt(time.Now().Add(forwardTTL).Unix(), 10)}, "\n"))
}

// openForwardCredential checks a forward credential for the device and returns the access it carries.
func (s *Server) openForwardCredential(c *fiber.Ctx, deviceID string) (string, bool) {
	token, ok := bearerToken(c)
	if !ok || s.sealer == nil {
		return "", false
	}
	plain, err := s.sealer.Open(token)
	if err != nil {
		return "", false
	}
	parts := strings.Split(plain, "\n")
	if len(parts) != 4 || parts[0] != "device-editor" || parts[1] != deviceID || (parts[2] != editorEdit && parts[2] != editorView) {
		return "", false
	}
	expires, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil || time.Now().Unix() > expires {
		return "", false
	}
	return parts[2], true
}

// probePeerTunnel asks the replica recorded for a device whether it holds its tunnel (204) or not (503).
func (s *Server) probePeerTunnel(ctx context.Context, d *storage.Device) (int, error) {
	peer, err := s.tunnelPeer(d)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := newProbeRequest(ctx, peer.String()+forwardPrefix+d.ID+forwardProbe, s.forwardCredential(d.ID, editorView))
	if err != nil {
		return 0, err
	}
	res, err := probeClient.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

// forwardProbe is the path, after a forwarded device's prefix, that answers whether the tunnel is held there.
const forwardProbe = "/_flowyard/tunnel"

// serveForwarded answers another replica's forwarded request for a device editor whose tunnel is held here. It
// runs before the platform's routes and middleware: it carries no session, only the forward credential.
func (s *Server) serveForwarded(c *fiber.Ctx) error {
	rest := strings.TrimPrefix(string(c.Request().URI().PathOriginal()), forwardPrefix)
	deviceID, rawPath, ok := strings.Cut(rest, "/")
	if !ok {
		return errRouteNotFound
	}
	rawPath = "/" + rawPath
	// The platform's own security headers were set for this request; the editor origin's replace them.
	for _, h := range []string{fiber.HeaderXFrameOptions, "Cross-Origin-Opener-Policy", fiber.HeaderStrictTransportSecurity} {
		c.Response().Header.Del(h)
	}
	setEditorHeaders(&c.Response().Header)
	access, valid := s.openForwardCredential(c, deviceID)
	if !valid {
		return domain.Unauthorized("This path is for Flowyard's own replicas.")
	}
	t := s.tunnels.get(deviceID)
	if rawPath == forwardProbe {
		if t == nil {
			return errDeviceEditorOffline
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
	if t == nil {
		return errDeviceEditorOffline
	}
	query := c.Request().URI().QueryString()
	if !plainEditorPath(rawPath) || !plainEditorQuery(query) {
		return errEditorPath
	}
	if access != editorEdit && !isWebsocketUpgrade(c) && c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
		return errDeviceEditorReadOnly
	}
	// The replica serving the browser checks the session and ends the websocket when it no longer holds.
	return s.serveThroughTunnel(c, t, rawPath, query, c.Body(), "", func() bool { return true })
}

// probeClient asks other replicas whether they hold a tunnel.
var probeClient = &http.Client{Timeout: 5 * time.Second}

func newProbeRequest(ctx context.Context, target, credential string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(fiber.HeaderAuthorization, "Bearer "+credential)
	return req, nil
}
