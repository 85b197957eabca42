package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// mqttLink is the agent's MQTT connection (docs/device-protocol.md §3): status out, commands in.
type mqttLink struct {
	a      *Agent
	cl     paho.Client
	prefix string // ff/v1/<team>/d/<device>/
}

// brokerAddress turns the protocol's broker URL into paho's: mqtt→tcp, mqtts→ssl; ws and wss keep their
// scheme and use path "/" (the FlowFuse agent ignores the URL's path).
func brokerAddress(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("broker URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "mqtt", "tcp":
		u.Scheme = "tcp"
	case "mqtts", "ssl", "tls":
		u.Scheme = "ssl"
	case "ws", "wss":
		u.Path = "/"
	default:
		return "", fmt.Errorf("broker URL %q: scheme must be mqtt, mqtts, ws or wss", raw)
	}
	return u.String(), nil
}

func connectMQTT(a *Agent) (*mqttLink, error) {
	parts := strings.Split(a.cfg.BrokerUsername, ":")
	if len(parts) != 3 || parts[0] != "device" {
		return nil, fmt.Errorf("invalid brokerUsername %q: want device:<team>:<device>", a.cfg.BrokerUsername)
	}
	addr, err := brokerAddress(a.cfg.BrokerURL)
	if err != nil {
		return nil, err
	}
	m := &mqttLink{a: a, prefix: "ff/v1/" + parts[1] + "/d/" + parts[2] + "/"}
	opts := paho.NewClientOptions().AddBroker(addr).SetClientID(a.cfg.BrokerUsername).
		SetUsername(a.cfg.BrokerUsername).SetPassword(a.cfg.BrokerPassword).SetProtocolVersion(4).
		SetCleanSession(true).SetKeepAlive(60 * time.Second).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(time.Duration(13+rand.IntN(12)) * time.Second).SetMaxReconnectInterval(25 * time.Second).
		SetOrderMatters(false).SetOnConnectHandler(m.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) { a.log.Warn("MQTT connection lost", "err", err) })
	m.cl = paho.NewClient(opts)
	m.cl.Connect() // with connect retry, this keeps trying in the background
	return m, nil
}

func (m *mqttLink) connected() bool { return m.cl.IsConnectionOpen() }

func (m *mqttLink) close() { m.cl.Disconnect(250) }

// onConnect subscribes to the device's command topic and publishes the state, so the platform answers with
// an update if the device is out of date.
func (m *mqttLink) onConnect(cl paho.Client) {
	m.a.log.Info("MQTT connected")
	cl.Subscribe(m.prefix+"command", 0, m.onCommand)
	m.a.sendStatus(m)
}

func (m *mqttLink) publishStatus(state map[string]any) {
	b, err := json.Marshal(state)
	if err != nil {
		return
	}
	m.cl.Publish(m.prefix+"status", 0, false, b)
}

// command is a command message (docs/device-protocol.md §3.3) with the request envelope of §3.4.
type command struct {
	Command         string `json:"command"`
	CorrelationData string `json:"correlationData"`
	ResponseTopic   string `json:"responseTopic"`
	TeamID          string `json:"teamId"`
	DeviceID        string `json:"deviceId"`
}

func (m *mqttLink) onCommand(_ paho.Client, msg paho.Message) {
	var cmd command
	if err := json.Unmarshal(msg.Payload(), &cmd); err != nil {
		m.a.log.Warn("ignored a malformed command", "err", err)
		return
	}
	switch cmd.Command {
	case "update":
		var t map[string]json.RawMessage
		if json.Unmarshal(msg.Payload(), &t) == nil {
			delete(t, "command")
			m.a.enqueue(t)
		}
	case "upload":
		go m.reply(cmd, m.a.upload())
	case "startLog":
		m.a.log.Info("streaming the log to the platform")
		m.a.logs.start(m.publishLog)
	case "stopLog":
		m.a.log.Info("no longer streaming the log")
		m.a.logs.stop()
	case "startEditor":
		var msg2 struct {
			Payload struct {
				Token string `json:"token"`
			} `json:"payload"`
		}
		_ = json.Unmarshal(msg.Payload(), &msg2)
		go m.reply(cmd, m.a.startEditor(msg2.Payload.Token))
	case "stopEditor":
		m.a.log.Info("closing the editor tunnel")
		go m.a.stopEditor()
	case "action":
		action := actionOf(msg.Payload())
		m.a.log.Info("action", "action", action)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			m.reply(cmd, actionReply(m.a.act(ctx, action)))
			m.a.sendStatus(m) // the outcome, in the state
		}()
	default:
		m.a.log.Debug("ignored a command this agent does not implement", "command", cmd.Command)
	}
}

// publishLog publishes log entries (an array or one entry) on the device's logs topic.
func (m *mqttLink) publishLog(v any) {
	if b, err := json.Marshal(v); err == nil {
		m.cl.Publish(m.prefix+"logs", 0, false, b)
	}
}

// reply publishes a command's answer on its response topic (docs/device-protocol.md §3.4).
func (m *mqttLink) reply(cmd command, payload any) {
	topic := cmd.ResponseTopic
	if topic == "" || !strings.HasPrefix(topic, m.prefix+"response") {
		topic = m.prefix + "response"
	}
	b, err := json.Marshal(map[string]any{"teamId": cmd.TeamID, "deviceId": cmd.DeviceID, "command": cmd.Command,
		"correlationData": cmd.CorrelationData, "userProperties": map[string]any{}, "payload": payload})
	if err == nil {
		m.cl.Publish(topic, 0, false, b)
	}
}

// upload is the answer to the `upload` command: the flows and credentials as Node-RED last saved them on the
// device (credentials encrypted with the device's secret), and the package.
func (a *Agent) upload() map[string]any {
	state := a.report() // the whole state object, as FlowFuse agents send it
	a.mu.Lock()
	snap := a.st.Snapshot
	a.mu.Unlock()
	dir := filepath.Join(a.opts.Dir, "project")
	flows := readJSONFile(filepath.Join(dir, "flows.json"), "[]")
	creds := readJSONFile(filepath.Join(dir, "flows_cred.json"), "{}")
	modules := map[string]string{}
	if snap != nil {
		for k, v := range snap.Modules {
			modules[k] = v
		}
	}
	if pkg := readJSONFile(filepath.Join(dir, "package.json"), "{}"); len(pkg) > 0 {
		var doc struct {
			Dependencies map[string]string `json:"dependencies"`
		}
		if json.Unmarshal(pkg, &doc) == nil && len(doc.Dependencies) > 0 {
			modules = doc.Dependencies
		}
	}
	return map[string]any{"state": state, "flows": flows, "credentials": creds,
		"package": map[string]any{"modules": modules, "version": "", "name": "", "description": ""}}
}

func readJSONFile(path, empty string) json.RawMessage {
	b, err := os.ReadFile(path)
	if err != nil || !json.Valid(b) {
		return json.RawMessage(empty)
	}
	return b
}
