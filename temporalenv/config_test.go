package temporalenv

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/internal/certtest"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "temporal.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clearEnv makes sure overrides from the environment running the tests do not leak in.
func clearEnv(t *testing.T) {
	t.Setenv(EnvAddress, "")
	t.Setenv(EnvNamespace, "")
}

func TestLoadConfigDefaultsWithoutFile(t *testing.T) {
	clearEnv(t)
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.UIURL = "http://127.0.0.1:8233"
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
	if got := cfg.TaskQueue(domain.QueueRollouts); got != "rollouts" {
		t.Errorf("TaskQueue(rollouts) = %q", got)
	}
	types, err := cfg.SearchAttributeTypes()
	if err != nil || len(types) != 5 || types[domain.SearchAttrRolloutID] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
		t.Errorf("SearchAttributeTypes = %v, %v", types, err)
	}
}

func TestLoadConfigRepositoryFile(t *testing.T) {
	clearEnv(t)
	cfg, err := LoadConfig("../temporal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Address != "127.0.0.1:7233" || cfg.Namespace != "flowyard" || cfg.APIKeyEnv != "FLOWYARD_TEMPORAL_API_KEY" {
		t.Errorf("unexpected config %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.SearchAttributes, DefaultConfig().SearchAttributes) {
		t.Errorf("search attributes %v differ from the defaults", cfg.SearchAttributes)
	}
}

func TestLoadConfigFillsMissingFields(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, "namespace: acme\ntaskQueues:\n  rollouts: acme-rollouts\ndevServer:\n  logLevel: error\n")
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "acme" || cfg.Address != "127.0.0.1:7233" {
		t.Errorf("namespace/address = %q/%q", cfg.Namespace, cfg.Address)
	}
	if cfg.DevServer.LogLevel != "error" || cfg.DevServer.UIPortOffset != 1000 || cfg.DevServer.DBFile != "temporal.db" {
		t.Errorf("devServer = %+v", cfg.DevServer)
	}
	// A map in the file replaces the default map; roles it leaves out keep their own name.
	if !reflect.DeepEqual(cfg.TaskQueues, map[string]string{"rollouts": "acme-rollouts"}) {
		t.Errorf("taskQueues = %v", cfg.TaskQueues)
	}
	if cfg.TaskQueue(domain.QueueRollouts) != "acme-rollouts" || cfg.TaskQueue(domain.QueueBilling) != "billing" {
		t.Errorf("TaskQueue lookups wrong: %q %q", cfg.TaskQueue(domain.QueueRollouts), cfg.TaskQueue(domain.QueueBilling))
	}
	if len(cfg.SearchAttributes) != 5 {
		t.Errorf("default search attributes lost: %v", cfg.SearchAttributes)
	}
	if DefaultConfig().TaskQueues[domain.QueueRollouts] != "rollouts" {
		t.Error("loading a file changed the defaults")
	}
}

