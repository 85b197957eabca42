// Package temporalenv connects Flowyard to Temporal: it loads temporal.yaml, runs the Temporal CLI dev
// server as a child process for `flowyard dev` and tests, dials a production cluster or Temporal Cloud, and
// makes sure the namespace and search attributes that Flowyard's workflows rely on exist.
package temporalenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"gopkg.in/yaml.v3"

	"github.com/flowyard/flowyard/domain"
)

// Environment variables that override the file, so that several copies can run side by side.
const (
	EnvAddress   = "FLOWYARD_TEMPORAL_ADDRESS"
	EnvNamespace = "FLOWYARD_TEMPORAL_NAMESPACE"
)

// Config is the content of temporal.yaml.
type Config struct {
	// Address is the frontend's host:port.
	Address string `yaml:"address"`
	// Namespace holds every Flowyard workflow.
	Namespace string `yaml:"namespace"`
	// NamespaceRetention is how long closed workflows are kept when EnsureNamespace has to create the
	// namespace. It does not change an existing namespace.
	NamespaceRetention Duration `yaml:"namespaceRetention"`
	// TaskQueues maps a role (domain.QueueInstances, ...) to the task-queue name used on the cluster.
	TaskQueues map[string]string `yaml:"taskQueues"`
	// SearchAttributes maps an attribute name to its type name (Keyword, Text, Int, Double, Bool,
	// Datetime, KeywordList).
	SearchAttributes map[string]string `yaml:"searchAttributes"`
	DevServer        DevServerConfig   `yaml:"devServer"`
	TLS              TLSConfig         `yaml:"tls"`
	// APIKeyEnv names the environment variable that holds a Temporal Cloud API key. The key itself never
	// goes into the file.
	APIKeyEnv string `yaml:"apiKeyEnv"`
	// UIURL is the base URL of the Temporal UI, used to build links to workflows. Empty means the dev
	// server's UI next to Address.
	UIURL string `yaml:"uiUrl"`
}

// DevServerConfig holds the options of the embedded dev server used by `flowyard dev`.
type DevServerConfig struct {
	// UIPortOffset is added to the frontend port to get the UI port.
	UIPortOffset int `yaml:"uiPortOffset"`
	// DBFile is the SQLite file name inside the data directory.
	DBFile string `yaml:"dbFile"`
	// LogLevel is the server's log level: debug, info, warn, error or never.
	LogLevel string `yaml:"logLevel"`
	// Headless disables the UI.
	Headless bool `yaml:"headless"`
	// SQLitePragmas are applied to the dev server's database, e.g. journal_mode: wal.
	SQLitePragmas map[string]string `yaml:"sqlitePragmas"`
}

// TLSConfig enables TLS and, with a certificate and key, mutual TLS.
type TLSConfig struct {
	Enabled    bool   `yaml:"enabled"`
	CAFile     string `yaml:"caFile"`
	CertFile   string `yaml:"certFile"`
	KeyFile    string `yaml:"keyFile"`
	ServerName string `yaml:"serverName"`
}

// Duration is a time.Duration written in YAML as "72h" or "30m".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	parsed, err := time.ParseDuration(node.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 72h", node.Line, node.Value)
	}
	*d = Duration(parsed)
	return nil
}

// MarshalYAML writes the duration as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// DefaultConfig returns the settings used for every field temporal.yaml leaves out.
func DefaultConfig() Config {
	return Config{
		Address:            "127.0.0.1:7233",
		Namespace:          "flowyard",
		NamespaceRetention: Duration(7 * 24 * time.Hour),
		TaskQueues: map[string]string{
			domain.QueueInstances: domain.QueueInstances,
			domain.QueueRollouts:  domain.QueueRollouts,
			domain.QueuePipelines: domain.QueuePipelines,
			domain.QueueBilling:   domain.QueueBilling,
			domain.QueueAlerts:    domain.QueueAlerts,
		},
		SearchAttributes: map[string]string{
			domain.SearchAttrTeamID:        "Keyword",
			domain.SearchAttrInstanceID:    "Keyword",
			domain.SearchAttrDeviceGroupID: "Keyword",
			domain.SearchAttrRolloutID:     "Keyword",
			domain.SearchAttrPipelineID:    "Keyword",
		},
		DevServer: DevServerConfig{
			UIPortOffset: 1000, DBFile: "temporal.db", LogLevel: "warn",
			// WAL measured slightly faster than SQLite's default journal for start-up and workflow round
			// trips (BenchmarkDevServerStart, BenchmarkDevServerWorkflow).
			SQLitePragmas: map[string]string{"journal_mode": "wal"},
		},
	}
}

