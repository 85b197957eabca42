package nodered

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
)

// ModulesAllowed checks the modules the platform installs itself with npm
// (a blueprint's, a restored or imported snapshot's) against the palette
// allow and deny lists of settings (settings.js keys, as TemplateSettings
// returns them), the way Node-RED checks an install from its palette. npm
// runs a module's install scripts, so a module a template denies must be
// refused before npm runs, not only when Node-RED skips loading it.
//
// A rule's version range counts only when the requested version is exact;
// otherwise the rule matches by name, as Node-RED's check does when it has
// no version.
func ModulesAllowed(settings map[string]any, modules map[string]string) error {
	externalModules, _ := settings["externalModules"].(map[string]any)
	palette, _ := externalModules["palette"].(map[string]any)
	allowList, hasAllow := stringList(palette["allowList"])
	denyList, hasDeny := stringList(palette["denyList"])
	if !hasAllow && !hasDeny {
		return nil
	}
	// Node-RED reads a missing list as ["*"] when the other one is given.
	if !hasAllow {
		allowList = []string{"*"}
	}
	if !hasDeny {
		denyList = []string{"*"}
	}
	allow, deny := parseModuleRules(allowList), parseModuleRules(denyList)
	var refused []string
	for _, name := range slices.Sorted(maps.Keys(modules)) {
		if !moduleAllowed(name, modules[name], allow, deny) {
			refused = append(refused, name)
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("the template's palette lists (paletteAllowList, paletteDenyList) refuse module %s", strings.Join(refused, ", "))
	}
	return nil
}

// moduleRule is one palette list entry: a name pattern and an optional
// version range.
type moduleRule struct {
	pattern      *regexp.Regexp
	length       int // of Node-RED's regular expression, its tie-break
	versionRange string
	wildcardPos  float64 // index of the first *, +Inf without one
}

var moduleRuleParts = regexp.MustCompile(`^(.+?)(?:@(.*))?$`)

func parseModuleRules(list []string) []moduleRule {
	rules := make([]moduleRule, 0, len(list))
	for _, entry := range list {
		m := moduleRuleParts.FindStringSubmatch(entry)
		if m == nil {
			continue // an empty entry matches nothing
		}
		pos := math.Inf(1)
		if i := strings.Index(m[1], "*"); i >= 0 {
			pos = float64(i)
		}
		rules = append(rules, moduleRule{pattern: namePattern(m[1]), length: len("/^" + strings.ReplaceAll(m[1], "*", ".*") + "$/"),
			versionRange: m[2], wildcardPos: pos})
	}
	return rules
}

// namePattern matches names as Node-RED's pattern for a list entry does: it
// pastes the entry into a regular expression with * turned into .*, so a "."
// matches any character. Any other special character is quoted here (the
// platform refuses them when a template is saved; Node-RED would fail to
// start on some).
func namePattern(name string) *regexp.Regexp {
	var expr strings.Builder
	expr.WriteString("^")
	for _, r := range name {
		switch r {
		case '*':
			expr.WriteString(".*")
		case '.':
			expr.WriteString(".")
		default:
			expr.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	expr.WriteString("$")
	return regexp.MustCompile(expr.String())
}

// firstMatch returns the first rule that matches the module, like
// Node-RED's checkAgainstList.
func firstMatch(name, version string, rules []moduleRule) *moduleRule {
	for i, r := range rules {
		if !r.pattern.MatchString(name) {
			continue
		}
		if r.versionRange == "" || !isExactVersion(version) {
			return &rules[i]
		}
		if ok, err := satisfiesRange(version, r.versionRange); ok || err != nil {
			return &rules[i]
		}
	}
	return nil
}

// moduleAllowed decides as Node-RED's checkModuleAllowed: a module that
// matches neither list is allowed; when both match, the rule whose first
// wildcard comes later (the more specific one) wins, then the longer one.
func moduleAllowed(name, version string, allow, deny []moduleRule) bool {
	if len(allow) == 0 && len(deny) == 0 {
		return true
	}
	a, d := firstMatch(name, version, allow), firstMatch(name, version, deny)
	switch {
	case d == nil:
		return true
	case a == nil:
		return false
	case a.wildcardPos != d.wildcardPos:
		return a.wildcardPos > d.wildcardPos
	default:
		return a.length > d.length
	}
}

var exactVersionPattern = regexp.MustCompile(`^v?\d+\.\d+\.\d+$`)

func isExactVersion(v string) bool { return exactVersionPattern.MatchString(v) }

// stringList reads a list of strings from a settings value ([]any from
// JSON, or []string); ok is false when there is no list.
func stringList(v any) (list []string, ok bool) {
	switch l := v.(type) {
	case []string:
		return l, true
	case []any:
		for _, item := range l {
			if s, isString := item.(string); isString {
				list = append(list, s)
			}
		}
		return list, true
	}
	return nil, false
}
