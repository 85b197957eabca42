package api

import (
	"context"
	"slices"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// --- team types

type teamTypeRequest struct {
	Name        *string `json:"name"`
	Description *string `json:"description,omitempty"`
	Active      *bool   `json:"active,omitempty"`
	// SelfService lets team owners choose the type for their teams; without it (the default) only platform
	// admins put teams on it.
	SelfService *bool                      `json:"selfService,omitempty"`
	Properties  *domain.TeamTypeProperties `json:"properties,omitempty"`
}

type teamTypeJSON struct {
	ID          string                    `json:"id"`
	Name        string                    `json:"name"`
	Description string                    `json:"description"`
	Active      bool                      `json:"active"`
	SelfService bool                      `json:"selfService"`
	Properties  domain.TeamTypeProperties `json:"properties"`
	CreatedAt   time.Time                 `json:"createdAt"`
}

func teamTypeRoutes() objectRoutes[storage.TeamType, *storage.TeamType, teamTypeRequest, teamTypeRequest, teamTypeJSON] {
	return objectRoutes[storage.TeamType, *storage.TeamType, teamTypeRequest, teamTypeRequest, teamTypeJSON]{
		path: "/api/v1/team-types", tag: "team-types", param: "teamTypeId",
		build: func(ctx context.Context, req *teamTypeRequest) (*storage.TeamType, error) {
			t := &storage.TeamType{ID: domain.NewID(), Active: true}
			_, err := applyTeamType(t, req, true)
			return t, err
		},
		apply: func(ctx context.Context, t *storage.TeamType, req *teamTypeRequest) ([]string, error) {
			return applyTeamType(t, req, false)
		},
		view: func(t *storage.TeamType) teamTypeJSON {
			return teamTypeJSON{ID: t.ID, Name: t.Name, Description: t.Description, Active: t.Active, SelfService: t.SelfService,
				Properties: t.Properties, CreatedAt: t.CreatedAt}
		},
		usedBy: []usage{{"teams", "team_type_id", "teams"}, {"blueprint_team_types", "team_type_id", "blueprints"}},
	}
}

func applyTeamType(t *storage.TeamType, req *teamTypeRequest, creating bool) ([]string, error) {
	var f fields
	f.name(creating, req.Name, &t.Name)
	f.description(req.Description, &t.Description)
	f.set(req.Active != nil, "active", func() { t.Active = *req.Active })
	f.set(req.SelfService != nil, "self_service", func() { t.SelfService = *req.SelfService })
	f.set(req.Properties != nil, "properties", func() {
		t.Properties = *req.Properties
		f.check(validateLimits(t.Properties.Limits))
		f.check(domain.ValidateBillingAndTrial(t.Properties))
	})
	return f.result()
}

func validateLimits(l domain.TeamLimits) *domain.FieldError {
	if l.Members < 0 || l.Instances < 0 || l.Devices < 0 {
		return &domain.FieldError{Field: "properties.limits", Detail: "limits must be 0 (unlimited) or more"}
	}
	for _, n := range l.InstancesPerType {
		if n < 0 {
			return &domain.FieldError{Field: "properties.limits.instancesPerType", Detail: "limits must be 0 (unlimited) or more"}
		}
	}
	return nil
}

// --- instance types

type instanceTypeRequest struct {
	Name        *string         `json:"name"`
	Description *string         `json:"description,omitempty"`
	Active      *bool           `json:"active,omitempty"`
	Properties  *map[string]any `json:"properties,omitempty"`
	// ContextLimitKB is how much persistent context each instance of the type may keep, in KiB (0: none;
	// default 1024).
	ContextLimitKB *int `json:"contextLimitKB,omitempty"`
}

type instanceTypeJSON struct {
	ID             string         `json:"id"`
	Name           string         `json:"name"`
	Description    string         `json:"description"`
	Active         bool           `json:"active"`
	Properties     map[string]any `json:"properties"`
	ContextLimitKB int            `json:"contextLimitKB"`
	CreatedAt      time.Time      `json:"createdAt"`
}

// maxContextLimitKB caps an instance type's persistent context: the context plugin holds it all in memory
// and reads it whole when Node-RED starts.
const maxContextLimitKB = 64 << 10

func instanceTypeRoutes(s *Server) objectRoutes[storage.InstanceType, *storage.InstanceType, instanceTypeRequest, instanceTypeRequest, instanceTypeJSON] {
	apply := func(t *storage.InstanceType, req *instanceTypeRequest, creating bool) ([]string, error) {
		var f fields
		f.name(creating, req.Name, &t.Name)
		f.description(req.Description, &t.Description)
		f.set(req.Active != nil, "active", func() { t.Active = *req.Active })
		f.set(req.Properties != nil, "properties", func() { t.Properties = *req.Properties })
		f.set(req.ContextLimitKB != nil, "context_limit_kb", func() {
			t.ContextLimitKB = *req.ContextLimitKB
			f.between("contextLimitKB", t.ContextLimitKB, 0, maxContextLimitKB)
		})
		return f.result()
	}
	return objectRoutes[storage.InstanceType, *storage.InstanceType, instanceTypeRequest, instanceTypeRequest, instanceTypeJSON]{
		path: "/api/v1/instance-types", tag: "instance-types", param: "instanceTypeId",
		build: func(ctx context.Context, req *instanceTypeRequest) (*storage.InstanceType, error) {
			t := &storage.InstanceType{ID: domain.NewID(), Active: true, Properties: map[string]any{}, ContextLimitKB: storage.DefaultContextLimitKB}
			_, err := apply(t, req, true)
			return t, err
		},
		apply: func(ctx context.Context, t *storage.InstanceType, req *instanceTypeRequest) ([]string, error) {
			return apply(t, req, false)
		},
		view: func(t *storage.InstanceType) instanceTypeJSON {
			return instanceTypeJSON{ID: t.ID, Name: t.Name, Description: t.Description, Active: t.Active, Properties: t.Properties,
				ContextLimitKB: t.ContextLimitKB, CreatedAt: t.CreatedAt}
		},
		usedBy: append([]usage{{"stacks", "instance_type_id", "stacks"}}, instanceTypeUsers...),
	}
}

// instanceTypeUsers, stackUsers, templateUsers and blueprintUsers grow as later tables refer to these objects.
var (
	instanceTypeUsers = []usage{{"instances", "instance_type_id", "instances"}}
	stackUsers        = []usage{{"instances", "stack_id", "instances"}}
	templateUsers     = []usage{{"instances", "template_id", "instances"}}
	blueprintUsers    = []usage{{"instances", "blueprint_id", "instances"}}
)

// --- stacks

type stackRequest struct {
	Name           *string `json:"name"`
	NodeRedVersion *string `json:"nodeRedVersion"`
	NodeVersion    *string `json:"nodeVersion,omitempty"`
	MemoryMB       *int    `json:"memoryMB"`
	CPUPercent     *int    `json:"cpuPercent"`
	InstanceTypeID *string `json:"instanceTypeId,omitempty"`
	Active         *bool   `json:"active,omitempty"`
}

type stackJSON struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	NodeRedVersion string    `json:"nodeRedVersion"`
	NodeVersion    string    `json:"nodeVersion,omitempty"`
	MemoryMB       int       `json:"memoryMB"`
	CPUPercent     int       `json:"cpuPercent"`
	InstanceTypeID *string   `json:"instanceTypeId"`
	Active         bool      `json:"active"`
	CreatedAt      time.Time `json:"createdAt"`
}

