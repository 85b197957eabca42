package devices

import "strings"

// TopicPrefix is the namespace of the device protocol's MQTT topics (docs/device-protocol.md §3.2).
const TopicPrefix = "ff/v1/"

// DeviceTopic is ff/v1/<team>/d/<device>/<leaf>.
func DeviceTopic(teamID, deviceID, leaf string) string {
	return TopicPrefix + teamID + "/d/" + deviceID + "/" + leaf
}

// OwnerCommandTopic is the broadcast command topic of an application (ownerType "a") or an instance ("p").
func OwnerCommandTopic(teamID, ownerType, ownerID string) string {
	return TopicPrefix + teamID + "/" + ownerType + "/" + ownerID + "/command"
}

// ParseDeviceTopic splits ff/v1/<team>/d/<device>/<rest...>.
func ParseDeviceTopic(topic string) (teamID, deviceID, rest string, ok bool) {
	p, found := strings.CutPrefix(topic, TopicPrefix)
	if !found {
		return "", "", "", false
	}
	parts := strings.SplitN(p, "/", 4)
	if len(parts) != 4 || parts[1] != "d" || parts[0] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[2], parts[3], true
}
