package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestExternalBrokerSettings(t *testing.T) {
	c, err := Load("serve", []string{"--mqtt-broker", "external", "--mqtt-external-url", "mqtts://mqtt.example.com:8883"},
		env(map[string]string{"FLOWYARD_MQTT_EXTERNAL_PASSWORD": "dynsec-admin-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTTBroker != BrokerExternal || c.External != (ExternalBroker{URL: "mqtts://mqtt.example.com:8883", Username: "admin", Password: "dynsec-admin-secret"}) {
		t.Fatalf("unexpected broker settings %q %+v", c.MQTTBroker, c.External)
	}
	if c.MQTTPublicURL != "mqtts://mqtt.example.com:8883" {
		t.Fatalf("devices are handed %q, not the external broker", c.MQTTPublicURL)
	}
	var log bytes.Buffer
	slog.New(slog.NewJSONHandler(&log, nil)).Info("config", "config", c)
	if strings.Contains(log.String(), "dynsec-admin-secret") || !strings.Contains(log.String(), "mqtts://mqtt.example.com:8883") {
		t.Fatalf("the log shows the admin password or hides the broker: %s", log.String())
	}

	c, err = Load("serve", []string{"--mqtt-broker", "external", "--mqtt-external-url", "ws://10.0.0.5:9001", "--mqtt-public-url", "wss://mqtt.example.com"},
		env(map[string]string{"FLOWYARD_MQTT_EXTERNAL_PASSWORD": "x"}))
	if err != nil || c.MQTTPublicURL != "wss://mqtt.example.com" {
		t.Fatalf("an explicit public URL wins: %q %v", c.MQTTPublicURL, err)
	}
	if c, err := Load("dev", nil, env(nil)); err != nil || c.MQTTBroker != BrokerEmbedded {
		t.Fatalf("the embedded broker is the default: %q %v", c.MQTTBroker, err)
	}
}

func TestBadBrokerSettingsAreRefused(t *testing.T) {
	for name, args := range map[string][]string{
		"unknown mode": {"--mqtt-broker", "emqx"},
		"no URL":       {"--mqtt-broker", "external", "--mqtt-external-password", "x"},
		"other scheme": {"--mqtt-broker", "external", "--mqtt-external-url", "http://mqtt.example.com", "--mqtt-external-password", "x"},
		"no host":      {"--mqtt-broker", "external", "--mqtt-external-url", "mqtt://", "--mqtt-external-password", "x"},
		"no password":  {"--mqtt-broker", "external", "--mqtt-external-url", "mqtt://mqtt.example.com:1883"},
		"no username":  {"--mqtt-broker", "external", "--mqtt-external-url", "mqtt://mqtt.example.com:1883", "--mqtt-external-password", "x", "--mqtt-external-username", ""},
	} {
		if _, err := Load("serve", args, env(nil)); err == nil {
			t.Errorf("%s: %v was accepted", name, args)
		}
	}
}
