package api

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Every instance's flows serve their http-in endpoints (and FlowFuse Dashboard 2 at /dashboard, with its
// websocket) at the root of the instance's own address, http(s)://<name>.<apps domain>[:port]/, as on FlowFuse.
// This same server answers that origin, told by the Host header, and proxies it to the runtime
// (docs/ARCHITECTURE.md §12). What it never does there:
//
//   - forward a path under Node-RED's admin root (the editor and admin API live on the editor origin only), or
//     inject a Node-RED token: nothing a browser sends to the address reaches the admin API with the platform's
//     rights, and settings.js makes the http-in routes refuse whatever falls through from the admin root;
//   - pass on the platform's credentials: its cookies (never sent to a sibling origin anyway) and any
//     Flowyard token in Authorization are taken off the request, and a flow cannot set a cookie of those names.
//
// An owner may protect the address: then a request needs the address's own session cookie (a code exchange
// started on the platform, like the editor's: the platform checks that the caller may use the instance's
// endpoints and issues a one-time code, which the address spends for a host-only cookie of its own, bound to the
// platform session) or an endpoint token (Authorization: Bearer fyh_…, which an owner creates, stored hashed).

const (
	appCookie        = "flowyard_endpoints"
	appReservedPath  = "/_flowyard/" // the platform's own paths on an instance's address: sign-in
	appNodeRedAdmin  = "/admin"      // drivers.AdminRoot without its slash: never forwarded
	appEntryPrefix   = "/endpoints/" // the dashboard's page that signs a browser in to an address
	appSessionTTL    = 8 * time.Hour
	appCodeTTL       = time.Minute
	appMaxNextLength = 2048
)

var (
	errAppHost = &domain.Error{Kind: domain.KindNotFound, Code: "not_found",
		Message: "There is no instance at this address."}
	errAppSignIn = &domain.Error{Kind: domain.KindUnauthorized, Code: "endpoints_sign_in_required",
		Message: "This instance's endpoints are protected: sign in through the platform, or send an endpoint token (Authorization: Bearer fyh_…)."}
	errAppLinkInvalid = &domain.Error{Kind: domain.KindUnauthorized, Code: "endpoints_link_invalid",
		Message: "This sign-in link was used already, has expired, or is for another instance: open the address again."}
	errAppCookieRefused = &domain.Error{Kind: domain.KindUnauthorized, Code: "endpoints_cookie_refused",
		Message: "This browser did not keep the address's session cookie: allow cookies for this site and open the address again."}
	errAppPath = &domain.Error{Kind: domain.KindInvalid, Code: "invalid_path",
		Message: "The path must be sent in its plain form: no dot segments, encoded slashes, spaces or control characters, no double encoding."}
)

// appOrigins names the instances' addresses: <instance name>.<apps domain>, with the public URL's scheme and port.
type appOrigins struct{ editorOrigins }

func newAppOrigins(publicURL, appsDomain string) appOrigins {
	o := newEditorOrigins(publicURL, "apps.localhost")
	if d := strings.ToLower(strings.Trim(appsDomain, ".")); d != "" {
		o.domain = d
	}
	return appOrigins{o}
}

// nameOf reads a Host header: whether it is under the apps domain at all, and if so the instance name it holds
// ("" when the host is not one label under the domain, on the public URL's port).
func (o appOrigins) nameOf(hostHeader string) (name string, appHost bool) {
	host, port := strings.ToLower(hostHeader), ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host, port = host[:i], host[i+1:]
	}
	host = strings.TrimSuffix(host, ".")
	if host == o.domain {
		return "", true
	}
	label, ok := strings.CutSuffix(host, "."+o.domain)
	if !ok {
		return "", false
	}
	if o.explicitPort(port) != o.port || domain.ValidateInstanceName("name", label) != nil {
		return "", true
	}
	return label, true
}

// isAppHost tells whether a request came to an instance's address (or any host under the apps domain).
func (s *Server) isAppHost(c *fiber.Ctx) bool {
	_, app := s.apps.nameOf(string(c.Request().Host()))
	return app
}

// isProxiedHost tells a request to an origin the API proxies to a runtime (an editor or an instance's address),
// whose bodies stream through and whose answers are the runtime's.
func (s *Server) isProxiedHost(c *fiber.Ctx) bool {
	return s.isEditorHost(c) || s.isAppHost(c)
}

// instanceAddress is the URL the API and the dashboard show for an instance: the root of its own address.
func (s *Server) instanceAddress(in *storage.Instance) string {
	return s.apps.origin(in.Name) + "/"
}