func stackRoutes(s *Server) objectRoutes[storage.Stack, *storage.Stack, stackRequest, stackRequest, stackJSON] {
	apply := func(ctx context.Context, st *storage.Stack, req *stackRequest, creating bool) ([]string, error) {
		var f fields
		f.name(creating, req.Name, &st.Name)
		f.required(creating, req.NodeRedVersion != nil, "nodeRedVersion")
		f.set(req.NodeRedVersion != nil, "node_red_version", func() {
			st.NodeRedVersion = *req.NodeRedVersion
			f.match("nodeRedVersion", st.NodeRedVersion, versionPattern, "must be an exact version such as 4.1.15")
		})
		f.set(req.NodeVersion != nil, "node_version", func() {
			st.NodeVersion = *req.NodeVersion
			if st.NodeVersion != "" {
				f.match("nodeVersion", st.NodeVersion, nodeVersionPattern, "must be a version such as 22 or 22.23.3")
			}
		})
		f.required(creating, req.MemoryMB != nil, "memoryMB")
		f.set(req.MemoryMB != nil, "memory_mb", func() {
			st.MemoryMB = *req.MemoryMB
			f.between("memoryMB", st.MemoryMB, 128, 65536)
		})
		f.required(creating, req.CPUPercent != nil, "cpuPercent")
		f.set(req.CPUPercent != nil, "cpu_percent", func() {
			st.CPUPercent = *req.CPUPercent
			f.between("cpuPercent", st.CPUPercent, 1, 800)
		})
		f.set(req.Active != nil, "active", func() { st.Active = *req.Active })
		if req.InstanceTypeID != nil {
			if err := exists[storage.InstanceType](ctx, s.store, "instanceTypeId", *req.InstanceTypeID); err != nil {
				return nil, err
			}
			st.InstanceTypeID = req.InstanceTypeID
			f.cols = append(f.cols, "instance_type_id")
		}
		return f.result()
	}
	return objectRoutes[storage.Stack, *storage.Stack, stackRequest, stackRequest, stackJSON]{
		path: "/api/v1/stacks", tag: "stacks", param: "stackId",
		build: func(ctx context.Context, req *stackRequest) (*storage.Stack, error) {
			st := &storage.Stack{ID: domain.NewID(), Active: true}
			_, err := apply(ctx, st, req, true)
			return st, err
		},
		apply: func(ctx context.Context, st *storage.Stack, req *stackRequest) ([]string, error) {
			return apply(ctx, st, req, false)
		},
		view: func(st *storage.Stack) stackJSON {
			return stackJSON{ID: st.ID, Name: st.Name, NodeRedVersion: st.NodeRedVersion, NodeVersion: st.NodeVersion, MemoryMB: st.MemoryMB,
				CPUPercent: st.CPUPercent, InstanceTypeID: st.InstanceTypeID, Active: st.Active, CreatedAt: st.CreatedAt}
		},
		usedBy: stackUsers,
	}
}

