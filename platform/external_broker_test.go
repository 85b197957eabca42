package platform_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/broker/mosquitto/mosquittotest"
)

// TestExternalBroker runs `flowyard dev` against a throwaway Mosquitto with the dynamic-security plugin
// (--mqtt-broker external), the admin password in the environment as the README advises. A fleet of simulated
// agents provisions itself and takes a rollout (the worker tells the devices through the broker; their status
// messages come back through it). A device registered through the API connects with its credentials and gets
// exactly its topics; a target change reaches it at once; deleting it through the API closes its connection and
// refuses it, and so does deleting a team. The admin password is in no process but flowyard itself: not in its children's environment or
// command line (the Temporal dev server, Node-RED), nor in its own command line.
func TestExternalBroker(t *testing.T) {
	mb := mosquittotest.Start(t)
	d := newDevProcess(t, "--mqtt-broker", "external", "--mqtt-external-url", mb.URL(), "--mqtt-external-username", mb.AdminUsername)
	d.env = append(d.env, "FLOWYARD_MQTT_EXTERNAL_PASSWORD="+mb.AdminPassword)
	d.start()
	w := prepareFleet(t, devEnv{URL: d.url, DataDir: d.dataDir})
	group := w.fleet(t, "external", 10, 0)
	ro := w.rollout(t, group, w.snapV1, map[string]any{"waveTimeout": "2m"})
	require.Equal(t, "succeeded", ro["status"], "%v", ro)
	fleetDevice := w.devicesOf(t, group)[0]["id"].(string)

	registered := w.c.Must(200, "POST", "/api/v1/devices", map[string]any{"name": "gateway", "type": "test", "team": w.team})
	id := registered.String("id")
	var creds struct {
		Broker struct{ URL, Username, Password string }
	}
	require.NoError(t, json.Unmarshal(mustJSON(t, registered.Body["credentials"]), &creds))
	assert.Equal(t, mb.URL(), creds.Broker.URL, "devices are handed the external broker")
	dev, commands, lost := connectDevice(t, mb.Addr, creds.Broker.Username, creds.Broker.Password)
	assert.EqualValues(t, 0, subscribe(t, dev, "ff/v1/"+w.team+"/d/"+id+"/command", commands))
	assert.EqualValues(t, 0x80, subscribe(t, dev, "ff/v1/"+w.team+"/d/"+fleetDevice+"/command", commands), "another device's commands")
	assert.EqualValues(t, 0x80, subscribe(t, dev, "ff/v1/+/d/+/status", commands), "every device's status")

	w.c.Must(200, "PATCH", "/api/v1/devices/"+id, map[string]any{"applicationId": w.app})
	w.c.Must(200, "PATCH", "/api/v1/devices/"+id, map[string]any{"targetSnapshotId": w.snapV1})
	waitFor(t, 10*time.Second, "the target change to reach the device", func() bool {
		for {
			select {
			case cmd := <-commands:
				if cmd["snapshot"] == w.snapV1 {
					return true
				}
			default:
				return false
			}
		}
	})
	assert.EqualValues(t, 0, subscribe(t, dev, "ff/v1/"+w.team+"/a/"+w.app+"/command", commands), "its new application's broadcast")

	w.c.Must(204, "DELETE", "/api/v1/devices/"+id, nil)
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("deleting the device did not close its connection")
	}
	_, _, err := connectDeviceErr(mb.Addr, creds.Broker.Username, creds.Broker.Password)
	assert.Error(t, err, "a deleted device is refused")

	// Deleting a team removes its devices' accounts.
	other := w.c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Doomed"}).String("id")
	doomed := w.c.Must(200, "POST", "/api/v1/devices", map[string]any{"name": "doomed", "type": "test", "team": other})
	require.NoError(t, json.Unmarshal(mustJSON(t, doomed.Body["credentials"]), &creds))
	_, _, lost = connectDevice(t, mb.Addr, creds.Broker.Username, creds.Broker.Password)
	w.c.Must(204, "DELETE", "/api/v1/teams/"+other, nil)
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("deleting the team did not close its device's connection")
	}
	_, _, err = connectDeviceErr(mb.Addr, creds.Broker.Username, creds.Broker.Password)
	assert.Error(t, err, "a deleted team's device is refused")

	assertOnlyFlowyardHolds(t, d.cmd.Process.Pid, mb.AdminPassword)
}

// assertOnlyFlowyardHolds checks every process of the machine: none but flowyard's (pid) has secret in its
// environment, and none, flowyard's included, in its command line.
func assertOnlyFlowyardHolds(t *testing.T, pid int, secret string) {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	children := 0
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		assert.NotContains(t, string(cmdline), secret, "the command line of %d: %s", p, strings.ReplaceAll(string(cmdline), "\x00", " "))
		if p == pid {
			continue
		}
		if parent(p) == pid {
			children++
		}
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		assert.NotContains(t, string(environ), secret, "the environment of %d (%s)", p, strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	require.NoError(t, err)
	require.Contains(t, string(environ), secret, "flowyard itself holds it (the check reads environments)")
	require.Positive(t, children, "flowyard has children (the Temporal dev server, Node-RED)")
}

// parent is a process's parent, 0 when it cannot be read.
func parent(pid int) int {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// connectDevice connects as a device to the broker at addr (client ID = username) and returns the client, the
// commands it receives and its connection's loss.
func connectDevice(t *testing.T, addr, username, password string) (paho.Client, chan map[string]any, chan error) {
	t.Helper()
	cl, lost, err := connectDeviceErr(addr, username, password)
	require.NoError(t, err)
	t.Cleanup(func() { cl.Disconnect(0) })
	return cl, make(chan map[string]any, 16), lost
}

func connectDeviceErr(addr, username, password string) (paho.Client, chan error, error) {
	lost := make(chan error, 1)
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(username).SetUsername(username).SetPassword(password).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }))
	tok := cl.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, nil, fmt.Errorf("connect timed out")
	}
	return cl, lost, tok.Error()
}

// subscribe returns the SUBACK code (0 granted, 0x80 refused); what arrives goes to commands.
func subscribe(t *testing.T, cl paho.Client, topic string, commands chan map[string]any) byte {
	t.Helper()
	tok := cl.Subscribe(topic, 0, func(_ paho.Client, m paho.Message) {
		var cmd map[string]any
		if json.Unmarshal(m.Payload(), &cmd) == nil {
			commands <- cmd
		}
	})
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	for _, code := range tok.(*paho.SubscribeToken).Result() {
		return code
	}
	t.Fatal("no SUBACK code")
	return 0
}
