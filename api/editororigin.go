package api

import (
	"context"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Every instance's editor is served on an origin of its own, http(s)://<instanceId>.<editor domain>[:port], by
// this same server, which tells it by the Host header (docs/ARCHITECTURE.md §12). A node module's editor script
// runs with whoever opens the editor; on its own origin it can reach that instance's editor and nothing else: not
// the platform's API (another origin, whose cookie is host-only and never sent there), not another instance's
// editor (another origin again, whose writes are refused by sameOrigin).
//
// The way in is a code exchange started on the platform: POST /api/v1/instances/{id}/editor-link, from a
// signed-in browser, checks the caller's role and answers a single-use link, valid for a minute, to
// <editor origin>/_flowyard/sign-in?code=…; the editor origin spends the code and sets its own cookie, valid for
// that instance alone, bound to the platform session that asked for it, and checked again against the caller's
// role on every request.

const (
	editorCookie      = "flowyard_editor"
	editorSignInPath  = "/_flowyard/sign-in"
	editorSignedIn    = "/_flowyard/signed-in" // where sign-in sends the browser, to see that it kept the cookie
	editorCodeTTL     = time.Minute
	editorSessionTTL  = 8 * time.Hour
	editorEntryPrefix = "/editor/"        // the dashboard's page that opens an editor: /editor/<instanceId>/
	deviceEntryPrefix = "/editor/device/" // and a device's: /editor/device/<deviceId>/
)

var (
	errEditorHost = &domain.Error{Kind: domain.KindNotFound, Code: "not_found",
		Message: "There is no such editor: the host does not name an instance."}
	errEditorLinkInvalid = &domain.Error{Kind: domain.KindUnauthorized, Code: "editor_link_invalid",
		Message: "This editor link was used already, has expired, or is for another instance: open the editor again from the dashboard."}
	errEditorSignIn = &domain.Error{Kind: domain.KindUnauthorized, Code: "editor_sign_in_required",
		Message: "Open the editor from the dashboard: this browser holds no editor session for this instance, or it has ended."}
	errEditorCookieRefused = &domain.Error{Kind: domain.KindUnauthorized, Code: "editor_cookie_refused",
		Message: "This browser did not keep the editor's session cookie: allow cookies for this site and open the editor again from the dashboard."}
	errEditorNeedsSession = &domain.Error{Kind: domain.KindForbidden, Code: "editor_needs_session",
		Message: "Editor links are for a browser signed in to the dashboard; a bearer token cannot open the editor."}
)

// editorOrigins names the editor origins: <label>.<domain>, with the scheme and port of the public URL. The
// label is the instance's ID (26 lower-case characters of Crockford's base32, a valid DNS label), which never
// changes and names one instance only.
type editorOrigins struct {
	domain string // e.g. editor.localhost or editor.example.com
	scheme string // http or https
	port   string // the public URL's port, "" for the scheme's default
}

func newEditorOrigins(publicURL, editorDomain string) editorOrigins {
	o := editorOrigins{domain: strings.ToLower(strings.Trim(editorDomain, ".")), scheme: "http"}
	if o.domain == "" {
		o.domain = "editor.localhost"
	}
	if u, err := url.Parse(publicURL); err == nil && u.Host != "" {
		o.scheme = u.Scheme
		o.port = o.explicitPort(u.Port())
	}
	return o
}

// explicitPort is a port as a browser writes it in a Host header: none for the scheme's default.
func (o editorOrigins) explicitPort(port string) string {
	if o.scheme == "http" && port == "80" || o.scheme == "https" && port == "443" {
		return ""
	}
	return port
}

// origin is the editor origin of an instance.
func (o editorOrigins) origin(instanceID string) string {
	host := instanceID + "." + o.domain
	if o.port != "" {
		host = net.JoinHostPort(host, o.port)
	}
	return o.scheme + "://" + host
}

// instanceOf reads a Host header: whether it is under the editor domain at all, and if so the instance it names
// ("" when the host is not exactly <instance ID>.<domain> on the public URL's port).
func (o editorOrigins) instanceOf(hostHeader string) (instanceID string, editorHost bool) {
	host, port := strings.ToLower(hostHeader), ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host, port = host[:i], host[i+1:]
	}
	host = strings.TrimSuffix(host, ".") // the same name, fully qualified
	if host == o.domain {
		return "", true
	}
	label, ok := strings.CutSuffix(host, "."+o.domain)
	if !ok {
		return "", false
	}
	if o.explicitPort(port) != o.port || !isInstanceLabel(label) {
		return "", true
	}
	return label, true
}

