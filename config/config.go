// Package config reads Flowyard's configuration from flags and FLOWYARD_* environment variables, validates
// it, and describes it for the start-up log with secrets masked.
package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowyard/flowyard/domain"
)

// Config is everything the flowyard binary can be told.
type Config struct {
	Listen        string // API address
	PublicURL     string // how browsers and devices reach the API
	EditorDomain  string // each instance's editor is served on its own origin, <instanceId>.<EditorDomain>
	AppsDomain    string // each instance's flows serve their endpoints at the root of <name>.<AppsDomain>
	InternalURL   string // how the other API replicas reach this one (devices' editor tunnels); default http://<Listen>
	DataDir       string // absolute once loaded, like every path below
	StacksDir     string // installed Node-RED stacks of the local driver; default DataDir/stacks
	DatabaseURL   string // postgres://… or empty for SQLite in DataDir
	SecretKey     string // master key for secrets at rest; generated into DataDir when empty
	TemporalPort  int
	TemporalBin   string // the Temporal CLI; default beside the flowyard binary, else ./bin/temporal
	TemporalFile  string // path of temporal.yaml
	MQTTListen    string
	MQTTWSListen  string // MQTT over WebSocket for devices; "" for none
	MQTTPublicURL string // the broker URL handed to devices; default mqtt(s)://<MQTTListen> or the external broker's URL; "" once loaded: none
	// MQTTTLSCert and MQTTTLSKey (PEM files) make the MQTT TCP listener speak TLS.
	MQTTTLSCert, MQTTTLSKey string
	// MQTTBroker is BrokerEmbedded or BrokerExternal; External is the external broker's connection.
	MQTTBroker    string
	External      ExternalBroker
	InstancePorts string // local driver: the port range of Node-RED instances, "min-max"
	LogLevel      string
	LogFormat     string // json, text or auto
	AdminEmail    string
	AdminPassword string
	SecureCookies bool
	BodyLimitMB   int
	Driver        string // where instances run: local or kubernetes
	RuntimeAPIURL string // how Node-RED instances reach the API (storage plugin); default PublicURL
	MetricsListen string // address of the Prometheus /metrics server; empty: none
	Kubernetes    KubernetesConfig
	Stripe        StripeConfig
	Mail          MailConfig
	Limits        Limits // abuse limits of the API and the broker
	// WebhooksAllowPrivate lets teams' alert webhooks reach loopback, private and link-local addresses (refused
	// by default: the platform would POST into its own network for a tenant).
	WebhooksAllowPrivate bool

	// TrustedProxies are the load balancers and reverse proxies in front of the API: from a peer in these ranges,
	// X-Forwarded-For names the client whose address the per-address limits count. None by default.
	TrustedProxies []netip.Prefix

	// InstanceSandbox is how the local driver isolates instances: SandboxAuto, SandboxBwrap or SandboxNone.
	InstanceSandbox string
	// InstanceDenyNetworks are refused to sandboxed local instances besides the host's own addresses and the
	// link-local ranges: a database or Temporal on another host.
	InstanceDenyNetworks []netip.Prefix
}

// The values of --instance-sandbox. Each Node-RED of the local driver runs whatever its flows say (exec and
// function nodes, any npm module), so without a sandbox every member of every team can read the platform's
// files and every other instance's.
const (
	SandboxAuto  = "auto"  // bubblewrap when it is installed and works, else run unisolated and warn
	SandboxBwrap = "bwrap" // bubblewrap or refuse to start
	SandboxNone  = "none"  // no sandbox, on purpose
)

// The values of --mqtt-broker.
const (
	BrokerEmbedded = "embedded" // each API process runs its own broker (broker)
	BrokerExternal = "external" // the platform manages an existing Mosquitto 2 with dynamic security (broker/mosquitto)
)

