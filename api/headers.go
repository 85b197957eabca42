package api

import (
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// Security headers. Every answer of the platform's origin forbids what the platform does not do: the API's
// answers load, frame and submit nothing (apiCSP); the dashboard's page loads its own scripts, styles and API
// calls only (dashboardCSP, in dashboard.go). The editor origins get none of that (Node-RED's editor needs
// inline scripts and eval): each is isolated by being an origin of its own, and only refuses to be framed by
// another origin or read by another origin's page.

// apiCSP is the policy of every platform answer but the dashboard's page.
const apiCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// securityHeaders sets the headers of the origin a request came to, before anything answers it (errors too).
func (s *Server) securityHeaders(c *fiber.Ctx) error {
	h := &c.Response().Header
	if s.isAppHost(c) {
		return c.Next() // an instance's address answers what its flows answer (apporigin.go)
	}
	if s.isEditorHost(c) {
		setEditorHeaders(h)
		return c.Next()
	}
	h.Set(fiber.HeaderContentSecurityPolicy, apiCSP)
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	h.Set(fiber.HeaderXFrameOptions, "DENY")
	h.Set(fiber.HeaderReferrerPolicy, "same-origin")
	// No other origin's page keeps a handle on a platform window, or reads a platform answer as an image,
	// script or style (an editor origin's script trying <img src>/<script src> with the user's cookie).
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set(fiber.HeaderCrossOriginResourcePolicy, "same-origin")
	if strings.HasPrefix(s.cfg.PublicURL, "https://") {
		h.Set(fiber.HeaderStrictTransportSecurity, "max-age=31536000")
	}
	return c.Next()
}

// setEditorHeaders marks an editor origin's answer: no other origin may frame it (clickjacking a deploy) or
// embed it, and Node-RED's requests elsewhere (the palette manager's catalogue) do not name the instance in a
// Referer. Nothing restricts the editor's own scripts.
func setEditorHeaders(h *fasthttp.ResponseHeader) {
	h.Set(fiber.HeaderContentSecurityPolicy, "frame-ancestors 'self'")
	h.Set(fiber.HeaderCrossOriginResourcePolicy, "same-origin")
	h.Set(fiber.HeaderReferrerPolicy, "same-origin")
}
