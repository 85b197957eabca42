package snapshotschedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowyard/flowyard/domain"
)

// ParseSpec checks a schedule as a user gives it: either every (a Go duration, at least MinEvery) or cron
// (five fields: minute, hour, day of month, month, day of week, in UTC), not both. The cron minute must be a
// single value, so a cron schedule fires at most hourly; month and weekday names (jan, mon) become numbers.
func ParseSpec(every, cron string) (Spec, *domain.FieldError) {
	every, cron = strings.TrimSpace(every), strings.TrimSpace(cron)
	switch {
	case every == "" && cron == "":
		return Spec{}, &domain.FieldError{Field: "every", Detail: "give every (like \"24h\") or cron (like \"0 3 * * *\")"}
	case every != "" && cron != "":
		return Spec{}, &domain.FieldError{Field: "cron", Detail: "cannot be given together with every"}
	case every != "":
		d, err := time.ParseDuration(every)
		if err != nil || d < MinEvery || d > MaxEvery {
			return Spec{}, &domain.FieldError{Field: "every", Detail: "must be a duration from 1h to 8784h, like \"24h\" or \"90m\""}
		}
		return Spec{Every: d}, nil
	}
	normal, err := normalizeCron(cron)
	if err != nil {
		return Spec{}, &domain.FieldError{Field: "cron", Detail: err.Error()}
	}
	return Spec{Cron: normal}, nil
}

// ValidateKeep checks a retention; nil means DefaultKeep.
func ValidateKeep(keep *int) (int, *domain.FieldError) {
	if keep == nil {
		return DefaultKeep, nil
	}
	if *keep < MinKeep || *keep > MaxKeep {
		return 0, &domain.FieldError{Field: "keep", Detail: fmt.Sprintf("must be from %d to %d", MinKeep, MaxKeep)}
	}
	return *keep, nil
}

// cronField is one field of a cron expression: its name, its range, and the names it accepts.
type cronField struct {
	name     string
	min, max int
	names    []string // names[i] stands for min+i
}

var cronFields = []cronField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{name: "day of week", min: 0, max: 6, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// normalizeCron checks a five-field cron expression and returns it with names replaced by numbers and
// single spaces between fields.
func normalizeCron(cron string) (string, error) {
	parts := strings.Fields(strings.ToLower(cron))
	if len(parts) != len(cronFields) {
		return "", fmt.Errorf("must have five fields (minute hour day-of-month month day-of-week), not %d", len(parts))
	}
	if _, err := strconv.Atoi(parts[0]); err != nil {
		return "", fmt.Errorf("minute must be a single number, so the schedule fires at most hourly")
	}
	for i, f := range cronFields {
		normal, err := f.normalize(parts[i])
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.name, err)
		}
		parts[i] = normal
	}
	return strings.Join(parts, " "), nil
}

// normalize checks a comma-separated list of items: *, a value, or a range a-b, each optionally /step.
func (f cronField) normalize(field string) (string, error) {
	items := strings.Split(field, ",")
	for i, item := range items {
		base, step, stepped := strings.Cut(item, "/")
		if stepped {
			if n, err := strconv.Atoi(step); err != nil || n < 1 || n > f.max {
				return "", fmt.Errorf("step %q must be a number from 1 to %d", step, f.max)
			}
		}
		normal, err := f.normalizeBase(base)
		if err != nil {
			return "", err
		}
		if stepped {
			normal += "/" + step
		}
		items[i] = normal
	}
	return strings.Join(items, ","), nil
}

func (f cronField) normalizeBase(base string) (string, error) {
	if base == "*" {
		return base, nil
	}
	from, to, isRange := strings.Cut(base, "-")
	lo, err := f.value(from)
	if err != nil || !isRange {
		return strconv.Itoa(lo), err
	}
	hi, err := f.value(to)
	if err != nil {
		return "", err
	}
	if hi < lo {
		return "", fmt.Errorf("range %q runs backwards", base)
	}
	return strconv.Itoa(lo) + "-" + strconv.Itoa(hi), nil
}

// value reads a number or a name in the field's range.
func (f cronField) value(s string) (int, error) {
	for i, name := range f.names {
		if s == name {
			return f.min + i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min || n > f.max {
		return 0, fmt.Errorf("%q is not a value from %d to %d", s, f.min, f.max)
	}
	return n, nil
}
