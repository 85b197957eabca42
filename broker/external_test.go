package broker_test

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/broker/mosquitto"
	"github.com/flowyard/flowyard/broker/mosquitto/mosquittotest"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
)

// externalBroker is a throwaway Mosquitto with the dynamic-security plugin, the platform's connection to it
// (which makes the devices' accounts), and a watcher: a second admin connection that sees what the broker does
// not tell the platform (how many clients are connected, what it retains).
type externalBroker struct {
	*mosquitto.Broker
	mosq      *mosquittotest.Broker
	watcher   paho.Client
	connected atomic.Int64 // $SYS/broker/clients/connected, -1 until known
}

// newExternalFixture is newFixture with an external Mosquitto instead of the embedded broker.
func newExternalFixture(t *testing.T) *fixture {
	t.Helper()
	return newExternalFixtureOn(t, "sqlite")
}

// newExternalFixtureOn is newExternalFixture on the database kind given ("sqlite" or "pg").
func newExternalFixtureOn(t *testing.T, dialect string) *fixture {
	t.Helper()
	f := newWorldOn(t, dialect)
	mb := mosquittotest.Start(t)
	b, err := mosquitto.Start(context.Background(), mosquitto.Config{URL: mb.URL(), Username: mb.AdminUsername, Password: mb.AdminPassword,
		Devices: f.svc, Log: slog.New(slog.DiscardHandler), Consume: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	f.svc.Accounts = b
	f.external = &externalBroker{Broker: b, mosq: mb}
	f.external.connected.Store(-1)
	f.external.watcher = adminClient(t, mb, "watcher")
	tok := f.external.watcher.Subscribe("$SYS/broker/clients/connected", 0, func(_ paho.Client, m paho.Message) {
		if n, err := strconv.Atoi(string(m.Payload())); err == nil {
			f.external.connected.Store(int64(n))
		}
	})
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	return f
}

// adminClient connects as the broker's admin client.
func adminClient(t *testing.T, mb *mosquittotest.Broker, name string) paho.Client {
	t.Helper()
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + mb.Addr).SetClientID(name + "-" + domain.NewID()).
		SetUsername(mb.AdminUsername).SetPassword(mb.AdminPassword).SetAutoReconnect(false).SetOrderMatters(true))
	tok := cl.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { cl.Disconnect(0) })
	return cl
}

// forEachBroker runs a test once on the embedded broker and once on an external Mosquitto.
func forEachBroker(t *testing.T, test func(t *testing.T, newFixture func(t *testing.T) *fixture)) {
	t.Run("embedded", func(t *testing.T) {
		test(t, func(t *testing.T) *fixture { return newFixture(t) })
	})
	t.Run("external", func(t *testing.T) { test(t, newExternalFixture) })
}

// connectedDevices counts the devices connected to the broker. Mosquitto reports its clients on $SYS (every
// second, as the test broker is configured), the platform's and the watcher's among them.
func (f *fixture) connectedDevices() int {
	if f.external == nil {
		return f.broker.Connected()
	}
	return int(f.external.connected.Load()) - 2
}

// retainedDeviceMessages counts the messages the broker keeps for later subscribers on the device protocol's
// topics. Mosquitto sends a new subscriber what it retains before anything published after the subscription,
// so a marker the platform publishes then closes the count.
func (f *fixture) retainedDeviceMessages(t *testing.T) int {
	t.Helper()
	if f.external == nil {
		return f.broker.RetainedDeviceMessages()
	}
	marker := devices.DeviceTopic("marker", domain.NewID(), "command")
	retained, done := make(chan int, 1), make(chan struct{})
	n := 0
	cl := adminClient(t, f.external.mosq, "retained")
	tok := cl.Subscribe("ff/v1/#", 0, func(_ paho.Client, m paho.Message) {
		switch {
		case m.Topic() == marker:
			select {
			case retained <- n:
			case <-done:
			}
		case m.Retained():
			n++
		}
	})
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	require.True(t, f.external.watcher.Publish(marker, 0, false, "{}").WaitTimeout(5*time.Second))
	select {
	case got := <-retained:
		close(done)
		return got
	case <-time.After(10 * time.Second):
		close(done)
		t.Fatal("the marker did not arrive")
		return 0
	}
}

// refusedPublishCloses tells how the broker refuses a device's QoS 1 or 2 publish outside its ACL: the embedded
// broker closes the connection (MQTT 3.1.1 has no negative acknowledgement); Mosquitto acknowledges and drops it.
func (f *fixture) refusedPublishCloses() bool { return f.external == nil }

// retainedPublishCloses tells how the broker treats a retained publish: the embedded broker delivers it and
// keeps nothing; Mosquitto configured without retained messages (retain_available false) closes the connection.
func (f *fixture) retainedPublishCloses() bool { return f.external != nil }

// forbiddenWillRefusesConnect tells when the broker checks a Last Will against the ACL: the embedded broker at
// CONNECT, refusing the connection; Mosquitto when it publishes the will, dropping it.
func (f *fixture) forbiddenWillRefusesConnect() bool { return f.external == nil }

// markOnline records a check-in of the device, as its first status would: the external broker asks only a
// device seen within the offline window for its flows.
func (f *fixture) markOnline(t *testing.T, id string) {
	t.Helper()
	require.NoError(t, f.svc.Record(context.Background(), f.get(t, id), &devices.Report{State: "running"}, time.Now()))
}
