package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
)

func (s *Server) registerHealth() {
	s.route(routeDoc{Method: "GET", Path: "/healthz", Summary: "The process lives.", Tag: "meta", Public: true},
		func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	s.route(routeDoc{Method: "GET", Path: "/readyz", Summary: "The store, Temporal and the broker answer; says whether instances run isolated.", Tag: "meta", Public: true},
		s.readyz)
}

// Degraded is what a Checker returns for a part that works, but not as it should: /readyz shows it (as
// "instances": "not isolated: …") and still answers 200, since the platform serves requests.
type Degraded string

func (d Degraded) Error() string { return string(d) }

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
		var degraded Degraded
		switch {
		case errors.As(errs[i], &degraded):
			status[ch.Name] = degraded.Error()
		case errs[i] != nil:
			down = append(down, ch.Name)
			status[ch.Name] = errs[i].Error()
		default:
			status[ch.Name] = "ok"
		}
	}
	if len(down) > 0 {
		return &domain.Error{Kind: domain.KindUnavailable, Code: "not_ready",
			Message: "Flowyard is not ready: " + strings.Join(down, ", ") + " not answering.", Detail: strings.Join(down, ",")}
	}
	return c.JSON(status)
}
