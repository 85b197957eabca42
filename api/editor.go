package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// The editor proxy serves an instance's Node-RED editor (and the admin API the editor calls, and its /comms
// websocket) at /editor/<instanceId>/ to signed-in team members. The proxy, not the browser, holds the
// Node-RED token: members and owners get the instance's admin token, viewers its read-only token. Node-RED
// reads it from "Authorization: Bearer" on HTTP requests and on the websocket upgrade (adminAuth.tokens with
// no tokenHeader, as the drivers render settings.js).

const editorPathPrefix = "/editor/"

// editorAdminRoot is the path under which every instance serves its admin API and editor: drivers.AdminRoot
// without the trailing slash (the API may not import drivers, docs/ARCHITECTURE.md §2).
const editorAdminRoot = "/admin"

// editorMethods are the methods the Node-RED editor and admin API use.
var editorMethods = []string{fiber.MethodGet, fiber.MethodPost, fiber.MethodPut, fiber.MethodDelete, fiber.MethodPatch}

// editorClient forwards HTTP requests to Node-RED. Palette installs run npm inside the request, so reads
// may take minutes.
var editorClient = &fasthttp.Client{
	NoDefaultUserAgentHeader: true,
	ReadTimeout:              5 * time.Minute,
	WriteTimeout:             time.Minute,
	MaxIdleConnDuration:      30 * time.Second,
	MaxResponseBodySize:      64 << 20,
	// The path is sent as editorBackendPath checked it: normalising it again could take it out of the admin root.
	DisablePathNormalizing: true,
	Dial:                   func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, editorDialTimeout) },
}

const (
	editorDialTimeout      = 5 * time.Second
	editorHandshakeTimeout = 15 * time.Second
)

// Request headers never forwarded to Node-RED: the user's own credentials (Flowyard's, not Node-RED's) and
// hop-by-hop headers.
var editorDroppedRequestHeaders = []string{
	fiber.HeaderAuthorization, fiber.HeaderCookie, fiber.HeaderProxyAuthorization,
	fiber.HeaderConnection, fiber.HeaderKeepAlive, "Proxy-Connection", fiber.HeaderTE, fiber.HeaderTrailer,
	fiber.HeaderUpgrade, fiber.HeaderTransferEncoding, fiber.HeaderExpect,
}

// Response headers never passed back: Node-RED must not set cookies on Flowyard's origin.
var editorDroppedResponseHeaders = []string{
	fiber.HeaderSetCookie, fiber.HeaderConnection, fiber.HeaderKeepAlive, "Proxy-Connection", fiber.HeaderTE,
	fiber.HeaderTrailer, fiber.HeaderUpgrade,
}

// Headers of a websocket upgrade that the proxy copies to Node-RED; everything else is dropped.
var editorWebsocketHeaders = []string{
	fiber.HeaderSecWebSocketKey, fiber.HeaderSecWebSocketVersion, fiber.HeaderSecWebSocketProtocol,
	fiber.HeaderSecWebSocketExtensions, fiber.HeaderUserAgent, fiber.HeaderAcceptLanguage,
}

func (s *Server) registerEditor() {
	for _, method := range editorMethods {
		s.route(routeDoc{Method: method, Path: "/editor/:instanceId/*", Tag: "editor",
			Summary: "The instance's Node-RED editor, proxied with the platform's token (members edit, viewers read)."}, s.proxyEditor)
	}
}

// proxyEditor checks the caller, maps /editor/<id>/<rest> to <runtime>/admin/<rest> and forwards the
// request (or the websocket) with the Node-RED token the caller's role gets.
func (s *Server) proxyEditor(c *fiber.Ctx) error {
	in, token, err := s.editorAccess(c)
	if err != nil {
		return err
	}
	prefix := editorPathPrefix + in.ID
	rawPath := string(c.Request().URI().PathOriginal())
	if rawPath == prefix {
		// The editor page loads its assets by relative URLs: it must be served at the path with the slash.
		return c.Redirect(prefix+"/", fiber.StatusMovedPermanently)
	}
	backendPath, err := editorBackendPath(rawPath, prefix)
	if err != nil {
		return err
	}
	if !plainEditorQuery(c.Request().URI().QueryString()) {
		return errEditorPath
	}
	target, err := runtimeTarget(in)
	if err != nil {
		return err
	}
	if !s.sameOriginRequest(c) {
		return errCrossOrigin
	}
	if isWebsocketUpgrade(c) {
		return s.proxyEditorWebsocket(c, in.ID, target, backendPath, token)
	}
	return s.proxyEditorHTTP(c, in.ID, target, backendPath, token)
}