// ExternalBroker is how the platform reaches an external Mosquitto: its URL and the dynamic-security admin
// client it signs in as. The password is a secret: masked in the log, never in a child's environment.
type ExternalBroker struct {
	URL, Username, Password string
}

// StripeConfig turns billing on: without a key the platform bills nobody and works fully.
type StripeConfig struct {
	Key           string        // secret API key; empty: billing off
	WebhookSecret string        // signing secret of the webhook endpoint (whsec_…)
	APIURL        string        // Stripe's API base URL; empty: Stripe itself (tests and dev point it at stripe-mock)
	Reconcile     time.Duration // how often every team's bill is compared with Stripe
}

// MailConfig is how Flowyard sends e-mail (invitations, password resets). Without an SMTP URL nothing is sent:
// the link a message would carry is logged and handed to whoever asked for it.
type MailConfig struct {
	SMTPURL string // smtp://user:pass@host:port (STARTTLS when offered) or smtps://… (TLS); empty: no e-mail
	From    string // the From address, e.g. "Flowyard <flowyard@example.com>"
}

// MailEnabled reports whether an SMTP server is configured.
func (c Config) MailEnabled() bool { return c.Mail.SMTPURL != "" }

// BillingEnabled reports whether a Stripe key is configured.
func (c Config) BillingEnabled() bool { return c.Stripe.Key != "" }

// KubernetesConfig configures the kubernetes driver.
type KubernetesConfig struct {
	Kubeconfig       string   // empty: the pod's service account (in-cluster)
	Namespace        string   // where instances run; empty: the namespace Flowyard runs in
	Image            string   // image template; empty: the official Node-RED image with the stack's version
	ImagePullSecrets []string // for a private registry
	StorageClass     string   // storage class of the instances' PersistentVolumeClaims; empty: the cluster's default
	DataSizeMB       int      // size of each instance's PersistentVolumeClaim
}

// rawSettings are settings read as text and parsed after the flags.
type rawSettings struct {
	reconcile, proxies, pullSecrets, denyNetworks string
}

