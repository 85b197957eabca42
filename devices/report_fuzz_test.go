package devices

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/flowyard/flowyard/domain"
)

// FuzzParseReport feeds arbitrary state reports (the body of POST live/state and the payload of the MQTT status
// topic) to the parser: it never panics, refuses with a client error only, and what it accepts reads back the
// same when written out again in the protocol's shape. Seeds: testdata/fuzz/FuzzParseReport.
func FuzzParseReport(f *testing.F) {
	f.Add([]byte(`null`))
	f.Add([]byte(`{"state":"running","snapshot":null,"settings":"","project":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseReport(body)
		if err != nil {
			if !domain.IsClientError(err) {
				t.Fatalf("a bad report is not a client error: %T %v", err, err)
			}
			return
		}
		for _, v := range []*string{r.Project, r.Application, r.Snapshot, r.Settings, &r.State, &r.Mode, &r.AgentVersion, &r.NodeRedVersion, &r.Nodejs, &r.Detail} {
			if v != nil && !domain.Storable(*v) {
				t.Fatalf("accepted %q, which a store refuses", *v)
			}
		}
		again, err := ParseReport(reportJSON(t, r))
		if err != nil {
			t.Fatalf("an accepted report does not parse again: %v", err)
		}
		if !reflect.DeepEqual(withoutProvisioning(r), withoutProvisioning(again)) || provisioningJSON(t, r) != provisioningJSON(t, again) {
			t.Fatalf("round trip changed the report:\n%+v\n%+v", r, again)
		}
	})
}

// reportJSON writes a report as an agent would send it, keys present exactly where they were.
func reportJSON(t *testing.T, r *Report) []byte {
	if r.State == "updating" && !r.HasProject && !r.HasApplication && !r.HasSnapshot && !r.HasSettings && r.Mode == "" {
		return []byte("null")
	}
	m := map[string]any{}
	for key, v := range map[string]struct {
		has bool
		val *string
	}{"project": {r.HasProject, r.Project}, "application": {r.HasApplication, r.Application}, "snapshot": {r.HasSnapshot, r.Snapshot}, "settings": {r.HasSettings, r.Settings}} {
		if v.has {
			m[key] = v.val
		}
	}
	for key, v := range map[string]string{"state": r.State, "mode": r.Mode, "agentVersion": r.AgentVersion, "nodeRedVersion": r.NodeRedVersion,
		"nodejsVersion": r.Nodejs, "stateDetail": r.Detail} {
		if v != "" {
			m[key] = v
		}
	}
	if r.Provisioning != nil {
		m["provisioning"] = r.Provisioning
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("write the report: %v", err)
	}
	return b
}

func withoutProvisioning(r *Report) Report {
	c := *r
	c.Provisioning = nil
	return c
}

// provisioningJSON compares the raw flows and credentials by their compact form.
func provisioningJSON(t *testing.T, r *Report) string {
	b, err := json.Marshal(r.Provisioning)
	if err != nil {
		t.Fatalf("write the provisioning import: %v", err)
	}
	return string(b)
}
