package api

import (
	"regexp"

	"github.com/flowyard/flowyard/domain"
)

// fields collects the columns a create or patch request sets and the field errors found on the way, so each
// object's apply function reads as a list of its fields.
type fields struct {
	cols []string
	errs []domain.FieldError
}

func (f *fields) check(fe *domain.FieldError) {
	if fe != nil {
		f.errs = append(f.errs, *fe)
	}
}

// set runs apply and records the column when the request carries the field.
func (f *fields) set(present bool, column string, apply func()) {
	if present {
		apply()
		f.cols = append(f.cols, column)
	}
}

func (f *fields) required(creating, present bool, field string) {
	if creating && !present {
		f.errs = append(f.errs, domain.FieldError{Field: field, Detail: "is required"})
	}
}

func (f *fields) name(creating bool, v *string, dst *string) {
	f.required(creating, v != nil, "name")
	f.set(v != nil, "name", func() {
		*dst = *v
		f.check(domain.ValidateName("name", *v))
	})
}

func (f *fields) description(v *string, dst *string) {
	f.set(v != nil, "description", func() {
		*dst = *v
		f.check(domain.ValidateDescription("description", *v))
	})
}

func (f *fields) match(field, v string, re *regexp.Regexp, detail string) {
	if !re.MatchString(v) {
		f.errs = append(f.errs, domain.FieldError{Field: field, Detail: detail})
	}
}

func (f *fields) between(field string, v, min, max int) {
	if v < min || v > max {
		f.errs = append(f.errs, domain.FieldError{Field: field, Detail: "must be from " + itoa(min) + " to " + itoa(max)})
	}
}

func (f *fields) result() ([]string, error) {
	if len(f.errs) > 0 {
		return nil, domain.Invalid(f.errs...)
	}
	return f.cols, nil
}
