package devices

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// MaxReportBytes caps a state report; real ones are a few hundred bytes.
const MaxReportBytes = 64 << 10

// States an agent reports (docs/device-protocol.md §4.3).
var knownStates = map[string]bool{"unknown": true, "updating": true, "provisioning": true, "suspended": true,
	"stopped": true, "loading": true, "installing": true, "starting": true, "restarting": true, "running": true,
	"safe": true, "crashed": true, "stopping": true, "error": true, "offline": true}

// Report is an agent's state object (docs/device-protocol.md §2.1). The protocol gives meaning to whether a key is
// present at all ("key presence matters"), so each owner field records presence beside its value; a nil value is JSON
// null.
type Report struct {
	Project, Application, Snapshot, Settings             *string
	HasProject, HasApplication, HasSnapshot, HasSettings bool
	State, Mode, AgentVersion, NodeRedVersion, Nodejs    string
	// Detail is why the agent is in its state (Flowyard's agent says why an install or start failed).
	Detail       string
	Provisioning *ProvisioningImport
}

// ProvisioningImport is the flow import an agent sends once after one-time-code setup (docs/device-protocol.md §1.4
// step 4).
type ProvisioningImport struct {
	DeviceConfig *struct {
		Flows       json.RawMessage   `json:"flows"`
		Credentials json.RawMessage   `json:"credentials"`
		Package     *packageDocument  `json:"package"`
		Modules     map[string]string `json:"modules"`
	} `json:"deviceConfig"`
	CredentialSecret string `json:"credentialSecret"`
	Name             string `json:"name"`
	Description      string `json:"description"`
}

type packageDocument struct {
	Modules      map[string]string `json:"modules"`
	Dependencies map[string]string `json:"dependencies"`
}

// ParseReport reads a state report. JSON null (an agent in the middle of an update) is the state
// "updating" with no other field. Anything but an object of the protocol's shape is invalid.
func ParseReport(body []byte) (*Report, error) {
	if len(body) > MaxReportBytes {
		return nil, &domain.Error{Kind: domain.KindTooLarge, Code: "report_too_large", Message: fmt.Sprintf("A state report is at most %d KiB.", MaxReportBytes>>10)}
	}
	trimmed := bytes.TrimSpace(body)
	if bytes.Equal(trimmed, []byte("null")) {
		return &Report{State: "updating"}, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &raw); err != nil || raw == nil {
		return nil, domain.InvalidField("body", "must be the agent's state object")
	}
	r := &Report{}
	var errs []domain.FieldError
	for key, dst := range map[string]**string{"project": &r.Project, "application": &r.Application, "snapshot": &r.Snapshot, "settings": &r.Settings} {
		v, present := raw[key]
		if !present {
			continue
		}
		s, err := nullableString(v)
		if err != nil {
			errs = append(errs, domain.FieldError{Field: key, Detail: "must be a string or null"})
		} else if s != nil && !domain.Storable(*s) {
			errs = append(errs, domain.FieldError{Field: key, Detail: "must not contain NUL characters"})
		}
		*dst = s
	}
	_, r.HasProject = raw["project"]
	_, r.HasApplication = raw["application"]
	_, r.HasSnapshot = raw["snapshot"]
	_, r.HasSettings = raw["settings"]
	for key, dst := range map[string]*string{"state": &r.State, "mode": &r.Mode, "agentVersion": &r.AgentVersion,
		"nodeRedVersion": &r.NodeRedVersion, "nodejsVersion": &r.Nodejs, "stateDetail": &r.Detail} {
		if v, ok := raw[key]; ok {
			s, err := nullableString(v)
			if err != nil || (s != nil && (len(*s) > 1024 || !domain.Storable(*s))) {
				errs = append(errs, domain.FieldError{Field: key, Detail: "must be a string of at most 1024 characters, without NUL"})
			} else if s != nil {
				*dst = *s
			}
		}
	}
	if r.State != "" && !knownStates[r.State] {
		errs = append(errs, domain.FieldError{Field: "state", Detail: "is not a state of the device protocol"})
	}
	if v, ok := raw["provisioning"]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		r.Provisioning = new(ProvisioningImport)
		if err := json.Unmarshal(v, r.Provisioning); err != nil {
			errs = append(errs, domain.FieldError{Field: "provisioning", Detail: "must be an object with deviceConfig"})
		}
	}
	if errs != nil {
		return nil, domain.Invalid(errs...)
	}
	return r, nil
}