var errEditorPath = &domain.Error{Kind: domain.KindInvalid, Code: "invalid_editor_path",
	Message: "The editor path must be sent in its plain form: no dot segments, encoded slashes, spaces or control characters, no double encoding."}

// editorBackendPath checks the path of a request under prefix (/editor/<id>) as it came on the wire and
// returns the path to ask Node-RED for: the admin root followed by the rest of the request's path, byte for
// byte. The rest is decoded once to be checked, and must mean the same to whoever reads it next: no "." or ".."
// segment, no encoded "/" or "\" (which would split a segment once decoded), no control character, and no
// escape left after decoding ("%252e" is "%2e" once decoded and ".", a dot segment, twice). Forwarding the
// checked bytes rather than a decoded and re-encoded path means no later normalisation, in the HTTP client or
// in Node-RED, can turn an accepted path into one outside the admin root, where the member's http-in routes
// would see the platform's token.
func editorBackendPath(rawPath, prefix string) (string, error) {
	rest, ok := strings.CutPrefix(rawPath, prefix)
	if !ok || !strings.HasPrefix(rest, "/") {
		return "", errRouteNotFound
	}
	if !plainEditorPath(rest) {
		return "", errEditorPath
	}
	return editorAdminRoot + rest, nil
}

// plainEditorPath tells whether a raw path decodes once to itself with only its escapes replaced: the
// segments the raw bytes have, none of them a dot segment, nothing that decodes again.
func plainEditorPath(raw string) bool {
	for i := 0; i < len(raw); i++ {
		if !editorPathByte(raw[i]) {
			return false
		}
	}
	decoded, err := url.PathUnescape(raw)
	if err != nil || strings.Count(decoded, "/") != strings.Count(raw, "/") || hasPercentEscape(decoded) {
		return false
	}
	if strings.ContainsFunc(decoded, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return false
	}
	for _, segment := range strings.Split(decoded, "/") {
		if segment == "." || segment == ".." {
			return false
		}
	}
	return true
}

// plainEditorQuery tells whether a raw query string can go on Node-RED's request line as it came: printable
// ASCII without spaces (which the server's request line reader lets through, and which would split the line
// sent on).
func plainEditorQuery(query []byte) bool {
	for _, b := range query {
		if b <= 0x20 || b >= 0x7f {
			return false
		}
	}
	return true
}

// editorPathByte tells the bytes a browser sends unencoded in a path: printable ASCII but for those it always
// escapes (and "\", which it turns into "/").
func editorPathByte(b byte) bool {
	return b > 0x20 && b < 0x7f && !strings.ContainsRune(`\"<>{}#?`+"`", rune(b))
}

// hasPercentEscape tells whether s holds a percent sign followed by two hex digits.
func hasPercentEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			return true
		}
	}
	return false
}

func isHex(b byte) bool {
	return ('0' <= b && b <= '9') || ('a' <= b && b <= 'f') || ('A' <= b && b <= 'F')
}

// editorAccess returns the instance and the Node-RED token for the caller: the admin token for members,
// owners and platform admins, the read-only token for viewers and read-only personal tokens. Anyone else
// (dashboard members, outsiders) gets the same 404 as for a missing instance.
func (s *Server) editorAccess(c *fiber.Ctx) (*storage.Instance, string, error) {
	who, err := callerOf(c)
	if err != nil {
		return nil, "", err
	}
	ctx := c.UserContext()
	in, err := s.store.GetInstance(ctx, c.Params("instanceId"))
	if err != nil {
		return nil, "", err
	}
	role := domain.RoleNone
	m, err := s.store.GetMembership(ctx, in.TeamID, who.user.ID)
	switch {
	case err == nil:
		role = m.Role
	case !domain.IsKind(err, domain.KindNotFound):
		return nil, "", err
	}
	var sealed string
	switch dc := who.domainCaller(); {
	case domain.Allowed(dc, role, domain.ActionInstanceFlowsEdit) && !who.readOnly:
		sealed = in.AdminToken
	case domain.Allowed(dc, role, domain.ActionInstanceFlowsView):
		sealed = in.ReadToken
	default:
		return nil, "", domain.NotFound("instance")
	}
	if s.sealer == nil {
		return nil, "", errors.New("editor proxy: no sealer configured")
	}
	token, err := s.sealer.Open(sealed)
	if err != nil || token == "" {
		return nil, "", errors.New("editor proxy: open the instance's node-red token: sealed value unusable")
	}
	return in, token, nil
}

func runtimeTarget(in *storage.Instance) (*url.URL, error) {
	if in.RuntimeURL == "" {
		return nil, errRuntimeUnreachable
	}
	u, err := url.Parse(in.RuntimeURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("editor proxy: instance runtime URL is not an http(s) URL")
	}
	return u, nil
}

