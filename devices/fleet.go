package devices

import (
	"context"
	"fmt"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// FleetSettingsInput is fleet settings as a user sends them. The .npmrc and the local login's password are
// write-only: left out (nil), the stored one stays; the password is sent in clear and stored as a bcrypt hash.
type FleetSettingsInput struct {
	NodeRedVersion string `json:"nodeRedVersion,omitempty"`
	Palette        *struct {
		NPMRC      *string  `json:"npmrc,omitempty"`
		Catalogues []string `json:"catalogues,omitempty"`
	} `json:"palette,omitempty"`
	LocalAuth *struct {
		Enabled  bool    `json:"enabled"`
		User     string  `json:"user"`
		Password *string `json:"password,omitempty"`
	} `json:"localAuth,omitempty"`
}

// FleetSettingsView is fleet settings as the API shows them: the secrets only as "set".
type FleetSettingsView struct {
	NodeRedVersion string `json:"nodeRedVersion,omitempty"`
	Palette        *struct {
		NPMRCSet   bool     `json:"npmrcSet"`
		Catalogues []string `json:"catalogues,omitempty"`
	} `json:"palette,omitempty"`
	LocalAuth *struct {
		Enabled     bool   `json:"enabled"`
		User        string `json:"user"`
		PasswordSet bool   `json:"passwordSet"`
	} `json:"localAuth,omitempty"`
}

// ViewFleetSettings shows stored settings without their secrets.
func ViewFleetSettings(f domain.FleetSettings) FleetSettingsView {
	v := FleetSettingsView{NodeRedVersion: f.NodeRedVersion}
	if p := f.Palette; p != nil {
		v.Palette = &struct {
			NPMRCSet   bool     `json:"npmrcSet"`
			Catalogues []string `json:"catalogues,omitempty"`
		}{NPMRCSet: p.NPMRC != "", Catalogues: p.Catalogues}
	}
	if a := f.LocalAuth; a != nil {
		v.LocalAuth = &struct {
			Enabled     bool   `json:"enabled"`
			User        string `json:"user"`
			PasswordSet bool   `json:"passwordSet"`
		}{Enabled: a.Enabled, User: a.User, PasswordSet: a.PasswordHash != ""}
	}
	return v
}

// StorableFleetSettings validates settings a user sent and turns them into what is stored in place of stored:
// the .npmrc sealed, the password hashed, a secret left out kept. field names the request's field in errors.
func (s *Service) StorableFleetSettings(field string, in FleetSettingsInput, stored domain.FleetSettings) (domain.FleetSettings, error) {
	out := domain.FleetSettings{NodeRedVersion: in.NodeRedVersion}
	if p := in.Palette; p != nil {
		out.Palette = &domain.PaletteConfig{Catalogues: p.Catalogues}
		if p.NPMRC != nil {
			out.Palette.NPMRC = *p.NPMRC
		}
	}
	if a := in.LocalAuth; a != nil {
		out.LocalAuth = &domain.LocalAuthLogin{Enabled: a.Enabled, User: a.User}
	}
	if errs := domain.ValidateFleetSettings(field, out); errs != nil {
		return out, domain.Invalid(errs...)
	}
	if out.Palette != nil && out.Palette.NPMRC != "" {
		out.Palette.NPMRC = s.Sealer.Seal(out.Palette.NPMRC)
	} else if out.Palette != nil && in.Palette.NPMRC == nil && stored.Palette != nil {
		out.Palette.NPMRC = stored.Palette.NPMRC // kept, still sealed
	}
	if out.LocalAuth == nil {
		return out, nil
	}
	return out, hashLocalPassword(field, in.LocalAuth.Password, out.LocalAuth, stored.LocalAuth)
}

// hashLocalPassword stores a new local login password as a bcrypt hash, or keeps the stored one when none is sent.
func hashLocalPassword(field string, password *string, a, stored *domain.LocalAuthLogin) error {
	switch {
	case password != nil:
		if len(*password) < 8 || len(*password) > domain.MaxPasswordLength {
			return domain.InvalidField(field+".localAuth.password", "must be 8 to 128 characters")
		}
		hash, err := domain.HashPassword(*password)
		if err != nil {
			return err
		}
		a.PasswordHash = hash
	case stored != nil:
		a.PasswordHash = stored.PasswordHash
	}
	if a.Enabled && a.PasswordHash == "" {
		return domain.InvalidField(field+".localAuth.password", "is required to enable the local login")
	}
	return nil
}

// effectiveFleetSettings are a device's group's fleet settings with its own laid over them, the .npmrc opened.
func (s *Service) effectiveFleetSettings(d *storage.Device, g *storage.DeviceGroup) (domain.FleetSettings, error) {
	var group domain.FleetSettings
	if g != nil {
		group = g.FleetSettings
	}
	f := domain.MergeFleetSettings(group, d.FleetSettings)
	if f.Palette != nil && f.Palette.NPMRC != "" {
		plain, err := s.Sealer.Open(f.Palette.NPMRC)
		if err != nil {
			return f, fmt.Errorf("open a device's npmrc: %w", err)
		}
		f.Palette = &domain.PaletteConfig{NPMRC: plain, Catalogues: f.Palette.Catalogues}
	}
	return f, nil
}

// fleetDocument puts fleet settings where the settings document carries them (docs/device-protocol.md §2.4):
// editor.nodeRedVersion, palette.npmrc and palette.catalogues, security.localAuth.
func fleetDocument(doc map[string]any, f domain.FleetSettings) {
	editor, palette := map[string]any{}, map[string]any{}
	if f.NodeRedVersion != "" {
		editor["nodeRedVersion"] = f.NodeRedVersion
	}
	if p := f.Palette; p != nil {
		if p.NPMRC != "" {
			palette["npmrc"] = p.NPMRC
		}
		if len(p.Catalogues) > 0 {
			palette["catalogues"] = p.Catalogues
		}
	}
	doc["editor"], doc["palette"] = editor, palette
	if a := f.LocalAuth; a != nil {
		doc["security"] = map[string]any{"localAuth": map[string]any{"enabled": a.Enabled, "user": a.User, "pass": a.PasswordHash}}
	}
}

// deviceGroup returns the device's group, or nil.
func (s *Service) deviceGroup(ctx context.Context, d *storage.Device) (*storage.DeviceGroup, error) {
	if d.DeviceGroupID == nil {
		return nil, nil
	}
	return s.records().GetDeviceGroup(ctx, *d.DeviceGroupID)
}
