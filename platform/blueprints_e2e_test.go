package platform_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
)

// diceFlows answer GET /roll with a number drawn by node-red-node-random between 7 and 7, and GET /hello with
// the blueprint's greeting: the module must be installed and its node running for /roll to answer.
func diceFlows() []any {
	return []any{
		map[string]any{"id": "tab1", "type": "tab", "label": "Blueprint flows"},
		map[string]any{"id": "in1", "type": "http in", "z": "tab1", "url": "/roll", "method": "get", "wires": []any{[]any{"rnd1"}}},
		map[string]any{"id": "rnd1", "type": "random", "z": "tab1", "low": "7", "high": "7", "inte": "true", "property": "payload", "wires": []any{[]any{"fmt1"}}},
		map[string]any{"id": "fmt1", "type": "function", "z": "tab1", "outputs": 1, "wires": []any{[]any{"out1"}}, "func": `msg.payload = "rolled " + msg.payload; return msg;`},
		map[string]any{"id": "out1", "type": "http response", "z": "tab1"},
		map[string]any{"id": "in2", "type": "http in", "z": "tab1", "url": "/hello", "method": "get", "wires": []any{[]any{"fn2"}}},
		map[string]any{"id": "fn2", "type": "function", "z": "tab1", "outputs": 1, "wires": []any{[]any{"out1"}}, "func": `msg.payload = "hello from the blueprint"; return msg;`},
	}
}

// TestInstanceFromBlueprintEndToEnd creates instances from a blueprint in `flowyard dev` (real Temporal, real
// Node-RED, the module installed with npm): a blueprint offered only to the Pro team type is refused to a
// Starter team, naming it, and missing from its list; once the team is on Pro, an instance created from it
// runs the blueprint's flows with the blueprint's module.
func TestInstanceFromBlueprintEndToEnd(t *testing.T) {
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	pro := c.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Pro", "selfService": true}).String("id")
	bp := c.Must(201, "POST", "/api/v1/blueprints", map[string]any{"name": "Dice", "flows": diceFlows(),
		"modules": map[string]string{"node-red-node-random": "0.4.1"}, "teamTypeIds": []string{pro}}).String("id")
	team := c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Blueprint users"}).String("id")
	app := c.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": "app"}).String("id")
	f := &snapshotFixture{t: t, c: c, app: app}
	body := seededObjects(c)
	body["name"], body["blueprintId"] = "dice", bp

	assert.Empty(t, c.Must(200, "GET", "/api/v1/teams/"+team+"/blueprints", nil).Body["items"], "a Starter team is offered nothing")
	refused := c.Do("POST", "/api/v1/applications/"+app+"/instances", body)
	require.Equal(t, 422, refused.Status, string(refused.Raw))
	assert.Equal(t, "blueprint_not_offered", refused.String("code"))
	assert.Contains(t, refused.String("message"), `"Dice"`)
	assert.Empty(t, c.Must(200, "GET", "/api/v1/applications/"+app+"/instances", nil).Body["items"], "nothing was created")

	c.Must(200, "PATCH", "/api/v1/teams/"+team, map[string]any{"teamTypeId": pro})
	offered := c.Must(200, "GET", "/api/v1/teams/"+team+"/blueprints", nil).Body["items"].([]any)
	require.Len(t, offered, 1)
	id := f.create("dice", map[string]any{"blueprintId": bp})
	assert.Equal(t, bp, c.Must(200, "GET", "/api/v1/instances/"+id, nil).String("blueprintId"))
	assert.Equal(t, "hello from the blueprint", f.call(id, "hello"))
	assert.Equal(t, "rolled 7", f.call(id, "roll"), "the blueprint's module is installed and its node runs")
	module := c.OpenEditor(id).Must(200, "GET", "/nodes/node-red-node-random", nil)
	assert.Equal(t, "0.4.1", module.String("version"), "Node-RED has the blueprint's version of the module: %s", module.Raw)
}
