package broker

import (
	"strings"
	"testing"

	"github.com/flowyard/flowyard/domain"
)

// FuzzDeviceMessages feeds arbitrary topics and payloads as a device could publish them. The topic parser
// round-trips what it accepts; the ACL never lets a device publish outside its own topics nor subscribe to
// anything but its command topics; command replies and upload replies are read without panics and refused with
// client errors only. (Status payloads go to devices.ParseReport: FuzzParseReport.) Seeds:
// testdata/fuzz/FuzzDeviceMessages.
func FuzzDeviceMessages(f *testing.F) {
	f.Add("ff/v1/T3amT3amT3/d/D3v1c3D3v1/response/P1atf0rm01", []byte(`{"deviceId":"D3v1c3D3v1","command":"upload","correlationData":"c1","payload":{"flows":[]}}`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		team, device, rest, ok := parseDeviceTopic(topic)
		if ok && deviceTopic(team, device, rest) != topic {
			t.Fatalf("topic %q parsed as (%q, %q, %q), which does not give it back", topic, team, device, rest)
		}
		g := grant{teamID: "T3amT3amT3", deviceID: "D3v1c3D3v1", applicationID: "App1App1Ap"}
		if g.canPublish(topic) && (!ok || team != g.teamID || device != g.deviceID || strings.ContainsAny(topic, "+#")) {
			t.Fatalf("the ACL lets a device publish on %q, outside its own topics", topic)
		}
		own := map[string]bool{deviceTopic(g.teamID, g.deviceID, "command"): true, topicPrefix + g.teamID + "/a/" + g.applicationID + "/command": true}
		if g.canSubscribe(topic) && !own[topic] {
			t.Fatalf("the ACL lets a device subscribe to %q", topic)
		}
		if r, ok := parseReply(payload); ok && (r.Command == "" || r.CorrelationData == "" || len(r.Payload) == 0) {
			t.Fatalf("accepted an incomplete reply: %+v", r)
		}
		up, err := parseUpload(payload)
		switch {
		case err != nil && !domain.IsClientError(err):
			t.Fatalf("a bad upload is not a client error: %T %v", err, err)
		case err == nil && len(up.Flows) == 0:
			t.Fatal("accepted an upload without flows")
		}
	})
}
