package devices

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/storage"
)

func ptr(s string) *string { return &s }

func TestBrokerUsername(t *testing.T) {
	team, dev, ok := ParseBrokerUsername(BrokerUsername("t1", "d1"))
	assert.True(t, ok)
	assert.Equal(t, "t1", team)
	assert.Equal(t, "d1", dev)
	for _, bad := range []string{"", "device:t1", "frontend:t1:d1", "device::d1", "device:t1:d1:x"} {
		_, _, ok := ParseBrokerUsername(bad)
		assert.False(t, ok, bad)
	}
}

func TestAgentVersionGate(t *testing.T) {
	d := &storage.Device{ApplicationID: ptr("a")}
	for version, old := range map[string]bool{"1.10.9": true, "0.9.0": true, "1.11.0": false, "v4.2.1": false, "4.2.1-flowyard": false, "": false, "junk": false} {
		d.AgentVersion = version
		assert.Equal(t, old, agentTooOld(d), version)
	}
	d.ApplicationID, d.AgentVersion = nil, "1.0.0"
	assert.False(t, agentTooOld(d), "only application devices need a recent agent")
}

// TestNeedsUpdate follows docs/device-protocol.md §4.4: key presence and "0" matter.
func TestNeedsUpdate(t *testing.T) {
	d := &storage.Device{ApplicationID: ptr("a"), TargetSnapshotID: ptr("s"), SettingsHash: "h", AgentVersion: "4.2.1"}
	parse := func(body string) *Report {
		r, err := ParseReport([]byte(body))
		require.NoError(t, err)
		return r
	}
	assert.False(t, NeedsUpdate(d, parse(`{"state":"running","application":"a","project":null,"snapshot":"s","settings":"h"}`)))
	assert.False(t, NeedsUpdate(d, parse(`{"state":"running"}`)), "absent keys say nothing")
	assert.False(t, NeedsUpdate(d, parse(`null`)), "an agent in the middle of an update")
	assert.True(t, NeedsUpdate(d, parse(`{"state":"unknown"}`)))
	assert.True(t, NeedsUpdate(d, parse(`{"project":"p"}`)))
	assert.True(t, NeedsUpdate(d, parse(`{"application":null}`)))
	assert.True(t, NeedsUpdate(d, parse(`{"snapshot":"0"}`)), `"0" is no snapshot`)
	assert.True(t, NeedsUpdate(d, parse(`{"settings":null}`)))
	d.TargetSnapshotID = nil
	assert.False(t, NeedsUpdate(d, parse(`{"snapshot":"0"}`)))
}

func TestUpdateCommandKeyPresence(t *testing.T) {
	app := UpdateCommand(&storage.Device{ApplicationID: ptr("a"), TargetSnapshotID: ptr("s"), SettingsHash: "h"})
	assert.Equal(t, "a", app["application"])
	assert.NotContains(t, app, "project")
	inst := UpdateCommand(&storage.Device{InstanceID: ptr("i"), SettingsHash: "h", Mode: ModeDeveloper})
	assert.Equal(t, "i", inst["project"])
	assert.NotContains(t, inst, "application")
	assert.Equal(t, ModeDeveloper, inst["mode"])
	none := UpdateCommand(&storage.Device{SettingsHash: "h"})
	assert.Contains(t, none, "project")
	assert.Nil(t, none["project"])
	assert.Nil(t, none["ownerType"])
	old := UpdateCommand(&storage.Device{ApplicationID: ptr("a"), TargetSnapshotID: ptr("s"), AgentVersion: "1.9.0"})
	assert.Nil(t, old["snapshot"], "an agent too old for application devices is sent nothing to run")
}

func TestStatus(t *testing.T) {
	s := &Service{}
	now := time.Now()
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	assert.Equal(t, StatusNever, s.Status(&storage.Device{}, now))
	assert.Equal(t, StatusOnline, s.Status(&storage.Device{LastSeenAt: ago(time.Hour), Connected: true}, now))
	assert.Equal(t, StatusOnline, s.Status(&storage.Device{LastSeenAt: ago(time.Minute)}, now), "an HTTP-mode device seen lately")
	assert.Equal(t, StatusOffline, s.Status(&storage.Device{LastSeenAt: ago(10 * time.Minute)}, now), "silent too long")
	assert.Equal(t, StatusOffline, s.Status(&storage.Device{LastSeenAt: ago(time.Minute), DisconnectedAt: ago(30 * time.Second)}, now),
		"its broker connection closed after it was last seen")
}

// TestUploadStateShapes: the state of an upload reply is the agent's state object (FlowFuse agents), null
// (an agent updating) or a state name (older flowyard-agents); anything else is not a reply.
func TestUploadStateShapes(t *testing.T) {
	for body, want := range map[string]UploadState{
		`{"state":{"ownerType":"application","application":"a","snapshot":"s","settings":"h","state":"running","agentVersion":"4.2.1","health":{"uptime":1}}}`: "running",
		`{"state":null}`:      "",
		`{"state":"running"}`: "running",
		`{}`:                  "",
	} {
		var u Upload
		require.NoError(t, json.Unmarshal([]byte(body), &u), body)
		assert.Equal(t, want, u.State, body)
	}
	for _, bad := range []string{`{"state":42}`, `{"state":["running"]}`, `{"state":{"state":"dancing"}}`, `{"state":{"snapshot":7}}`} {
		var u Upload
		assert.Error(t, json.Unmarshal([]byte(bad), &u), bad)
	}
}
