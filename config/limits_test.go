package config

import (
	"strings"
	"testing"
)

func TestLimitsHaveDefaultsEnvAndFlags(t *testing.T) {
	c, err := Load("dev", nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxTeamOperations != 20 || c.Limits.MQTTMaxPacketKB != 1024 || c.Limits.ProvisionsPerToken != 1000 || c.Limits.MaxJSONDepth != 32 {
		t.Fatalf("defaults: %+v", c.Limits)
	}
	c, err = Load("dev", []string{"--mqtt-burst", "7"}, env(map[string]string{"FLOWYARD_MAX_TEAM_OPERATIONS": "5", "FLOWYARD_MQTT_BURST": "9"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxTeamOperations != 5 || c.Limits.MQTTBurst != 7 {
		t.Fatalf("the variable sets a limit and the flag overrides it: %+v", c.Limits)
	}
	for _, bad := range []map[string]string{{"FLOWYARD_MAX_TEAM_OPERATIONS": "0"}, {"FLOWYARD_PROVISIONS_PER_IP": "lots"}} {
		if _, err := Load("dev", nil, env(bad)); err == nil || !strings.Contains(err.Error(), "FLOWYARD_") && !strings.Contains(err.Error(), "--") {
			t.Fatalf("%v: want an error naming the setting, got %v", bad, err)
		}
	}
}