// platformCookies are the names of the platform's cookies (and the addresses'), which never reach a flow and
// which a flow may not set.
func (s *Server) platformCookies() []string {
	var names []string
	for _, base := range []string{sessionCookie, editorCookie, appCookie} {
		names = append(names, base, "__Host-"+base)
	}
	return names
}

// serveAppOrigin answers every request that came to an instance's address, and lets every other one through.
func (s *Server) serveAppOrigin(c *fiber.Ctx) error {
	name, app := s.apps.nameOf(string(c.Request().Host()))
	if !app {
		return c.Next()
	}
	if name == "" {
		return errAppHost
	}
	in, err := s.store.GetInstanceByName(c.UserContext(), name)
	if domain.IsKind(err, domain.KindNotFound) {
		return errAppHost
	}
	if err != nil {
		return err
	}
	rawPath := string(c.Request().URI().PathOriginal())
	switch rawPath {
	case appReservedPath + "sign-in":
		return s.signInToEndpoints(c, in)
	case appReservedPath + "signed-in":
		return s.endpointsSignedIn(c, in)
	}
	if !strings.HasPrefix(rawPath, "/") {
		return errRouteNotFound
	}
	if !plainEditorPath(rawPath) || !plainEditorQuery(c.Request().URI().QueryString()) {
		return errAppPath
	}
	if reservedOnAddress(rawPath) {
		return errRouteNotFound // the editor and admin API are on the editor origin only
	}
	holds := func() bool { return true }
	if in.EndpointsProtected {
		holds, err = s.endpointsCredential(c, in)
		if domain.IsKind(err, domain.KindUnauthorized) && isNavigation(c) {
			next := rawPath
			if q := c.Request().URI().QueryString(); len(q) > 0 {
				next += "?" + string(q)
			}
			return c.Redirect(s.cfg.PublicURL+appEntryPrefix+in.ID+"/?next="+url.QueryEscape(next), fiber.StatusSeeOther)
		}
		if err != nil {
			return err
		}
	}
	target, err := runtimeTarget(in)
	if err != nil {
		return err
	}
	if isWebsocketUpgrade(c) {
		return s.proxyEndpointsWebsocket(c, in, target, rawPath, holds)
	}
	return s.proxyEndpointsHTTP(c, in, target, rawPath)
}

// reservedOnAddress tells the paths an instance's address never forwards: the platform's own (/_flowyard/…) and
// Node-RED's admin root, however a request spells it (Express matches mount paths without regard to case, and
// a run of slashes is one to some readers).
func reservedOnAddress(rawPath string) bool {
	decoded, err := url.PathUnescape(rawPath)
	if err != nil {
		return true
	}
	p := "/" + strings.ToLower(strings.TrimLeft(decoded, "/"))
	for _, root := range []string{appNodeRedAdmin, strings.TrimSuffix(appReservedPath, "/")} {
		if p == root || strings.HasPrefix(p, root+"/") {
			return true
		}
	}
	return false
}

// endpointsCredential checks a request to a protected address: the address's session cookie or an endpoint
// token of this instance. It returns how a long-lived connection (a websocket) learns that the credential
// ended; errAppSignIn when there is none or it no longer holds.
func (s *Server) endpointsCredential(c *fiber.Ctx, in *storage.Instance) (func() bool, error) {
	ctx := c.UserContext()
	if bearer, ok := bearerToken(c); ok {
		hash := domain.HashToken(bearer)
		if _, err := s.store.GetEndpointToken(ctx, hash, in.ID, time.Now()); err != nil {
			if domain.IsKind(err, domain.KindNotFound) {
				return nil, errAppSignIn
			}
			return nil, err
		}
		return func() bool {
			_, err := s.store.GetEndpointToken(context.Background(), hash, in.ID, time.Now())
			return !domain.IsKind(err, domain.KindNotFound)
		}, nil
	}
	cookie := c.Cookies(s.cookieName(appCookie))
	if cookie == "" {
		return nil, errAppSignIn
	}
	hash := domain.HashToken(cookie)
	if err := s.endpointsSessionHolds(ctx, hash, in.ID); err != nil {
		return nil, err
	}
	// The cookie is SameSite=Lax, and every other instance's address is the same site: a page of another
	// address could send writes and open websockets with it. Like the editor origins, a session-borne write or
	// websocket must come from the address's own pages (scripts and webhooks use tokens, which no page holds).
	if !sameOrigin(c) {
		return nil, errCrossOrigin
	}
	return func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return !domain.IsKind(s.endpointsSessionHolds(ctx, hash, in.ID), domain.KindUnauthorized)
	}, nil
}

