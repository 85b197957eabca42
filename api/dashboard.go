package api

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/web"
)

// The web dashboard (package web) is served before authentication: its files are public and the app signs in
// through /api/v1 like any client. Any GET outside the API's own prefixes answers index.html, so the app's
// history-API paths (/teams/acme/applications/…) survive a reload. These are not API routes, so they stay out
// of the OpenAPI document.

// notDashboard are the path prefixes the dashboard never answers. Under /editor/ it answers only its own page
// that opens an instance's editor, /editor/<instanceId>/ (the instances' editorUrl); the editor itself is on
// the instance's own origin (editororigin.go), and nothing else of it is served here.
var notDashboard = []string{"/api/", "/editor/", "/logging/", "/healthz", "/readyz", "/metrics"}

const assetsPrefix = "/assets/"

// dashboardCSP allows only the dashboard's own scripts, styles, images and API calls: no inline script or
// style, no eval, no other origin, no frames, no plugins.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
	"connect-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// isEditorEntry tells the dashboard's page that opens an editor: /editor/<id> or /editor/<id>/, and
// /editor/device/<id>[/] for a device's.
func isEditorEntry(p string) bool {
	id, ok := strings.CutPrefix(p, deviceEntryPrefix)
	if !ok {
		id, ok = strings.CutPrefix(p, editorEntryPrefix)
	}
	return ok && isInstanceLabel(strings.TrimSuffix(id, "/"))
}

func (s *Server) serveDashboard(c *fiber.Ctx) error {
	if c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
		return c.Next()
	}
	p := c.Path()
	for _, prefix := range notDashboard {
		if strings.HasPrefix(p, prefix) && !isEditorEntry(p) {
			return c.Next()
		}
	}
	if rest, ok := strings.CutPrefix(p, assetsPrefix); ok {
		return serveAsset(c, rest)
	}
	c.Set(fiber.HeaderContentSecurityPolicy, dashboardCSP)
	return sendAsset(c, web.Index(), "no-cache")
}

// serveAsset answers /assets/<version>/<file>. The current version's files never change, so they are cached for
// a year; any other version (a page from an older build) is served revalidated by ETag.
func serveAsset(c *fiber.Ctx, rest string) error {
	version, name, _ := strings.Cut(rest, "/")
	a, ok := web.Lookup(name)
	if !ok {
		return errRouteNotFound
	}
	cache := "no-cache"
	if version == web.Version() {
		cache = "public, max-age=31536000, immutable"
	}
	return sendAsset(c, a, cache)
}

// sendAsset answers a file, gzipped when the browser takes it, or 304 when the browser has it already.
func sendAsset(c *fiber.Ctx, a web.Asset, cache string) error {
	body, etag := a.Body, a.ETag
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	if a.Gzip != nil && strings.Contains(c.Get(fiber.HeaderAcceptEncoding), "gzip") {
		body, etag = a.Gzip, a.GzipETag
		c.Set(fiber.HeaderContentEncoding, "gzip")
	}
	c.Set(fiber.HeaderCacheControl, cache)
	c.Set(fiber.HeaderETag, etag)
	if c.Get(fiber.HeaderIfNoneMatch) == etag {
		c.Response().Header.Del(fiber.HeaderContentEncoding)
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, a.ContentType)
	return c.Send(body)
}
