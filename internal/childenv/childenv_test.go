package childenv

import (
	"slices"
	"testing"
)

func TestNewTakesOnlyBaseAndNamedVariables(t *testing.T) {
	for _, name := range []string{"LANG", "LC_ALL", "TZ", "NODE_EXTRA_CA_CERTS"} {
		t.Setenv(name, "")
	}
	t.Setenv("PATH", "/usr/bin")
	t.Setenv("HOME", "/home/flowyard")
	t.Setenv("TZ", "Europe/Paris")
	t.Setenv("npm_config_cache", "/var/cache/npm")
	t.Setenv("FLOWYARD_SECRET_KEY", "platform-secret")
	t.Setenv("FLOWYARD_DATABASE_URL", "postgres://flowyard:pw@db/flowyard")
	t.Setenv("SOME_OPERATOR_TOKEN", "operator-secret")

	got := New("npm_config_cache", "FLOWYARD_SECRET_KEY", "UNSET_VARIABLE").Set("NODE_ENV", "production").List()
	want := []string{"HOME=/home/flowyard", "LANG=", "LC_ALL=", "NODE_ENV=production", "PATH=/usr/bin", "TZ=Europe/Paris",
		"npm_config_cache=/var/cache/npm"}
	if !slices.Equal(got, want) {
		t.Fatalf("env = %q\nwant  %q", got, want)
	}
}

func TestSetReplacesAnInheritedValue(t *testing.T) {
	t.Setenv("PATH", "/usr/bin")
	got := New().Set("PATH", "/opt/node/bin:/usr/bin").List()
	if !slices.Contains(got, "PATH=/opt/node/bin:/usr/bin") || slices.Contains(got, "PATH=/usr/bin") {
		t.Fatalf("env = %q", got)
	}
	var zero Env
	if got := zero.Set("A", "1").List(); !slices.Equal(got, []string{"A=1"}) {
		t.Fatalf("zero Env: %q", got)
	}
}
