package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// nodeRedAdminRoot is where every instance serves Node-RED's admin API (drivers.AdminRoot; api may not import
// drivers).
const nodeRedAdminRoot = "/admin/"

// runtimeClient talks to instances' admin APIs; the timeout bounds a stuck Node-RED.
var runtimeClient = &http.Client{Timeout: 30 * time.Second}

type deployFlowsRequest struct {
	Flows       []any          `json:"flows"`
	Rev         string         `json:"rev,omitempty"`
	Credentials map[string]any `json:"credentials,omitempty"`
}

func (s *Server) registerFlows() {
	s.route(routeDoc{Method: "GET", Path: "/api/v1/instances/:instanceId/flows", Summary: "The instance's flows and their rev (from Node-RED when it runs, else from the store).", Tag: "instances"}, s.getFlows)
	s.route(routeDoc{Method: "PUT", Path: "/api/v1/instances/:instanceId/flows", Summary: "Deploy flows; a stale rev answers 409.", Tag: "instances", Body: deployFlowsRequest{}}, s.deployFlows)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/instances/:instanceId/flows", Summary: "Deploy flows (same as PUT).", Tag: "instances", Body: deployFlowsRequest{}}, s.deployFlows)
}

func (s *Server) getFlows(c *fiber.Ctx) error {
	_, in, err := s.instanceFor(c, domain.ActionInstanceFlowsView)
	if err != nil {
		return err
	}
	if in.State != domain.InstanceRunning || in.RuntimeURL == "" {
		stored, err := s.store.GetInstanceStorage(c.UserContext(), in.ID, storage.StorageFlows)
		if err != nil {
			return err
		}
		if stored == "" {
			stored = "[]"
		}
		return c.JSON(fiber.Map{"flows": json.RawMessage(stored), "rev": "", "source": "store"})
	}
	body, status, err := s.callAdmin(c.UserContext(), in, http.MethodGet, "flows", nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return runtimeRefused(status, body)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(body)
}

func (s *Server) deployFlows(c *fiber.Ctx) error {
	_, in, err := s.instanceFor(c, domain.ActionInstanceFlowsEdit)
	if err != nil {
		return err
	}
	req, err := parseDeployFlows(c.Body(), s.limiter.MaxJSONDepth)
	if err != nil {
		return err
	}
	if in.State != domain.InstanceRunning || in.RuntimeURL == "" {
		return domain.Conflict("instance_not_running", "Flows are deployed to a running instance; start it first.")
	}
	payload, _ := json.Marshal(req)
	body, status, err := s.callAdmin(c.UserContext(), in, http.MethodPost, "flows", payload)
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusConflict:
		return domain.Conflict("stale_rev", "The flows changed since your rev; fetch them again and retry.")
	case status != http.StatusOK && status != http.StatusNoContent:
		return runtimeRefused(status, body)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(body)
}

// parseDeployFlows reads and checks a deploy body: a Node-RED flow list, an optional rev and credentials.
func parseDeployFlows(body []byte, maxDepth int) (*deployFlowsRequest, error) {
	var req deployFlowsRequest
	if err := decodeJSON(body, &req, maxDepth); err != nil {
		return nil, err
	}
	if req.Flows == nil {
		return nil, domain.InvalidField("flows", "is required")
	}
	if fe := domain.ValidateFlows("flows", req.Flows); fe != nil {
		return nil, domain.Invalid(*fe)
	}
	return &req, nil
}

// callAdmin calls the instance's Node-RED admin API with the platform's admin token and the v2 flows format.
func (s *Server) callAdmin(ctx context.Context, in *storage.Instance, method, path string, payload []byte) ([]byte, int, error) {
	token, err := s.sealer.Open(in.AdminToken)
	if err != nil {
		return nil, 0, fmt.Errorf("open admin token of %s: %w", in.ID, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, in.RuntimeURL+nodeRedAdminRoot+path, bytes.NewReader(payload))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Node-RED-API-Version", "v2")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Node-RED-Deployment-Type", "full")
	}
	resp, err := runtimeClient.Do(req)
	if err != nil {
		return nil, 0, domain.Unavailable("runtime_unreachable", "The instance's Node-RED does not answer.")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	return body, resp.StatusCode, err
}

func runtimeRefused(status int, body []byte) error {
	if len(body) > 500 {
		body = body[:500]
	}
	return &domain.Error{Kind: domain.KindUnprocessable, Code: "runtime_refused",
		Message: fmt.Sprintf("Node-RED refused the request (HTTP %d).", status), Detail: string(body)}
}
