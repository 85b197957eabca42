package nodered

import (
	"fmt"
	"maps"
	"slices"
)

// templateSetting applies one template setting's value to a settings.js
// object and the Node-RED process's environment.
type templateSetting func(value any, settings map[string]any, env map[string]string) error

// templateSettings maps every setting a template may hold (the names of
// domain.TemplateSettingNames) to where Node-RED 4.1 reads it. A template's
// locks are only as good as this table: a name missing here is refused by
// TemplateSettings, never dropped.
var templateSettings = map[string]templateSetting{
	"disableEditor": setAt("disableEditor"),
	"codeEditor":    setAt("editorTheme", "codeEditor", "lib"),
	"theme":         setAt("editorTheme", "theme"),
	"pageTitle":     setAt("editorTheme", "page", "title"),
	"headerTitle":   setAt("editorTheme", "header", "title"),
	// Node-RED has no time zone setting: Node.js reads TZ.
	"timeZone": func(v any, _ map[string]any, env map[string]string) error {
		tz, ok := v.(string)
		if !ok {
			return fmt.Errorf("is %T, not a string", v)
		}
		env["TZ"] = tz
		return nil
	},
	// Uploading a module's tarball is an install too: a template that forbids
	// installs forbids uploads.
	"paletteAllowInstall": func(v any, s map[string]any, _ map[string]string) error {
		if err := setAt("externalModules", "palette", "allowInstall")(v, s, nil); err != nil {
			return err
		}
		if v == false {
			return setAt("externalModules", "palette", "allowUpload")(false, s, nil)
		}
		return nil
	},
	// Node-RED reads a missing list as ["*"] when the other is given, so an
	// allow list alone means "only these", and a deny list alone "all but these".
	"paletteAllowList":        setAt("externalModules", "palette", "allowList"),
	"paletteDenyList":         setAt("externalModules", "palette", "denyList"),
	"modulesAllowInstall":     setAt("externalModules", "modules", "allowInstall"),
	"functionExternalModules": setAt("functionExternalModules"),
	"debugMaxLength":          setAt("debugMaxLength"),
	"apiMaxLength":            setAt("apiMaxLength"),
	"functionTimeout":         setAt("functionTimeout"),
}

// TemplateSettings turns an instance's effective template settings (names
// and JSON values as the platform stores them) into the settings.js keys to
// pass as SettingsParams.Settings, and the variables the Node-RED process
// needs in its environment (TZ). Each value lands where Node-RED reads it,
// so a template's lock (paletteAllowInstall false, a deny list) is enforced
// by Node-RED itself. A setting it does not know is an error that names it.
func TemplateSettings(template map[string]any) (settings map[string]any, env map[string]string, err error) {
	settings, env = map[string]any{}, map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(template)) {
		apply, known := templateSettings[name]
		if !known {
			return nil, nil, fmt.Errorf("template setting %q has no Node-RED setting", name)
		}
		if err := apply(template[name], settings, env); err != nil {
			return nil, nil, fmt.Errorf("template setting %q: %w", name, err)
		}
	}
	return settings, env, nil
}

// setAt returns a templateSetting that stores the value at path, creating
// the objects on the way.
func setAt(path ...string) templateSetting {
	return func(v any, s map[string]any, _ map[string]string) error {
		m := s
		for _, key := range path[:len(path)-1] {
			m = childMap(m, key)
		}
		m[path[len(path)-1]] = v
		return nil
	}
}