// --- templates

type templateRequest struct {
	Name        *string          `json:"name"`
	Description *string          `json:"description,omitempty"`
	Active      *bool            `json:"active,omitempty"`
	Settings    *map[string]any  `json:"settings,omitempty"`
	Policy      *map[string]bool `json:"policy,omitempty"`
	Env         *[]domain.EnvVar `json:"env,omitempty"`
}

type templateJSON struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Active      bool            `json:"active"`
	Settings    map[string]any  `json:"settings"`
	Policy      map[string]bool `json:"policy"`
	Env         []domain.EnvVar `json:"env"`
	CreatedAt   time.Time       `json:"createdAt"`
}

func templateRoutes() objectRoutes[storage.Template, *storage.Template, templateRequest, templateRequest, templateJSON] {
	apply := func(t *storage.Template, req *templateRequest, creating bool) ([]string, error) {
		var f fields
		f.name(creating, req.Name, &t.Name)
		f.description(req.Description, &t.Description)
		f.set(req.Active != nil, "active", func() { t.Active = *req.Active })
		f.set(req.Settings != nil, "settings", func() {
			t.Settings = *req.Settings
			f.errs = append(f.errs, domain.ValidateSettings("settings", t.Settings)...)
		})
		f.set(req.Policy != nil, "policy", func() {
			t.Policy = *req.Policy
			f.errs = append(f.errs, domain.ValidatePolicy("policy", t.Policy)...)
		})
		f.set(req.Env != nil, "env", func() {
			t.Env = *req.Env
			f.errs = append(f.errs, domain.ValidateEnv("env", t.Env)...)
		})
		return f.result()
	}
	return objectRoutes[storage.Template, *storage.Template, templateRequest, templateRequest, templateJSON]{
		path: "/api/v1/templates", tag: "templates", param: "templateId",
		build: func(ctx context.Context, req *templateRequest) (*storage.Template, error) {
			t := &storage.Template{ID: domain.NewID(), Active: true, Settings: map[string]any{}, Policy: map[string]bool{}, Env: []domain.EnvVar{}}
			_, err := apply(t, req, true)
			return t, err
		},
		apply: func(ctx context.Context, t *storage.Template, req *templateRequest) ([]string, error) {
			return apply(t, req, false)
		},
		view: func(t *storage.Template) templateJSON {
			return templateJSON{ID: t.ID, Name: t.Name, Description: t.Description, Active: t.Active, Settings: t.Settings,
				Policy: t.Policy, Env: t.Env, CreatedAt: t.CreatedAt}
		},
		usedBy: templateUsers,
	}
}