func TestLoadConfigEmptyFileGivesDefaults(t *testing.T) {
	clearEnv(t)
	cfg, err := LoadConfig(writeConfig(t, "# nothing\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "flowyard" || cfg.UIURL != "http://127.0.0.1:8233" {
		t.Errorf("got %+v", cfg)
	}
}

func TestLoadConfigEnvOverrides(t *testing.T) {
	t.Setenv(EnvAddress, "10.0.0.5:9000")
	t.Setenv(EnvNamespace, "staging")
	cfg, err := LoadConfig(writeConfig(t, "address: 127.0.0.1:7233\nnamespace: flowyard\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Address != "10.0.0.5:9000" || cfg.Namespace != "staging" {
		t.Errorf("overrides not applied: %q %q", cfg.Address, cfg.Namespace)
	}
	if cfg.UIURL != "http://10.0.0.5:10000" {
		t.Errorf("UI URL should follow the overridden address, got %q", cfg.UIURL)
	}

	t.Setenv(EnvAddress, "nonsense")
	if _, err := LoadConfig(""); err == nil || !strings.Contains(err.Error(), `address: "nonsense" is not host:port`) {
		t.Errorf("a bad override must be reported, got %v", err)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	clearEnv(t)
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}

func TestLoadConfigValidation(t *testing.T) {
	clearEnv(t)
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"bad address", "address: localhost", []string{`address: "localhost" is not host:port`}},
		{"port out of range", "address: 127.0.0.1:70000", []string{"port must be a number between 1 and 65535"}},
		{"bad namespace", "namespace: 'my ns'", []string{`namespace "my ns"`}},
		{"short retention", "namespaceRetention: 1h", []string{"namespaceRetention 1h0m0s: must be at least 24h"}},
		{"unparsable retention", "namespaceRetention: soon", []string{`"soon" is not a duration`}},
		{"unknown attribute type", "searchAttributes:\n  TeamId: Strng", []string{"searchAttributes.TeamId", `unknown search attribute type "Strng"`}},
		{"attribute name", "searchAttributes:\n  team-id: Keyword", []string{"searchAttributes.team-id: a name must be an identifier"}},
		{"reserved attribute", "searchAttributes:\n  TemporalFoo: Keyword", []string{"prefix Temporal is reserved"}},
		{"empty queue", "taskQueues:\n  billing: ''", []string{`taskQueues.billing: "" is not a task-queue name`}},
		{"typo key", "adress: 1.2.3.4:7233", []string{"field adress not found"}},
		{"api key in file", "apiKey: secret-value", []string{"apiKey must not be written in the file"}},
		{"api key as env name", "apiKeyEnv: 'abc.def-123'", []string{"apiKeyEnv"}},
		{"cert without key", "tls:\n  enabled: true\n  certFile: c.pem", []string{"certFile and keyFile must be given together"}},
		{"tls files while disabled", "tls:\n  caFile: ca.pem", []string{"tls.enabled is false"}},
		{"log level", "devServer:\n  logLevel: loud", []string{`devServer.logLevel "loud"`}},
		{"db path", "devServer:\n  dbFile: sub/dir.db", []string{"devServer.dbFile"}},
		{"pragma", "devServer:\n  sqlitePragmas:\n    journal_mode: 'wal&x=1'", []string{"devServer.sqlitePragmas.journal_mode"}},
		{"ui url", "uiUrl: ftp://x", []string{`uiUrl: "ftp://x" is not an http(s) URL`}},
		{"several at once", "namespace: ''\ndevServer:\n  uiPortOffset: -1", []string{`namespace ""`, "devServer.uiPortOffset -1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.yaml+"\n"))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestWorkflowURL(t *testing.T) {
	cfg := DefaultConfig()
	cfg.UIURL = "https://temporal.example.com/ui/"
	cfg.Namespace = "flow.yard"
	got := cfg.WorkflowURL("provision/inst 1?#", "0b1c-2d")
	want := "https://temporal.example.com/ui/namespaces/flow.yard/workflows/provision%2Finst%201%3F%23/0b1c-2d/history"
	if got != want {
		t.Errorf("WorkflowURL =\n %s\nwant\n %s", got, want)
	}
	got = cfg.WorkflowURL(`rollout/"r1"`, "")
	want = "https://temporal.example.com/ui/namespaces/flow.yard/workflows?query=WorkflowId%3D%22rollout%2F%5C%22r1%5C%22%22"
	if got != want {
		t.Errorf("WorkflowURL without run =\n %s\nwant\n %s", got, want)
	}
}

func TestConfigDevServerOptions(t *testing.T) {
	clearEnv(t)
	cfg, err := LoadConfig(writeConfig(t, "address: localhost:7400\nnamespace: dev\ndevServer:\n  sqlitePragmas:\n    journal_mode: wal\n"))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cfg.DevServerOptions("/x/temporal", "/data", nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.IP != "127.0.0.1" || opts.Port != 7400 || opts.UIPort != 8400 || opts.Namespace != "dev" ||
		opts.DBFile != "temporal.db" || len(opts.SearchAttributes) != 5 || opts.SQLitePragmas["journal_mode"] != "wal" {
		t.Errorf("unexpected options %+v", opts)
	}
}

func TestDevServerArgs(t *testing.T) {
	opts := DevServerOptions{
		DataDir: "/data", DBFile: "temporal.db", IP: "127.0.0.1", Port: 7233, UIPort: 8233,
		Namespace: "flowyard", LogLevel: "warn",
		SearchAttributes: map[string]enumspb.IndexedValueType{
			"TeamId": enumspb.INDEXED_VALUE_TYPE_KEYWORD, "Count": enumspb.INDEXED_VALUE_TYPE_INT,
		},
		SQLitePragmas: map[string]string{"journal_mode": "wal"},
	}
	want := "server start-dev --db-filename /data/temporal.db --ip 127.0.0.1 --port 7233 --namespace flowyard " +
		"--log-level warn --log-format json --color never --ui-port 8233 " +
		"--search-attribute Count=Int --search-attribute TeamId=Keyword --sqlite-pragma journal_mode=wal"
	if got := strings.Join(opts.args(), " "); got != want {
		t.Errorf("args =\n %s\nwant\n %s", got, want)
	}
	opts.Headless = true
	if got := strings.Join(opts.args(), " "); !strings.Contains(got, "--headless") || strings.Contains(got, "--ui-port") {
		t.Errorf("headless args = %s", got)
	}
}

func TestClientOptionsAPIKeyAndTLS(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	cert := certtest.WriteSelfSigned(t, dir, "temporal.example.com")
	certFile, keyFile := cert.CertFile, cert.KeyFile
	cfg := DefaultConfig()
	cfg.APIKeyEnv = "FLOWYARD_TEST_TEMPORAL_API_KEY"

	t.Setenv(cfg.APIKeyEnv, "")
	opts, err := ClientOptions(cfg, nil)
	if err != nil || opts.Credentials != nil || opts.ConnectionOptions.TLS != nil {
		t.Fatalf("without a key: credentials %v, tls %v, err %v", opts.Credentials, opts.ConnectionOptions.TLS, err)
	}

	t.Setenv(cfg.APIKeyEnv, "key-123")
	cfg.TLS = TLSConfig{Enabled: true, CAFile: certFile, CertFile: certFile, KeyFile: keyFile, ServerName: "temporal.example.com"}
	opts, err = ClientOptions(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig := opts.ConnectionOptions.TLS
	if opts.Credentials == nil || tlsConfig == nil || tlsConfig.RootCAs == nil || len(tlsConfig.Certificates) != 1 ||
		tlsConfig.ServerName != "temporal.example.com" || opts.HostPort != cfg.Address || opts.Namespace != cfg.Namespace {
		t.Errorf("unexpected options %+v", opts)
	}

	cfg.TLS.CAFile = filepath.Join(dir, "missing.pem")
	if _, err := ClientOptions(cfg, nil); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("a missing CA file must be named, got %v", err)
	}
	cfg.TLS.CAFile = keyFile
	if _, err := ClientOptions(cfg, nil); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a CA file without certificates must be reported, got %v", err)
	}
}
