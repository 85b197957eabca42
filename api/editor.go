package api

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// The editor proxy serves an instance's Node-RED editor (and the admin API the editor calls, and its /comms
// websocket) on the instance's own editor origin, http(s)://<instanceId>.<editor domain>/ (editororigin.go), to
// the holders of that origin's session. The proxy, not the browser, holds the Node-RED token: members and owners
// get the instance's admin token, viewers its read-only token. Node-RED reads it from "Authorization: Bearer" on
// HTTP requests and on the websocket upgrade (adminAuth.tokens with no tokenHeader, as the drivers render
// settings.js).

// editorAdminRoot is the path under which every instance serves its admin API and editor: drivers.AdminRoot
// without the trailing slash (the API may not import drivers, docs/ARCHITECTURE.md §2).
const editorAdminRoot = "/admin"

// editorClient forwards HTTP requests to Node-RED. Palette installs run npm inside the request, so reads
// may take minutes.
var editorClient = &fasthttp.Client{
	NoDefaultUserAgentHeader: true,
	ReadTimeout:              5 * time.Minute,
	WriteTimeout:             time.Minute,
	// Node.js closes a keep-alive connection after 5 s idle (http.Server keepAliveTimeout): a connection kept longer
	// is dead when it is next used, and a page of the editor leaves dozens of them, more than the client's five
	// attempts at a GET, so the next page would fail with runtime_unreachable. Close them first.
	MaxIdleConnDuration: 3 * time.Second,
	MaxResponseBodySize: 64 << 20,
	// The path is sent as editorBackendPath checked it: normalising it again could take it out of the admin root.
	DisablePathNormalizing: true,
	Dial:                   func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, editorDialTimeout) },
}

const (
	editorDialTimeout      = 5 * time.Second
	editorHandshakeTimeout = 15 * time.Second
)

// Request headers never forwarded to Node-RED: the user's own credentials (the editor origin's cookie) and
// hop-by-hop headers.
var editorDroppedRequestHeaders = []string{
	fiber.HeaderAuthorization, fiber.HeaderCookie, fiber.HeaderProxyAuthorization,
	fiber.HeaderConnection, fiber.HeaderKeepAlive, "Proxy-Connection", fiber.HeaderTE, fiber.HeaderTrailer,
	fiber.HeaderUpgrade, fiber.HeaderTransferEncoding, fiber.HeaderExpect,
}

// Response headers never passed back: Node-RED must not set cookies on the editor origin (its session cookie is
// the platform's), nor open its answers to other origins (its admin API says Access-Control-Allow-Origin: * to
// every request): an editor origin answers its own pages only.
var editorDroppedResponseHeaders = []string{
	fiber.HeaderSetCookie, fiber.HeaderConnection, fiber.HeaderKeepAlive, "Proxy-Connection", fiber.HeaderTE,
	fiber.HeaderTrailer, fiber.HeaderUpgrade,
	fiber.HeaderAccessControlAllowOrigin, fiber.HeaderAccessControlAllowCredentials, fiber.HeaderAccessControlAllowMethods,
	fiber.HeaderAccessControlAllowHeaders, fiber.HeaderAccessControlExposeHeaders, fiber.HeaderAccessControlMaxAge,
}

// Headers of a websocket upgrade that the proxy copies to Node-RED; everything else is dropped.
var editorWebsocketHeaders = []string{
	fiber.HeaderSecWebSocketKey, fiber.HeaderSecWebSocketVersion, fiber.HeaderSecWebSocketProtocol,
	fiber.HeaderSecWebSocketExtensions, fiber.HeaderUserAgent, fiber.HeaderAcceptLanguage,
}