var errRuntimeUnreachable = &domain.Error{Kind: domain.KindUnavailable, Code: "runtime_unreachable",
	Message: "The instance's Node-RED cannot be reached; it may be stopped or still starting."}

// sameOriginRequest refuses cross-site writes and websockets, which would otherwise ride on the session
// cookie: the editor's bodies are not forced to JSON, so the usual CORS pre-flight does not protect them, and a
// body-less POST needs no pre-flight anywhere. Browsers send Origin on such requests; it must name the host the
// request came to (directly, through a proxy's X-Forwarded-Host, or as the configured public URL). Clients
// without a browser send none and pass.
func (s *Server) sameOriginRequest(c *fiber.Ctx) bool {
	safe := c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead
	if safe && !isWebsocketUpgrade(c) {
		return true
	}
	if site := c.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return false
	}
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // "null" (a sandboxed frame, a data: page) would match a missing header below
	}
	publicHost := ""
	if public, err := url.Parse(s.cfg.PublicURL); err == nil {
		publicHost = public.Host
	}
	for _, host := range []string{string(c.Request().Host()), c.Get(fiber.HeaderXForwardedHost), publicHost} {
		if host != "" && strings.EqualFold(u.Host, host) {
			return true
		}
	}
	return false
}

func isWebsocketUpgrade(c *fiber.Ctx) bool {
	if c.Method() != fiber.MethodGet || !strings.EqualFold(c.Get(fiber.HeaderUpgrade), "websocket") {
		return false
	}
	for _, part := range strings.Split(c.Get(fiber.HeaderConnection), ",") {
		if strings.EqualFold(strings.TrimSpace(part), "upgrade") {
			return true
		}
	}
	return false
}

// proxyEditorHTTP forwards one request and copies Node-RED's answer into the response.
func (s *Server) proxyEditorHTTP(c *fiber.Ctx, instanceID string, target *url.URL, backendPath, token string) error {
	body := streamedBodyOf(c)
	req := editorRequest(c.Request(), target, backendPath, token, body)
	defer fasthttp.ReleaseRequest(req)

	rid := c.GetRespHeader(fiber.HeaderXRequestID)
	res := c.Response()
	if err := editorClient.Do(req, res); err != nil {
		res.Reset()
		if bodyErr := body.failure(); bodyErr != nil {
			return bodyErr
		}
		s.log.Warn("editor proxy: node-red unreachable", "instance", instanceID, "err", err)
		return errRuntimeUnreachable
	}
	for _, h := range editorDroppedResponseHeaders {
		res.Header.Del(h)
	}
	res.Header.DelAllCookies()
	if loc := res.Header.Peek(fiber.HeaderLocation); len(loc) > 0 {
		res.Header.Set(fiber.HeaderLocation, editorLocation(string(loc), target, instanceID))
	}
	if rid != "" {
		res.Header.Set(fiber.HeaderXRequestID, rid)
	}
	return nil
}

// editorRequest is the request the proxy sends to Node-RED: the browser's method and headers without its
// credentials, cookies and hop-by-hop headers; the platform's token; backendPath exactly as checked (the URI is
// built afresh, so nothing of the browser's request line, such as user info, comes along, and path normalising
// is off); the browser's query; and the body, if any, as a stream. Release it with fasthttp.ReleaseRequest.
func editorRequest(src *fasthttp.Request, target *url.URL, backendPath, token string, body *streamedBody) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	src.Header.CopyTo(&req.Header)
	for _, h := range editorDroppedRequestHeaders {
		req.Header.Del(h)
	}
	req.Header.DelAllCookies()
	req.Header.Set(fiber.HeaderAuthorization, "Bearer "+token)
	req.Header.SetHost(target.Host)

	uri := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(uri)
	uri.SetScheme(target.Scheme)
	uri.SetHost(target.Host)
	uri.DisablePathNormalizing = true
	uri.SetPath(backendPath)
	uri.SetQueryStringBytes(src.URI().QueryString())
	req.SetURI(uri)

	if body != nil {
		req.SetBodyStream(body, src.Header.ContentLength())
	} else {
		req.Header.SetContentLength(0)
	}
	return req
}

// editorLocation maps a redirect inside Node-RED's admin root back under /editor/<id>/.
func editorLocation(loc string, target *url.URL, instanceID string) string {
	path := loc
	if u, err := url.Parse(loc); err == nil && u.Host != "" {
		if !strings.EqualFold(u.Host, target.Host) {
			return loc
		}
		path = u.RequestURI()
	}
	if rest, ok := strings.CutPrefix(path, editorAdminRoot); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
		return editorPathPrefix + instanceID + "/" + strings.TrimPrefix(rest, "/")
	}
	return loc
}

