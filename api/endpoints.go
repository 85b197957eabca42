package api

import (
	"context"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// The routes of an instance's own address (apporigin.go): its protection, its endpoint tokens, the sign-in link
// that opens a protected address in a signed-in browser, and the team's dashboards.

type endpointsRequest struct {
	// Protected makes the instance's address ask for a signed-in member of its team or an endpoint token.
	Protected *bool `json:"protected"`
}

type endpointsJSON struct {
	URL       string `json:"url"`
	Protected bool   `json:"protected"`
}

type endpointsLinkRequest struct {
	// Next is the path of the address to open once signed in ("/" when empty).
	Next string `json:"next"`
}

type endpointTokenRequest struct {
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

type endpointTokenJSON struct {
	ID         string     `json:"id"`
	InstanceID string     `json:"instanceId"`
	Name       string     `json:"name"`
	Token      string     `json:"token,omitempty"` // only in the answer that creates it
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
}

func endpointTokenView(t *storage.Token) endpointTokenJSON {
	return endpointTokenJSON{ID: t.ID, InstanceID: t.OwnerID, Name: t.Name, ExpiresAt: t.ExpiresAt, CreatedAt: t.CreatedAt}
}

type dashboardJSON struct {
	InstanceID    string               `json:"instanceId"`
	Name          string               `json:"name"`
	ApplicationID string               `json:"applicationId"`
	State         domain.InstanceState `json:"state"`
	URL           string               `json:"url"` // Dashboard 2's page on the instance's address
	Protected     bool                 `json:"protected"`
}

func (s *Server) registerEndpoints() {
	s.route(routeDoc{Method: "PUT", Path: "/api/v1/instances/:instanceId/endpoints", Tag: "instances", Body: endpointsRequest{},
		Summary: "Protect the instance's address (its flows' endpoints and dashboards) with the platform's sign-in and endpoint tokens, or open it to anyone (owners)."}, s.setEndpoints)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/instances/:instanceId/endpoints-link", Tag: "instances", Status: 201, Body: endpointsLinkRequest{},
		Summary: "A single-use link (valid for a minute) that signs the signed-in browser in to the instance's protected address, then opens next."}, s.createEndpointsLink)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/instances/:instanceId/endpoint-tokens", Tag: "instances",
		Summary: "The bearer tokens that open the instance's protected address (without the tokens; owners)."}, s.listEndpointTokens)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/instances/:instanceId/endpoint-tokens", Tag: "instances", Status: 201, Body: endpointTokenRequest{},
		Summary: "A bearer token (fyh_…) for the instance's protected address; shown once (owners)."}, s.createEndpointToken)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/instances/:instanceId/endpoint-tokens/:tokenId", Tag: "instances", Status: 204,
		Summary: "Revoke an endpoint token (owners)."}, s.deleteEndpointToken)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/dashboards", Tag: "teams",
		Summary: "The team's instances' dashboards (FlowFuse Dashboard 2 at /dashboard on each instance's address): all the dashboard role sees."}, s.listDashboards)
}

func (s *Server) setEndpoints(c *fiber.Ctx) error {
	var req endpointsRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	who, in, err := s.instanceFor(c, domain.ActionInstanceEndpointsManage)
	if err != nil {
		return err
	}
	if req.Protected == nil {
		return domain.InvalidField("protected", "is required: true or false")
	}
	in.EndpointsProtected = *req.Protected
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.UpdateInstance(ctx, in, "endpoints_protected"); err != nil {
			return err
		}
		return audit(c, tx, who, in.TeamID, "project.endpoints.updated", "instance", in.ID, map[string]any{"protected": in.EndpointsProtected})
	})
	if err != nil {
		return err
	}
	return c.JSON(endpointsJSON{URL: s.instanceAddress(in), Protected: in.EndpointsProtected})
}

// createEndpointsLink issues a code bound to the caller's platform session and the instance. Someone who may not
// use the instance's endpoints gets the same 404 as for a missing instance.
func (s *Server) createEndpointsLink(c *fiber.Ctx) error {
	var req endpointsLinkRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	in, err := s.store.GetInstance(ctx, c.Params("instanceId"))
	if err != nil {
		return err
	}
	ok, err := s.mayUseEndpoints(ctx, who.user, in)
	if err != nil {
		return err
	}
	if !ok {
		return domain.NotFound("instance")
	}
	if who.sessionHash == "" {
		return errEditorNeedsSession
	}
	code, hash := domain.NewToken(domain.TokenPrefixEditorCode)
	expires := time.Now().Add(appCodeTTL).UTC()
	if err := s.store.InsertEditorGrant(ctx, &storage.EditorGrant{TokenHash: hash, Kind: storage.AppCode,
		InstanceID: in.ID, SessionHash: who.sessionHash, Access: storage.AppAccess, ExpiresAt: expires}); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	link := s.apps.origin(in.Name) + appReservedPath + "sign-in?code=" + code + "&next=" + url.QueryEscape(localNext(req.Next))
	return created(c, editorLink{URL: link, Access: storage.AppAccess, ExpiresAt: expires})
}

func (s *Server) listEndpointTokens(c *fiber.Ctx) error {
	_, in, err := s.instanceFor(c, domain.ActionInstanceEndpointsManage)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListTokensByOwner(c.UserContext(), storage.TokenKindEndpoint, "instance", in.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, endpointTokenView)
}

func (s *Server) createEndpointToken(c *fiber.Ctx) error {
	var req endpointTokenRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	who, in, err := s.instanceFor(c, domain.ActionInstanceEndpointsManage)
	if err != nil {
		return err
	}
	if err := domain.Collect(domain.ValidateName("name", req.Name)); err != nil {
		return err
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(time.Now()) {
		return domain.InvalidField("expiresAt", "must be in the future")
	}
	token, hash := domain.NewToken(domain.TokenPrefixEndpoint)
	t := &storage.Token{ID: domain.NewID(), TokenHash: hash, Kind: storage.TokenKindEndpoint, Name: req.Name,
		OwnerType: "instance", OwnerID: in.ID, TeamID: &in.TeamID, ExpiresAt: req.ExpiresAt}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.InsertToken(ctx, t); err != nil {
			return err
		}
		return audit(c, tx, who, in.TeamID, "project.endpoints.token.created", "instance", in.ID, map[string]any{"tokenId": t.ID, "name": t.Name})
	})
	if err != nil {
		return err
	}
	v := endpointTokenView(t)
	v.Token = token
	return created(c, v)
}

func (s *Server) deleteEndpointToken(c *fiber.Ctx) error {
	who, in, err := s.instanceFor(c, domain.ActionInstanceEndpointsManage)
	if err != nil {
		return err
	}
	id := c.Params("tokenId")
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.DeleteEndpointToken(ctx, id, in.ID); err != nil {
			return err
		}
		return audit(c, tx, who, in.TeamID, "project.endpoints.token.deleted", "instance", in.ID, map[string]any{"tokenId": id})
	})
	if err != nil {
		return err
	}
	return noContent(c)
}

func (s *Server) listDashboards(c *fiber.Ctx) error {
	teamID := c.Params("teamId")
	if _, _, err := s.teamAccess(c, teamID, domain.ActionTeamDashboardsList, "team"); err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListTeamInstances(c.UserContext(), teamID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, func(in *storage.Instance) dashboardJSON {
		return dashboardJSON{InstanceID: in.ID, Name: in.Name, ApplicationID: in.ApplicationID, State: in.State,
			URL: s.instanceAddress(in) + "dashboard", Protected: in.EndpointsProtected}
	})
}
