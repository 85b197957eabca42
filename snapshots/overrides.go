package snapshots

import (
	"reflect"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Overrides turns a snapshot's effective settings and env back into an instance's own values over template
// tpl: what the template locks is left to the template (it may have changed since the capture), what the
// template already gives with the same value is not repeated, and settings Flowyard does not manage are
// dropped. Env not in the snapshot is gone afterwards: the snapshot's list replaces the instance's.
func Overrides(tpl *storage.Template, settings map[string]any, env []domain.EnvVar) (map[string]any, []domain.EnvVar, error) {
	outSettings := map[string]any{}
	for name, v := range settings {
		if domain.ValidateSettings("settings", map[string]any{name: v}) != nil {
			continue
		}
		if allowed, listed := tpl.Policy[name]; listed && !allowed {
			continue
		}
		if tv, ok := tpl.Settings[name]; ok && reflect.DeepEqual(tv, v) {
			continue
		}
		outSettings[name] = v
	}
	fromTemplate := make(map[string]domain.EnvVar, len(tpl.Env))
	for _, e := range tpl.Env {
		fromTemplate[e.Name] = e
	}
	outEnv := []domain.EnvVar{}
	for _, e := range env {
		if t, ok := fromTemplate[e.Name]; ok && (t.Locked || t.Value == e.Value) {
			continue
		}
		outEnv = append(outEnv, domain.EnvVar{Name: e.Name, Value: e.Value})
	}
	// The result must start: check it as the driver's spec will.
	if _, err := domain.MergeSettings(tpl.Settings, tpl.Policy, outSettings); err != nil {
		return nil, nil, err
	}
	if _, err := domain.MergeEnv(tpl.Env, outEnv); err != nil {
		return nil, nil, err
	}
	return outSettings, outEnv, nil
}
