package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestMQTTPublicURLFollowsTheListenerOrIsGiven: the broker URL handed to devices defaults to the TCP listener
// (mqtts:// once it has a certificate), may be any MQTT or WebSocket URL, or none at all.
func TestMQTTPublicURLFollowsTheListenerOrIsGiven(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "mqtt://127.0.0.1:1884"},
		{map[string]string{"FLOWYARD_MQTT_TLS_CERT": "tls/cert.pem", "FLOWYARD_MQTT_TLS_KEY": "tls/key.pem"}, "mqtts://127.0.0.1:1884"},
		{map[string]string{"FLOWYARD_MQTT_PUBLIC_URL": "wss://mqtt.example.com"}, "wss://mqtt.example.com"},
		{map[string]string{"FLOWYARD_MQTT_PUBLIC_URL": "mqtts://mqtt.example.com:8883"}, "mqtts://mqtt.example.com:8883"},
		{map[string]string{"FLOWYARD_MQTT_PUBLIC_URL": "none"}, ""},
	} {
		c, err := Load("serve", nil, env(tc.env))
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if c.MQTTPublicURL != tc.want {
			t.Errorf("%v: broker URL %q, want %q", tc.env, c.MQTTPublicURL, tc.want)
		}
	}
	c, err := Load("serve", []string{"--mqtt-tls-cert", "tls/cert.pem", "--mqtt-tls-key", "tls/key.pem"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTTTLSCert != filepath.Join(wd, "tls", "cert.pem") || c.MQTTTLSKey != filepath.Join(wd, "tls", "key.pem") {
		t.Errorf("TLS files are paths, resolved like the others: %q %q", c.MQTTTLSCert, c.MQTTTLSKey)
	}
}

func TestBadMQTTSettingsAreRefused(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"FLOWYARD_MQTT_TLS_CERT": "cert.pem"}, "--mqtt-tls-key"},
		{map[string]string{"FLOWYARD_MQTT_TLS_KEY": "key.pem"}, "--mqtt-tls-cert"},
		{map[string]string{"FLOWYARD_MQTT_PUBLIC_URL": "https://mqtt.example.com"}, "--mqtt-public-url"},
		{map[string]string{"FLOWYARD_MQTT_PUBLIC_URL": "mqtt.example.com:8883"}, "--mqtt-public-url"},
		{map[string]string{"FLOWYARD_MQTT_PUBLIC_URL": "mqtts://"}, "--mqtt-public-url"},
	} {
		_, err := Load("serve", nil, env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error naming %s", tc.env, err, tc.want)
		}
	}
}