// endpointsSessionHolds checks an address's session: unexpired, for this instance, its platform session still
// open and its user still allowed to use the instance's endpoints.
func (s *Server) endpointsSessionHolds(ctx context.Context, hash, instanceID string) error {
	at := time.Now()
	g, err := s.store.GetEditorGrant(ctx, hash, storage.AppSession, instanceID, at)
	if domain.IsKind(err, domain.KindNotFound) {
		return errAppSignIn
	}
	if err != nil {
		return err
	}
	if err := s.endpointsGrantHolds(ctx, g, at); err != nil {
		if domain.IsKind(err, domain.KindUnauthorized) {
			_ = s.store.DeleteEditorGrant(ctx, hash)
		}
		return err
	}
	return nil
}

// endpointsGrantHolds checks a code or session against its platform session and the user's role now.
func (s *Server) endpointsGrantHolds(ctx context.Context, g *storage.EditorGrant, at time.Time) error {
	u, err := s.store.GetSessionUser(ctx, g.SessionHash, at)
	if domain.IsKind(err, domain.KindNotFound) {
		return errAppSignIn
	}
	if err != nil {
		return err
	}
	in, err := s.store.GetInstance(ctx, g.InstanceID)
	if domain.IsKind(err, domain.KindNotFound) {
		return errAppSignIn
	}
	if err != nil {
		return err
	}
	ok, err := s.mayUseEndpoints(ctx, u, in)
	if err != nil {
		return err
	}
	if !ok {
		return errAppSignIn
	}
	return nil
}

// mayUseEndpoints tells whether u may sign in to the instance's protected endpoints: a member of its team of
// any role (the dashboard role is for exactly this), or a platform admin; not a user who may not sign in at all.
func (s *Server) mayUseEndpoints(ctx context.Context, u *storage.User, in *storage.Instance) (bool, error) {
	if u.PasswordChangeRequired || signInRefusal(u) != nil {
		return false, nil
	}
	role := domain.RoleNone
	m, err := s.store.GetMembership(ctx, in.TeamID, u.ID)
	switch {
	case err == nil:
		role = m.Role
	case !domain.IsKind(err, domain.KindNotFound):
		return false, err
	}
	return domain.Allowed(domain.Caller{UserID: u.ID, Admin: u.Admin}, role, domain.ActionInstanceEndpointsUse), nil
}

// localNext is where sign-in sends the browser on its address: a path of that origin, "/" otherwise.
func localNext(next string) string {
	if next == "" || len(next) > appMaxNextLength || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	return next
}

// signInToEndpoints spends a code on the address of the instance it was issued for and starts the address's
// session: a host-only cookie, then a redirect that leaves the code out of the address bar and history.
func (s *Server) signInToEndpoints(c *fiber.Ctx, in *storage.Instance) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Referrer-Policy", "no-referrer")
	if c.Method() != fiber.MethodGet {
		return errRouteNotFound
	}
	ctx, at := c.UserContext(), time.Now()
	code, err := s.store.TakeAppCode(ctx, domain.HashToken(c.Query("code")), at)
	if domain.IsKind(err, domain.KindNotFound) || err == nil && code.InstanceID != in.ID {
		return errAppLinkInvalid
	}
	if err != nil {
		return err
	}
	if err := s.endpointsGrantHolds(ctx, code, at); domain.IsKind(err, domain.KindUnauthorized) {
		return errAppLinkInvalid
	} else if err != nil {
		return err
	}
	token, hash := domain.NewToken(domain.TokenPrefixEditorCookie)
	expires := at.Add(appSessionTTL)
	if err := s.store.InsertEditorGrant(ctx, &storage.EditorGrant{TokenHash: hash, Kind: storage.AppSession,
		InstanceID: in.ID, SessionHash: code.SessionHash, Access: storage.AppAccess, ExpiresAt: expires}); err != nil {
		return err
	}
	c.Cookie(s.hostOnlyCookie(c, appCookie, token, expires))
	return c.Redirect(appReservedPath+"signed-in?next="+url.QueryEscape(localNext(c.Query("next"))), fiber.StatusSeeOther)
}

// endpointsSignedIn is where sign-in lands: a browser that kept the cookie goes on to where it was going, one
// that refused it is told so (instead of going round through the platform again).
func (s *Server) endpointsSignedIn(c *fiber.Ctx, in *storage.Instance) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	cookie := c.Cookies(s.cookieName(appCookie))
	if cookie == "" {
		return errAppCookieRefused
	}
	if err := s.endpointsSessionHolds(c.UserContext(), domain.HashToken(cookie), in.ID); err != nil {
		if domain.IsKind(err, domain.KindUnauthorized) {
			return errAppCookieRefused
		}
		return err
	}
	return c.Redirect(localNext(c.Query("next")), fiber.StatusSeeOther)
}

