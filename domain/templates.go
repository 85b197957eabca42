package domain

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"
	_ "time/tzdata" // time zones are checked the same on a host without a zoneinfo database
)

// settingKind is the JSON type a template setting holds.
type settingKind int

const (
	settingBool settingKind = iota
	settingString
	settingNumber
	settingStringList
)

// templateSettings are the Node-RED settings a template may hold, with their types. Flowyard renders each one
// into settings.js; anything else (ports, credential secret, admin auth, storage) belongs to the platform.
var templateSettings = map[string]settingKind{
	"disableEditor":           settingBool,
	"codeEditor":              settingString,
	"theme":                   settingString,
	"pageTitle":               settingString,
	"headerTitle":             settingString,
	"timeZone":                settingString,
	"paletteAllowInstall":     settingBool,
	"paletteAllowList":        settingStringList,
	"paletteDenyList":         settingStringList,
	"modulesAllowInstall":     settingBool,
	"debugMaxLength":          settingNumber,
	"apiMaxLength":            settingString,
	"functionExternalModules": settingBool,
	"functionTimeout":         settingNumber,
}

// valueRule is what a setting's value must be, beyond its type, for Node-RED to apply it as meant.
type valueRule struct {
	valid func(v any) bool
	want  string
}

// valueRules refuse, when a template or an instance is saved, values Node-RED would not apply as meant: an
// unknown time zone runs in UTC without a word, an unknown code editor falls back to the default, and
// Node-RED turns each palette list entry into a regular expression, so a stray "(" would stop it from
// starting and a "+" would change what the entry matches.
var valueRules = map[string]valueRule{
	"apiMaxLength":     {matches(regexp.MustCompile(`^\d{1,6}(kb|mb)$`)), `a size such as "5mb" or "500kb"`},
	"timeZone":         {isTimeZone, `an IANA time zone such as "Europe/Paris" or "UTC"`},
	"codeEditor":       {oneOf("monaco", "ace"), `"monaco" or "ace"`},
	"paletteAllowList": {allMatch(moduleRulePattern), moduleRuleWant},
	"paletteDenyList":  {allMatch(moduleRulePattern), moduleRuleWant},
}

// moduleRulePattern is one entry of a palette list: an npm package name, which may hold * wildcards, and
// an optional @version range.
var moduleRulePattern = regexp.MustCompile(`^(@[A-Za-z0-9*._~-]+/)?[A-Za-z0-9*._~-]+(@[0-9A-Za-z.*^~<>=| +-]+)?$`)

const moduleRuleWant = `a list of npm module names, with * wildcards and an optional @version range ("node-red-contrib-*", "@scope/name@^2")`

func matches(pattern *regexp.Regexp) func(any) bool {
	return func(v any) bool { return pattern.MatchString(v.(string)) }
}

func oneOf(allowed ...string) func(any) bool {
	return func(v any) bool { return slices.Contains(allowed, v.(string)) }
}

func allMatch(pattern *regexp.Regexp) func(any) bool {
	return func(v any) bool {
		for _, item := range v.([]any) {
			if !pattern.MatchString(item.(string)) {
				return false
			}
		}
		return true
	}
}

// isTimeZone accepts the names of the IANA time zone database, which Node.js reads from TZ. "Local" is Go's
// name for the machine's zone, not a zone.
func isTimeZone(v any) bool {
	name := v.(string)
	if name == "" || name == "Local" {
		return false
	}
	_, err := time.LoadLocation(name)
	return err == nil
}

