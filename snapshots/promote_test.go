package snapshots_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/snapshots"
)

func TestPromotedEnvKeepsTargetValuesAddsNewKeysAndDropsPlatformVars(t *testing.T) {
	own := []domain.EnvVar{{Name: "API_URL", Value: "https://prod"}}
	tpl := []domain.EnvVar{{Name: "REGION", Value: "eu"}}
	snap := []domain.EnvVar{{Name: "API_URL", Value: "https://dev"}, {Name: "REGION", Value: "us"}, {Name: "NEW_FLAG", Value: "on"},
		{Name: "FF_INSTANCE_NAME", Value: "dev-1"}}
	assert.Equal(t, []domain.EnvVar{{Name: "API_URL", Value: "https://prod"}, {Name: "NEW_FLAG", Value: "on"}},
		snapshots.PromotedEnv(own, tpl, snap))
}
