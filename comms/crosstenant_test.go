package comms_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// TestCrossTenantTopics connects as device A (team T, application 0) and tries to subscribe and publish to
// every topic of two victims: a device of another team, and a device of the same team in another application.
// Every subscription is refused, nothing A publishes reaches a victim or is recorded for it, and A receives
// nothing meant for a victim. Then the credentials that must not open a connection: a wrong password, another
// device's password, a device or provisioning token as password, a deleted device's password.
func TestCrossTenantTopics(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	otherTeam, otherApp := f.addTeam(t, "other")
	attacker := f.register(t, &f.apps[0])
	sameTeam := f.register(t, &f.apps[1])
	foreign := f.registerIn(t, otherTeam, &otherApp)
	victims := []struct {
		d          device
		team, app  string
		subscribed *conn
	}{{d: sameTeam, team: f.team, app: f.apps[1]}, {d: foreign, team: otherTeam, app: otherApp}}
	for i := range victims {
		v := &victims[i]
		v.subscribed = f.connect(t, v.d)
		require.EqualValues(t, 0, v.subscribed.subscribe(t, topic(v.team, v.d.id, "command")))
		require.EqualValues(t, 0, v.subscribed.subscribe(t, "ff/v1/"+v.team+"/a/"+v.app+"/command"))
	}

	a := f.connect(t, attacker)
	require.EqualValues(t, 0, a.subscribe(t, topic(f.team, attacker.id, "command")), "its own command topic")
	forged := map[string]any{"command": "update", "snapshot": "forged", "state": "running", "agentVersion": "9.9.9"}
	for _, v := range victims {
		topics := []string{"ff/v1/" + v.team + "/a/" + v.app + "/command", "ff/v1/" + v.team + "/p/" + domain.NewID() + "/command",
			"ff/v1/" + v.team + "/#", "ff/v1/" + v.team + "/d/+/command", "ff/v1/+/d/" + v.d.id + "/command", "$share/g/" + topic(v.team, v.d.id, "command"),
			"$share/platform/ff/v1/+/d/+/status", "ff/v1/+/d/+/response/#"}
		for _, leaf := range []string{"command", "status", "logs", "resources", "response", "response/" + domain.NewID(), "state", "logs/heartbeat", "resources/heartbeat"} {
			topics = append(topics, topic(v.team, v.d.id, leaf))
		}
		for _, tp := range topics {
			assert.EqualValues(t, 0x80, a.subscribe(t, tp), "subscribe %s", tp)
			if !strings.ContainsAny(tp, "+#$") { // publishing to a filter is a protocol error, not a test of the ACL
				a.publish(t, tp, forged)
			}
		}
	}

	// A's own status, answered with its update, shows the broker has handled everything A sent before it: a
	// forged command is in a victim's queue by now, a forged status in its device's worker queue.
	a.publish(t, topic(f.team, attacker.id, "status"), map[string]any{"state": "unknown", "snapshot": nil, "application": nil, "project": nil, "agentVersion": "4.2.1"})
	assert.Equal(t, f.apps[0], a.next(t)["application"], "A's own update")
	for _, v := range victims {
		// The victim's own status goes through the same worker after any forged one, and its update comes after
		// any forged command.
		v.subscribed.publish(t, topic(v.team, v.d.id, "status"), map[string]any{"state": "unknown", "snapshot": nil, "application": v.app, "project": nil})
		cmd := v.subscribed.next(t)
		assert.NotEqual(t, "forged", cmd["snapshot"], "a forged command reached %s", v.d.id)
		assert.Equal(t, v.app, cmd["application"])
		got := f.get(t, v.d.id)
		assert.Empty(t, got.AgentVersion, "A's forged status was recorded for %s", v.d.id)
		assert.Equal(t, "unknown", got.State)
		assert.Empty(t, v.subscribed.commands, "nothing else reached %s", v.d.id)
	}
	// A's next message is its own update: one meant for a victim would be queued before it. (paho hands a
	// message to every handler whose filter matches, refused ones included, so A may hold copies of its own.)
	f.broker.NotifyDevice(ctx, attacker.id)
	assert.Equal(t, f.apps[0], a.next(t)["application"], "A receives nothing of the victims")
	for len(a.commands) > 0 {
		cmd := <-a.commands
		assert.Equal(t, f.apps[0], cmd["application"], "A received a message meant for another device: %v", cmd)
	}

	refused := map[string]string{"wrong password": "fyb_wrong", "another device's password": foreign.password,
		"a device token":       f.tokenOf(t, domain.TokenPrefixDevice, "device", attacker.id),
		"a provisioning token": f.tokenOf(t, domain.TokenPrefixProvisioning, "provisioning", f.team)}
	require.NoError(t, f.store.DeleteDevice(ctx, sameTeam.id))
	f.broker.DisconnectDevice(sameTeam.id)
	for _, url := range []string{"tcp://" + f.broker.Addr(), "ws://" + f.broker.WSAddr() + "/"} {
		for what, password := range refused {
			_, err := connect(t, url, attacker.username, attacker.username, password)
			assert.Error(t, err, "%s over %s", what, url)
		}
		_, err := connect(t, url, sameTeam.username, sameTeam.username, sameTeam.password)
		assert.Error(t, err, "a deleted device's broker password over %s", url)
	}
}