func nullableString(v json.RawMessage) (*string, error) {
	if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// snapshotID reads a reported snapshot: "0" (the FlowFuse starter snapshot) and "" mean none.
func snapshotID(s *string) *string {
	if s == nil || *s == "" || *s == "0" {
		return nil
	}
	return s
}

func same(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// Record stores a report on its device: state, versions, when it was seen, and the snapshot it runs when
// the platform knows that snapshot (in the device's team). d is updated to match.
func (s *Service) Record(ctx context.Context, d *storage.Device, r *Report, at time.Time) error {
	rep, err := s.report(ctx, d, r, at)
	if err != nil {
		return err
	}
	if err := s.Store.RecordDeviceReport(ctx, d.ID, rep); err != nil {
		return err
	}
	applyReport(d, rep)
	return nil
}

// RecordAll is Record for many reports (rs[i] of ds[i]), written in one transaction, in order. It returns the
// devices recorded: a device deleted meanwhile is left out.
func (s *Service) RecordAll(ctx context.Context, ds []*storage.Device, rs []*Report, at time.Time) ([]*storage.Device, []*Report, error) {
	ids := make([]string, len(ds))
	reps := make([]storage.DeviceReport, len(ds))
	for i, d := range ds {
		rep, err := s.report(ctx, d, rs[i], at)
		if err != nil {
			return nil, nil, err
		}
		ids[i], reps[i] = d.ID, rep
	}
	gone, err := s.Store.RecordDeviceReports(ctx, ids, reps)
	if err != nil {
		return nil, nil, err
	}
	kept, keptReports := ds[:0:0], rs[:0:0]
	for i, d := range ds {
		if !slices.Contains(gone, d.ID) {
			applyReport(d, reps[i])
			kept, keptReports = append(kept, d), append(keptReports, rs[i])
		}
	}
	return kept, keptReports, nil
}

// report is what a report changes on its device.
func (s *Service) report(ctx context.Context, d *storage.Device, r *Report, at time.Time) (storage.DeviceReport, error) {
	active, err := s.knownSnapshot(ctx, d, snapshotID(r.Snapshot))
	if err != nil {
		return storage.DeviceReport{}, err
	}
	if !r.HasSnapshot {
		active = d.ActiveSnapshotID // a report without the key says nothing about it
	}
	rep := storage.DeviceReport{State: r.State, StateDetail: r.Detail, AgentVersion: orOld(r.AgentVersion, d.AgentVersion),
		NodeRedVersion: orOld(r.NodeRedVersion, d.NodeRedVersion), NodejsVersion: orOld(r.Nodejs, d.NodejsVersion),
		ActiveSnapshotID: active, At: at, CameBack: s.Status(d, at) != StatusOnline}
	if rep.State == "" {
		rep.State = d.State
	}
	if rep.State == d.State && rep.StateDetail == "" && rep.State != "running" {
		rep.StateDetail = d.StateDetail // keep the reason an audit event gave until the state changes
	}
	return rep, nil
}

func applyReport(d *storage.Device, rep storage.DeviceReport) {
	d.State, d.StateDetail, d.AgentVersion, d.NodeRedVersion, d.NodejsVersion = rep.State, rep.StateDetail, rep.AgentVersion, rep.NodeRedVersion, rep.NodejsVersion
	d.ActiveSnapshotID, d.LastSeenAt = rep.ActiveSnapshotID, &rep.At
}

func orOld(v, old string) string {
	if v == "" {
		return old
	}
	return v
}

// knownSnapshot returns id when it names a snapshot of the device's team, else nil.
func (s *Service) knownSnapshot(ctx context.Context, d *storage.Device, id *string) (*string, error) {
	if id == nil || same(id, d.TargetSnapshotID) || same(id, d.ActiveSnapshotID) {
		return id, nil
	}
	snap, err := s.Store.GetSnapshotMeta(ctx, *id)
	if domain.IsKind(err, domain.KindNotFound) || (err == nil && snap.TeamID != d.TeamID) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return id, nil
}

// Target is what a device should run, as the protocol names it.
type Target struct {
	OwnerType   string  // application, instance or ""
	Application *string // set for application-owned devices
	Project     *string // the instance of instance-owned devices
	Snapshot    *string
	Settings    string
	Mode        string
}

// TargetOf returns what a device should run. An application device whose agent is too old gets nothing.
func TargetOf(d *storage.Device) Target {
	t := Target{OwnerType: OwnerType(d), Application: d.ApplicationID, Project: d.InstanceID, Snapshot: d.TargetSnapshotID,
		Settings: d.SettingsHash, Mode: d.Mode}
	if t.Mode == "" {
		t.Mode = ModeAutonomous
	}
	return t
}

// UpdateCommand is the `update` command for a device (docs/device-protocol.md §3.3): the owner key of the other type is
// left out, since the agent tests key presence.
func UpdateCommand(d *storage.Device) map[string]any {
	t := TargetOf(d)
	cmd := map[string]any{"command": "update", "snapshot": t.Snapshot, "settings": t.Settings, "mode": t.Mode, "licensed": false}
	switch t.OwnerType {
	case OwnerApplication:
		cmd["ownerType"], cmd["application"] = OwnerApplication, *t.Application
		if agentTooOld(d) {
			cmd["snapshot"], cmd["settings"] = nil, nil
		}
	case OwnerInstance:
		cmd["ownerType"], cmd["project"] = OwnerInstance, *t.Project
	default:
		cmd["ownerType"], cmd["project"], cmd["snapshot"] = nil, nil, nil
	}
	return cmd
}

// NeedsUpdate reports whether a status heard over MQTT calls for an `update` command (docs/device-protocol.md §4.4):
// the agent does not know its state yet, runs an old agent on an application, or reports an owner, snapshot or settings
// other than the platform's.
func NeedsUpdate(d *storage.Device, r *Report) bool {
	switch {
	case r.State == "unknown":
		return true
	case agentTooOld(d):
		return true
	case r.HasProject && !same(r.Project, d.InstanceID):
		return true
	case r.HasApplication && !same(r.Application, d.ApplicationID):
		return true
	case r.HasSnapshot && !same(snapshotID(r.Snapshot), d.TargetSnapshotID):
		return true
	case r.HasSettings && (r.Settings == nil || *r.Settings != d.SettingsHash):
		return true
	}
	return false
}

// CheckIn is the HTTP check-in decision (docs/device-protocol.md §2.2), in FlowFuse's order, after the report was
// recorded: nil means 200 {} (in sync), otherwise the 409 body naming what the device should run.
func CheckIn(d *storage.Device, r *Report, provisioning bool) map[string]any {
	t := TargetOf(d)
	switch {
	case agentTooOld(d):
		return map[string]any{"error": "incorrect-agent-version", "mode": t.Mode, "project": nil, "settings": nil, "snapshot": nil}
	case r.HasProject && !same(r.Project, d.InstanceID):
		return map[string]any{"error": "incorrect-project", "project": d.InstanceID, "snapshot": t.Snapshot, "settings": t.Settings}
	case r.HasApplication && !same(r.Application, d.ApplicationID):
		return map[string]any{"error": "incorrect-application", "application": d.ApplicationID, "snapshot": t.Snapshot, "settings": t.Settings}
	case !provisioning && !same(snapshotID(r.Snapshot), d.TargetSnapshotID):
		return ownerKeyed(d, map[string]any{"error": "incorrect-snapshot", "snapshot": t.Snapshot, "settings": t.Settings})
	case r.HasSettings && (r.Settings == nil || *r.Settings != d.SettingsHash):
		return ownerKeyed(d, map[string]any{"error": "incorrect-settings", "settings": t.Settings, "snapshot": t.Snapshot})
	}
	return nil
}

// ownerKeyed adds the device's owner under the key of its type (project for instance-owned and unassigned
// devices, application for application-owned ones).
func ownerKeyed(d *storage.Device, body map[string]any) map[string]any {
	if d.ApplicationID != nil {
		body["application"] = *d.ApplicationID
	} else {
		body["project"] = d.InstanceID
	}
	return body
}
