package broker_test

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

// forged is what the attacker sends on another device's topics: as a command it would deploy a snapshot, as a
// status it would be recorded with an agent version no victim reports.
var forged = map[string]any{"command": "update", "snapshot": "forged", "state": "crashed", "stateDetail": "forged by another device",
	"agentVersion": "9.9.9"}

// victim is a device the attacker must not reach, connected and subscribed to its own command topics.
type victim struct {
	d          device
	team, app  string
	subscribed *conn
}

// crossTenantWorld registers the attacker (team T, application 0) and two victims, a device of the same team in
// another application and a device of another team, each connected over TCP and subscribed to its command
// topic and its application's.
func (f *fixture) crossTenantWorld(t *testing.T) (attacker device, victims []*victim) {
	t.Helper()
	otherTeam, otherApp := f.addTeam(t, "other")
	attacker = f.register(t, &f.apps[0])
	victims = []*victim{{d: f.register(t, &f.apps[1]), team: f.team, app: f.apps[1]}, {d: f.registerIn(t, otherTeam, &otherApp), team: otherTeam, app: otherApp}}
	for _, v := range victims {
		v.subscribed = f.connect(t, v.d)
		require.EqualValues(t, 0, v.subscribed.subscribe(t, topic(v.team, v.d.id, "command")))
		require.EqualValues(t, 0, v.subscribed.subscribe(t, "ff/v1/"+v.team+"/a/"+v.app+"/command"))
	}
	return attacker, victims
}

// topics are the victim's topic names: every leaf of its device topic and the broadcast command topics of its
// application and of an instance of its team.
func (v *victim) topics() []string {
	topics := []string{"ff/v1/" + v.team + "/a/" + v.app + "/command", "ff/v1/" + v.team + "/p/" + domain.NewID() + "/command"}
	for _, leaf := range []string{"command", "status", "logs", "resources", "response", "response/" + domain.NewID(), "state", "logs/heartbeat", "resources/heartbeat"} {
		topics = append(topics, topic(v.team, v.d.id, leaf))
	}
	return topics
}

// filters are the victim's topic names and the wildcard, shared and system filters that would match them or
// the platform's own subscriptions.
func (v *victim) filters() []string {
	return append(v.topics(), "ff/v1/"+v.team+"/#", "ff/v1/"+v.team+"/d/+/command", "ff/v1/+/d/"+v.d.id+"/command", "+/+/+/+/+/+", "#",
		"$share/g/"+topic(v.team, v.d.id, "command"), "$share/g/ff/v1/+/d/+/command", "$share/platform/ff/v1/+/d/+/status",
		"ff/v1/+/d/+/response/#", "$SYS/#", "$SYS/broker/clients/connected")
}

// assertUntouched shows that nothing the attacker sent reached the victim or was recorded for it. The victim's
// own status goes through the same worker after any forged one, and the update it is answered with comes after
// any forged command. Re-subscribing first delivers any message retained on its topics.
func (f *fixture) assertUntouched(t *testing.T, v *victim) {
	t.Helper()
	require.EqualValues(t, 0, v.subscribed.subscribe(t, topic(v.team, v.d.id, "command")))
	require.EqualValues(t, 0, v.subscribed.subscribe(t, "ff/v1/"+v.team+"/a/"+v.app+"/command"))
	v.subscribed.publish(t, topic(v.team, v.d.id, "status"), map[string]any{"state": "unknown", "snapshot": nil, "application": v.app, "project": nil})
	cmd := v.subscribed.next(t)
	assert.NotEqual(t, "forged", cmd["snapshot"], "a forged command reached %s", v.d.id)
	assert.Equal(t, v.app, cmd["application"])
	got := f.get(t, v.d.id)
	assert.Empty(t, got.AgentVersion, "a forged status was recorded for %s", v.d.id)
	assert.Equal(t, "unknown", got.State)
	assert.Empty(t, v.subscribed.commands, "nothing else reached %s", v.d.id)
}

// urls are the broker's two ways in; every cross-tenant check runs over both.
func (f *fixture) urls() map[string]string {
	if f.external != nil {
		return map[string]string{"tcp": "tcp://" + f.external.mosq.Addr, "websocket": "ws://" + f.external.mosq.WSAddr + "/"}
	}
	return map[string]string{"tcp": "tcp://" + f.broker.Addr(), "websocket": "ws://" + f.broker.WSAddr() + "/"}
}

// overEachTransport runs check on a fresh fixture of each broker mode, once over TCP and once over WebSocket.
func overEachTransport(t *testing.T, check func(t *testing.T, f *fixture, url string)) {
	forEachBroker(t, func(t *testing.T, newFixture func(t *testing.T) *fixture) {
		for _, transport := range []string{"tcp", "websocket"} {
			t.Run(transport, func(t *testing.T) {
				f := newFixture(t)
				check(t, f, f.urls()[transport])
			})
		}
	})
}

