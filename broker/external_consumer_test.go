package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/broker/mosquitto"
	"github.com/flowyard/flowyard/broker/mosquitto/mosquittotest"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
)

// TestExternalProcessStartingLeavesOthersConnected: a process that starts when the platform's role is in place
// already does not rewrite it, which would make the plugin close the connections of every client with the role,
// the admin's, so every other process's.
func TestExternalProcessStartingLeavesOthersConnected(t *testing.T) {
	f := newExternalFixture(t)
	mb := f.external.mosq
	other, err := connect(t, f.tcpURL(), "other-"+domain.NewID(), mb.AdminUsername, mb.AdminPassword)
	require.NoError(t, err)
	probe := devices.DeviceTopic(f.team, domain.NewID(), "command")
	require.EqualValues(t, 0, other.subscribe(t, probe))
	f.startProcess(t, time.Minute)
	other.publish(t, probe, map[string]any{"command": "probe"})
	require.Equal(t, "probe", other.next(t)["command"], "the admin client's other connection stayed open")
}

// TestExternalStatusesRecordedInOrder: several consuming processes on Postgres, each device publishing its
// states in quick succession; every device shows its last state, also after the process recording them closes
// and another takes over (a status published meanwhile included).
func TestExternalStatusesRecordedInOrder(t *testing.T) {
	f := newWorldOn(t, "pg")
	mb := mosquittotest.Start(t)
	procs := make([]*mosquitto.Broker, 3)
	for i := range procs {
		b, err := mosquitto.Start(context.Background(), mosquitto.Config{URL: mb.URL(), Username: mb.AdminUsername, Password: mb.AdminPassword,
			Devices: f.svc, Log: slog.New(slog.DiscardHandler), Consume: true})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		procs[i] = b
	}
	f.svc.Accounts = procs[1]
	f.external = &externalBroker{Broker: procs[1], mosq: mb}
	ds := make([]device, 20)
	conns := make([]*conn, len(ds))
	for i := range ds {
		ds[i] = f.register(t, &f.apps[0])
		conns[i] = f.connect(t, ds[i])
	}
	burst := func(states ...string) {
		for _, state := range states {
			for i, c := range conns {
				c.publish(t, topic(f.team, ds[i].id, "status"), map[string]any{"state": state, "application": f.apps[0], "snapshot": nil})
			}
		}
	}
	allShow := func(state string) {
		waitFor(t, fmt.Sprintf("every device to show %s", state), func() bool {
			for _, d := range ds {
				if f.get(t, d.id).State != state {
					return false
				}
			}
			return true
		})
	}
	burst("updating", "installing", "starting", "running")
	allShow("running")
	require.NoError(t, procs[0].Close()) // the first one started holds the lock
	burst("restarting", "updating", "installing", "starting", "suspended")
	allShow("suspended")
}