// TemplateSettingNames lists the settings a template may hold, sorted.
func TemplateSettingNames() []string {
	names := make([]string, 0, len(templateSettings))
	for n := range templateSettings {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ValidateSettings checks each setting's name and type.
func ValidateSettings(field string, settings map[string]any) []FieldError {
	var errs []FieldError
	for _, name := range sortedKeys(settings) {
		if fe := validateSetting(field+"."+name, name, settings[name]); fe != nil {
			errs = append(errs, *fe)
		}
	}
	return errs
}

func validateSetting(field, name string, v any) *FieldError {
	kind, known := templateSettings[name]
	if !known {
		return &FieldError{Field: field, Detail: "is not a setting Flowyard manages"}
	}
	ok := false
	switch kind {
	case settingBool:
		_, ok = v.(bool)
	case settingString:
		var s string
		s, ok = v.(string)
		ok = ok && len(s) <= 500
	case settingNumber:
		var f float64
		f, ok = v.(float64)
		ok = ok && f >= 0 && f <= 1e9
	case settingStringList:
		ok = isStringList(v)
	}
	if !ok {
		return &FieldError{Field: field, Detail: fmt.Sprintf("must be %s", kindName(kind))}
	}
	if rule, has := valueRules[name]; has && !rule.valid(v) {
		return &FieldError{Field: field, Detail: "must be " + rule.want}
	}
	return nil
}

func isStringList(v any) bool {
	list, ok := v.([]any)
	if !ok || len(list) > 200 {
		return false
	}
	for _, item := range list {
		if s, ok := item.(string); !ok || len(s) > 214 {
			return false
		}
	}
	return true
}

func kindName(k settingKind) string {
	switch k {
	case settingBool:
		return "true or false"
	case settingString:
		return "a string of at most 500 characters"
	case settingNumber:
		return "a number from 0 to 1e9"
	}
	return "a list of strings"
}

// ValidatePolicy checks that a policy names only known settings. true means an instance may override the
// setting; false locks it to the template's value; a setting missing from the policy may be overridden.
func ValidatePolicy(field string, policy map[string]bool) []FieldError {
	var errs []FieldError
	for _, name := range sortedKeys(policy) {
		if _, known := templateSettings[name]; !known {
			errs = append(errs, FieldError{Field: field + "." + name, Detail: "is not a setting Flowyard manages"})
		}
	}
	return errs
}

// MergeSettings lays an instance's overrides over its template's settings. Overriding a locked setting is an
// error naming it, never a silent drop, so a user knows their value was not taken.
func MergeSettings(template map[string]any, policy map[string]bool, overrides map[string]any) (map[string]any, error) {
	if errs := ValidateSettings("settings", overrides); errs != nil {
		return nil, Invalid(errs...)
	}
	merged := make(map[string]any, len(template)+len(overrides))
	for k, v := range template {
		merged[k] = v
	}
	var locked []FieldError
	for _, name := range sortedKeys(overrides) {
		if allowed, listed := policy[name]; listed && !allowed {
			locked = append(locked, FieldError{Field: "settings." + name, Detail: "is locked by the template"})
			continue
		}
		merged[name] = overrides[name]
	}
	if locked != nil {
		return nil, Unprocessable("setting_locked", "The template locks "+locked[0].Field+".", locked...)
	}
	return merged, nil
}

// MergeEnv lays an instance's environment variables over its template's. A locked template variable cannot
// be set by the instance.
func MergeEnv(template, overrides []EnvVar) ([]EnvVar, error) {
	if errs := ValidateEnv("env", overrides); errs != nil {
		return nil, Invalid(errs...)
	}
	index := map[string]int{}
	merged := make([]EnvVar, 0, len(template)+len(overrides))
	for _, e := range template {
		index[e.Name] = len(merged)
		merged = append(merged, e)
	}
	var locked []FieldError
	for _, e := range overrides {
		i, exists := index[e.Name]
		switch {
		case exists && merged[i].Locked:
			locked = append(locked, FieldError{Field: "env." + e.Name, Detail: "is locked by the template"})
		case exists:
			merged[i].Value = e.Value
		default:
			index[e.Name] = len(merged)
			merged = append(merged, EnvVar{Name: e.Name, Value: e.Value})
		}
	}
	if locked != nil {
		return nil, Unprocessable("env_locked", "The template locks "+locked[0].Field+".", locked...)
	}
	return merged, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
