package domain

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAllowedFollowsTheRoleTable(t *testing.T) {
	member := Caller{UserID: "u"}
	assert.True(t, Allowed(member, RoleViewer, ActionTeamUserList))
	assert.False(t, Allowed(member, RoleDashboard, ActionTeamUserList))
	assert.True(t, Allowed(member, RoleNone, ActionTeamCreate), "any signed-in user may create a team")
	assert.False(t, Allowed(Caller{}, RoleOwner, ActionTeamRead), "no one signed in may do nothing")
	assert.False(t, Allowed(member, RoleOwner, ActionUserCreate), "admin-only actions need an admin")
	assert.True(t, Allowed(Caller{UserID: "a", Admin: true}, RoleNone, ActionUserCreate))
}

func TestNewIDsIncrease(t *testing.T) {
	prev := NewID()
	for i := 0; i < 10000; i++ {
		id := NewID()
		require.Greater(t, id, prev)
		prev = id
	}
}

func TestMergeSettingsAndEnvRespectLocks(t *testing.T) {
	tpl := map[string]any{"pageTitle": "Flowyard", "timeZone": "UTC"}
	policy := map[string]bool{"pageTitle": false}
	merged, err := MergeSettings(tpl, policy, map[string]any{"timeZone": "Europe/Paris"})
	require.NoError(t, err)
	assert.Equal(t, "Europe/Paris", merged["timeZone"])
	assert.Equal(t, "Flowyard", merged["pageTitle"])

	_, err = MergeSettings(tpl, policy, map[string]any{"pageTitle": "Mine"})
	de, ok := AsError(err)
	require.True(t, ok)
	assert.Equal(t, KindUnprocessable, de.Kind)
	assert.Equal(t, "settings.pageTitle", de.Validations[0].Field)

	env, err := MergeEnv([]EnvVar{{Name: "A", Value: "1", Locked: true}, {Name: "B", Value: "2"}}, []EnvVar{{Name: "B", Value: "3"}, {Name: "C", Value: "4"}})
	require.NoError(t, err)
	assert.Equal(t, []EnvVar{{Name: "A", Value: "1", Locked: true}, {Name: "B", Value: "3"}, {Name: "C", Value: "4"}}, env)
	_, err = MergeEnv([]EnvVar{{Name: "A", Value: "1", Locked: true}}, []EnvVar{{Name: "A", Value: "x"}})
	assert.True(t, IsKind(err, KindUnprocessable))
	_, err = MergeEnv(nil, []EnvVar{{Name: "FLOWYARD_TOKEN", Value: "x"}})
	assert.True(t, IsKind(err, KindInvalid), "platform variables cannot be set")
}

func TestTokensAreHashedWithPrefix(t *testing.T) {
	tok, hash := NewToken(TokenPrefixUser)
	assert.Regexp(t, `^fyu_[0-9a-z]{52}$`, tok)
	assert.Equal(t, HashToken(tok), hash)
	assert.NotContains(t, hash, tok[4:])
}

func TestPasswordCheck(t *testing.T) {
	h, err := HashPassword("long enough")
	require.NoError(t, err)
	assert.True(t, CheckPassword(h, "long enough"))
	assert.False(t, CheckPassword(h, "long enougH"))
	assert.False(t, CheckPassword("", "anything"))
}

// TestValidateSettingsRefusesValuesNodeRedWouldNotApply: each value here would reach settings.js and be
// ignored or misread by Node-RED, so it is refused by name when saved.
func TestValidateSettingsRefusesValuesNodeRedWouldNotApply(t *testing.T) {
	for name, value := range map[string]any{
		"timeZone":         "Mars/Olympus_Mons",
		"codeEditor":       "vim",
		"paletteDenyList":  []any{"node-red-(contrib"},
		"paletteAllowList": []any{"node-red-contrib-*", "a+b"},
		"apiMaxLength":     "5 megabytes",
	} {
		errs := ValidateSettings("settings", map[string]any{name: value})
		if assert.Len(t, errs, 1, name) {
			assert.Equal(t, "settings."+name, errs[0].Field)
		}
	}
	for _, tz := range []string{"", "Local"} {
		assert.Len(t, ValidateSettings("settings", map[string]any{"timeZone": tz}), 1, "time zone %q", tz)
	}
	good := map[string]any{
		"timeZone": "Asia/Tokyo", "codeEditor": "ace", "apiMaxLength": "500kb",
		"paletteAllowList": []any{"node-red-contrib-*", "@flowfuse/*", "node-red-node-random@~0.4.1", "*"},
		"paletteDenyList":  []any{"node-red-contrib-exec*", "@scope/name@>=1.0.0 <2 || 3.x"},
	}
	assert.Empty(t, ValidateSettings("settings", good))
	assert.Empty(t, ValidateSettings("settings", map[string]any{"timeZone": "UTC"}))
}
