package domain

import "strconv"

// TeamLimits caps what a team of a team type may hold. Zero means unlimited.
type TeamLimits struct {
	Members          int            `json:"members"`
	Instances        int            `json:"instances"`
	InstancesPerType map[string]int `json:"instancesPerType,omitempty"`
	Devices          int            `json:"devices"`
}

// TeamTypeProperties are the limits, feature switches, billing and trial of a team type.
type TeamTypeProperties struct {
	Limits   TeamLimits      `json:"limits"`
	Features map[string]bool `json:"features,omitempty"`
	Billing  TeamBilling     `json:"billing,omitzero"`
	Trial    TeamTrial       `json:"trial,omitzero"`
}

// TeamBilling prices a team type in Stripe. A team type without a price of any kind, or with Disabled set,
// is not billed: its teams need no subscription.
type TeamBilling struct {
	Disabled       bool              `json:"disabled,omitempty"`
	PlanPriceID    string            `json:"planPriceId,omitempty"`    // the team's plan, quantity 1
	InstancePrices map[string]string `json:"instancePrices,omitempty"` // instance type ID -> Stripe price
	FreeInstances  map[string]int    `json:"freeInstances,omitempty"`  // instance type ID -> instances not billed
	DevicePriceID  string            `json:"devicePriceId,omitempty"`
	FreeDevices    int               `json:"freeDevices,omitempty"`
	// Proration is Stripe's proration_behavior for quantity changes: always_invoice (the default),
	// create_prorations or none.
	Proration string `json:"proration,omitempty"`
}

// Billed reports whether teams of the type need a subscription.
func (b TeamBilling) Billed() bool {
	return !b.Disabled && (b.PlanPriceID != "" || b.DevicePriceID != "" || len(b.InstancePrices) > 0)
}

// What happens to a team's instances when its trial ends without a subscription.
const (
	TrialEndSuspend = "suspend" // suspend every instance (the default)
	TrialEndKeep    = "keep"    // leave them running; only new instances and starts are refused
)

// TeamTrial lets new teams of a type run without a subscription for a while.
type TeamTrial struct {
	Days           int    `json:"days,omitempty"`           // 0 = no trial
	InstanceTypeID string `json:"instanceTypeId,omitempty"` // when set, the trial allows one instance of this type
	OnEnd          string `json:"onEnd,omitempty"`          // TrialEndSuspend (default) or TrialEndKeep
}

// SuspendsAtEnd reports whether the trial's end suspends the team's instances.
func (t TeamTrial) SuspendsAtEnd() bool { return t.OnEnd != TrialEndKeep }

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

// ValidateBillingAndTrial checks a team type's billing and trial settings.
func ValidateBillingAndTrial(p TeamTypeProperties) *FieldError {
	b, t := p.Billing, p.Trial
	switch {
	case b.FreeDevices < 0:
		return &FieldError{Field: "properties.billing.freeDevices", Detail: "must be 0 or more"}
	case b.Proration != "" && b.Proration != "always_invoice" && b.Proration != "create_prorations" && b.Proration != "none":
		return &FieldError{Field: "properties.billing.proration", Detail: "must be always_invoice, create_prorations or none"}
	case t.Days < 0 || t.Days > 366:
		return &FieldError{Field: "properties.trial.days", Detail: "must be from 0 to 366"}
	case t.OnEnd != "" && t.OnEnd != TrialEndSuspend && t.OnEnd != TrialEndKeep:
		return &FieldError{Field: "properties.trial.onEnd", Detail: "must be suspend or keep"}
	}
	for _, n := range b.FreeInstances {
		if n < 0 {
			return &FieldError{Field: "properties.billing.freeInstances", Detail: "must be 0 or more"}
		}
	}
	return nil
}
