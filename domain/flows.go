package domain

import "regexp"

// Limits on flows and modules supplied by users.
const (
	MaxFlowNodes = 50_000
	MaxModules   = 200
)

var (
	npmNamePattern    = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$`)
	npmVersionPattern = regexp.MustCompile(`^(\*|latest|[~^]?\d+(\.(\d+|x|\*)){0,2}(-[0-9A-Za-z.-]+)?)$`)
)

// ValidateFlows checks that flows are a Node-RED flow list: objects with a string id and type.
func ValidateFlows(field string, flows []any) *FieldError {
	if len(flows) > MaxFlowNodes {
		return &FieldError{Field: field, Detail: "has too many nodes"}
	}
	for i, n := range flows {
		node, ok := n.(map[string]any)
		if !ok {
			return &FieldError{Field: fieldIndex(field, i), Detail: "must be an object"}
		}
		id, idOK := node["id"].(string)
		typ, typeOK := node["type"].(string)
		if !idOK || id == "" || !typeOK || typ == "" {
			return &FieldError{Field: fieldIndex(field, i), Detail: "must have a string id and type"}
		}
	}
	return nil
}

// ValidateModules checks npm module names and version ranges.
func ValidateModules(field string, modules map[string]string) []FieldError {
	if len(modules) > MaxModules {
		return []FieldError{{Field: field, Detail: "lists too many modules"}}
	}
	var errs []FieldError
	for _, name := range sortedKeys(modules) {
		if len(name) > 214 || !npmNamePattern.MatchString(name) || name == "node-red" {
			errs = append(errs, FieldError{Field: field + "." + name, Detail: "is not an npm package name"})
			continue
		}
		if !npmVersionPattern.MatchString(modules[name]) {
			errs = append(errs, FieldError{Field: field + "." + name, Detail: "must be a version or range such as 1.2.3, ^1.2 or *"})
		}
	}
	return errs
}