// TestCrossTenantTopics connects as device A (team T, application 0) and tries to subscribe to every topic,
// wildcard, shared and system filter of two victims, at every QoS, and to publish on every topic of theirs at
// every QoS, retained or not: a device of another team, and a device of the same team in another application.
// Every subscription is refused, every publish is dropped (QoS 0) or closes A's connection (QoS 1 and 2, as
// MQTT 3.1.1 has no negative acknowledgement), nothing A publishes reaches a victim, is recorded for it or is
// retained for it, and A receives nothing meant for a victim.
func TestCrossTenantTopics(t *testing.T) {
	overEachTransport(t, func(t *testing.T, f *fixture, url string) {
		attacker, victims := f.crossTenantWorld(t)
		for _, v := range victims {
			for _, tp := range v.topics() {
				for _, qos := range []byte{1, 2} {
					c := dialRaw(t, url)
					require.Zero(t, mustConnect(t, c, attacker, nil))
					require.NoError(t, c.publish(tp, forged, qos, qos == 2))
					if f.refusedPublishCloses() {
						assert.True(t, c.closed(5*time.Second), "a QoS %d publish on %s is refused", qos, tp)
					} else {
						assert.True(t, c.handled(5*time.Second), "a QoS %d publish on %s is answered, or refused", qos, tp)
					}
				}
				if f.retainedPublishCloses() {
					c := dialRaw(t, url)
					require.Zero(t, mustConnect(t, c, attacker, nil))
					require.NoError(t, c.publish(tp, forged, 0, true))
					assert.True(t, c.closed(5*time.Second), "a retained publish on %s is refused", tp)
				}
			}
		}

		a := dialRaw(t, url)
		require.Zero(t, mustConnect(t, a, attacker, nil))
		for _, qos := range []byte{0, 1, 2} {
			assert.Less(t, a.subscribe(t, topic(f.team, attacker.id, "command"), qos), byte(0x80), "its own command topic")
			for _, v := range victims {
				for _, filter := range v.filters() {
					assert.GreaterOrEqual(t, a.subscribe(t, filter, qos), byte(0x80), "subscribe %s at QoS %d", filter, qos)
				}
			}
		}
		retains := []bool{false, true}
		if f.retainedPublishCloses() {
			retains = retains[:1] // each retained publish was refused on a connection of its own above
		}
		for _, v := range victims {
			for _, tp := range v.topics() {
				for _, retain := range retains {
					require.NoError(t, a.publish(tp, forged, 0, retain))
				}
			}
		}
		// A's own status, answered with its update, shows the broker has handled everything A sent before it: a
		// forged command is in a victim's queue by now, a forged status in its device's worker queue.
		require.NoError(t, a.publish(topic(f.team, attacker.id, "status"), map[string]any{"state": "unknown", "snapshot": nil, "application": nil,
			"project": nil, "agentVersion": "4.2.1"}, 0, retains[len(retains)-1]))
		_, own := a.nextMessage(t)
		assert.Equal(t, f.apps[0], own["application"], "A's own update")
		for _, v := range victims {
			f.assertUntouched(t, v)
		}
		// A's next message is its own update: one meant for a victim would be queued before it.
		f.platform().NotifyDevice(context.Background(), attacker.id)
		tp, own := a.nextMessage(t)
		assert.Equal(t, topic(f.team, attacker.id, "command"), tp, "A receives nothing of the victims: %v", own)
		assert.Equal(t, f.apps[0], own["application"])
	})
}

// TestCrossTenantWills has device A connect with a Last Will on each topic of the victims, at QoS 0 and 1,
// retained or not, and drop the connection, which is when a broker publishes a will. A will is a publish made
// on the client's behalf and follows the same rule: the embedded broker refuses every such connection;
// Mosquitto refuses the retained ones (it keeps no retained messages) and checks the others when it publishes
// them, so none reaches a victim. A will on A's own status is accepted and published, which shows the dropped
// connections would have published theirs.
func TestCrossTenantWills(t *testing.T) {
	overEachTransport(t, func(t *testing.T, f *fixture, url string) {
		attacker, victims := f.crossTenantWorld(t)
		for _, v := range victims {
			for _, tp := range v.topics() {
				for _, w := range []will{{topic: tp, payload: forged}, {topic: tp, payload: forged, qos: 1}, {topic: tp, payload: forged, retain: true}} {
					for _, version := range []byte{4, 5} {
						c := dialRaw(t, url)
						c.version = version
						code, err := c.connectAs(attacker, &w)
						if f.forbiddenWillRefusesConnect() || w.retain {
							assert.False(t, err == nil && code == 0, "MQTT %d: a will on %s (QoS %d, retain %v) was accepted", version, tp, w.qos, w.retain)
						}
						c.drop()
					}
				}
			}
		}
		// The broker publishes a will before it lets the connection go: once A has no connection left, every
		// will it was given is on its way.
		waitFor(t, "A's connections to be gone", func() bool { return f.connectedDevices() == len(victims) })
		for _, v := range victims {
			f.assertUntouched(t, v)
		}

		own := dialRaw(t, url)
		require.Zero(t, mustConnect(t, own, attacker, &will{topic: topic(f.team, attacker.id, "status"), payload: forged}), "a will on its own status")
		own.drop()
		waitFor(t, "A's own will to be recorded", func() bool { return f.get(t, attacker.id).State == "crashed" })
	})
}