// addTeam inserts a second team with one application.
func (f *fixture) addTeam(t *testing.T, slug string) (teamID, appID string) {
	t.Helper()
	ctx := context.Background()
	tts, _, err := storage.ListObjects[storage.TeamType](ctx, f.store, storage.Page{})
	require.NoError(t, err)
	teamID, appID = domain.NewID(), domain.NewID()
	require.NoError(t, f.store.InsertTeam(ctx, &storage.Team{ID: teamID, Name: slug, Slug: slug + "-" + teamID, TeamTypeID: tts[0].ID}))
	require.NoError(t, f.store.InsertApplication(ctx, &storage.Application{ID: appID, TeamID: teamID, Name: slug + "-app"}))
	return teamID, appID
}

// registerIn registers a device of another team than the fixture's.
func (f *fixture) registerIn(t *testing.T, teamID string, app *string) device {
	t.Helper()
	team := f.team
	f.team = teamID
	defer func() { f.team = team }()
	return f.register(t, app)
}

// tokenOf stores a valid token of the kind for owner, as registration or the API would, and returns it.
func (f *fixture) tokenOf(t *testing.T, prefix, kind, owner string) string {
	t.Helper()
	token, hash := domain.NewToken(prefix)
	require.NoError(t, f.store.InsertToken(context.Background(), &storage.Token{ID: domain.NewID(), TokenHash: hash, Kind: kind,
		Name: kind, OwnerType: kind, OwnerID: owner, TeamID: &f.team}))
	return token
}

// TestForgedUploadReply has device A answer the platform's upload request to a device of another team, on
// A's own response topic and on the victim's: the platform takes only the victim's own reply.
func TestForgedUploadReply(t *testing.T) {
	f := newFixture(t)
	otherTeam, otherApp := f.addTeam(t, "other")
	attacker := f.register(t, &f.apps[0])
	victim := f.registerIn(t, otherTeam, &otherApp)
	v := f.connect(t, victim)
	require.EqualValues(t, 0, v.subscribe(t, topic(otherTeam, victim.id, "command")))
	a := f.connect(t, attacker)
	require.EqualValues(t, 0, a.subscribe(t, topic(f.team, attacker.id, "command")))

	type result struct {
		flows string
		err   error
	}
	done := make(chan result, 1)
	dev := f.get(t, victim.id)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		up, err := f.broker.RequestUpload(ctx, dev)
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{flows: string(up.Flows)}
	}()
	req := v.next(t)
	require.Equal(t, "upload", req["command"])
	responseTopic := req["responseTopic"].(string)
	platformID := responseTopic[strings.LastIndex(responseTopic, "/")+1:]
	reply := func(flowID string) map[string]any {
		return map[string]any{"teamId": otherTeam, "deviceId": victim.id, "command": "upload", "correlationData": req["correlationData"],
			"payload": map[string]any{"flows": []any{map[string]any{"id": flowID, "type": "tab"}}, "credentials": map[string]any{}}}
	}
	a.publish(t, topic(f.team, attacker.id, "response/"+platformID), reply("forged-own-topic"))
	a.publish(t, responseTopic, reply("forged-victim-topic"))
	// A's own status, answered, shows the broker has handled both forged replies.
	a.publish(t, topic(f.team, attacker.id, "status"), map[string]any{"state": "unknown", "snapshot": nil, "application": nil, "project": nil})
	a.next(t)
	v.publish(t, responseTopic, reply("victim"))
	select {
	case r := <-done:
		require.NoError(t, r.err)
		assert.JSONEq(t, `[{"id":"victim","type":"tab"}]`, r.flows, "only the victim's own reply is taken")
	case <-time.After(30 * time.Second):
		t.Fatal("the upload request did not end")
	}
}
