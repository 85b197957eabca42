package broker_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/broker"
)

// TestCloseWhileDevicesDisconnect stops the broker while hundreds of devices, over TCP and WebSocket, drop
// their connections, round after round: Close must return every time. mochi-mqtt 2.7.9's own way of closing a
// listener's clients takes the clients' read lock twice, one inside the other, and deadlocks when a
// disconnecting client asks for the write lock in between; these rounds hit that within a few tries.
//
// Every device's disconnection is held just before the broker forgets the client and all are let go as Close
// begins. In production the worker queues do the holding: a disconnecting device waits for room in its
// worker's queue, and Close lets all the waiters go at once when it stops the workers.
func TestCloseWhileDevicesDisconnect(t *testing.T) {
	const devices, rounds = 200, 40
	onManyCores(t)
	f := newFixture(t)
	fleet := f.fleet(t, devices)
	for round := range rounds {
		b := f.startBroker(t)
		clients := connectFleet(t, b, fleet)
		parked, release := make(chan struct{}, devices), make(chan struct{})
		b.ParkDisconnects(parked, release)
		for _, c := range clients {
			go c.drop()
		}
		for range devices {
			<-parked
		}
		close(release)
		closeWithin(t, b, fmt.Sprintf("round %d, %d devices disconnecting", round, devices))
	}
}

// TestCloseWhileDevicesConnect stops the broker while devices keep signing in, round after round: Close must
// return every time. A sign-in waits for its device's worker to check the password; once Close had stopped the
// workers, a sign-in that had queued its check waited forever, and Close waited for it.
func TestCloseWhileDevicesConnect(t *testing.T) {
	const devices, rounds = 50, 10
	f := newFixture(t)
	fleet := f.fleet(t, devices)
	for round := range rounds {
		b := f.startBroker(t)
		var signedIn atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i, d := range fleet {
			wg.Add(1)
			go func() {
				defer wg.Done()
				url := []string{"tcp://" + b.Addr(), "ws://" + b.WSAddr() + "/"}[i%2]
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := dialRawErr(url)
					if err != nil {
						continue // the broker is closing
					}
					if code, err := c.connectAs(d, nil); err == nil && code == 0 {
						signedIn.Add(1)
					}
					c.drop()
				}
			}()
		}
		waitFor(t, "devices to be signing in", func() bool { return signedIn.Load() >= devices })
		closeWithin(t, b, fmt.Sprintf("round %d, %d devices signing in", round, devices))
		close(stop)
		wg.Wait()
	}
}

// onManyCores gives the test more Go processors than the machine has cores, for its duration: the broker runs
// on machines with many cores, where disconnecting clients really run at the same time and contend for the
// broker's locks; on a small test machine they would mostly take turns.
func onManyCores(t *testing.T) {
	previous := runtime.GOMAXPROCS(32)
	t.Cleanup(func() { runtime.GOMAXPROCS(previous) })
}

// fleet registers n devices.
func (f *fixture) fleet(t *testing.T, n int) []device {
	t.Helper()
	fleet := make([]device, n)
	for i := range fleet {
		fleet[i] = f.register(t, nil)
	}
	return fleet
}

// startBroker starts another broker on the fixture's store; the test closes it.
func (f *fixture) startBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.Start(context.Background(), broker.Config{Listen: "127.0.0.1:0", WSListen: "127.0.0.1:0", Devices: f.svc})
	require.NoError(t, err)
	return b
}

// closeWithin closes the broker and fails the test if Close has not returned after ten seconds (it leaves the
// hung Close behind).
func closeWithin(t *testing.T, b *broker.Broker, what string) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("the broker did not close within 10s (%s)", what)
	}
}

// connectFleet connects every device, alternating TCP and WebSocket, a few at a time.
func connectFleet(t *testing.T, b *broker.Broker, fleet []device) []*rawClient {
	t.Helper()
	urls := []string{"tcp://" + b.Addr(), "ws://" + b.WSAddr() + "/"}
	clients := make([]*rawClient, len(fleet))
	errs := make(chan error, len(fleet))
	var wg sync.WaitGroup
	slots := make(chan struct{}, 16)
	for i, d := range fleet {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			c, err := dialRawErr(urls[i%2])
			if err == nil {
				var code byte
				if code, err = c.connectAs(d, nil); err == nil && code != 0 {
					err = fmt.Errorf("CONNACK %#x", code)
				}
			}
			if err != nil {
				errs <- fmt.Errorf("device %d: %w", i, err)
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for _, c := range clients {
			if c != nil {
				c.drop()
			}
		}
	})
	return clients
}
