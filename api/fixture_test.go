package api_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

const testPassword = "correct horse battery"

// world is a running API with an admin, a team with one user per role, and an outsider who owns another team.
type world struct {
	env      *apitest.Env
	admin    *apitest.Client
	byRole   map[string]*apitest.Client // owner, member, viewer, dashboard, outsider, anonymous
	userIDs  map[string]string
	teamID   string
	otherTID string
}

var roleNames = []string{"owner", "member", "viewer", "dashboard"}

func newWorld(t *testing.T, dialect string, mutate ...func(*api.Deps)) *world {
	t.Helper()
	return worldOn(t, apitest.Start(t, dialect, mutate...))
}

// worldOn is newWorld on an API already serving.
func worldOn(t *testing.T, env *apitest.Env) *world {
	t.Helper()
	w := &world{env: env, byRole: map[string]*apitest.Client{}, userIDs: map[string]string{}}
	for _, name := range append([]string{"admin", "outsider"}, roleNames...) {
		u, err := api.NewUser(name+"@example.com", name, testPassword, name == "admin")
		require.NoError(t, err)
		require.NoError(t, env.Store.InsertUser(context.Background(), u))
		w.userIDs[name] = u.ID
		c := env.Client(t)
		c.Login(name+"@example.com", testPassword)
		w.byRole[name] = c
	}
	w.admin = w.byRole["admin"]
	w.byRole["anonymous"] = env.Client(t)
	w.teamID = w.newTeam(t, "team-a")
	w.otherTID = w.byRole["outsider"].Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Other", "slug": "other-team"}).String("id")
	return w
}

// newTeam creates a team owned by "owner" with the other roles as members, and returns its ID. The platform
// admin adds the members: a team owner cannot add an account without its holder's consent.
func (w *world) newTeam(t *testing.T, slug string) string {
	t.Helper()
	id := w.byRole["owner"].Must(201, "POST", "/api/v1/teams", map[string]any{"name": slug, "slug": slug}).String("id")
	for _, role := range roleNames[1:] {
		w.admin.Must(201, "POST", "/api/v1/teams/"+id+"/members", map[string]any{"email": role + "@example.com", "role": role})
	}
	return id
}

// newInstanceRow builds (without storing) a running instance of the seeded instance type, stack and template.
func newInstanceRow(t testing.TB, st *storage.Store, teamID, appID, name string) *storage.Instance {
	t.Helper()
	ctx := context.Background()
	types, _, err := storage.ListObjects[storage.InstanceType](ctx, st, storage.Page{})
	require.NoError(t, err)
	stacks, _, err := storage.ListObjects[storage.Stack](ctx, st, storage.Page{})
	require.NoError(t, err)
	templates, _, err := storage.ListObjects[storage.Template](ctx, st, storage.Page{})
	require.NoError(t, err)
	require.True(t, len(types) > 0 && len(stacks) > 0 && len(templates) > 0, "seeded platform objects")
	return &storage.Instance{ID: domain.NewID(), Name: name, ApplicationID: appID, TeamID: teamID, InstanceTypeID: types[0].ID,
		StackID: stacks[0].ID, TemplateID: templates[0].ID, State: "running", DesiredState: "running", Settings: map[string]any{},
		Env: []domain.EnvVar{}, Modules: map[string]string{}}
}
