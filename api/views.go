package api

import (
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Views turn store rows into the API's JSON shapes; no bun model is ever written out directly.

type userJSON struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Admin bool   `json:"admin"`
	// PasswordChangeRequired: every route but the password change and sign-out answers 403 until it is done.
	PasswordChangeRequired bool      `json:"passwordChangeRequired"`
	CreatedAt              time.Time `json:"createdAt"`
	// Suspended accounts cannot sign in or use their tokens until a platform admin reinstates them.
	Suspended   bool       `json:"suspended"`
	SuspendedAt *time.Time `json:"suspendedAt,omitempty"`
	// EmailVerified is false for an account made by sign-up until its address is confirmed.
	EmailVerified bool `json:"emailVerified"`
}

func userView(u *storage.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Name: u.Name, Admin: u.Admin, PasswordChangeRequired: u.PasswordChangeRequired, CreatedAt: u.CreatedAt,
		Suspended: u.SuspendedAt != nil, SuspendedAt: u.SuspendedAt, EmailVerified: !u.EmailUnverified}
}

type tokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Token      string     `json:"token,omitempty"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
}

func tokenView(t *storage.Token) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, Scopes: t.Scopes, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, CreatedAt: t.CreatedAt}
}

type teamJSON struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Slug       string    `json:"slug"`
	TeamTypeID string    `json:"teamTypeId"`
	Suspended  bool      `json:"suspended"`
	Role       string    `json:"role,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
}

func teamView(t *storage.Team, role domain.Role) teamJSON {
	v := teamJSON{ID: t.ID, Name: t.Name, Slug: t.Slug, TeamTypeID: t.TeamTypeID, Suspended: t.Suspended, CreatedAt: t.CreatedAt}
	if role != domain.RoleNone {
		v.Role = role.String()
	}
	return v
}

type memberJSON struct {
	UserID string `json:"userId"`
	Email  string `json:"email"`
	Name   string `json:"name"`
	Role   string `json:"role"`
}

func memberView(m *storage.Member) memberJSON {
	return memberJSON{UserID: m.UserID, Email: m.Email, Name: m.Name, Role: m.Role.String()}
}

type applicationJSON struct {
	ID          string    `json:"id"`
	TeamID      string    `json:"teamId"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

func applicationView(a *storage.Application) applicationJSON {
	return applicationJSON{ID: a.ID, TeamID: a.TeamID, Name: a.Name, Description: a.Description, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

type auditJSON struct {
	ID         string         `json:"id"`
	Event      string         `json:"event"`
	UserID     *string        `json:"userId"`
	EntityType string         `json:"entityType"`
	EntityID   string         `json:"entityId"`
	Body       map[string]any `json:"body"`
	CreatedAt  time.Time      `json:"createdAt"`
}

func auditView(e *storage.AuditEntry) auditJSON {
	return auditJSON{ID: e.ID, Event: e.Event, UserID: e.UserID, EntityType: e.EntityType, EntityID: e.EntityID, Body: e.Body, CreatedAt: e.CreatedAt}
}