// register declares every setting, in the order the README's table lists them (config/readme_test.go checks it).
func (c *Config) register(s *settingSet, raw *rawSettings) {
	s.str(&c.Listen, "listen", "FLOWYARD_LISTEN", "127.0.0.1:8080", "", "API address")
	s.str(&c.PublicURL, "public-url", "FLOWYARD_PUBLIC_URL", "", "`http://<listen>`", "how browsers and devices reach the API")
	s.str(&c.EditorDomain, "editor-domain", "FLOWYARD_EDITOR_DOMAIN", "", "`editor.localhost` for a public URL on an IP address or `localhost`, else `editor.<public host>`",
		"each instance's editor is served on an origin of its own, `<instance id>.<editor domain>` with the public URL's scheme and port, by the API itself: production needs a wildcard DNS record and TLS certificate for `*.<editor domain>` pointing at the API")
	s.str(&c.AppsDomain, "apps-domain", "FLOWYARD_APPS_DOMAIN", "", "`apps.localhost` for a public URL on an IP address or `localhost`, else `apps.<public host>`",
		"each instance's flows serve their http-in endpoints (and Dashboard 2) at the root of `<instance name>.<apps domain>` with the public URL's scheme and port, proxied by the API, which never forwards the editor or admin API there: production needs a wildcard DNS record and TLS certificate for `*.<apps domain>` pointing at the API")
	s.str(&c.InternalURL, "internal-url", "FLOWYARD_INTERNAL_URL", "", "`http://<listen>`",
		"how the other `serve` replicas reach this one (e.g. `http://<pod IP>:8080`): a device's editor tunnel lands on one replica, which records this address, and the others forward the editor's traffic to it")
	s.str(&c.DataDir, "data-dir", "FLOWYARD_DATA_DIR", "./data", "", "SQLite file, generated secret key, instances, Temporal's file")
	s.str(&c.StacksDir, "stacks-dir", "FLOWYARD_STACKS_DIR", "", "`<data-dir>/stacks`", "Node-RED stacks the local driver installs with npm (share one between data dirs to install once)")
	s.str(&c.DatabaseURL, "database-url", "FLOWYARD_DATABASE_URL", "", "(SQLite)", "`postgres://user:pass@host:5432/db`")
	s.str(&c.SecretKey, "secret-key", "FLOWYARD_SECRET_KEY", "", "generated into the data dir", "master key for secrets at rest (≥ 32 chars)")
	s.int(&c.TemporalPort, "temporal-port", "FLOWYARD_TEMPORAL_PORT", 7233, "dev server port; its UI on port+1000")
	s.str(&c.TemporalBin, "temporal-bin", "FLOWYARD_TEMPORAL_BIN", "", "beside `flowyard`", "the Temporal CLI")
	s.str(&c.TemporalFile, "temporal-config", "FLOWYARD_TEMPORAL_CONFIG", "temporal.yaml", "", "Temporal address, namespace, task queues")
	s.str(&c.MQTTListen, "mqtt-listen", "FLOWYARD_MQTT_LISTEN", "127.0.0.1:1884", "", "embedded MQTT broker")
	s.str(&c.MQTTWSListen, "mqtt-ws-listen", "FLOWYARD_MQTT_WS_LISTEN", "127.0.0.1:1885", "", "the broker over WebSocket (any path, `/` included); empty: none")
	s.str(&c.MQTTPublicURL, "mqtt-public-url", "FLOWYARD_MQTT_PUBLIC_URL", "", "`mqtt://<mqtt-listen>` (`mqtts://` with a certificate), or the external broker's URL", "broker URL handed to devices (`mqtt`, `mqtts`, `ws` or `wss`); `none`: devices get no broker and check in over HTTP")
	s.str(&c.MQTTTLSCert, "mqtt-tls-cert", "FLOWYARD_MQTT_TLS_CERT", "", "(plain TCP)", "certificate file (PEM, chain included) of the MQTT TCP listener: with `--mqtt-tls-key`, `--mqtt-listen` speaks MQTT over TLS; both files are read again when they change, so a renewed certificate needs no restart")
	s.str(&c.MQTTTLSKey, "mqtt-tls-key", "FLOWYARD_MQTT_TLS_KEY", "", "", "its private key file (PEM)")
	s.str(&c.MQTTBroker, "mqtt-broker", "FLOWYARD_MQTT_BROKER", BrokerEmbedded, "", "`embedded` (each `flowyard serve` runs a broker) or `external`: the platform manages an existing Mosquitto 2 with its dynamic-security plugin, one account per device (deploy/README.md, \"External broker\")")
	s.str(&c.External.URL, "mqtt-external-url", "FLOWYARD_MQTT_EXTERNAL_URL", "", "", "the external broker as the platform reaches it: `mqtt://`, `mqtts://`, `ws://` or `wss://host:port`")
	s.str(&c.External.Username, "mqtt-external-username", "FLOWYARD_MQTT_EXTERNAL_USERNAME", "admin", "", "the broker's dynamic-security admin client (`mosquitto_ctrl dynsec init` makes it)")
	s.str(&c.External.Password, "mqtt-external-password", "FLOWYARD_MQTT_EXTERNAL_PASSWORD", "", "", "its password: a secret, masked in the log and never given to a child process; set the variable (a flag shows in `ps`)")
	s.str(&c.InstancePorts, "instance-ports", "FLOWYARD_INSTANCE_PORTS", "12000-12999", "", "port range of local Node-RED instances")
	s.str(&c.InstanceSandbox, "instance-sandbox", "FLOWYARD_INSTANCE_SANDBOX", SandboxAuto, "", "isolation of local instances: `auto` (bubblewrap and, as root, the nftables network filter when they work, else run them unisolated with a warning), `bwrap` (refuse to start without both), `none` (unisolated on purpose)")
	s.str(&raw.denyNetworks, "instance-deny-networks", "FLOWYARD_INSTANCE_DENY_NETWORKS", "", "(none)", "comma-separated address ranges (`10.0.5.0/24,fd00:db::/64`) sandboxed local instances may not reach, besides the host's own addresses and the link-local and cloud metadata ones they never reach: list where the database, Temporal or other internal services run on other hosts (the runtime API stays reachable)")
	s.str(&c.LogLevel, "log-level", "FLOWYARD_LOG_LEVEL", "info", "", "debug, info, warn, error")
	s.str(&c.LogFormat, "log-format", "FLOWYARD_LOG_FORMAT", "auto", "", "json, text, or auto (JSON unless a terminal)")
	s.str(&c.AdminEmail, "admin-email", "FLOWYARD_ADMIN_EMAIL", "", "", "first platform admin, created on first start (idempotent)")
	s.str(&c.AdminPassword, "admin-password", "FLOWYARD_ADMIN_PASSWORD", "", "", "its password")
	s.str(&c.Mail.SMTPURL, "smtp-url", "FLOWYARD_SMTP_URL", "", "(none)", "SMTP server for invitations, password resets and sign-up confirmations: `smtp://user:pass@host:587` (STARTTLS when the server offers it) or `smtps://user:pass@host:465` (TLS); escape an `@` in the user name as `%40`; the password is masked in the start-up log. Without it nothing is mailed: each link is logged for the operator, and an invitation's (or a reset an admin forced) is returned to whoever asked")
	s.str(&c.Mail.From, "mail-from", "FLOWYARD_MAIL_FROM", "", "", "From address of that mail, e.g. `Flowyard <flowyard@example.com>` (needed with `--smtp-url`)")
	s.boolean(&c.WebhooksAllowPrivate, "webhooks-allow-private", "FLOWYARD_WEBHOOKS_ALLOW_PRIVATE", "let teams' alert webhooks reach loopback, private (RFC 1918, unique local), link-local and shared (CGNAT) addresses; refused by default, since the platform would otherwise POST into its own network for any tenant. Checked on the address each delivery connects to")
	s.boolean(&c.SecureCookies, "secure-cookies", "FLOWYARD_SECURE_COOKIES", "mark cookies Secure behind a TLS proxy, and give them the `__Host-` prefix (`__Host-flowyard_session`), which browsers accept only from the host itself")
	s.str(&raw.proxies, "trusted-proxies", "FLOWYARD_TRUSTED_PROXIES", "", "(none)", "comma-separated address ranges (`10.0.0.0/8,fd00::/8`) of the load balancers in front of the API; from them, `X-Forwarded-For` names the client the per-address limits count")
	s.int(&c.BodyLimitMB, "body-limit-mb", "FLOWYARD_BODY_LIMIT_MB", 16, "largest request body in MiB")
	c.Limits.register(s)
	s.str(&c.Driver, "driver", "FLOWYARD_DRIVER", "local", "", "where instances run: `local` (child processes) or `kubernetes`")
	s.str(&c.RuntimeAPIURL, "runtime-api-url", "FLOWYARD_RUNTIME_API_URL", "", "the public URL", "how Node-RED instances reach the API (their storage plugin)")
	s.str(&c.MetricsListen, "metrics-listen", "FLOWYARD_METRICS_LISTEN", "", "(none)", "address of the Prometheus `/metrics` server")
	s.str(&c.Kubernetes.Kubeconfig, "k8s-kubeconfig", "FLOWYARD_K8S_KUBECONFIG", "", "in-cluster service account", "kubeconfig file of the kubernetes driver")
	s.str(&c.Kubernetes.Namespace, "k8s-namespace", "FLOWYARD_K8S_NAMESPACE", "", "Flowyard's own", "namespace of the instances")
	s.str(&c.Kubernetes.Image, "k8s-image", "FLOWYARD_K8S_IMAGE", "", "the official Node-RED image", "Node-RED image template, e.g. `nodered/node-red:{{.NodeRedVersion}}`")
	s.str(&raw.pullSecrets, "k8s-image-pull-secrets", "FLOWYARD_K8S_IMAGE_PULL_SECRETS", "", "", "comma-separated image pull secrets, for a private registry")
	s.str(&c.Kubernetes.StorageClass, "k8s-storage-class", "FLOWYARD_K8S_STORAGE_CLASS", "", "the cluster's default", "storage class of each instance's PersistentVolumeClaim (its user directory: installed modules, files its flows write)")
	s.int(&c.Kubernetes.DataSizeMB, "k8s-data-size-mb", "FLOWYARD_K8S_DATA_SIZE_MB", 1024, "size of that claim in MiB; an existing claim keeps its size")
	s.str(&c.Stripe.Key, "stripe-key", "FLOWYARD_STRIPE_KEY", "", "", "Stripe secret key; billing is off without it")
	s.str(&c.Stripe.WebhookSecret, "stripe-webhook-secret", "FLOWYARD_STRIPE_WEBHOOK_SECRET", "", "", "signing secret of the Stripe webhook endpoint (`whsec_…`); needed with a key")
	s.str(&c.Stripe.APIURL, "stripe-api-url", "FLOWYARD_STRIPE_API_URL", "", "Stripe's", "Stripe API base URL (e.g. a stripe-mock)")
	s.str(&raw.reconcile, "stripe-reconcile-every", "FLOWYARD_STRIPE_RECONCILE_EVERY", "1h", "", "how often every team's bill is reconciled with Stripe (at least `1m`)")
}

