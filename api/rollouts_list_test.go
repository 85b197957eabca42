package api_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGroupRolloutsListNewestFirst lists a group's rollouts newest first, a page at a time, for the roles that
// may read rollouts only.
func TestGroupRolloutsListNewestFirst(t *testing.T) {
	w := newDeviceWorldWith(t, "sqlite", &startedRollouts{})
	owner := w.as["owner"]
	d := w.register(t, "a")
	w.assign(t, d, map[string]any{"applicationId": w.appIDs[0]})
	gid := owner.Must(201, "POST", "/api/v1/applications/"+w.appIDs[0]+"/device-groups", map[string]any{"name": "g"}).String("id")
	owner.Must(200, "PUT", "/api/v1/device-groups/"+gid+"/devices", map[string]any{"add": []string{d.id}})
	list := "/api/v1/device-groups/" + gid + "/rollouts"
	assert.Empty(t, owner.Must(200, "GET", list, nil).Body["items"])

	start := func() string {
		r := owner.Must(202, "POST", "/api/v1/device-groups/"+gid+"/rollouts", map[string]any{"snapshotId": w.snapID})
		return r.Body["rollout"].(map[string]any)["id"].(string)
	}
	first := start()
	// One rollout runs per group: end the first as its workflow would, then start another.
	ctx := context.Background()
	ro, err := w.env.Store.GetRollout(ctx, first)
	require.NoError(t, err)
	ro.Status = "succeeded"
	require.NoError(t, w.env.Store.SaveRolloutProgress(ctx, ro))
	second := start()

	page := w.as["member"].Must(200, "GET", list+"?limit=1", nil)
	items := page.Body["items"].([]any)
	require.Len(t, items, 1)
	assert.Equal(t, second, items[0].(map[string]any)["id"], "the newest comes first")
	assert.Equal(t, "running", items[0].(map[string]any)["status"])
	next := page.String("next")
	require.NotEmpty(t, next)
	rest := w.as["member"].Must(200, "GET", list+"?limit=1&cursor="+next, nil)
	require.Len(t, rest.Body["items"], 1)
	assert.Equal(t, first, rest.Body["items"].([]any)[0].(map[string]any)["id"])
	assert.Equal(t, "succeeded", rest.Body["items"].([]any)[0].(map[string]any)["status"])
	assert.Empty(t, rest.String("next"))

	assert.Equal(t, 403, w.as["viewer"].Do("GET", list, nil).Status, "viewers do not read rollouts")
	assert.Equal(t, 404, w.as["outsider"].Do("GET", list, nil).Status)
}
