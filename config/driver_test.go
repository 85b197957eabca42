package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestKubernetesDriverSettingsFromTheEnvironment(t *testing.T) {
	c, err := Load("worker", nil, env(map[string]string{
		"FLOWYARD_DRIVER": "kubernetes", "FLOWYARD_K8S_NAMESPACE": "nodered", "FLOWYARD_APPS_DOMAIN": "nr.example.com",
		"FLOWYARD_K8S_IMAGE_PULL_SECRETS": " regcred, other ,", "FLOWYARD_METRICS_LISTEN": ":9090",
		"FLOWYARD_PUBLIC_URL": "https://flowyard.example.com/",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Driver != "kubernetes" || c.Kubernetes.Namespace != "nodered" || c.AppsDomain != "nr.example.com" || c.MetricsListen != ":9090" {
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

// TestPathsAreAbsoluteOnceLoaded: every path setting is resolved against the working directory at load
// time, so child processes started in other folders are handed the same files.
func TestPathsAreAbsoluteOnceLoaded(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	c, err := Load("dev", []string{"--temporal-bin", "tools/temporal", "--k8s-kubeconfig", "kube/config"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"data dir": filepath.Join(wd, "data"), "stacks dir": filepath.Join(wd, "data", "stacks"),
		"temporal bin": filepath.Join(wd, "tools", "temporal"), "temporal config": filepath.Join(wd, "temporal.yaml"),
		"kubeconfig": filepath.Join(wd, "kube", "config"),
	}
	got := map[string]string{
		"data dir": c.DataDir, "stacks dir": c.StacksDir, "temporal bin": c.TemporalBin,
		"temporal config": c.TemporalFile, "kubeconfig": c.Kubernetes.Kubeconfig,
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %q, want %q", name, got[name], w)
		}
	}
	c, err = Load("dev", []string{"--data-dir", "elsewhere", "--stacks-dir", "/srv/stacks"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != filepath.Join(wd, "elsewhere") || c.StacksDir != "/srv/stacks" || c.TemporalBin == "" || !filepath.IsAbs(c.TemporalBin) {
		t.Errorf("got data dir %q, stacks dir %q, temporal bin %q", c.DataDir, c.StacksDir, c.TemporalBin)
	}
}

func TestInstanceSandboxSetting(t *testing.T) {
	c, err := Load("dev", nil, env(nil))
	if err != nil || c.InstanceSandbox != SandboxAuto {
		t.Fatalf("default sandbox %q, %v; want auto", c.InstanceSandbox, err)
	}
	for _, mode := range []string{SandboxAuto, SandboxBwrap, SandboxNone} {
		if c, err := Load("dev", nil, env(map[string]string{"FLOWYARD_INSTANCE_SANDBOX": mode})); err != nil || c.InstanceSandbox != mode {
			t.Errorf("FLOWYARD_INSTANCE_SANDBOX=%s gave %q, %v", mode, c.InstanceSandbox, err)
		}
	}
	c, err = Load("dev", []string{"--instance-sandbox", "none"}, env(map[string]string{"FLOWYARD_INSTANCE_SANDBOX": "bwrap"}))
	if err != nil || c.InstanceSandbox != SandboxNone {
		t.Fatalf("the flag must win over the variable: %q, %v", c.InstanceSandbox, err)
	}
	for _, bad := range []string{"docker", "BWRAP", "off"} {
		if _, err := Load("dev", []string{"--instance-sandbox", bad}, env(nil)); err == nil || !strings.Contains(err.Error(), "--instance-sandbox") {
			t.Errorf("--instance-sandbox=%s: %v, want a refusal naming the flag", bad, err)
		}
	}
}
