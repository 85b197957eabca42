package domain

import (
	"net/url"
	"strconv"
	"strings"
)

// FleetSettings are what a device group, or a device itself, sets for the agents of its devices
// (docs/device-protocol.md §2.4): the Node-RED version they install, their palette's npm configuration and
// catalogues, and their local editor login. A field left unset is inherited: a device's own field wins over its
// group's, field by field.
type FleetSettings struct {
	NodeRedVersion string          `json:"nodeRedVersion,omitempty"`
	Palette        *PaletteConfig  `json:"palette,omitempty"`
	LocalAuth      *LocalAuthLogin `json:"localAuth,omitempty"`
}

// PaletteConfig is where a device's palette installs from. NPMRC is the .npmrc the agent writes before npm
// install (a registry, perhaps its token): stored sealed with the platform key. Catalogues are the palette
// manager's catalogue URLs.
type PaletteConfig struct {
	NPMRC      string   `json:"npmrc,omitempty"`
	Catalogues []string `json:"catalogues,omitempty"`
}

// LocalAuthLogin is the login of the editor on the device itself; PasswordHash is a bcrypt hash, which the
// agent hands Node-RED as it is.
type LocalAuthLogin struct {
	Enabled      bool   `json:"enabled"`
	User         string `json:"user"`
	PasswordHash string `json:"pass,omitempty"`
}

// Limits of fleet settings.
const (
	MaxNPMRCBytes = 8 << 10
	MaxCatalogues = 20
)

// IsZero reports whether nothing is set.
func (f FleetSettings) IsZero() bool {
	return f.NodeRedVersion == "" && f.Palette == nil && f.LocalAuth == nil
}

// ValidateFleetSettings checks settings as sent; the password's presence is checked where it is hashed.
func ValidateFleetSettings(field string, f FleetSettings) []FieldError {
	var errs []FieldError
	if f.NodeRedVersion != "" && (f.NodeRedVersion == "*" || !npmVersionPattern.MatchString(f.NodeRedVersion)) {
		errs = append(errs, FieldError{Field: field + ".nodeRedVersion", Detail: "must be a version or range such as 4.1.15, ~4.1.0 or latest"})
	}
	if p := f.Palette; p != nil {
		if len(p.NPMRC) > MaxNPMRCBytes || !Storable(p.NPMRC) {
			errs = append(errs, FieldError{Field: field + ".palette.npmrc", Detail: "must be at most 8 KiB of text"})
		}
		if len(p.Catalogues) > MaxCatalogues {
			errs = append(errs, FieldError{Field: field + ".palette.catalogues", Detail: "lists at most 20 catalogues"})
		}
		for i, c := range p.Catalogues {
			if u, err := url.Parse(c); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(c) > 2000 {
				errs = append(errs, FieldError{Field: field + ".palette.catalogues[" + strconv.Itoa(i) + "]", Detail: "must be an http(s) URL"})
			}
		}
	}
	if a := f.LocalAuth; a != nil && a.Enabled {
		if strings.TrimSpace(a.User) == "" || len(a.User) > MaxNameLength || strings.ContainsFunc(a.User, isControl) {
			errs = append(errs, FieldError{Field: field + ".localAuth.user", Detail: "is required: at most 100 characters, no control characters"})
		}
	}
	return errs
}

// MergeFleetSettings lays layers over each other, a later one's set fields winning (a group's, then a
// device's), as env layers merge.
func MergeFleetSettings(layers ...FleetSettings) FleetSettings {
	var out FleetSettings
	for _, l := range layers {
		if l.NodeRedVersion != "" {
			out.NodeRedVersion = l.NodeRedVersion
		}
		if l.Palette != nil {
			out.Palette = mergePalette(out.Palette, l.Palette)
		}
		if l.LocalAuth != nil {
			a := *l.LocalAuth
			out.LocalAuth = &a
		}
	}
	return out
}

func mergePalette(under, over *PaletteConfig) *PaletteConfig {
	p := PaletteConfig{}
	if under != nil {
		p = *under
	}
	if over.NPMRC != "" {
		p.NPMRC = over.NPMRC
	}
	if over.Catalogues != nil {
		p.Catalogues = over.Catalogues
	}
	return &p
}