// Load parses args (without the subcommand) with defaults taken from the environment.
func Load(name string, args []string, getenv func(string) string) (Config, error) {
	var c Config
	var raw rawSettings
	s := newSettingSet(name, getenv)
	c.register(s, &raw)
	if s.err != nil {
		return c, s.err
	}
	fs := s.fs
	var err error
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("%w\n\nflags:\n%s", err, usage(fs))
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.Stripe.Reconcile, err = time.ParseDuration(raw.reconcile); err != nil || c.Stripe.Reconcile < time.Minute {
		return c, fmt.Errorf("--stripe-reconcile-every=%q must be a duration of at least 1m", raw.reconcile)
	}
	if c.TrustedProxies, err = parseAddressRanges("trusted-proxies", raw.proxies); err != nil {
		return c, err
	}
	if c.InstanceDenyNetworks, err = parseAddressRanges("instance-deny-networks", raw.denyNetworks); err != nil {
		return c, err
	}
	for _, s := range strings.Split(raw.pullSecrets, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Kubernetes.ImagePullSecrets = append(c.Kubernetes.ImagePullSecrets, s)
		}
	}
	if err := c.validate(); err != nil {
		return c, err
	}
	return c, c.resolvePaths()
}

// resolvePaths makes every path setting absolute against the working directory the user started in, once,
// so that child processes started in other directories (the Temporal dev server runs in its data folder)
// are handed paths that still name the same files.
func (c *Config) resolvePaths() error {
	if c.StacksDir == "" {
		c.StacksDir = filepath.Join(c.DataDir, "stacks")
	}
	if c.TemporalBin == "" {
		c.TemporalBin = defaultTemporalBin()
	}
	for _, p := range []*string{&c.DataDir, &c.StacksDir, &c.TemporalBin, &c.TemporalFile, &c.Kubernetes.Kubeconfig, &c.MQTTTLSCert, &c.MQTTTLSKey} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("resolve %q: %w", *p, err)
		}
		*p = abs
	}
	return nil
}

