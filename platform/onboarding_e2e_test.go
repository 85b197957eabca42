package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/agent"
	"github.com/flowyard/flowyard/api/apitest"
)

// TestDeviceOnboardingFleetSettingsAndInstanceTarget runs flowyard-agent against flowyard dev without a device
// file: it is set up with a provisioning token's one-time code and imports a local Node-RED's flows, which the
// platform makes its target and the agent's real Node-RED runs. Its group's fleet settings choose another
// Node-RED version, which the agent installs, and turn on the local editor login (Node-RED refuses its admin API
// without it; the flows keep running). Assigned to an
// instance with a device target, the device runs that target. Its credentials are regenerated: the running
// agent is revoked and stops Node-RED, and started again with the new device.yml it runs the target again.
func TestDeviceOnboardingFleetSettingsAndInstanceTarget(t *testing.T) {
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	instID, _ := createInstance(t, c, "onboarding-e2e")
	inst := c.Must(200, "GET", "/api/v1/instances/"+instID, nil)
	team, app := inst.String("teamId"), inst.String("applicationId")

	// A local Node-RED user dir whose flows the setup imports.
	local := t.TempDir()
	flows, err := json.Marshal(helloFlows("hello from the import"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(local, "flows.json"), flows, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(local, "package.json"), []byte(`{"name":"local","version":"0.0.1","dependencies":{"node-red":"4.1.15"}}`), 0o600))

	tok := c.Must(201, "POST", "/api/v1/teams/"+team+"/provisioning-tokens", map[string]any{"name": "otc", "applicationId": app}).String("id")
	otc := c.Must(201, "POST", "/api/v1/teams/"+team+"/provisioning-tokens/"+tok+"/one-time-codes", nil).String("otc")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "device.yml")
	msg, err := agent.Setup(context.Background(), agent.SetupOptions{ForgeURL: dev.URL, Code: otc, ConfigPath: cfgPath, Dir: dir,
		ImportFlows: filepath.Join(local, "flows.json")})
	require.NoError(t, err)
	assert.Contains(t, msg, "flows imported")
	cfg, err := agent.LoadConfig(cfgPath)
	require.NoError(t, err)
	assert.True(t, cfg.CliSetup)
	deviceID := cfg.DeviceID
	_, err = agent.Setup(context.Background(), agent.SetupOptions{ForgeURL: dev.URL, Code: otc, ConfigPath: filepath.Join(t.TempDir(), "device.yml"), Dir: t.TempDir()})
	assert.Error(t, err, "a code works once")

	imported := c.Must(200, "GET", "/api/v1/devices/"+deviceID, nil).String("targetSnapshotId")
	require.NotEmpty(t, imported, "the imported flows are the device's target")
	port := freePort(t)
	stopAgent := runAgent(t, agent.Options{ConfigPath: cfgPath, Dir: dir, Port: port, Interval: 5 * time.Second})
	waitDevice(t, c, deviceID, imported, 4*time.Minute)
	assert.Equal(t, "hello from the import", httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hello", port)))
	assert.Equal(t, 200, status(t, fmt.Sprintf("http://127.0.0.1:%d/device-editor/flows", port)), "no local login yet")

	// Fleet settings of the device's group: the local editor login. Node-RED restarts with it.
	group := c.Must(201, "POST", "/api/v1/applications/"+app+"/device-groups", map[string]any{"name": "line"}).String("id")
	c.Must(200, "PUT", "/api/v1/device-groups/"+group+"/devices", map[string]any{"add": []string{deviceID}})
	c.Must(200, "PATCH", "/api/v1/device-groups/"+group, map[string]any{"settings": map[string]any{"nodeRedVersion": "4.1.14",
		"localAuth": map[string]any{"enabled": true, "user": "operator", "password": "a local password"},
		"palette":   map[string]any{"catalogues": []string{"https://catalogue.nodered.org/catalogue.json"}}}})
	waitFor(t, 4*time.Minute, "the device to run the group's Node-RED version", func() bool {
		d := c.Must(200, "GET", "/api/v1/devices/"+deviceID, nil)
		require.NotEqual(t, "error", d.String("state"), "the device failed: %s", d.Raw)
		return d.String("state") == "running" && d.String("nodeRedVersion") == "4.1.14"
	})
	assert.Equal(t, 401, status(t, fmt.Sprintf("http://127.0.0.1:%d/device-editor/flows", port)), "Node-RED asks for the local login")
	assert.Equal(t, "hello from the import", httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hello", port)))

	// The instance's device target reaches the device once it is assigned to the instance.
	target := c.Must(201, "POST", "/api/v1/instances/"+instID+"/snapshots/import", map[string]any{
		"snapshot": map[string]any{"name": "for devices", "flows": helloFlows("hello from the instance"), "nodeRedVersion": "4.1.15"},
	}).String("id")
	c.Must(200, "PUT", "/api/v1/instances/"+instID+"/device-target", map[string]any{"snapshotId": target})
	assert.Equal(t, target, c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"instanceId": instID}).String("targetSnapshotId"))
	waitDevice(t, c, deviceID, target, 4*time.Minute)
	assert.Equal(t, "hello from the instance", httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hello", port)))

	// New credentials: the running agent's stop working at once; the new device.yml runs the target again.
	regen := c.Must(200, "POST", "/api/v1/devices/"+deviceID+"/credentials", nil)
	waitFor(t, 60*time.Second, "the revoked agent to stop Node-RED", func() bool {
		_, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/hello", port))
		return err != nil
	})
	stopAgent()
	require.NoError(t, os.WriteFile(cfgPath, []byte(regen.String("agentConfig")), 0o600))
	runAgent(t, agent.Options{ConfigPath: cfgPath, Dir: dir, Port: port, Interval: 5 * time.Second})
	waitFor(t, 4*time.Minute, "the agent with the new device.yml to run the target again", func() bool {
		return status(t, fmt.Sprintf("http://127.0.0.1:%d/hello", port)) == 200
	})
	assert.Equal(t, "hello from the instance", httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hello", port)))
	waitDevice(t, c, deviceID, target, time.Minute)
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
