package mosquitto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// The dynamic-security plugin's API: JSON commands published on controlTopic, answers on responseTopic, each
// answer carrying the correlationData of its command.
const (
	controlTopic  = "$CONTROL/dynamic-security/v1"
	responseTopic = controlTopic + "/response"
)

// command is one dynamic-security command: its name and its fields, as the plugin documents them.
type command map[string]any

// response is the plugin's answer to one command: an error text, or the data a read command returns.
type response struct {
	Command         string          `json:"command"`
	Error           string          `json:"error"`
	CorrelationData string          `json:"correlationData"`
	Data            json.RawMessage `json:"data"`
}

// CommandError is a command the plugin refused, with its reason ("Client already exists", "Client not found"…).
type CommandError struct{ Command, Reason string }

func (e *CommandError) Error() string {
	return "mosquitto dynamic security: " + e.Command + ": " + e.Reason
}

// refused reports whether err is the plugin refusing a command for the reason given.
func refused(err error, reason string) bool {
	var ce *CommandError
	return errors.As(err, &ce) && ce.Reason == reason
}

// control sends commands to the dynamic-security plugin over a connection of the platform's admin client and
// matches each answer to its command.
type control struct {
	cl      paho.Client
	next    atomic.Uint64
	waiting sync.Map // correlationData -> chan response
}

// onResponse hands each answer of a response message to the command waiting for it.
func (c *control) onResponse(_ paho.Client, m paho.Message) {
	var msg struct {
		Responses []response `json:"responses"`
	}
	if json.Unmarshal(m.Payload(), &msg) != nil {
		return
	}
	for _, r := range msg.Responses {
		if ch, ok := c.waiting.LoadAndDelete(r.CorrelationData); ok {
			ch.(chan response) <- r
		}
	}
}

// do sends commands in one message and waits for every answer. The plugin applies them in order and saves its
// whole configuration after each change, so a message carries a device's few commands, not a fleet's. The
// first refusal is returned; the answers come back in the commands' order.
func (c *control) do(ctx context.Context, cmds ...command) ([]response, error) {
	chans := make([]chan response, len(cmds))
	for i, cmd := range cmds {
		id := strconv.FormatUint(c.next.Add(1), 36)
		cmd["correlationData"] = id
		chans[i] = make(chan response, 1)
		c.waiting.Store(id, chans[i])
		defer c.waiting.Delete(id)
	}
	payload, err := json.Marshal(map[string]any{"commands": cmds})
	if err != nil {
		return nil, err
	}
	// At QoS 0: a command resent after a reconnection would be applied twice.
	if err := wait(ctx, c.cl.Publish(controlTopic, 0, false, payload)); err != nil {
		return nil, fmt.Errorf("send to mosquitto's dynamic security: %w", err)
	}
	out := make([]response, len(cmds))
	var first error
	for i, ch := range chans {
		select {
		case out[i] = <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("mosquitto's dynamic security did not answer %s: %w", cmds[i]["command"], ctx.Err())
		}
		if out[i].Error != "" && first == nil {
			first = &CommandError{Command: out[i].Command, Reason: out[i].Error}
		}
	}
	return out, first
}

// wait waits for an MQTT operation until ctx ends.
func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}