// fileConfig mirrors Config but also catches an API key written into the file by mistake.
type fileConfig struct {
	Config `yaml:",inline"`
	APIKey string `yaml:"apiKey"`
}

// LoadConfig reads temporal.yaml at path (an empty path means no file), fills the fields it leaves out
// with DefaultConfig, applies FLOWYARD_TEMPORAL_ADDRESS and FLOWYARD_TEMPORAL_NAMESPACE, and validates
// the result. A path that does not exist is an error, so a typo in a flag is not silently ignored.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		if err := readConfigFile(path, &cfg); err != nil {
			return Config{}, err
		}
	}
	cfg.applyEnv()
	cfg.fillDerived()
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("temporal config %s: %w", displayPath(path), err)
	}
	return cfg, nil
}

func displayPath(path string) string {
	if path == "" {
		return "(defaults)"
	}
	return path
}

func readConfigFile(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read temporal config: %w", err)
	}
	file := fileConfig{Config: *cfg}
	// Maps in the file replace the defaults as a whole (a file that lists its task queues means exactly
	// those), so the decoder must not merge into the default maps.
	file.TaskQueues, file.SearchAttributes, file.DevServer.SQLitePragmas = nil, nil, nil
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a misspelt key is an error, not a silently ignored setting
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("parse temporal config %s: %w", path, err)
	}
	if file.APIKey != "" {
		return fmt.Errorf("temporal config %s: apiKey must not be written in the file; put it in an environment variable and name that variable in apiKeyEnv", path)
	}
	if file.TaskQueues == nil {
		file.TaskQueues = cfg.TaskQueues
	}
	if file.SearchAttributes == nil {
		file.SearchAttributes = cfg.SearchAttributes
	}
	if file.DevServer.SQLitePragmas == nil {
		file.DevServer.SQLitePragmas = cfg.DevServer.SQLitePragmas
	}
	*cfg = file.Config
	return nil
}

func (c *Config) applyEnv() {
	if v := strings.TrimSpace(os.Getenv(EnvAddress)); v != "" {
		c.Address = v
	}
	if v := strings.TrimSpace(os.Getenv(EnvNamespace)); v != "" {
		c.Namespace = v
	}
}

// fillDerived sets the UI URL of a dev server next to Address when the file names none.
func (c *Config) fillDerived() {
	if c.UIURL != "" {
		return
	}
	host, portText, err := net.SplitHostPort(c.Address)
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil {
		return // Validate reports the bad address
	}
	c.UIURL = "http://" + net.JoinHostPort(host, strconv.Itoa(port+c.DevServer.UIPortOffset))
}

var (
	namespacePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	identPattern     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	logLevels        = []string{"debug", "info", "warn", "error", "never"}
)