// Request headers never forwarded to a flow: hop-by-hop headers and the proxy's own.
var appDroppedRequestHeaders = []string{
	fiber.HeaderProxyAuthorization, fiber.HeaderConnection, fiber.HeaderKeepAlive, "Proxy-Connection", fiber.HeaderTE,
	fiber.HeaderTrailer, fiber.HeaderUpgrade, fiber.HeaderTransferEncoding, fiber.HeaderExpect,
	fiber.HeaderXForwardedHost, fiber.HeaderXForwardedProto,
}

// Response headers never passed back: hop-by-hop ones.
var appDroppedResponseHeaders = []string{
	fiber.HeaderConnection, fiber.HeaderKeepAlive, "Proxy-Connection", fiber.HeaderTE, fiber.HeaderTrailer, fiber.HeaderUpgrade,
}

// isFlowyardBearer tells an Authorization header that carries one of the platform's tokens (fy<letter>_…).
func isFlowyardBearer(value string) bool {
	token, ok := strings.CutPrefix(value, "Bearer ")
	return ok && len(token) > 4 && strings.HasPrefix(token, "fy") && token[3] == '_'
}

// appRequestHeaders copies a browser's request headers for a flow, without the platform's credentials: its
// cookies, and Authorization when it holds a Flowyard token or was the protection's credential. Everything else
// (the flow's own cookies, a third party's Authorization) goes through.
func (s *Server) appRequestHeaders(src *fasthttp.RequestHeader, dst *fasthttp.RequestHeader, in *storage.Instance, scheme string) {
	src.CopyTo(dst)
	for _, h := range appDroppedRequestHeaders {
		dst.Del(h)
	}
	for _, name := range s.platformCookies() {
		dst.DelCookie(name)
	}
	if auth := string(src.Peek(fiber.HeaderAuthorization)); in.EndpointsProtected && strings.HasPrefix(auth, "Bearer ") || isFlowyardBearer(auth) {
		dst.Del(fiber.HeaderAuthorization)
	}
	dst.Set(fiber.HeaderXForwardedHost, string(src.Host()))
	dst.Set(fiber.HeaderXForwardedProto, scheme)
}

// proxyEndpointsHTTP forwards one request to the runtime's http-in routes, path and query byte for byte, the
// Host header the browser sent (a flow may build links from it), and copies the answer back.
func (s *Server) proxyEndpointsHTTP(c *fiber.Ctx, in *storage.Instance, target *url.URL, rawPath string) error {
	body := streamedBodyOf(c)
	src := c.Request()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	s.appRequestHeaders(&src.Header, &req.Header, in, c.Protocol())
	req.UseHostHeader = true

	aimAtRuntime(req, src, target, rawPath, body)
	req.Header.SetHostBytes(src.Host())

	rid := c.GetRespHeader(fiber.HeaderXRequestID)
	res := c.Response()
	if err := editorClient.Do(req, res); err != nil {
		res.Reset()
		if bodyErr := body.failure(); bodyErr != nil {
			return bodyErr
		}
		s.log.Warn("app proxy: node-red unreachable", "instance", in.ID, "err", err)
		return errRuntimeUnreachable
	}
	for _, h := range appDroppedResponseHeaders {
		res.Header.Del(h)
	}
	for _, name := range s.platformCookies() {
		res.Header.DelCookie(name)
	}
	if rid != "" {
		res.Header.Set(fiber.HeaderXRequestID, rid)
	}
	return nil
}

// proxyEndpointsWebsocket opens a websocket to the runtime (a flow's websocket-in node, Dashboard 2's
// socket.io) with the browser's headers less the platform's credentials, and pipes it for as long as the
// credential of a protected address holds (checked every LiveConfig.Recheck).
func (s *Server) proxyEndpointsWebsocket(c *fiber.Ctx, in *storage.Instance, target *url.URL, rawPath string, holds func() bool) error {
	headers := func(b *bytes.Buffer) {
		var h fasthttp.RequestHeader
		s.appRequestHeaders(&c.Request().Header, &h, in, c.Protocol())
		h.Set(fiber.HeaderConnection, "Upgrade")
		h.Set(fiber.HeaderUpgrade, "websocket")
		h.VisitAll(func(k, v []byte) {
			b.Write(k)
			b.WriteString(": ")
			b.Write(v)
			b.WriteString("\r\n")
		})
	}
	return s.proxyWebsocket(c, runtimeWebsocket{log: "app proxy", instanceID: in.ID, target: target, path: rawPath,
		headers: headers, stillValid: holds})
}
