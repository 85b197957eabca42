package config

import (
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestKubernetesDriverSettingsFromTheEnvironment(t *testing.T) {
	c, err := Load("worker", nil, env(map[string]string{
		"FLOWYARD_DRIVER": "kubernetes", "FLOWYARD_K8S_NAMESPACE": "nodered", "FLOWYARD_K8S_DOMAIN": "nr.example.com",
		"FLOWYARD_K8S_IMAGE_PULL_SECRETS": " regcred, other ,", "FLOWYARD_METRICS_LISTEN": ":9090",
		"FLOWYARD_PUBLIC_URL": "https://flowyard.example.com/",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Driver != "kubernetes" || c.Kubernetes.Namespace != "nodered" || c.Kubernetes.Domain != "nr.example.com" || c.MetricsListen != ":9090" {
		t.Fatalf("unexpected config %+v", c)
	}
	if got := c.Kubernetes.ImagePullSecrets; len(got) != 2 || got[0] != "regcred" || got[1] != "other" {
		t.Fatalf("pull secrets %q", got)
	}
	if c.RuntimeAPIURL != "https://flowyard.example.com" {
		t.Fatalf("runtime API URL defaults to the public URL, got %q", c.RuntimeAPIURL)
	}
}

func TestDriverDefaultsToLocalAndRejectsUnknownOnes(t *testing.T) {
	c, err := Load("dev", []string{"--runtime-api-url", "http://flowyard-api.flowyard.svc:8080/"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Driver != "local" || c.MetricsListen != "" || c.RuntimeAPIURL != "http://flowyard-api.flowyard.svc:8080" {
		t.Fatalf("unexpected defaults %+v", c)
	}
	if _, err := Load("dev", []string{"--driver", "docker"}, env(nil)); err == nil {
		t.Fatal("driver docker accepted")
	}
	if _, err := Load("dev", []string{"--metrics-listen", "9090"}, env(nil)); err == nil {
		t.Fatal("metrics address without port accepted")
	}
}