// --- blueprints

type blueprintRequest struct {
	Name        *string            `json:"name"`
	Description *string            `json:"description,omitempty"`
	Flows       *[]any             `json:"flows,omitempty"`
	Modules     *map[string]string `json:"modules,omitempty"`
	// TeamTypeIDs are the team types whose teams may create instances from the blueprint; [] (the default):
	// every team type.
	TeamTypeIDs *[]string `json:"teamTypeIds,omitempty"`
}

type blueprintJSON struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Flows       []any             `json:"flows"`
	Modules     map[string]string `json:"modules"`
	TeamTypeIDs []string          `json:"teamTypeIds"`
	CreatedAt   time.Time         `json:"createdAt"`
}

// blueprintTeamTypes is what apply reports when a blueprint's team types change (blueprint_team_types).
const blueprintTeamTypes = "team_types"

func blueprintView(b *storage.Blueprint) blueprintJSON {
	return blueprintJSON{ID: b.ID, Name: b.Name, Description: b.Description, Flows: b.Flows, Modules: b.Modules,
		TeamTypeIDs: b.TeamTypeIDs, CreatedAt: b.CreatedAt}
}

func blueprintRoutes() objectRoutes[storage.Blueprint, *storage.Blueprint, blueprintRequest, blueprintRequest, blueprintJSON] {
	apply := func(b *storage.Blueprint, req *blueprintRequest, creating bool) ([]string, error) {
		var f fields
		f.name(creating, req.Name, &b.Name)
		f.description(req.Description, &b.Description)
		f.set(req.Flows != nil, "flows", func() {
			b.Flows = *req.Flows
			f.check(domain.ValidateFlows("flows", b.Flows))
		})
		f.set(req.Modules != nil, "modules", func() {
			b.Modules = *req.Modules
			f.errs = append(f.errs, domain.ValidateModules("modules", b.Modules)...)
		})
		f.set(req.TeamTypeIDs != nil, blueprintTeamTypes, func() {
			b.TeamTypeIDs = slices.Compact(slices.Sorted(slices.Values(*req.TeamTypeIDs)))
		})
		return f.result()
	}
	return objectRoutes[storage.Blueprint, *storage.Blueprint, blueprintRequest, blueprintRequest, blueprintJSON]{
		path: "/api/v1/blueprints", tag: "blueprints", param: "blueprintId",
		build: func(ctx context.Context, req *blueprintRequest) (*storage.Blueprint, error) {
			b := &storage.Blueprint{ID: domain.NewID(), Flows: []any{}, Modules: map[string]string{}}
			_, err := apply(b, req, true)
			return b, err
		},
		apply: func(ctx context.Context, b *storage.Blueprint, req *blueprintRequest) ([]string, error) {
			return apply(b, req, false)
		},
		view:          blueprintView,
		usedBy:        blueprintUsers,
		related:       writeBlueprintTeamTypes,
		relatedFields: []string{blueprintTeamTypes},
		load: func(ctx context.Context, st *storage.Store, bs ...*storage.Blueprint) error {
			return st.LoadBlueprintTeamTypes(ctx, bs...)
		},
	}
}

// writeBlueprintTeamTypes stores the team types a blueprint is offered to, each one an existing team type.
func writeBlueprintTeamTypes(ctx context.Context, tx *storage.Store, b *storage.Blueprint) error {
	if b.TeamTypeIDs == nil {
		b.TeamTypeIDs = []string{}
	}
	for _, id := range b.TeamTypeIDs {
		if err := exists[storage.TeamType](ctx, tx, "teamTypeIds", id); err != nil {
			return err
		}
	}
	return tx.SetBlueprintTeamTypes(ctx, b.ID, b.TeamTypeIDs)
}