// isInstanceLabel tells whether s has the form of an instance ID (domain.NewID): 26 characters of lower-case
// Crockford base32.
func isInstanceLabel(s string) bool {
	if len(s) != 26 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("0123456789abcdefghjkmnpqrstvwxyz", rune(s[i])) {
			return false
		}
	}
	return true
}

// isEditorHost tells whether a request came to an editor origin (or to any host under the editor domain).
func (s *Server) isEditorHost(c *fiber.Ctx) bool {
	_, editor := s.editors.instanceOf(string(c.Request().Host()))
	return editor
}

// cookieName is the name a cookie of ours takes: with the __Host- prefix when cookies are Secure, so that a page
// of an editor origin (a sibling host in production) cannot plant one for the platform's host, nor one editor
// origin for another: browsers take a __Host- cookie only from its own host, Secure, for the whole path.
func (s *Server) cookieName(base string) string {
	if s.cfg.SecureCookies {
		return "__Host-" + base
	}
	return base
}

// hostOnlyCookie is a cookie of ours: no Domain attribute (so only the host that set it gets it back), the whole
// path, HttpOnly, SameSite=Lax (Strict would be lost on the redirect from the platform into the editor), Secure
// behind TLS.
func (s *Server) hostOnlyCookie(c *fiber.Ctx, base, value string, expires time.Time) *fiber.Cookie {
	return &fiber.Cookie{Name: s.cookieName(base), Value: value, Path: "/", Expires: expires, HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Secure: s.cfg.SecureCookies || c.Protocol() == "https"}
}

// editorSession is a request's valid editor session.
type editorSession struct {
	grantHash       string
	platformSession string // the digest of the platform session it belongs to
	instance        *storage.Instance
	device          *storage.Device // instead of instance, for a device's editor (deviceeditor.go)
	access          string          // editorEdit or editorView
	token           string          // the Node-RED token that access gets (an instance's)
}

// target is the ID of the instance or device whose editor the session opens.
func (e *editorSession) target() string {
	if e.device != nil {
		return e.device.ID
	}
	return e.instance.ID
}

// editorTarget is what an editor grant opens: an instance, or a device.
type editorTarget struct {
	instance *storage.Instance
	device   *storage.Device
}

// serveEditorOrigin answers every request that came to an editor host, and lets every other one through to
// the platform: nothing of the platform (its API, its dashboard) is served on an editor origin.
func (s *Server) serveEditorOrigin(c *fiber.Ctx) error {
	instanceID, editor := s.editors.instanceOf(string(c.Request().Host()))
	if !editor {
		if strings.HasPrefix(string(c.Request().URI().PathOriginal()), forwardPrefix) {
			return s.serveForwarded(c) // another replica's request for a device's editor (deviceeditor.go)
		}
		return c.Next()
	}
	if instanceID == "" {
		return errEditorHost
	}
	path := string(c.Request().URI().PathOriginal())
	if path == editorSignInPath {
		return s.signInToEditor(c, instanceID)
	}
	session, err := s.editorSessionOf(c, instanceID)
	if path == editorSignedIn {
		// Sign-in's redirect lands here, not on the editor: a browser that refused the cookie is told so here,
		// where an editor page would send it back to the dashboard for a new link, and round again.
		if domain.IsKind(err, domain.KindUnauthorized) {
			return errEditorCookieRefused
		}
		if err != nil {
			return err
		}
		return c.Redirect("/", fiber.StatusSeeOther)
	}
	if domain.IsKind(err, domain.KindUnauthorized) && isNavigation(c) {
		// A browser opening the editor without a session (or after it ended) goes through the dashboard,
		// which asks for a new link: the same way in as the "Open editor" button.
		return c.Redirect(s.cfg.PublicURL+s.editorEntry(c.UserContext(), instanceID), fiber.StatusSeeOther)
	}
	if err != nil {
		return err
	}
	if !sameOrigin(c) {
		return errCrossOrigin
	}
	return s.proxyEditor(c, session)
}

