package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/metrics"
)

// unmatchedRoute labels requests that no route answered, so that scanners probing random paths add one
// series, not one per path.
const unmatchedRoute = "unmatched"

// observeRequests records every request's count and latency by method, route pattern and status into m.
// It runs first, so it sees the final status: an error returned further down is turned into its answer
// here, through the same error handler the app would use. A nil m records nothing.
func observeRequests(m *metrics.HTTP) fiber.Handler {
	if m == nil {
		return func(c *fiber.Ctx) error { return c.Next() }
	}
	return func(c *fiber.Ctx) error {
		done := m.Begin(c.Method())
		err := c.Next()
		if err != nil {
			if herr := c.App().ErrorHandler(c, err); herr != nil {
				_ = c.SendStatus(fiber.StatusInternalServerError)
			}
		}
		route := c.Route().Path
		if route == "" || route == "/" {
			route = unmatchedRoute
		}
		done(route, c.Response().StatusCode())
		return nil
	}
}