// proxyEditor maps <editor origin>/<rest> to <runtime>/admin/<rest> and forwards the request (or the
// websocket) with the Node-RED token the session's access gets.
func (s *Server) proxyEditor(c *fiber.Ctx, session *editorSession) error {
	if session.device != nil {
		return s.proxyDeviceEditor(c, session)
	}
	backendPath, err := editorBackendPath(string(c.Request().URI().PathOriginal()))
	if err != nil {
		return err
	}
	if !plainEditorQuery(c.Request().URI().QueryString()) {
		return errEditorPath
	}
	target, err := runtimeTarget(session.instance)
	if err != nil {
		return err
	}
	if isWebsocketUpgrade(c) {
		return s.proxyEditorWebsocket(c, session, target, backendPath)
	}
	return s.proxyEditorHTTP(c, session.instance.ID, target, backendPath, session.token)
}

var errEditorPath = &domain.Error{Kind: domain.KindInvalid, Code: "invalid_editor_path",
	Message: "The editor path must be sent in its plain form: no dot segments, encoded slashes, spaces or control characters, no double encoding."}

// editorBackendPath checks the path of a request to the editor origin as it came on the wire and returns the
// path to ask Node-RED for: the admin root followed by the request's path, byte for byte. The path is decoded
// once to be checked, and must mean the same to whoever reads it next: no "." or ".." segment, no encoded "/" or
// "\" (which would split a segment once decoded), no control character, and no escape left after decoding
// ("%252e" is "%2e" once decoded and ".", a dot segment, twice). Forwarding the checked bytes rather than a
// decoded and re-encoded path means no later normalisation, in the HTTP client or in Node-RED, can turn an
// accepted path into one outside the admin root, where the member's http-in routes would see the platform's
// token.
func editorBackendPath(rawPath string) (string, error) {
	if !strings.HasPrefix(rawPath, "/") {
		return "", errRouteNotFound
	}
	if !plainEditorPath(rawPath) {
		return "", errEditorPath
	}
	return editorAdminRoot + rawPath, nil
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

// Editor access levels: what a role may do in an instance's editor.
const (
	editorEdit = "edit" // members, owners and platform admins: the admin token
	editorView = "view" // viewers: the read-only token
)

// editorAccessOf is what u may do now in the editor of an instance or a device of the team: editorEdit,
// editorView, or "" (dashboard members, outsiders, a user who must change the password first or may not sign in
// at all: suspended, unconfirmed).
func (s *Server) editorAccessOf(ctx context.Context, u *storage.User, teamID string) (string, error) {
	if u.PasswordChangeRequired || signInRefusal(u) != nil {
		return "", nil
	}
	role := domain.RoleNone
	m, err := s.store.GetMembership(ctx, teamID, u.ID)
	switch {
	case err == nil:
		role = m.Role
	case !domain.IsKind(err, domain.KindNotFound):
		return "", err
	}
	dc := domain.Caller{UserID: u.ID, Admin: u.Admin}
	switch {
	case domain.Allowed(dc, role, domain.ActionInstanceFlowsEdit):
		return editorEdit, nil
	case domain.Allowed(dc, role, domain.ActionInstanceFlowsView):
		return editorView, nil
	}
	return "", nil
}

// grants tells whether access now still covers what a grant was issued with.
func grants(access, granted string) bool {
	return access == granted || access == editorEdit && granted == editorView
}

// nodeRedToken opens the instance's Node-RED token for an access level: the admin token to edit, the read-only
// token to view.
func (s *Server) nodeRedToken(in *storage.Instance, access string) (string, error) {
	sealed := in.ReadToken
	if access == editorEdit {
		sealed = in.AdminToken
	}
	if s.sealer == nil {
		return "", errors.New("editor proxy: no sealer configured")
	}
	token, err := s.sealer.Open(sealed)
	if err != nil || token == "" {
		return "", errors.New("editor proxy: open the instance's node-red token: sealed value unusable")
	}
	return token, nil
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

// sameOriginRequest refuses cross-site writes and websockets to the platform, which would otherwise ride on the
// session cookie (a body-less POST needs no pre-flight anywhere). Browsers send Origin on such requests; it must
// name the host the request came to (directly, through a proxy's X-Forwarded-Host, or as the configured public
// URL). Clients without a browser send none and pass.
func (s *Server) sameOriginRequest(c *fiber.Ctx) bool {
	publicHost := ""
	if public, err := url.Parse(s.cfg.PublicURL); err == nil {
		publicHost = public.Host
	}
	return sameOrigin(c, publicHost)
}

// sameOrigin tells whether a write or a websocket comes from a page of the origin it was sent to (or of one of
// the other hosts named): not another site (Sec-Fetch-Site), not another origin (Origin). The editor origin
// asks it of every request, since its bodies are not forced to JSON and so no CORS pre-flight protects them;
// and every editor origin is the same site as the others.
func sameOrigin(c *fiber.Ctx, otherHosts ...string) bool {
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
	for _, host := range append([]string{string(c.Request().Host()), c.Get(fiber.HeaderXForwardedHost)}, otherHosts...) {
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
	setEditorHeaders(&res.Header)
	if loc := res.Header.Peek(fiber.HeaderLocation); len(loc) > 0 {
		res.Header.Set(fiber.HeaderLocation, editorLocation(string(loc), target))
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

	aimAtRuntime(req, src, target, backendPath, body)
	return req
}

// aimAtRuntime points a proxied request at the runtime: the target's scheme and host, the raw path as given (path
// normalising off, so what the platform checked is what the runtime sees), the browser's query, and the body, if
// any, as a stream.
func aimAtRuntime(req, src *fasthttp.Request, target *url.URL, rawPath string, body *streamedBody) {
	uri := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(uri)
	uri.SetScheme(target.Scheme)
	uri.SetHost(target.Host)
	uri.DisablePathNormalizing = true
	uri.SetPath(rawPath)
	uri.SetQueryStringBytes(src.URI().QueryString())
	req.SetURI(uri)
	if body != nil {
		req.SetBodyStream(body, src.Header.ContentLength())
	} else {
		req.Header.SetContentLength(0)
	}
}

// editorLocation maps a redirect inside Node-RED's admin root to the same place on the editor origin, whose
// root is the admin root.
func editorLocation(loc string, target *url.URL) string {
	path := loc
	if u, err := url.Parse(loc); err == nil && u.Host != "" {
		if !strings.EqualFold(u.Host, target.Host) {
			return loc
		}
		path = u.RequestURI()
	}
	if rest, ok := strings.CutPrefix(path, editorAdminRoot); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
		return "/" + strings.TrimPrefix(rest, "/")
	}
	return loc
}

// proxyEditorWebsocket opens the websocket to Node-RED with the token in the upgrade request (the browser's
// websocket headers, the platform's token, nothing else), and pipes it for as long as the editor session holds
// (checked every LiveConfig.Recheck, like the event streams: a platform sign-out, a new role or a removal from
// the team closes it).
func (s *Server) proxyEditorWebsocket(c *fiber.Ctx, session *editorSession, target *url.URL, backendPath string) error {
	instanceID, token := session.target(), session.token
	headers := func(b *bytes.Buffer) {
		b.WriteString("Host: " + target.Host + "\r\n")
		b.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\n")
		b.WriteString("Authorization: Bearer " + token + "\r\n")
		for _, h := range editorWebsocketHeaders {
			if v := c.Get(h); v != "" {
				b.WriteString(h + ": " + v + "\r\n")
			}
		}
	}
	// Like a live stream, the websocket ends within a second once the platform session it belongs to stops
	// letting its user in (signed out, suspended), and at the next check once the editor session no longer
	// holds (a new role, a removal from the team).
	hold := func(end func()) (release func()) { return s.live.hold(credentialSession+session.platformSession, end) }
	return s.proxyWebsocket(c, runtimeWebsocket{log: "editor proxy", instanceID: instanceID, target: target, path: backendPath,
		headers: headers, stillValid: func() bool { return s.editorSessionHolds(session) }, hold: hold})
}