// editorEntry is the dashboard's page that opens the editor of the instance or device the label names.
func (s *Server) editorEntry(ctx context.Context, label string) string {
	if _, err := s.store.GetDevice(ctx, label); err == nil {
		return deviceEntryPrefix + label + "/"
	}
	return editorEntryPrefix + label + "/"
}

// isNavigation tells a browser loading a page from a script's request.
func isNavigation(c *fiber.Ctx) bool {
	if c.Method() != fiber.MethodGet || isWebsocketUpgrade(c) {
		return false
	}
	if mode := c.Get("Sec-Fetch-Mode"); mode != "" {
		return mode == "navigate"
	}
	return strings.Contains(c.Get(fiber.HeaderAccept), "text/html")
}

// signInToEditor spends a code on the origin of the instance it was issued for, and starts the editor session:
// a host-only cookie, then a redirect to the editor that leaves the code out of the address bar and history.
func (s *Server) signInToEditor(c *fiber.Ctx, instanceID string) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Referrer-Policy", "no-referrer")
	if c.Method() != fiber.MethodGet {
		return errRouteNotFound
	}
	ctx, at := c.UserContext(), time.Now()
	code, err := s.store.TakeEditorCode(ctx, domain.HashToken(c.Query("code")), at)
	if domain.IsKind(err, domain.KindNotFound) || err == nil && code.Target() != instanceID {
		return errEditorLinkInvalid
	}
	if err != nil {
		return err
	}
	if _, err := s.editorGrantHolds(ctx, code, at); domain.IsKind(err, domain.KindUnauthorized) {
		return errEditorLinkInvalid // signed out since, or the role changed
	} else if err != nil {
		return err
	}
	token, hash := domain.NewToken(domain.TokenPrefixEditorCookie)
	expires := at.Add(editorSessionTTL)
	if err := s.store.InsertEditorGrant(ctx, &storage.EditorGrant{TokenHash: hash, Kind: storage.EditorSession,
		InstanceID: code.InstanceID, DeviceID: code.DeviceID, SessionHash: code.SessionHash, Access: code.Access, ExpiresAt: expires}); err != nil {
		return err
	}
	c.Cookie(s.hostOnlyCookie(c, editorCookie, token, expires))
	return c.Redirect(editorSignedIn, fiber.StatusSeeOther)
}

// currentEditorAccess checks that u may still do what a grant was issued with, and returns the instance or the
// device it opens. Anything less (a new role, a removal from the team, a device out of developer mode) ends the
// grant: errEditorSignIn.
func (s *Server) currentEditorAccess(ctx context.Context, u *storage.User, g *storage.EditorGrant) (*editorTarget, error) {
	var target editorTarget
	var teamID string
	var err error
	if g.DeviceID != "" {
		target.device, err = s.store.GetDevice(ctx, g.DeviceID)
		if err == nil {
			teamID = target.device.TeamID
			if !deviceEditorEnabled(target.device) {
				return nil, errEditorSignIn
			}
		}
	} else {
		target.instance, err = s.store.GetInstance(ctx, g.InstanceID)
		if err == nil {
			teamID = target.instance.TeamID
		}
	}
	if domain.IsKind(err, domain.KindNotFound) {
		return nil, errEditorSignIn
	}
	if err != nil {
		return nil, err
	}
	access, err := s.editorAccessOf(ctx, u, teamID)
	if err != nil {
		return nil, err
	}
	if !grants(access, g.Access) {
		return nil, errEditorSignIn
	}
	return &target, nil
}

// editorSessionOf finds the request's editor session for the instance: its cookie names an unexpired session of
// this instance, the platform session it belongs to lasts, and the user's role still gives what it was opened
// with. Any other request is anonymous (401): the platform's own cookie means nothing here.
func (s *Server) editorSessionOf(c *fiber.Ctx, instanceID string) (*editorSession, error) {
	cookie := c.Cookies(s.cookieName(editorCookie))
	if cookie == "" {
		return nil, errEditorSignIn
	}
	return s.lookUpEditorSession(c.UserContext(), domain.HashToken(cookie), instanceID)
}

