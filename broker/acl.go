package broker

import (
	"strings"

	"github.com/flowyard/flowyard/devices"
)

// The protocol's topics (docs/device-protocol.md §3.2), named where the rules of the protocol live.
const topicPrefix = devices.TopicPrefix

var (
	deviceTopic      = devices.DeviceTopic
	parseDeviceTopic = devices.ParseDeviceTopic
)

// grant is what one connected device may do: who it is and what it belongs to.
type grant struct {
	teamID, deviceID          string
	applicationID, instanceID string
}

// canPublish allows a device its own status, logs, resources and response topics (docs/device-protocol.md §3.7).
func (g grant) canPublish(topic string) bool {
	team, device, rest, ok := parseDeviceTopic(topic)
	if !ok || team != g.teamID || device != g.deviceID {
		return false
	}
	switch rest {
	case "status", "logs", "resources", "response":
		return true
	}
	sub, found := strings.CutPrefix(rest, "response/")
	return found && sub != "" && !strings.ContainsAny(sub, "+#")
}

// canSubscribe allows a device its own command topic and the broadcast command topic of its owner
// (docs/device-protocol.md §3.7). Wildcards and shared subscriptions are never allowed.
func (g grant) canSubscribe(filter string) bool {
	if strings.ContainsAny(filter, "+#") || strings.HasPrefix(filter, "$") {
		return false
	}
	switch filter {
	case deviceTopic(g.teamID, g.deviceID, "command"):
		return true
	case devices.OwnerCommandTopic(g.teamID, "a", g.applicationID):
		return g.applicationID != ""
	case devices.OwnerCommandTopic(g.teamID, "p", g.instanceID):
		return g.instanceID != ""
	}
	return false
}
