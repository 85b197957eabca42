package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/services"
)

type createUserRequest struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Password string `json:"password"`
	Admin    bool   `json:"admin,omitempty"`
}

func (s *Server) registerUsers() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/users", Summary: "Create a user (platform admins).", Tag: "users", Body: createUserRequest{}, Status: 201}, s.createUser)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/users", Summary: "List users (platform admins).", Tag: "users"}, s.listUsers)
}

func (s *Server) createUser(c *fiber.Ctx) error {
	if _, err := requireAdmin(c); err != nil {
		return err
	}
	var req createUserRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	u, err := s.svc.users.Create(c.UserContext(), services.Account{Email: req.Email, Name: req.Name, Password: req.Password, Admin: req.Admin})
	if err != nil {
		return err
	}
	return created(c, userView(u))
}

// NewUser validates a new user's fields and hashes the password (services.NewUser).
var NewUser = services.NewUser

func (s *Server) listUsers(c *fiber.Ctx) error {
	if _, err := requireAdmin(c); err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListUsers(c.UserContext(), p)
	if err != nil {
		return err
	}
	return list(c, rows, next, userView)
}