func (s *Server) lookUpEditorSession(ctx context.Context, grantHash, instanceID string) (*editorSession, error) {
	at := time.Now()
	g, err := s.store.GetEditorGrant(ctx, grantHash, storage.EditorSession, instanceID, at)
	if domain.IsKind(err, domain.KindNotFound) {
		return nil, errEditorSignIn
	}
	if err != nil {
		return nil, err
	}
	target, err := s.editorGrantHolds(ctx, g, at)
	if domain.IsKind(err, domain.KindUnauthorized) {
		_ = s.store.DeleteEditorGrant(ctx, grantHash)
	}
	if err != nil {
		return nil, err
	}
	session := &editorSession{grantHash: grantHash, platformSession: g.SessionHash, instance: target.instance, device: target.device, access: g.Access}
	if target.instance != nil {
		if session.token, err = s.nodeRedToken(target.instance, g.Access); err != nil {
			return nil, err
		}
	}
	return session, nil
}

// editorGrantHolds checks a code or session against the platform session it belongs to (still open, its user
// still let in) and the user's role now, and returns the instance; errEditorSignIn when it no longer holds.
func (s *Server) editorGrantHolds(ctx context.Context, g *storage.EditorGrant, at time.Time) (*editorTarget, error) {
	u, err := s.store.GetSessionUser(ctx, g.SessionHash, at)
	if domain.IsKind(err, domain.KindNotFound) {
		return nil, errEditorSignIn // signed out since, or the session expired
	}
	if err != nil {
		return nil, err
	}
	return s.currentEditorAccess(ctx, u, g)
}

// editorSessionHolds tells a long-lived connection (the editor's websocket) whether its session still holds. A
// store that does not answer is not a reason to end it.
func (s *Server) editorSessionHolds(session *editorSession) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.lookUpEditorSession(ctx, session.grantHash, session.target())
	return err == nil || !domain.IsKind(err, domain.KindUnauthorized)
}

// editorLink is the answer of POST /api/v1/instances/{instanceId}/editor-link.
type editorLink struct {
	URL       string    `json:"url"`       // open it in the browser, once, before expiresAt
	Access    string    `json:"access"`    // "edit" or "view"
	ExpiresAt time.Time `json:"expiresAt"` // of the link; the editor session it opens lasts up to 8 hours
}

func (s *Server) registerEditorLinks() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/instances/:instanceId/editor-link", Tag: "instances", Status: 201,
		Summary: "A single-use link (valid for a minute) that opens the instance's editor on its own origin in the signed-in browser: " +
			"members and owners edit, viewers read."}, s.createEditorLink)
}

// createEditorLink issues a code bound to the caller's platform session, the instance and what the caller's role
// may do in its editor. Someone who may not see the editor gets the same 404 as for a missing instance.
func (s *Server) createEditorLink(c *fiber.Ctx) error {
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	in, err := s.store.GetInstance(c.UserContext(), c.Params("instanceId"))
	if err != nil {
		return err
	}
	access, err := s.editorLinkAccess(c, who, in.TeamID, "instance")
	if err != nil {
		return err
	}
	return s.issueEditorLink(c, who, storage.EditorGrant{InstanceID: in.ID, Access: access})
}

// editorLinkAccess is what the caller may do in an editor of the team: a 404 naming what when nothing, and only
// for a signed-in browser (a session, not a bearer token).
func (s *Server) editorLinkAccess(c *fiber.Ctx, who *caller, teamID, what string) (string, error) {
	access, err := s.editorAccessOf(c.UserContext(), who.user, teamID)
	if err != nil {
		return "", err
	}
	if access == "" {
		return "", domain.NotFound(what)
	}
	if who.sessionHash == "" {
		return "", errEditorNeedsSession
	}
	return access, nil
}

// issueEditorLink stores the single-use code of the grant (its instance or device, and access) for the caller's
// session and answers the link to the editor origin that spends it.
func (s *Server) issueEditorLink(c *fiber.Ctx, who *caller, g storage.EditorGrant) error {
	code, hash := domain.NewToken(domain.TokenPrefixEditorCode)
	link := editorLink{URL: s.editors.origin(g.Target()) + editorSignInPath + "?code=" + code, Access: g.Access,
		ExpiresAt: time.Now().Add(editorCodeTTL).UTC()}
	g.TokenHash, g.Kind, g.SessionHash, g.ExpiresAt = hash, storage.EditorCode, who.sessionHash, link.ExpiresAt
	if err := s.store.InsertEditorGrant(c.UserContext(), &g); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return created(c, link)
}
