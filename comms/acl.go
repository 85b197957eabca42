package comms

import "strings"

// Topic namespace of the FlowFuse device protocol (docs/device-protocol.md §3.2).
const topicPrefix = "ff/v1/"

// deviceTopic is ff/v1/<team>/d/<device>/<leaf>.
func deviceTopic(teamID, deviceID, leaf string) string {
	return topicPrefix + teamID + "/d/" + deviceID + "/" + leaf
}

// parseDeviceTopic splits ff/v1/<team>/d/<device>/<rest...>.
func parseDeviceTopic(topic string) (teamID, deviceID, rest string, ok bool) {
	p, found := strings.CutPrefix(topic, topicPrefix)
	if !found {
		return "", "", "", false
	}
	parts := strings.SplitN(p, "/", 4)
	if len(parts) != 4 || parts[1] != "d" || parts[0] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[2], parts[3], true
}

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
	case topicPrefix + g.teamID + "/a/" + g.applicationID + "/command":
		return g.applicationID != ""
	case topicPrefix + g.teamID + "/p/" + g.instanceID + "/command":
		return g.instanceID != ""
	}
	return false
}
