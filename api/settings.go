package api

import (
	"context"
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/storage"
)

// platformSettingsJSON are the settings platform admins change while Flowyard runs. They live in the store, not
// in flags, so every API replica reads the same; a setting never changed has its default (the zero value).
type platformSettingsJSON struct {
	// SignUp lets anyone create an account on the sign-in page, which works once its address is confirmed.
	SignUp bool `json:"signUp"`
	// RequireTwoFactor holds every signed-in user without two-factor sign-in to turning it on (twofactor_required.go).
	RequireTwoFactor bool `json:"requireTwoFactor"`
}

// settingsPatch changes the settings it names.
type settingsPatch struct {
	SignUp           *bool `json:"signUp,omitempty"`
	RequireTwoFactor *bool `json:"requireTwoFactor,omitempty"`
}

const settingsPath = "/api/v1/settings"

func (s *Server) registerSettings() {
	s.route(routeDoc{Method: "GET", Path: settingsPath, Summary: "The platform settings (anyone may read them: the sign-in page offers sign-up when signUp is on).",
		Tag: "settings", Public: true}, s.getSettings)
	s.route(routeDoc{Method: "PATCH", Path: settingsPath, Summary: "Change platform settings (platform admins): signUp and " +
		"requireTwoFactor (both off by default).",
		Tag: "settings", Body: settingsPatch{}}, s.patchSettings)
}

// platformSettings reads the settings from the store: the stored JSON values, by key, decoded over the defaults.
func (s *Server) platformSettings(ctx context.Context) (platformSettingsJSON, error) {
	var out platformSettingsJSON
	rows, err := s.store.PlatformSettings(ctx)
	if err != nil {
		return out, err
	}
	object := make(map[string]json.RawMessage, len(rows))
	for key, value := range rows {
		object[key] = json.RawMessage(value)
	}
	b, err := json.Marshal(object)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	return out, err
}

func (s *Server) getSettings(c *fiber.Ctx) error {
	settings, err := s.platformSettings(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(settings)
}

func (s *Server) patchSettings(c *fiber.Ctx) error {
	who, err := requireAdmin(c)
	if err != nil {
		return err
	}
	var req settingsPatch
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if err := s.checkRequireTwoFactor(c.UserContext(), who, req); err != nil {
		return err
	}
	changed := map[string]json.RawMessage{} // the fields the request names (omitempty leaves the others out)
	if err := json.Unmarshal([]byte(mustJSON(req)), &changed); err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		body := map[string]any{}
		for key, value := range changed {
			if err := tx.PutPlatformSetting(ctx, key, string(value)); err != nil {
				return err
			}
			body[key] = value
		}
		return audit(c, tx, who, "", "platform.settings.changed", "settings", "platform", body)
	})
	if err != nil {
		return err
	}
	return s.getSettings(c)
}
