// Package billingtest builds billed teams in a store for tests of billing, its workflows and its API.
package billingtest

import (
	"context"
	"strings"
	"testing"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Prices used by the fixtures.
const (
	PlanPrice     = "price_plan"
	InstancePrice = "price_instance"
	DevicePrice   = "price_device"
)

// Team is a team in a seeded store, with what its instances need.
type Team struct {
	ID, TypeID, InstanceTypeID, ApplicationID, StackID, TemplateID string
	st                                                             *storage.Store
	t                                                              testing.TB
}

// Properties prices a team type: the plan, the default instance type with one free instance, devices
// with two free.
func Properties(instanceTypeID string) domain.TeamTypeProperties {
	return domain.TeamTypeProperties{Billing: domain.TeamBilling{PlanPriceID: PlanPrice,
		InstancePrices: map[string]string{instanceTypeID: InstancePrice}, FreeInstances: map[string]int{instanceTypeID: 1},
		DevicePriceID: DevicePrice, FreeDevices: 2}}
}

// NewTeam seeds the store's defaults and adds a team type (props from Properties, changed by edit) and a
// team of it with one application.
func NewTeam(t testing.TB, st *storage.Store, edit func(*domain.TeamTypeProperties)) *Team {
	t.Helper()
	ctx := context.Background()
	must(t, st.SeedDefaults(ctx))
	its, _, err := storage.ListObjects[storage.InstanceType](ctx, st, storage.Page{})
	must(t, err)
	stacks, _, err := storage.ListObjects[storage.Stack](ctx, st, storage.Page{})
	must(t, err)
	tpls, _, err := storage.ListObjects[storage.Template](ctx, st, storage.Page{})
	must(t, err)
	props := Properties(its[0].ID)
	if edit != nil {
		edit(&props)
	}
	tt := &storage.TeamType{ID: domain.NewID(), Name: "Billed " + domain.NewID(), Active: true, Properties: props}
	must(t, storage.InsertObject(ctx, st, tt))
	team := &storage.Team{ID: domain.NewID(), Name: "Acme", Slug: "acme-" + strings.ToLower(tt.ID[len(tt.ID)-10:]), TeamTypeID: tt.ID}
	must(t, st.InsertTeam(ctx, team))
	app := &storage.Application{ID: domain.NewID(), TeamID: team.ID, Name: "app"}
	must(t, st.InsertApplication(ctx, app))
	return &Team{ID: team.ID, TypeID: tt.ID, InstanceTypeID: its[0].ID, ApplicationID: app.ID, StackID: stacks[0].ID, TemplateID: tpls[0].ID, st: st, t: t}
}

// Subscribe records an active Stripe subscription for the team.
func (tm *Team) Subscribe(subscriptionID string) {
	tm.t.Helper()
	must(tm.t, tm.st.UpsertSubscription(context.Background(), &storage.Subscription{TeamID: tm.ID, Status: "active",
		CustomerID: "cus_" + tm.ID, SubscriptionID: subscriptionID}))
}

// AddInstance adds an instance row in a state and returns its ID.
func (tm *Team) AddInstance(state domain.InstanceState) string {
	tm.t.Helper()
	id := domain.NewID()
	in := &storage.Instance{ID: id, Name: "i" + strings.ToLower(id[len(id)-12:]), ApplicationID: tm.ApplicationID, TeamID: tm.ID,
		InstanceTypeID: tm.InstanceTypeID, StackID: tm.StackID, TemplateID: tm.TemplateID, State: state, DesiredState: domain.InstanceRunning,
		Settings: map[string]any{}, Env: []domain.EnvVar{}, Modules: map[string]string{}}
	must(tm.t, tm.st.InsertInstance(context.Background(), in))
	return in.ID
}

// SetState moves an instance to a state.
func (tm *Team) SetState(instanceID string, state domain.InstanceState) {
	tm.t.Helper()
	_, err := tm.st.SetInstanceState(context.Background(), instanceID, state, "")
	must(tm.t, err)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