// defaultTemporalBin is the Temporal CLI beside the flowyard binary (where `make` puts both), else
// bin/temporal below the working directory.
func defaultTemporalBin() string {
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "temporal"); fileExists(p) {
			return p
		}
	}
	return filepath.Join("bin", "temporal")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func usage(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) { fmt.Fprintf(&b, "  --%s  %s (default %q)\n", f.Name, f.Usage, f.DefValue) })
	return b.String()
}

func intEnv(getenv func(string) string, env string, def int) (int, error) {
	v := getenv(env)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a number", env, v)
	}
	return n, nil
}

func (c *Config) validate() error {
	var errs []error
	for name, addr := range map[string]string{"listen": c.Listen, "mqtt-listen": c.MQTTListen} {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("--%s=%q is not host:port", name, addr))
		}
	}
	if _, port, err := net.SplitHostPort(c.MQTTWSListen); c.MQTTWSListen != "" && (err != nil || port == "") {
		errs = append(errs, fmt.Errorf("--mqtt-ws-listen=%q is not host:port", c.MQTTWSListen))
	}
	errs = append(errs, c.validateBroker()...)
	errs = append(errs, c.validateMQTTTLSAndURL()...)
	if c.TemporalPort < 1 || c.TemporalPort > 64535 {
		errs = append(errs, fmt.Errorf("--temporal-port=%d must be from 1 to 64535 (its UI uses port+1000)", c.TemporalPort))
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, errors.New("--database-url must start with postgres:// (leave it empty for SQLite)"))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "auto" && c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("--log-format=%q must be json, text or auto", c.LogFormat))
	}
	if (c.AdminEmail == "") != (c.AdminPassword == "") {
		errs = append(errs, errors.New("set both FLOWYARD_ADMIN_EMAIL and FLOWYARD_ADMIN_PASSWORD, or neither"))
	}
	if c.SecretKey != "" && len(c.SecretKey) < 32 {
		errs = append(errs, errors.New("FLOWYARD_SECRET_KEY must be at least 32 characters"))
	}
	if _, _, err := c.PortRange(); err != nil {
		errs = append(errs, err)
	}
	if c.InstanceSandbox != SandboxAuto && c.InstanceSandbox != SandboxBwrap && c.InstanceSandbox != SandboxNone {
		errs = append(errs, fmt.Errorf("--instance-sandbox=%q must be auto, bwrap or none", c.InstanceSandbox))
	}
	if c.Driver != "local" && c.Driver != "kubernetes" {
		errs = append(errs, fmt.Errorf("--driver=%q must be local or kubernetes", c.Driver))
	}
	if _, port, err := net.SplitHostPort(c.MetricsListen); c.MetricsListen != "" && (err != nil || port == "") {
		errs = append(errs, fmt.Errorf("--metrics-listen=%q is not host:port", c.MetricsListen))
	}
	if c.BodyLimitMB < 1 || c.BodyLimitMB > 1024 {
		errs = append(errs, fmt.Errorf("--body-limit-mb=%d must be from 1 to 1024", c.BodyLimitMB))
	}
	errs = append(errs, c.Limits.validate()...)
	errs = append(errs, c.Mail.validate()...)
	if c.Stripe.Key != "" && c.Stripe.WebhookSecret == "" {
		errs = append(errs, errors.New("FLOWYARD_STRIPE_WEBHOOK_SECRET is needed with FLOWYARD_STRIPE_KEY: webhooks cannot be verified without it"))
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.InternalURL == "" {
		c.InternalURL = "http://" + c.Listen
	}
	c.InternalURL = strings.TrimRight(c.InternalURL, "/")
	if u, err := url.Parse(c.InternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
		errs = append(errs, fmt.Errorf("--internal-url %q must be an http(s) URL with a host and no path", c.InternalURL))
	}
	if err := c.resolveEditorDomain(); err != nil {
		errs = append(errs, err)
	} else if err := c.resolveAppsDomain(); err != nil {
		errs = append(errs, err)
	}
	if c.RuntimeAPIURL == "" {
		c.RuntimeAPIURL = c.PublicURL
	}
	c.RuntimeAPIURL = strings.TrimRight(c.RuntimeAPIURL, "/")
	return errors.Join(errs...)
}

