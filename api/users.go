package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
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
	u, err := NewUser(req.Email, req.Name, req.Password, req.Admin)
	if err != nil {
		return err
	}
	if err := s.store.InsertUser(c.UserContext(), u); err != nil {
		return err
	}
	return created(c, userView(u))
}

// NewUser validates a new user's fields and hashes the password. Every way an account is made (the admin API and
// CLI, the configured first admin, accepting an invitation) goes through it, so each applies the password policy.
func NewUser(email, name, password string, admin bool) (*storage.User, error) {
	email, emailErr := domain.ValidateEmail("email", email)
	if name == "" {
		name = email
	}
	if err := domain.Collect(emailErr, domain.ValidateName("name", name), domain.ValidateNewPassword("password", password)); err != nil {
		return nil, err
	}
	hash, err := domain.HashPassword(password)
	if err != nil {
		return nil, err
	}
	return &storage.User{ID: domain.NewID(), Email: email, Name: name, PasswordHash: hash, Admin: admin}, nil
}

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
