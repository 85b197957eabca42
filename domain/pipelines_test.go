package domain_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/flowyard/flowyard/domain"
)

func stage(name, action string, targets ...domain.StageTarget) domain.StageSpec {
	return domain.StageSpec{Name: name, Action: action, Targets: targets}
}

var (
	inst  = func(id string) domain.StageTarget { return domain.StageTarget{Kind: domain.TargetInstance, ID: id} }
	dev   = func(id string) domain.StageTarget { return domain.StageTarget{Kind: domain.TargetDevice, ID: id} }
	group = func(id string) domain.StageTarget { return domain.StageTarget{Kind: domain.TargetDeviceGroup, ID: id} }
)

func TestValidatePipeline(t *testing.T) {
	cases := []struct {
		name   string
		stages []domain.StageSpec
		fields []string // the fields the 422 names; none: valid
	}{
		{"empty pipeline", nil, nil},
		{"dev, staging pair, device, groups", []domain.StageSpec{
			stage("dev", domain.StageCreateSnapshot, inst("a")),
			stage("staging", domain.StagePrompt, inst("b"), inst("c")),
			stage("edge", domain.StageUseActiveSnapshot, dev("d")),
			stage("fleet", domain.StageUseLatestSnapshot, group("g1")),
			stage("fleet-2", domain.StageUseLatestSnapshot, group("g2")),
		}, nil},
		{"group first", []domain.StageSpec{stage("fleet", domain.StagePrompt, group("g"))}, []string{"stages[0].target"}},
		{"instance after a group", []domain.StageSpec{stage("dev", domain.StageCreateSnapshot, inst("a")),
			stage("fleet", domain.StagePrompt, group("g")), stage("late", domain.StagePrompt, inst("b"))}, []string{"stages[2].target"}},
		{"instance in two stages", []domain.StageSpec{stage("dev", domain.StageCreateSnapshot, inst("a")),
			stage("again", domain.StagePrompt, inst("a"))}, []string{"stages[1].target"}},
		{"mixed kinds in a stage", []domain.StageSpec{stage("mixed", domain.StagePrompt, inst("a"), dev("d"))}, []string{"stages[0].target"}},
		{"no target", []domain.StageSpec{stage("empty", domain.StagePrompt)}, []string{"stages[0].target"}},
		{"create_snapshot of a device", []domain.StageSpec{stage("edge", domain.StageCreateSnapshot, dev("d"))}, []string{"stages[0].action"}},
		{"use_active_snapshot of an instance", []domain.StageSpec{stage("dev", domain.StageUseActiveSnapshot, inst("a"))}, []string{"stages[0].action"}},
		{"unknown action and bad name", []domain.StageSpec{stage("", "teleport", inst("a"))}, []string{"stages[0].name", "stages[0].action"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := domain.ValidatePipeline(c.stages)
			if c.fields == nil {
				assert.NoError(t, err)
				return
			}
			de, ok := domain.AsError(err)
			if !assert.True(t, ok, "a domain error") {
				return
			}
			assert.Equal(t, domain.KindUnprocessable, de.Kind)
			assert.Equal(t, "pipeline_validation_failed", de.Code)
			var fields []string
			for _, v := range de.Validations {
				fields = append(fields, v.Field)
			}
			assert.Equal(t, c.fields, fields)
		})
	}
}