// validateBroker checks the broker mode; an external broker is also, by default, the one devices are handed.
func (c *Config) validateBroker() []error {
	switch c.MQTTBroker {
	case BrokerEmbedded:
		return nil
	case BrokerExternal:
	default:
		return []error{fmt.Errorf("--mqtt-broker=%q must be embedded or external", c.MQTTBroker)}
	}
	var errs []error
	u, err := url.Parse(c.External.URL)
	if err != nil || u.Host == "" || !slices.Contains([]string{"mqtt", "mqtts", "ws", "wss"}, u.Scheme) {
		errs = append(errs, fmt.Errorf("--mqtt-external-url=%q must be mqtt://, mqtts://, ws:// or wss://host:port with --mqtt-broker=external", c.External.URL))
	}
	if c.External.Username == "" || c.External.Password == "" {
		errs = append(errs, errors.New("--mqtt-broker=external needs the admin client's FLOWYARD_MQTT_EXTERNAL_USERNAME and FLOWYARD_MQTT_EXTERNAL_PASSWORD"))
	}
	if c.MQTTPublicURL == "" {
		c.MQTTPublicURL = c.External.URL
	}
	return errs
}

// validateMQTTTLSAndURL checks that the TLS files come in pairs and settles the broker URL devices are given:
// the default follows the listener, "none" hands out no broker.
func (c *Config) validateMQTTTLSAndURL() []error {
	var errs []error
	if (c.MQTTTLSCert == "") != (c.MQTTTLSKey == "") {
		errs = append(errs, errors.New("set both --mqtt-tls-cert and --mqtt-tls-key, or neither"))
	}
	switch {
	case c.MQTTPublicURL == "none":
		c.MQTTPublicURL = ""
	case c.MQTTPublicURL == "" && c.MQTTTLSCert != "":
		c.MQTTPublicURL = "mqtts://" + c.MQTTListen
	case c.MQTTPublicURL == "":
		c.MQTTPublicURL = "mqtt://" + c.MQTTListen
	default:
		u, err := url.Parse(c.MQTTPublicURL)
		if err != nil || u.Host == "" || !slices.Contains([]string{"mqtt", "mqtts", "ws", "wss"}, u.Scheme) {
			errs = append(errs, fmt.Errorf("--mqtt-public-url=%q must be an mqtt://, mqtts://, ws:// or wss:// URL with a host, or none", c.MQTTPublicURL))
		}
	}
	return errs
}

