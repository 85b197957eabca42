package platform_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
)

// TestProvisioningFailuresAreClear checks that an npm install that fails and an exhausted port range end the
// operation failed with the cause, and the instance in error: never stuck in an in-between state.
func TestProvisioningFailuresAreClear(t *testing.T) {
	dev := startDev(t, "--instance-ports", "13990-13990")
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	objects := seededObjects(c)
	app := newApp(t, c, "failures")

	bogus := c.Must(201, "POST", "/api/v1/stacks", map[string]any{"name": "no-such-node-red", "nodeRedVersion": "0.0.999",
		"memoryMB": 256, "cpuPercent": 50})
	withBogus := map[string]any{"stackId": bogus.String("id")}
	for k, v := range objects {
		if k != "stackId" {
			withBogus[k] = v
		}
	}
	id, op := postInstance(t, c, app, "bad-stack", withBogus)
	failed := waitOperation(t, c, op)
	require.Equal(t, "failed", failed.String("status"), string(failed.Raw))
	assert.Contains(t, failed.String("error"), "npm", "the operation carries npm's error")
	inst := c.Must(200, "GET", "/api/v1/instances/"+id, nil)
	assert.Equal(t, "error", inst.String("state"))
	assert.Contains(t, inst.String("stateReason"), "0.0.999")

	first, op1 := postInstance(t, c, app, "takes-the-port", objects)
	require.Equal(t, "succeeded", waitOperation(t, c, op1).String("status"))
	second, op2 := postInstance(t, c, app, "finds-none", objects)
	noPort := waitOperation(t, c, op2)
	require.Equal(t, "failed", noPort.String("status"))
	assert.Contains(t, noPort.String("error"), "no free port")
	assert.Equal(t, "error", c.Must(200, "GET", "/api/v1/instances/"+second, nil).String("state"))
	assert.Equal(t, "running", c.Must(200, "GET", "/api/v1/instances/"+first, nil).String("state"))
}
