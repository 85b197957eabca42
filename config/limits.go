package config

import "fmt"

// Limits are the abuse limits of the API and the MQTT broker.
type Limits struct {
	MaxJSONDepth            int // nesting of request bodies
	LoginFailuresPerAccount int // failed sign-ins of an account before each further one waits a growing delay
	LoginFailuresPerIP      int // failed sign-ins per client address in 15 minutes
	ProvisionsPerToken      int // device provisioning attempts per provisioning token in a minute
	ProvisionsPerIP         int // device provisioning attempts per client address in a minute
	MaxTeamOperations       int // a team's operations pending or running at once
	MQTTMaxPacketKB         int // largest MQTT packet a device may send; larger closes its connection
	MQTTMessagesPerSecond   int // messages a device may publish per second, sustained
	MQTTBurst               int // messages a device may publish at once above the rate
}

// limitFlag describes one limit: its flag, environment variable, default, bounds and meaning.
type limitFlag struct {
	p        *int
	name     string
	env      string
	def      int
	min, max int
	usage    string
}

func (l *Limits) flags() []limitFlag {
	return []limitFlag{
		{&l.MaxJSONDepth, "max-json-depth", "FLOWYARD_MAX_JSON_DEPTH", 32, 2, 1000, "deepest nesting of a JSON request body (400 `json_too_deep`)"},
		{&l.LoginFailuresPerAccount, "login-failures-per-account", "FLOWYARD_LOGIN_FAILURES_PER_ACCOUNT", 10, 1, 1_000_000, "failed sign-ins of an account before each further attempt waits a delay (1 s, doubling with each failure, at most 15 min; 429 meanwhile)"},
		{&l.LoginFailuresPerIP, "login-failures-per-ip", "FLOWYARD_LOGIN_FAILURES_PER_IP", 50, 1, 1_000_000, "failed sign-ins per client address in 15 minutes, then 429"},
		{&l.ProvisionsPerToken, "provisions-per-token", "FLOWYARD_PROVISIONS_PER_TOKEN", 1000, 1, 1_000_000, "device provisioning attempts per provisioning token a minute, then 429"},
		{&l.ProvisionsPerIP, "provisions-per-ip", "FLOWYARD_PROVISIONS_PER_IP", 1000, 1, 1_000_000, "device provisioning attempts per client address a minute, then 429"},
		{&l.MaxTeamOperations, "max-team-operations", "FLOWYARD_MAX_TEAM_OPERATIONS", 20, 1, 100_000, "operations a team may have pending or running at once, then 429"},
		{&l.MQTTMaxPacketKB, "mqtt-max-packet-kb", "FLOWYARD_MQTT_MAX_PACKET_KB", 1024, 1, 256 * 1024, "largest MQTT packet from a device, in KiB; a larger one disconnects it"},
		{&l.MQTTMessagesPerSecond, "mqtt-messages-per-second", "FLOWYARD_MQTT_MESSAGES_PER_SECOND", 20, 1, 1_000_000, "MQTT messages a device may publish a second; more are dropped"},
		{&l.MQTTBurst, "mqtt-burst", "FLOWYARD_MQTT_BURST", 100, 1, 1_000_000, "messages a device may publish at once above its rate; as many more dropped disconnects it"},
	}
}

// register declares every limit with its environment variable as the default.
func (l *Limits) register(s *settingSet) {
	for _, f := range l.flags() {
		s.int(f.p, f.name, f.env, f.def, f.usage)
	}
}

func (l *Limits) validate() []error {
	var errs []error
	for _, f := range l.flags() {
		if *f.p < f.min || *f.p > f.max {
			errs = append(errs, fmt.Errorf("--%s=%d must be from %d to %d", f.name, *f.p, f.min, f.max))
		}
	}
	return errs
}