// StoreURL is the database to open: Postgres when configured, else the SQLite file in the data dir.
func (c Config) StoreURL() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return filepath.Join(c.DataDir, "flowyard.db")
}

// LogValue describes the effective configuration with secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen", c.Listen), slog.String("publicUrl", c.PublicURL), slog.String("editorDomain", c.EditorDomain), slog.String("appsDomain", c.AppsDomain), slog.String("dataDir", c.DataDir),
		slog.String("stacksDir", c.StacksDir), slog.String("temporalBin", c.TemporalBin), slog.String("temporalConfig", c.TemporalFile),
		slog.String("kubeconfig", c.Kubernetes.Kubeconfig),
		slog.String("database", maskURL(c.StoreURL())), slog.String("secretKey", mask(c.SecretKey)),
		slog.Int("temporalPort", c.TemporalPort), slog.String("mqttListen", c.MQTTListen), slog.String("mqttWsListen", c.MQTTWSListen),
		slog.String("mqttPublicUrl", c.MQTTPublicURL), slog.String("mqttTlsCert", c.MQTTTLSCert),
		slog.String("mqttBroker", c.MQTTBroker), slog.String("mqttExternalUrl", c.External.URL),
		slog.String("mqttExternalUsername", c.External.Username), slog.String("mqttExternalPassword", mask(c.External.Password)),
		slog.String("logLevel", c.LogLevel), slog.String("adminEmail", c.AdminEmail),
		slog.String("adminPassword", mask(c.AdminPassword)), slog.Bool("secureCookies", c.SecureCookies),
		slog.Any("trustedProxies", c.TrustedProxies),
		slog.String("driver", c.Driver), slog.String("instanceSandbox", c.InstanceSandbox), slog.Any("instanceDenyNetworks", c.InstanceDenyNetworks), slog.String("runtimeApiUrl", c.RuntimeAPIURL), slog.String("metricsListen", c.MetricsListen),
		slog.String("stripeKey", mask(c.Stripe.Key)), slog.String("stripeWebhookSecret", mask(c.Stripe.WebhookSecret)),
		slog.String("stripeApiUrl", c.Stripe.APIURL),
		slog.String("smtpUrl", maskSMTPURL(c.Mail.SMTPURL)), slog.String("mailFrom", c.Mail.From),
		slog.Bool("webhooksAllowPrivate", c.WebhooksAllowPrivate))
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return "****"
}

