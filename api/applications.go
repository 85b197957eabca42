package api

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

type createApplicationRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

type updateApplicationRequest struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
}

func (s *Server) registerApplications() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/teams/:teamId/applications", Summary: "Create an application.", Tag: "applications", Body: createApplicationRequest{}, Status: 201}, s.createApplication)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/applications", Summary: "The team's applications.", Tag: "applications"}, s.listApplications)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/applications/:applicationId", Summary: "One application.", Tag: "applications"}, s.getApplication)
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/applications/:applicationId", Summary: "Rename or describe an application.", Tag: "applications", Body: updateApplicationRequest{}}, s.updateApplication)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/applications/:applicationId", Summary: "Delete an empty application.", Tag: "applications", Status: 204}, s.deleteApplication)
}

func (s *Server) createApplication(c *fiber.Ctx) error {
	who, team, _, err := s.teamFor(c, domain.ActionApplicationCreate)
	if err != nil {
		return err
	}
	var req createApplicationRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if err := domain.Collect(domain.ValidateName("name", req.Name), domain.ValidateDescription("description", req.Description)); err != nil {
		return err
	}
	app := &storage.Application{ID: domain.NewID(), TeamID: team.ID, Name: req.Name, Description: req.Description}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.InsertApplication(ctx, app); err != nil {
			return err
		}
		return audit(c, tx, who, team.ID, "application.created", "application", app.ID, map[string]any{"name": app.Name})
	})
	if err != nil {
		return err
	}
	return created(c, applicationView(app))
}

func (s *Server) listApplications(c *fiber.Ctx) error {
	// The membership check proves the team exists; the list needs nothing more of it (one query less on a hot path).
	teamID := c.Params("teamId")
	if _, _, err := s.teamAccess(c, teamID, domain.ActionApplicationList, "team"); err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListApplications(c.UserContext(), teamID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, applicationView)
}

// applicationFor loads the application in the path after checking the caller's access to its team.
func (s *Server) applicationFor(c *fiber.Ctx, action domain.Action) (*caller, *storage.Application, error) {
	app, err := s.store.GetApplication(c.UserContext(), c.Params("applicationId"))
	if err != nil {
		return nil, nil, err
	}
	who, _, err := s.teamAccess(c, app.TeamID, action, "application")
	return who, app, err
}

func (s *Server) getApplication(c *fiber.Ctx) error {
	_, app, err := s.applicationFor(c, domain.ActionApplicationRead)
	if err != nil {
		return err
	}
	return c.JSON(applicationView(app))
}

func (s *Server) updateApplication(c *fiber.Ctx) error {
	who, app, err := s.applicationFor(c, domain.ActionApplicationEdit)
	if err != nil {
		return err
	}
	var req updateApplicationRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	var cols []string
	var errs []*domain.FieldError
	if req.Name != nil {
		app.Name, cols, errs = *req.Name, append(cols, "name"), append(errs, domain.ValidateName("name", *req.Name))
	}
	if req.Description != nil {
		app.Description, cols, errs = *req.Description, append(cols, "description"), append(errs, domain.ValidateDescription("description", *req.Description))
	}
	if err := domain.Collect(errs...); err != nil {
		return err
	}
	if len(cols) > 0 {
		err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
			if err := tx.UpdateApplication(ctx, app, cols...); err != nil {
				return err
			}
			return audit(c, tx, who, app.TeamID, "application.updated", "application", app.ID, map[string]any{"fields": cols})
		})
		if err != nil {
			return err
		}
	}
	return c.JSON(applicationView(app))
}

func (s *Server) deleteApplication(c *fiber.Ctx) error {
	who, app, err := s.applicationFor(c, domain.ActionApplicationDelete)
	if err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := s.ensureApplicationEmpty(ctx, tx, app.ID); err != nil {
			return err
		}
		if err := tx.DeleteApplication(ctx, app.ID); err != nil {
			return err
		}
		return audit(c, tx, who, app.TeamID, "application.deleted", "application", app.ID, map[string]any{"name": app.Name})
	})
	if err != nil {
		return err
	}
	return noContent(c)
}

// applicationContents are the tables whose rows keep an application from being deleted.
var applicationContents = []string{"instances"}

func (s *Server) ensureApplicationEmpty(ctx context.Context, tx *storage.Store, appID string) error {
	for _, table := range applicationContents {
		n, err := tx.CountRows(ctx, table, "application_id", appID)
		if err != nil {
			return err
		}
		if n > 0 {
			return domain.Conflict("application_not_empty", "The application still holds "+table+"; delete them first.")
		}
	}
	return nil
}
