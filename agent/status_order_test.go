package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// statusClient is an MQTT client that is connected and records the states of the status messages published.
type statusClient struct {
	paho.Client // only what the status path calls is implemented
	mu          sync.Mutex
	states      []string
	running     chan struct{} // closed at the first "running" published
}

func (c *statusClient) IsConnectionOpen() bool { return true }

func (c *statusClient) Publish(_ string, _ byte, _ bool, payload any) paho.Token {
	var st struct{ State string }
	_ = json.Unmarshal(payload.([]byte), &st)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, st.State)
	if st.State == "running" && c.running != nil {
		close(c.running)
		c.running = nil
	}
	return nil
}

// waitsForStatusLock tells whether a goroutine other than the caller waits for a lock in sendStatus.
func waitsForStatusLock() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sync.(*Mutex).Lock") && strings.Contains(g, "(*Agent).sendStatus") {
			return true
		}
	}
	return false
}

// TestStatusMessagesLeaveInOrder: a heartbeat made while Node-RED was starting, and sent late, does not leave
// after the "running" that followed it: the last status message holds the latest state. (The platform records
// a device's status messages in the order they arrive; a stale "starting" last held the device, and a rollout's
// wave, until the device's next heartbeat.)
func TestStatusMessagesLeaveInOrder(t *testing.T) {
	running := make(chan struct{})
	cl := &statusClient{running: running}
	a := &Agent{runner: &simRunner{}, log: slog.New(slog.DiscardHandler), state: "starting"}
	a.mq = &mqttLink{a: a, prefix: "ff/v1/t/d/d1/", cl: cl}

	var once sync.Once
	changed := make(chan struct{})
	testHookStatus = func(state map[string]any) {
		if state["state"] != "starting" {
			return
		}
		once.Do(func() { // the heartbeat made its message; Node-RED now runs, before the heartbeat leaves
			go func() {
				a.setState("running", "")
				close(changed)
			}()
			require.Eventually(t, func() bool {
				select {
				case <-running: // sent at once, ahead of the heartbeat's
					return true
				default:
					return waitsForStatusLock() // or waits for the heartbeat to leave first
				}
			}, 30*time.Second, time.Millisecond)
		})
	}
	t.Cleanup(func() { testHookStatus = nil })

	a.heartbeat(context.Background())
	<-changed
	cl.mu.Lock()
	defer cl.mu.Unlock()
	assert.Equal(t, []string{"starting", "running"}, cl.states, "the status messages in the order they were made")
}