// maskURL hides a password in a database URL.
func maskURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	creds, host, ok := strings.Cut(rest, "@")
	if !ok {
		return u
	}
	user, _, hasPass := strings.Cut(creds, ":")
	if hasPass {
		return scheme + "://" + user + ":****@" + host
	}
	return u
}

// maskSMTPURL hides the password of an SMTP URL. It parses the URL rather than cutting at "@", since the user
// name of a mail account is often an address; a URL that does not parse is hidden whole.
func maskSMTPURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "****"
	}
	return u.Redacted()
}

func (m MailConfig) validate() []error {
	if m.SMTPURL == "" {
		return nil
	}
	var errs []error
	u, err := url.Parse(m.SMTPURL)
	switch {
	case err != nil:
		errs = append(errs, errors.New("--smtp-url is not a URL (escape an @ in the user name as %40)"))
	case u.Scheme != "smtp" && u.Scheme != "smtps":
		errs = append(errs, fmt.Errorf("--smtp-url must start with smtp:// or smtps://, not %s://", u.Scheme))
	case u.Hostname() == "":
		errs = append(errs, errors.New("--smtp-url needs a host"))
	case u.Port() != "":
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("--smtp-url port %q must be from 1 to 65535", u.Port()))
		}
	}
	if m.From == "" {
		errs = append(errs, errors.New("--mail-from (FLOWYARD_MAIL_FROM) is needed with --smtp-url"))
	} else if _, err := mail.ParseAddress(m.From); err != nil {
		errs = append(errs, fmt.Errorf("--mail-from=%q is not an e-mail address", m.From))
	}
	return errs
}

// Logger builds the process logger: JSON unless stderr is a terminal.
func (c Config) Logger(w *os.File) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	format := c.LogFormat
	if format == "auto" {
		format = "json"
		if fi, err := w.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level=%q must be debug, info, warn or error", s)
	}
	return l, nil
}

// EnsureSecretKey returns the configured master key, or reads (creating on first use) a random one kept in
// the data dir with owner-only permissions.
func (c Config) EnsureSecretKey() (string, error) {
	if c.SecretKey != "" {
		return c.SecretKey, nil
	}
	path := filepath.Join(c.DataDir, "secret.key")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read secret key: %w", err)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	key := domain.NewSecret(32)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("write secret key: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(key + "\n"); err != nil {
		return "", fmt.Errorf("write secret key: %w", err)
	}
	return key, f.Sync()
}

// PortRange parses --instance-ports.
func (c Config) PortRange() (int, int, error) {
	lo, hi, ok := strings.Cut(c.InstancePorts, "-")
	min, err1 := strconv.Atoi(lo)
	max, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || min < 1024 || max > 65535 || min > max {
		return 0, 0, fmt.Errorf("--instance-ports=%q must be a range such as 12000-12999 (ports 1024-65535)", c.InstancePorts)
	}
	return min, max, nil
}
