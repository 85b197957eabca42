package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/pipeline"
)

// startedPromotions stands in for the workflow facade (the workflow is tested with the Temporal test suite
// and end to end): it records what the API asked for.
type startedPromotions struct {
	params    []pipeline.Params
	decisions []string
}

func (s *startedPromotions) Start(_ context.Context, p pipeline.Params) (string, error) {
	s.params = append(s.params, p)
	return "run-1", nil
}

func (s *startedPromotions) Decide(_ context.Context, id, action string, d pipeline.Decision) (pipeline.Progress, error) {
	s.decisions = append(s.decisions, action+" by "+d.Role)
	return pipeline.Progress{}, nil
}

func newPipelineWorld(t *testing.T, runner api.PipelineRunner) *snapWorld {
	t.Helper()
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	env := apitest.Start(t, "sqlite", func(d *api.Deps) { d.Sealer, d.Instances, d.Pipelines = sealer, &recordingRunner{}, runner })
	w := &snapWorld{env: env, sealer: sealer, as: map[string]*apitest.Client{}}
	for _, name := range []string{"admin", "owner", "owner2", "member"} {
		u, err := api.NewUser(name+"@example.com", name, testPassword, name == "admin")
		require.NoError(t, err)
		require.NoError(t, env.Store.InsertUser(context.Background(), u))
		c := env.Client(t)
		c.Login(name+"@example.com", testPassword)
		w.as[name] = c
	}
	owner := w.as["owner"]
	w.teamID = owner.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Pipes", "slug": "pipes"}).String("id")
	w.as["admin"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/members", map[string]any{"email": "owner2@example.com", "role": "owner"})
	w.as["admin"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/members", map[string]any{"email": "member@example.com", "role": "member"})
	for i, name := range []string{"plant", "office"} {
		w.appIDs[i] = owner.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/applications", map[string]any{"name": name}).String("id")
	}
	return w
}

func TestPromoteChecksStagesSnapshotsAndApprovers(t *testing.T) {
	runner := &startedPromotions{}
	w := newPipelineWorld(t, runner)
	owner, owner2, member := w.as["owner"], w.as["owner2"], w.as["member"]
	dev, stg, prod := w.mine(t, 0, "dev", "s1"), w.mine(t, 0, "staging", "s2"), w.mine(t, 0, "prod", "s3")
	other := w.mine(t, 1, "elsewhere", "s4")
	w.deploy(t, other, "s4", apiFlowsV1, apiCreds)
	foreignSnap := owner.Must(201, "POST", "/api/v1/instances/"+other.ID+"/snapshots", map[string]any{"name": "x"}).String("id")

	pid := owner.Must(201, "POST", "/api/v1/applications/"+w.appIDs[0]+"/pipelines", map[string]any{"name": "main"}).String("id")
	stages := "/api/v1/pipelines/" + pid + "/stages"
	s1 := owner.Must(201, "POST", stages, map[string]any{"name": "dev", "target": map[string]any{"instanceId": dev.ID}, "action": "create_snapshot"}).String("id")
	s2 := owner.Must(201, "POST", stages, map[string]any{"name": "staging", "target": map[string]any{"instanceId": stg.ID}, "action": "prompt",
		"requiresApproval": true, "forbidSelfApproval": true}).String("id")
	s3 := owner.Must(201, "POST", stages, map[string]any{"name": "prod", "target": map[string]any{"instanceId": prod.ID}, "protected": true}).String("id")

	last := owner.Do("POST", stages+"/"+s3+"/promote", nil)
	assert.Equal(t, 409, last.Status)
	assert.Equal(t, "no_next_stage", last.String("code"))
	assert.Equal(t, 403, member.Do("POST", stages+"/"+s2+"/promote", map[string]any{"snapshotId": foreignSnap}).Status, "a protected target takes promotions from owners only")
	prompt := owner.Do("POST", stages+"/"+s2+"/promote", nil)
	assert.Equal(t, 422, prompt.Status)
	assert.Equal(t, "snapshot_required", prompt.String("code"))
	assert.Equal(t, "snapshot_of_other_application", owner.Do("POST", stages+"/"+s2+"/promote", map[string]any{"snapshotId": foreignSnap}).String("code"))
	assert.Equal(t, 400, owner.Do("POST", stages+"/"+s1+"/promote", map[string]any{"at": "tonight"}).Status)
	assert.Empty(t, runner.params, "nothing started on bad input")

	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	r := member.Must(202, "POST", stages+"/"+s1+"/promote", map[string]any{"at": at.Format(time.RFC3339)})
	prID := r.Body["promotion"].(map[string]any)["id"].(string)
	assert.Equal(t, "awaiting_approval", r.Body["promotion"].(map[string]any)["status"])
	assert.Equal(t, "/api/v1/operations/"+r.Body["operation"].(map[string]any)["id"].(string), r.Header.Get("Location"))
	require.Len(t, runner.params, 1)
	p := runner.params[0]
	assert.True(t, p.RequiresApproval && p.ForbidSelfApproval)
	assert.Equal(t, "owner", p.ApproverRole)
	assert.True(t, p.At.Equal(at))

	assert.Equal(t, 403, member.Do("POST", "/api/v1/promotions/"+prID+"/approve", nil).Status, "approving needs an owner")
	r2 := owner.Must(202, "POST", stages+"/"+s1+"/promote", nil)
	self := owner.Do("POST", "/api/v1/promotions/"+r2.Body["promotion"].(map[string]any)["id"].(string)+"/approve", nil)
	assert.Equal(t, 403, self.Status, "the requester may not approve where the stage forbids it")
	owner2.Must(200, "POST", "/api/v1/promotions/"+prID+"/approve", nil)
	member.Must(200, "POST", "/api/v1/promotions/"+prID+"/cancel", nil)
	assert.Equal(t, []string{"approve by owner", "cancel by member"}, runner.decisions)
	assert.Equal(t, 404, owner.Do("POST", "/api/v1/promotions/"+prID+"/explode", nil).Status)

	busy := owner.Do("DELETE", "/api/v1/pipelines/"+pid, nil)
	assert.Equal(t, 409, busy.Status, "promotions are active (the stand-in runner never finishes them)")
	assert.Equal(t, "promotion_active", busy.String("code"))

	list := member.Must(200, "GET", "/api/v1/pipelines/"+pid+"/promotions", nil)
	assert.Len(t, list.Body["items"], 2)
	got := member.Must(200, "GET", "/api/v1/promotions/"+prID, nil)
	assert.Equal(t, s2, got.String("targetStageId"))
}
