package api

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// An instance's CPU and memory over the last hour, as the workers sampled them (package health).

// healthWindow is how far back the series goes; the store keeps no more.
const healthWindow = time.Hour

type healthSampleJSON struct {
	At          time.Time `json:"at"`
	CPUPercent  float64   `json:"cpuPercent"`
	MemoryBytes int64     `json:"memoryBytes"`
}

type instanceHealthJSON struct {
	InstanceID string             `json:"instanceId"`
	Since      time.Time          `json:"since"`
	Samples    []healthSampleJSON `json:"samples"`
}

func (s *Server) registerHealthSamples() {
	s.route(routeDoc{Method: "GET", Path: "/api/v1/instances/:instanceId/health", Tag: "instances",
		Summary: "The instance's CPU (percent of one core) and resident memory over the last hour, a sample every 15 s, oldest first; empty while no worker has measured it."}, s.instanceHealth)
}

func (s *Server) instanceHealth(c *fiber.Ctx) error {
	_, in, err := s.instanceFor(c, domain.ActionInstanceRead)
	if err != nil {
		return err
	}
	since := time.Now().Add(-healthWindow).UTC()
	rows, err := s.store.InstanceSamplesSince(c.UserContext(), in.ID, since)
	if err != nil {
		return err
	}
	out := instanceHealthJSON{InstanceID: in.ID, Since: since, Samples: make([]healthSampleJSON, 0, len(rows))}
	for _, r := range rows {
		out.Samples = append(out.Samples, healthSample(r))
	}
	return c.JSON(out)
}

func healthSample(r storage.InstanceSample) healthSampleJSON {
	return healthSampleJSON{At: r.At, CPUPercent: r.CPUPercent, MemoryBytes: r.MemoryBytes}
}
