package domain

import (
	"fmt"
	"strings"
)

// Stage target kinds.
const (
	TargetInstance    = "instance"
	TargetDevice      = "device"
	TargetDeviceGroup = "device_group"
)

// Stage actions: how a stage obtains the snapshot it promotes to the next stage.
const (
	StageCreateSnapshot    = "create_snapshot"     // snapshot the source instance now
	StageUseLatestSnapshot = "use_latest_snapshot" // the newest snapshot of the source instance or device
	StageUseActiveSnapshot = "use_active_snapshot" // what the source device runs
	StagePrompt            = "prompt"              // the caller names the snapshot
)

// StageTarget is one instance, device or device group a stage deploys to.
type StageTarget struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// StageSpec is what the pipeline validator needs to know about a stage.
type StageSpec struct {
	Name    string
	Action  string
	Targets []StageTarget
}

// KindOf is the kind shared by a stage's targets ("" when it has none).
func (s StageSpec) KindOf() string {
	if len(s.Targets) == 0 {
		return ""
	}
	return s.Targets[0].Kind
}

// ValidatePipeline checks a pipeline's stages in order; the API runs it on the whole pipeline as it would be
// after any change (add, edit, reorder, remove), so every rule lives here and nowhere else:
//   - a stage has a valid name, a known action and one or more targets, all of one kind;
//   - an instance, device or group is a target of at most one stage of the pipeline;
//   - a device group cannot be the first stage, and after a group only groups follow (a group is the end of
//     the line: it holds no flows of its own to snapshot);
//   - create_snapshot needs an instance source, use_active_snapshot a device source.
//
// The answer is a 422 naming each offending field (stages[i].field).
func ValidatePipeline(stages []StageSpec) error {
	var fields []FieldError
	bad := func(i int, field, detail string) {
		fields = append(fields, FieldError{Field: fmt.Sprintf("stages[%d].%s", i, field), Detail: detail})
	}
	seen := map[string]int{}
	afterGroup := false
	for i, s := range stages {
		if fe := ValidateName("name", s.Name); fe != nil {
			bad(i, "name", fe.Detail)
		}
		kind := s.KindOf()
		validateTargets(i, s, seen, bad)
		switch {
		case kind == TargetDeviceGroup && i == 0:
			bad(i, "target", "a device group cannot be the first stage")
		case kind != TargetDeviceGroup && kind != "" && afterGroup:
			bad(i, "target", "only device groups can follow a device group stage")
		}
		if kind == TargetDeviceGroup {
			afterGroup = true
		}
		validateAction(i, s, bad)
	}
	if len(fields) == 0 {
		return nil
	}
	return Unprocessable("pipeline_validation_failed", "The pipeline's stages are not valid.", fields...)
}

func validateTargets(i int, s StageSpec, seen map[string]int, bad func(int, string, string)) {
	if len(s.Targets) == 0 {
		bad(i, "target", "a stage needs at least one instance, device or device group")
	}
	for _, t := range s.Targets {
		switch {
		case t.Kind != TargetInstance && t.Kind != TargetDevice && t.Kind != TargetDeviceGroup:
			bad(i, "target", "unknown target kind "+t.Kind)
		case strings.TrimSpace(t.ID) == "":
			bad(i, "target", "a target needs an id")
		case t.Kind != s.KindOf():
			bad(i, "target", "a stage's targets are all instances, all devices or all device groups")
		}
		key := t.Kind + "/" + t.ID
		if prev, ok := seen[key]; ok {
			bad(i, "target", fmt.Sprintf("%s %s is already a target of stage %d", strings.ReplaceAll(t.Kind, "_", " "), t.ID, prev+1))
		}
		seen[key] = i
	}
}

func validateAction(i int, s StageSpec, bad func(int, string, string)) {
	switch s.Action {
	case StageCreateSnapshot:
		if k := s.KindOf(); k == TargetDevice {
			bad(i, "action", "create_snapshot needs an instance stage; a device stage uses use_latest_snapshot, use_active_snapshot or prompt")
		}
	case StageUseActiveSnapshot:
		if k := s.KindOf(); k == TargetInstance {
			bad(i, "action", "use_active_snapshot is for device stages")
		}
	case StageUseLatestSnapshot, StagePrompt:
	default:
		bad(i, "action", "one of create_snapshot, use_latest_snapshot, use_active_snapshot, prompt")
	}
}