// TestCrossTenantRetained: a device cannot leave a message behind for a client that subscribes later. Retained
// publishes on its own topics are delivered but not kept, a retained will is refused, and the broker's own
// retained $SYS messages are out of every device's reach.
func TestCrossTenantRetained(t *testing.T) {
	overEachTransport(t, func(t *testing.T, f *fixture, url string) {
		d := f.register(t, &f.apps[0])
		c := dialRaw(t, url)
		require.Zero(t, mustConnect(t, c, d, nil))
		for _, leaf := range []string{"status", "logs", "resources", "response", "response/x"} {
			for _, qos := range []byte{0, 1} {
				retained := map[string]any{"state": "running", "retained": leaf}
				if !f.retainedPublishCloses() {
					require.NoError(t, c.publish(topic(f.team, d.id, leaf), retained, qos, true))
					continue
				}
				r := dialRaw(t, url)
				require.Zero(t, mustConnect(t, r, d, nil))
				require.NoError(t, r.publish(topic(f.team, d.id, leaf), retained, qos, true))
				assert.True(t, r.closed(5*time.Second), "a retained publish on %s is refused", leaf)
			}
		}
		if f.retainedPublishCloses() {
			c = dialRaw(t, url) // the last retained publish's connection took over the session and was closed
			require.Zero(t, mustConnect(t, c, d, nil))
		}
		require.NoError(t, c.publish(topic(f.team, d.id, "status"), map[string]any{"state": "unknown", "snapshot": nil, "application": nil, "project": nil}, 0, false))
		waitFor(t, "the status to be recorded", func() bool { return f.get(t, d.id).State == "unknown" })
		assert.Zero(t, f.retainedDeviceMessages(t), "nothing a device published is retained")

		for _, filter := range []string{"$SYS/#", "$SYS/broker/version", "#", "+/+/+"} {
			assert.GreaterOrEqual(t, c.subscribe(t, filter, 0), byte(0x80), "subscribe %s", filter)
		}
		again := dialRaw(t, url)
		code, err := again.connectAs(d, &will{topic: topic(f.team, d.id, "status"), payload: forged, retain: true})
		assert.False(t, err == nil && code == 0, "a retained will, even on the device's own status, is refused")
	})
}

// mustConnect connects the raw client as the device and returns the CONNACK code.
func mustConnect(t *testing.T, c *rawClient, d device, w *will) byte {
	t.Helper()
	code, err := c.connectAs(d, w)
	require.NoError(t, err)
	return code
}

// TestRefusedCredentials: the credentials that must not open a connection, over TCP and WebSocket: a wrong
// password, another device's password, a device or provisioning token as password, a deleted device's password.
func TestRefusedCredentials(t *testing.T) {
	forEachBroker(t, testRefusedCredentials)
}

func testRefusedCredentials(t *testing.T, newFixture func(t *testing.T) *fixture) {
	f := newFixture(t)
	otherTeam, otherApp := f.addTeam(t, "other")
	attacker := f.register(t, &f.apps[0])
	deleted := f.register(t, &f.apps[1])
	foreign := f.registerIn(t, otherTeam, &otherApp)
	refused := map[string]string{"wrong password": "fyb_wrong", "another device's password": foreign.password,
		"a device token":       f.tokenOf(t, domain.TokenPrefixDevice, "device", attacker.id),
		"a provisioning token": f.tokenOf(t, domain.TokenPrefixProvisioning, "provisioning", f.team)}
	f.deleteDevice(t, deleted.id)
	for _, url := range f.urls() {
		for what, password := range refused {
			_, err := connect(t, url, attacker.username, attacker.username, password)
			assert.Error(t, err, "%s over %s", what, url)
		}
		_, err := connect(t, url, deleted.username, deleted.username, deleted.password)
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
	forEachBroker(t, testForgedUploadReply)
}

func testForgedUploadReply(t *testing.T, newFixture func(t *testing.T) *fixture) {
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
	f.markOnline(t, victim.id)
	dev := f.get(t, victim.id)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		up, err := f.platform().RequestUpload(ctx, dev)
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
