package domain

import "strconv"

// TeamLimits caps what a team of a team type may hold. Zero means unlimited.
type TeamLimits struct {
	Members          int            `json:"members"`
	Instances        int            `json:"instances"`
	InstancesPerType map[string]int `json:"instancesPerType,omitempty"`
	Devices          int            `json:"devices"`
}

// TeamTypeProperties are the limits and feature switches of a team type.
type TeamTypeProperties struct {
	Limits   TeamLimits      `json:"limits"`
	Features map[string]bool `json:"features,omitempty"`
}

// Exceeds reports whether holding n+1 items would pass a limit (zero = unlimited).
func Exceeds(limit, current int) bool {
	return limit > 0 && current+1 > limit
}

// EnvVar is one environment variable of a template, instance or device group.
type EnvVar struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Locked bool   `json:"locked,omitempty"`
}

// ValidateEnv checks a list of environment variables: valid, unique names and bounded values.
func ValidateEnv(field string, env []EnvVar) []FieldError {
	var errs []FieldError
	seen := map[string]bool{}
	for i, e := range env {
		f := fieldIndex(field, i) + ".name"
		if fe := ValidateEnvName(f, e.Name); fe != nil {
			errs = append(errs, *fe)
			continue
		}
		if seen[e.Name] {
			errs = append(errs, FieldError{Field: f, Detail: "is a duplicate"})
		}
		seen[e.Name] = true
		if len(e.Value) > 32*1024 {
			errs = append(errs, FieldError{Field: fieldIndex(field, i) + ".value", Detail: "must be at most 32 KiB"})
		}
	}
	return errs
}

func fieldIndex(field string, i int) string {
	return field + "[" + strconv.Itoa(i) + "]"
}
