package services

import (
	"context"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// NewUser validates a new user's fields and hashes the password. Every way an account is made (the admin API and
// CLI, the configured first admin, signing up, accepting an invitation) goes through it, so each applies the
// password policy.
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

// Account is a user account to create.
type Account struct {
	Email, Name, Password string
	Admin                 bool
	// PasswordChangeRequired makes the user choose a password of their own before doing anything else (their
	// password was generated and shown in a log).
	PasswordChangeRequired bool
}

// Users creates accounts.
type Users struct {
	Store *storage.Store
}

// Create validates the account (NewUser) and inserts it.
func (s *Users) Create(ctx context.Context, a Account) (*storage.User, error) {
	u, err := NewUser(a.Email, a.Name, a.Password, a.Admin)
	if err != nil {
		return nil, err
	}
	u.PasswordChangeRequired = a.PasswordChangeRequired
	if err := s.Store.InsertUser(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}