// proxyEditorWebsocket opens the websocket to Node-RED with the token in the upgrade request, and only once
// Node-RED has switched protocols takes over the browser's connection and pipes bytes both ways.
func (s *Server) proxyEditorWebsocket(c *fiber.Ctx, instanceID string, target *url.URL, backendPath, token string) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), editorHandshakeTimeout)
	defer cancel()
	backend, err := dialRuntime(ctx, target)
	if err != nil {
		s.log.Warn("editor proxy: dial node-red for websocket", "instance", instanceID, "err", err)
		return errRuntimeUnreachable
	}
	deadline, _ := ctx.Deadline()
	_ = backend.SetDeadline(deadline)
	reader := bufio.NewReader(backend)
	res, err := websocketHandshake(c, backend, reader, target, backendPath, token)
	if err != nil {
		backend.Close()
		s.log.Warn("editor proxy: websocket handshake with node-red", "instance", instanceID, "err", err)
		return errRuntimeUnreachable
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		defer backend.Close()
		return relayRefusedUpgrade(c, res)
	}
	_ = backend.SetDeadline(time.Time{})
	head := switchingProtocolsHead(res)
	credential := streamCredential(c)
	c.Context().HijackSetNoResponse(true)
	c.Context().Hijack(func(client net.Conn) {
		// The websocket ends, like a live stream, when the caller's session or token stops letting them in.
		release := s.live.hold(credential, func() { endWebsocket(client, backend) })
		defer release()
		pipeWebsocket(client, backend, reader, head)
	})
	return nil
}

func dialRuntime(ctx context.Context, target *url.URL) (net.Conn, error) {
	addr := target.Host
	if target.Port() == "" {
		port := "80"
		if target.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(target.Hostname(), port)
	}
	if target.Scheme == "https" {
		d := &tls.Dialer{Config: &tls.Config{ServerName: target.Hostname(), MinVersion: tls.VersionTLS12}}
		return d.DialContext(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// websocketHandshake sends the upgrade request (the browser's websocket headers, the platform's token,
// nothing else) and reads Node-RED's answer.
func websocketHandshake(c *fiber.Ctx, backend net.Conn, reader *bufio.Reader, target *url.URL, backendPath, token string) (*http.Response, error) {
	requestURI := backendPath
	if query := c.Request().URI().QueryString(); len(query) > 0 {
		requestURI += "?" + string(query)
	}
	var b bytes.Buffer
	b.WriteString("GET " + requestURI + " HTTP/1.1\r\n")
	b.WriteString("Host: " + target.Host + "\r\n")
	b.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\n")
	b.WriteString("Authorization: Bearer " + token + "\r\n")
	for _, h := range editorWebsocketHeaders {
		if v := c.Get(h); v != "" {
			b.WriteString(h + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	if _, err := backend.Write(b.Bytes()); err != nil {
		return nil, err
	}
	res, err := http.ReadResponse(reader, &http.Request{Method: http.MethodGet})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// relayRefusedUpgrade passes Node-RED's answer on when it did not switch protocols (e.g. a path without a
// websocket: 404).
func relayRefusedUpgrade(c *fiber.Ctx, res *http.Response) error {
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return errRuntimeUnreachable
	}
	if ct := res.Header.Get(fiber.HeaderContentType); ct != "" {
		c.Set(fiber.HeaderContentType, ct)
	}
	return c.Status(res.StatusCode).Send(body)
}

// switchingProtocolsHead is the 101 answer the browser gets: Node-RED's, without cookies.
func switchingProtocolsHead(res *http.Response) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	res.Header.Del(fiber.HeaderSetCookie)
	_ = res.Header.Write(&b)
	b.WriteString("\r\n")
	return b.Bytes()
}

// pipeWebsocket copies frames both ways until either side closes, then ends the other side too. The client
// connection (fasthttp's hijacked connection) is closed by fasthttp when this returns.
func pipeWebsocket(client, backend net.Conn, backendReader *bufio.Reader, head []byte) {
	defer backend.Close()
	if _, err := client.Write(head); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(backend, client)
		endWebsocket(client, backend)
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(client, backendReader)
		endWebsocket(client, backend)
	}()
	wg.Wait()
}

// endWebsocket ends a piped websocket. Closing a hijacked fasthttp connection is a no-op until the handler
// returns; an expired deadline ends a blocked read on either side instead.
func endWebsocket(client, backend net.Conn) {
	_ = client.SetDeadline(time.Unix(1, 0))
	_ = backend.SetDeadline(time.Unix(1, 0))
}
