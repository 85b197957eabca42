package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// SSOConfig sends the users of an e-mail domain to their organisation's OpenID provider to sign in. The client
// secret is stored sealed with the platform's key (the API seals and opens it).
type SSOConfig struct {
	bun.BaseModel `bun:"table:sso_configs,alias:sso"`
	ID            string `bun:",pk"`
	Domain        string
	IssuerURL     string
	ClientID      string
	ClientSecret  string // sealed
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// InsertSSOConfig stores a configuration; a domain that has one already is a conflict.
func (s *Store) InsertSSOConfig(ctx context.Context, cfg *SSOConfig) error {
	cfg.CreatedAt, cfg.UpdatedAt = now(), now()
	_, err := s.db.NewInsert().Model(cfg).Exec(ctx)
	return classify(err, "single sign-on configuration")
}

// GetSSOConfig returns one configuration by ID.
func (s *Store) GetSSOConfig(ctx context.Context, id string) (*SSOConfig, error) {
	cfg := new(SSOConfig)
	err := s.db.NewSelect().Model(cfg).Where("id = ?", id).Scan(ctx)
	return cfg, classify(err, "single sign-on configuration")
}

// GetSSOConfigByDomain returns the configuration of an e-mail domain (lower-case).
func (s *Store) GetSSOConfigByDomain(ctx context.Context, domain string) (*SSOConfig, error) {
	cfg := new(SSOConfig)
	err := s.db.NewSelect().Model(cfg).Where("domain = ?", domain).Scan(ctx)
	return cfg, classify(err, "single sign-on configuration")
}

// ListSSOConfigs returns a page of every configuration.
func (s *Store) ListSSOConfigs(ctx context.Context, p Page) ([]SSOConfig, string, error) {
	return listPage(ctx, s.db.NewSelect().Model((*SSOConfig)(nil)), "id", p, func(c *SSOConfig) string { return c.ID })
}

// UpdateSSOConfig stores a changed configuration.
func (s *Store) UpdateSSOConfig(ctx context.Context, cfg *SSOConfig) error {
	cfg.UpdatedAt = now()
	res, err := s.db.NewUpdate().Model(cfg).Column("domain", "issuer_url", "client_id", "client_secret", "updated_at").WherePK().Exec(ctx)
	return mustAffect(res, err, "single sign-on configuration")
}

// DeleteSSOConfig removes a configuration: its domain's users sign in with passwords again.
func (s *Store) DeleteSSOConfig(ctx context.Context, id string) error {
	res, err := s.db.NewDelete().Model((*SSOConfig)(nil)).Where("id = ?", id).Exec(ctx)
	return mustAffect(res, err, "single sign-on configuration")
}
