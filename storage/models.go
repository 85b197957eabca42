package storage

import (
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// User is a person who signs in.
type User struct {
	bun.BaseModel `bun:"table:users,alias:u"`
	ID            string `bun:",pk"`
	Email         string
	Name          string
	PasswordHash  string
	Admin         bool
	// PasswordChangeRequired holds the user to changing the password before anything else (a generated one).
	PasswordChangeRequired bool
	CreatedAt              time.Time
	UpdatedAt              time.Time
	// SuspendedAt is when a platform admin suspended the account; nil while it is active.
	SuspendedAt *time.Time
	// EmailUnverified marks an account made by sign-up whose address has not been confirmed yet.
	EmailUnverified bool
}

// Session is a signed-in browser; only the hash of its cookie value is stored.
type Session struct {
	bun.BaseModel `bun:"table:sessions"`
	TokenHash     string `bun:",pk"`
	UserID        string
	ExpiresAt     time.Time
	CreatedAt     time.Time
}

// Token is a bearer token of some kind (personal, device, provisioning, instance); only its hash is stored.
type Token struct {
	bun.BaseModel `bun:"table:tokens"`
	ID            string `bun:",pk"`
	TokenHash     string
	Kind          string
	Name          string
	OwnerType     string
	OwnerID       string
	TeamID        *string
	Scopes        []string `bun:",type:text"`
	ExpiresAt     *time.Time
	LastUsedAt    *time.Time
	CreatedAt     time.Time
}

// TeamType sets the limits and features of the teams of its type.
type TeamType struct {
	bun.BaseModel `bun:"table:team_types"`
	ID            string `bun:",pk"`
	Name          string
	Description   string
	Active        bool
	SelfService   bool                      // team owners may choose it; other types only platform admins assign
	Properties    domain.TeamTypeProperties `bun:",type:text"`
	Stamps
}

// Team owns applications and has members.
type Team struct {
	bun.BaseModel `bun:"table:teams"`
	ID            string `bun:",pk"`
	Name          string
	Slug          string
	TeamTypeID    string
	Suspended     bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Membership is a user's role in a team.
type Membership struct {
	bun.BaseModel `bun:"table:memberships"`
	TeamID        string `bun:",pk"`
	UserID        string `bun:",pk"`
	Role          domain.Role
	CreatedAt     time.Time
}

// Member is a membership joined with its user, for listings.
type Member struct {
	UserID    string
	Email     string
	Name      string
	Role      domain.Role
	CreatedAt time.Time
}

// Application groups a team's instances and devices.
type Application struct {
	bun.BaseModel `bun:"table:applications"`
	ID            string `bun:",pk"`
	TeamID        string
	Name          string
	Description   string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// InstanceType is a class of hosted instance (billing and limits are per type).
type InstanceType struct {
	bun.BaseModel `bun:"table:instance_types"`
	ID            string `bun:",pk"`
	Name          string
	Description   string
	Active        bool
	Properties    map[string]any `bun:",type:text"`
	// ContextLimitKB is how much persistent context an instance of the type may keep (0: none).
	ContextLimitKB int `bun:"context_limit_kb"`
	Stamps
}

// DefaultContextLimitKB is an instance type's persistent context limit unless an admin sets another.
const DefaultContextLimitKB = 1024

// Stack fixes the Node-RED (and Node.js) version and the resources of the instances on it.
type Stack struct {
	bun.BaseModel  `bun:"table:stacks"`
	ID             string `bun:",pk"`
	Name           string
	NodeRedVersion string
	NodeVersion    string
	MemoryMB       int `bun:"memory_mb"`
	CPUPercent     int `bun:"cpu_percent"`
	InstanceTypeID *string
	Active         bool
	Stamps
}

// Template holds Node-RED settings and environment variables for new instances, with a policy saying
// which settings an instance may override.
type Template struct {
	bun.BaseModel `bun:"table:templates"`
	ID            string `bun:",pk"`
	Name          string
	Description   string
	Active        bool
	Settings      map[string]any  `bun:",type:text"`
	Policy        map[string]bool `bun:",type:text"`
	Env           []domain.EnvVar `bun:",type:text"`
	Stamps
}

// Blueprint is a starting set of flows and the modules they need.
type Blueprint struct {
	bun.BaseModel `bun:"table:blueprints,alias:b"`
	ID            string `bun:",pk"`
	Name          string
	Description   string
	Flows         []any             `bun:",type:text"`
	Modules       map[string]string `bun:",type:text"`
	Stamps
	// TeamTypeIDs are the team types it is offered to (none: every one), kept in blueprint_team_types
	// (SetBlueprintTeamTypes, LoadBlueprintTeamTypes).
	TeamTypeIDs []string `bun:"-"`
}

// AuditEntry records who did what, when.
type AuditEntry struct {
	bun.BaseModel `bun:"table:audit_log"`
	ID            string `bun:",pk"`
	TeamID        *string
	UserID        *string
	Event         string
	EntityType    string
	EntityID      string
	Body          map[string]any `bun:",type:text"`
	CreatedAt     time.Time
}

// Operation is one long-running action, carried out by a Temporal workflow.
type Operation struct {
	bun.BaseModel `bun:"table:operations"`
	ID            string `bun:",pk"`
	Kind          string
	SubjectType   string
	SubjectID     string
	TeamID        *string
	Status        domain.OperationStatus
	Progress      map[string]any `bun:",type:text"`
	Error         string
	WorkflowID    string
	RunID         string
	RequestKey    *string
	CreatedBy     *string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	FinishedAt    *time.Time
}

// Stamps records when a row was created and last changed.
type Stamps struct {
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (t *Stamps) touch(created bool) {
	n := now()
	if created {
		t.CreatedAt = n
	}
	t.UpdatedAt = n
}

// Instance is a hosted Node-RED instance. Secrets (credential secret, runtime tokens) are sealed with the
// platform's master key; the runtime token is also in the tokens table as a hash, for authentication.
type Instance struct {
	bun.BaseModel    `bun:"table:instances,alias:inst"`
	ID               string `bun:",pk"`
	Name             string
	ApplicationID    string
	TeamID           string
	InstanceTypeID   string
	StackID          string
	TemplateID       string
	BlueprintID      *string
	State            domain.InstanceState
	StateReason      string
	DesiredState     domain.InstanceState
	Settings         map[string]any    `bun:",type:text"`
	Env              []domain.EnvVar   `bun:",type:text"`
	Modules          map[string]string `bun:",type:text"`
	CredentialSecret string            // sealed
	AdminToken       string            // sealed: full access to Node-RED's admin API
	ReadToken        string            // sealed: read-only access (viewers' editor)
	RuntimeToken     string            // sealed: the storage plugin's fyi_ token
	RuntimeURL       string
	// EndpointsProtected makes the instance's address (<name>.<apps domain>) ask for a signed-in team member or
	// an endpoint token.
	EndpointsProtected bool
	CrashCount         int
	LastCrashAt        *time.Time
	// DeviceTargetSnapshotID is the snapshot of this instance that its devices run (and a device assigned later takes).
	DeviceTargetSnapshotID *string
	CreatedAt              time.Time
	UpdatedAt              time.Time
}

// TeamOwned is a row of one team; the API loads what a request names through it to refuse another team's.
type TeamOwned interface{ OwnerTeam() string }

func (a *Application) OwnerTeam() string { return a.TeamID }
func (in *Instance) OwnerTeam() string   { return in.TeamID }
func (s *Snapshot) OwnerTeam() string    { return s.TeamID }
func (g *DeviceGroup) OwnerTeam() string { return g.TeamID }
func (d *Device) OwnerTeam() string      { return d.TeamID }
