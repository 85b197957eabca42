package api_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func names(items []any) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.(map[string]any)["name"].(string))
	}
	return out
}

// TestBlueprintsPerTeamType: a platform admin offers a blueprint to chosen team types; a team of another type
// does not see it in its list and creating an instance from it answers 422 naming it, with nothing created;
// once the team is on an offered type (or the blueprint is offered to every type) both work. Bad team types
// are refused, and a team type that a blueprint is limited to cannot be deleted.
func TestBlueprintsPerTeamType(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSnapWorld(t, dialect)
		admin, owner := w.as["admin"], w.as["owner"]
		pro := admin.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Pro", "selfService": true}).String("id")
		flows := []any{map[string]any{"id": "t1", "type": "tab", "label": "Starter flows"}}
		limited := admin.Must(201, "POST", "/api/v1/blueprints", map[string]any{"name": "Pro dashboard", "flows": flows, "teamTypeIds": []string{pro}})
		assert.Equal(t, []any{pro}, limited.Body["teamTypeIds"])
		open := admin.Must(201, "POST", "/api/v1/blueprints", map[string]any{"name": "Hello world", "flows": flows})
		assert.Equal(t, []any{}, open.Body["teamTypeIds"], "offered to every team type")
		assert.Equal(t, []any{pro}, admin.Must(200, "GET", "/api/v1/blueprints/"+limited.String("id"), nil).Body["teamTypeIds"])

		teamPath := "/api/v1/teams/" + w.teamID + "/blueprints"
		mine := names(owner.Must(200, "GET", teamPath, nil).Body["items"].([]any))
		assert.Contains(t, mine, "Hello world")
		assert.NotContains(t, mine, "Pro dashboard", "the team's type (Starter) is not offered it")
		assert.Equal(t, 200, w.as["viewer"].Do("GET", teamPath, nil).Status)
		assert.Equal(t, 404, w.as["outsider"].Do("GET", teamPath, nil).Status)

		in := w.mine(t, 0, "template-source", "secret")
		create := func(name, blueprint string) map[string]any {
			return map[string]any{"name": name, "instanceTypeId": in.InstanceTypeID, "stackId": in.StackID, "templateId": in.TemplateID, "blueprintId": blueprint}
		}
		instances := "/api/v1/applications/" + w.appIDs[0] + "/instances"
		refuses(t, w.env, owner, refusal{422, "blueprint_not_offered", "blueprintId"}, "POST", instances, create("from-pro", limited.String("id")))
		r := owner.Do("POST", instances, create("from-pro", limited.String("id")))
		assert.Contains(t, r.String("message"), `"Pro dashboard"`, "the answer names the blueprint")
		assert.Zero(t, w.runner.count())
		owner.Must(202, "POST", instances, create("from-open", open.String("id")))

		owner.Must(200, "PATCH", "/api/v1/teams/"+w.teamID, map[string]any{"teamTypeId": pro})
		assert.Contains(t, names(owner.Must(200, "GET", teamPath, nil).Body["items"].([]any)), "Pro dashboard")
		owner.Must(202, "POST", instances, create("from-pro", limited.String("id")))

		refuses(t, w.env, admin, refusal{422, "unknown_reference", "teamTypeIds"}, "PATCH", "/api/v1/blueprints/"+open.String("id"),
			map[string]any{"teamTypeIds": []string{"no-such-type"}})
		refuses(t, w.env, admin, refusal{409, "in_use", ""}, "DELETE", "/api/v1/team-types/"+pro, nil)
		assert.Equal(t, 403, owner.Do("PATCH", "/api/v1/blueprints/"+open.String("id"), map[string]any{"teamTypeIds": []string{pro}}).Status)
		opened := admin.Must(200, "PATCH", "/api/v1/blueprints/"+limited.String("id"), map[string]any{"teamTypeIds": []string{}})
		assert.Equal(t, []any{}, opened.Body["teamTypeIds"])
		renamed := admin.Must(200, "PATCH", "/api/v1/blueprints/"+open.String("id"), map[string]any{"description": "kept offered to all"})
		assert.Equal(t, []any{}, renamed.Body["teamTypeIds"], "a change of other fields keeps the team types")
		list := admin.Must(200, "GET", "/api/v1/blueprints", nil).Body["items"].([]any)
		require.Len(t, list, 2)
		assert.Equal(t, []any{}, list[0].(map[string]any)["teamTypeIds"], "lists show team types too")
	})
}
