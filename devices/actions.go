package devices

import (
	"encoding/json"

	"github.com/flowyard/flowyard/domain"
)

// Actions on a device's Node-RED, as the API names them. The protocol's `action` command knows start, restart and
// suspend (docs/device-protocol.md §3.3); stop is suspend, the one way an agent stops Node-RED and keeps it stopped.
var actionCommands = map[string]string{"start": "start", "stop": "suspend", "restart": "restart", "suspend": "suspend"}

// ActionCommand is the protocol's action for an API action, or an error naming the ones there are.
func ActionCommand(action string) (string, error) {
	if c, ok := actionCommands[action]; ok {
		return c, nil
	}
	return "", domain.InvalidField("action", "must be start, stop, restart or suspend")
}

// ActionReply is an agent's answer to `action`: {success:true} or {success:false, error:{message, code}}.
type ActionReply struct {
	Success bool `json:"success"`
	Error   *struct {
		Message string `json:"message"`
		Code    string `json:"code"`
	} `json:"error"`
}

// ActionResult reads the agent's reply: nil when it did what it was asked, else why not.
func ActionResult(raw json.RawMessage) error {
	var r ActionReply
	if err := json.Unmarshal(raw, &r); err != nil {
		return domain.Unprocessable("bad_device_reply", "The device's reply to the action is not {success, error}.")
	}
	if r.Success {
		return nil
	}
	msg := "The device could not do it."
	if r.Error != nil && r.Error.Message != "" {
		msg = "The device could not do it: " + r.Error.Message
		if len(msg) > 500 {
			msg = msg[:500]
		}
	}
	return domain.Conflict("device_action_failed", msg)
}
