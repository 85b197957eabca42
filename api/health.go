package api

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
)

func (s *Server) registerHealth() {
	s.route(routeDoc{Method: "GET", Path: "/healthz", Summary: "The process lives.", Tag: "meta", Public: true},
		func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	s.route(routeDoc{Method: "GET", Path: "/readyz", Summary: "The store, Temporal and the broker answer.", Tag: "meta", Public: true},
		s.readyz)
}

// readyz asks every dependency, in parallel, with a short deadline, and names those that are down.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
	defer cancel()
	checks := append([]Checker{{Name: "store", Check: s.store.Ping}}, s.ready...)
	errs := make([]error, len(checks))
	done := make(chan int, len(checks))
	for i, ch := range checks {
		go func() { errs[i] = ch.Check(ctx); done <- i }()
	}
	for range checks {
		<-done
	}
	status := fiber.Map{}
	var down []string
	for i, ch := range checks {
		if errs[i] != nil {
			down = append(down, ch.Name)
			status[ch.Name] = errs[i].Error()
		} else {
			status[ch.Name] = "ok"
		}
	}
	if len(down) > 0 {
		return &domain.Error{Kind: domain.KindUnavailable, Code: "not_ready",
			Message: "Flowyard is not ready: " + strings.Join(down, ", ") + " not answering.", Detail: strings.Join(down, ",")}
	}
	return c.JSON(status)
}