// Validate reports every problem in the configuration at once.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, _, err := splitAddress(c.Address); err != nil {
		add("address: %w", err)
	}
	if !namespacePattern.MatchString(c.Namespace) || len(c.Namespace) > 255 {
		add("namespace %q: use letters, digits, '.', '-' or '_' (at most 255)", c.Namespace)
	}
	if time.Duration(c.NamespaceRetention) < 24*time.Hour {
		add("namespaceRetention %s: must be at least 24h", time.Duration(c.NamespaceRetention))
	}
	for _, role := range sortedKeys(c.TaskQueues) {
		if name := c.TaskQueues[role]; name == "" || strings.ContainsAny(name, " \t\n") || len(name) > 1000 {
			add("taskQueues.%s: %q is not a task-queue name (non-empty, no spaces)", role, name)
		}
	}
	if _, err := c.SearchAttributeTypes(); err != nil {
		errs = append(errs, err)
	}
	if c.DevServer.UIPortOffset < 1 || c.DevServer.UIPortOffset > 65534 {
		add("devServer.uiPortOffset %d: must be between 1 and 65534", c.DevServer.UIPortOffset)
	}
	if c.DevServer.DBFile == "" || strings.ContainsRune(c.DevServer.DBFile, os.PathSeparator) {
		add("devServer.dbFile %q: must be a plain file name (it lives in the data directory)", c.DevServer.DBFile)
	}
	if !slices.Contains(logLevels, c.DevServer.LogLevel) {
		add("devServer.logLevel %q: must be one of %s", c.DevServer.LogLevel, strings.Join(logLevels, ", "))
	}
	for _, pragma := range sortedKeys(c.DevServer.SQLitePragmas) {
		if value := c.DevServer.SQLitePragmas[pragma]; !identPattern.MatchString(pragma) || value == "" || strings.ContainsAny(value, " \t\n=&") {
			add("devServer.sqlitePragmas.%s: %q is not a pragma name and a plain value", pragma, value)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		add("tls: certFile and keyFile must be given together")
	}
	if !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.ServerName != "") {
		add("tls: files or serverName are set but tls.enabled is false")
	}
	if c.APIKeyEnv != "" && !identPattern.MatchString(c.APIKeyEnv) {
		add("apiKeyEnv %q: must be the name of an environment variable, not the key", c.APIKeyEnv)
	}
	// An empty uiUrl means the address was unusable for deriving it, which is already reported.
	if c.UIURL != "" {
		if err := validateUIURL(c.UIURL); err != nil {
			add("uiUrl: %w", err)
		}
	}
	return errors.Join(errs...)
}

func validateUIURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", raw)
	}
	return nil
}

// splitAddress parses host:port with a port in 1..65535.
func splitAddress(address string) (string, int, error) {
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", address)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port must be a number between 1 and 65535", address)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q: host is missing", address)
	}
	return host, port, nil
}

// SearchAttributeTypes returns the configured search attributes with their Temporal types.
func (c Config) SearchAttributeTypes() (map[string]enumspb.IndexedValueType, error) {
	types := make(map[string]enumspb.IndexedValueType, len(c.SearchAttributes))
	var errs []error
	for _, name := range sortedKeys(c.SearchAttributes) {
		kind, err := ParseSearchAttributeType(c.SearchAttributes[name])
		switch {
		case !identPattern.MatchString(name):
			errs = append(errs, fmt.Errorf("searchAttributes.%s: a name must be an identifier (letters, digits, '_')", name))
		case strings.HasPrefix(strings.ToLower(name), "temporal"):
			errs = append(errs, fmt.Errorf("searchAttributes.%s: the prefix Temporal is reserved", name))
		case err != nil:
			errs = append(errs, fmt.Errorf("searchAttributes.%s: %w", name, err))
		default:
			types[name] = kind
		}
	}
	return types, errors.Join(errs...)
}

// ParseSearchAttributeType turns a type name such as "Keyword" (any case) into its Temporal enum.
func ParseSearchAttributeType(name string) (enumspb.IndexedValueType, error) {
	for shorthand, value := range enumspb.IndexedValueType_shorthandValue {
		if value != 0 && strings.EqualFold(shorthand, name) {
			return enumspb.IndexedValueType(value), nil
		}
	}
	return 0, fmt.Errorf("unknown search attribute type %q (want Keyword, Text, Int, Double, Bool, Datetime or KeywordList)", name)
}

// TaskQueue returns the task-queue name configured for a role such as domain.QueueInstances. A role missing
// from the file keeps its own name as the queue name.
func (c Config) TaskQueue(role domain.TaskQueueRole) string {
	if name := c.TaskQueues[role]; name != "" {
		return name
	}
	return role
}

// APIKey returns the API key from the environment variable named by APIKeyEnv, or "".
func (c Config) APIKey() string {
	if c.APIKeyEnv == "" {
		return ""
	}
	return strings.TrimSpace(os.Getenv(c.APIKeyEnv))
}

// WorkflowURL links to a workflow run's history in the Temporal UI. Without a run ID it links to the
// workflow list filtered on the workflow ID, which shows every run.
func (c Config) WorkflowURL(workflowID, runID string) string {
	base := strings.TrimRight(c.UIURL, "/") + "/namespaces/" + url.PathEscape(c.Namespace) + "/workflows"
	if runID == "" {
		query := `WorkflowId="` + strings.ReplaceAll(workflowID, `"`, `\"`) + `"`
		return base + "?query=" + url.QueryEscape(query)
	}
	return base + "/" + url.PathEscape(workflowID) + "/" + url.PathEscape(runID) + "/history"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
