package temporalenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/flowyard/flowyard/internal/childenv"
)

// DevServerOptions configure StartDevServer. Zero values take the defaults noted on each field.
type DevServerOptions struct {
	// Bin is the path to the Temporal CLI (v1.5.1), usually bin/temporal in the repository. Required.
	Bin string
	// DataDir holds the SQLite file and the server's log file. Required; created when missing.
	DataDir string
	// DBFile is the SQLite file name inside DataDir. Default "temporal.db".
	DBFile string
	// IP is the address the frontend and the UI bind to. Default "127.0.0.1".
	IP string
	// Port is the frontend gRPC port. 0 picks a free port.
	Port int
	// UIPort is the Web UI port. 0 means Port+1000.
	UIPort int
	// Headless disables the Web UI.
	Headless bool
	// Namespace is created at start (besides "default"). Default "flowyard".
	Namespace string
	// SearchAttributes are registered at start; on a restart over an existing database the missing ones
	// are added through the operator API.
	SearchAttributes map[string]enumspb.IndexedValueType
	// SQLitePragmas are passed as PRAGMA=VALUE, e.g. "journal_mode": "wal".
	SQLitePragmas map[string]string
	// DynamicConfig sets server settings as KEY=JSON value, e.g. a low "limit.historyCount.suggestContinueAsNew"
	// so that a test sees a workflow continue as new.
	DynamicConfig map[string]string
	// LogLevel is the server's log level: debug, info, warn, error or never. Default "warn".
	LogLevel string
	// StartTimeout bounds the wait for the frontend to answer. Default 60 s.
	StartTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before it sends SIGKILL. Default 10 s.
	StopGrace time.Duration
	// Logger receives Flowyard's messages about the server; the server's own output goes to the log file.
	Logger *slog.Logger
}

// DevServer is a running `temporal server start-dev` child process. The child dies with its parent:
// it cannot outlive the Flowyard process, even one that is SIGKILLed (Linux).
type DevServer struct {
	opts      DevServerOptions
	cmd       *exec.Cmd
	logPath   string
	logOffset int64
	log       *slog.Logger

	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // set before exited is closed

	stopMu   sync.Mutex
	stopping bool
}

// Per-type column counts of SQL visibility (SQLite and PostgreSQL), which the dev server uses.
var sqlVisibilitySlots = map[enumspb.IndexedValueType]int{
	enumspb.INDEXED_VALUE_TYPE_KEYWORD:      10,
	enumspb.INDEXED_VALUE_TYPE_INT:          3,
	enumspb.INDEXED_VALUE_TYPE_DOUBLE:       3,
	enumspb.INDEXED_VALUE_TYPE_BOOL:         3,
	enumspb.INDEXED_VALUE_TYPE_DATETIME:     3,
	enumspb.INDEXED_VALUE_TYPE_TEXT:         3,
	enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST: 3,
}

// DevServerOptions turns the devServer section and address of cfg into options for StartDevServer.
func (c Config) DevServerOptions(bin, dataDir string, log *slog.Logger) (DevServerOptions, error) {
	host, port, err := splitAddress(c.Address)
	if err != nil {
		return DevServerOptions{}, fmt.Errorf("temporal dev server address: %w", err)
	}
	if host == "localhost" {
		host = "127.0.0.1" // the server needs an IP to bind to
	}
	attrs, err := c.SearchAttributeTypes()
	if err != nil {
		return DevServerOptions{}, err
	}
	opts := DevServerOptions{
		Bin: bin, DataDir: dataDir, DBFile: c.DevServer.DBFile,
		IP: host, Port: port, Headless: c.DevServer.Headless,
		Namespace: c.Namespace, SearchAttributes: attrs,
		SQLitePragmas: c.DevServer.SQLitePragmas,
		LogLevel:      c.DevServer.LogLevel, Logger: log,
	}
	if !c.DevServer.Headless {
		opts.UIPort = port + c.DevServer.UIPortOffset
	}
	return opts, nil
}

// StartDevServer runs `temporal server start-dev` with a SQLite file in opts.DataDir and returns once
// the frontend answers and the namespace exists. ctx bounds only the start-up; the server runs until
// Stop (or until this process dies). Restarting over an existing database keeps its workflows.
func StartDevServer(ctx context.Context, opts DevServerOptions) (*DevServer, error) {
	if err := opts.prepare(); err != nil {
		return nil, fmt.Errorf("start temporal dev server: %w", err)
	}
	s := &DevServer{opts: opts, log: opts.Logger, exited: make(chan struct{})}
	began := time.Now()
	if err := s.spawn(); err != nil {
		return nil, fmt.Errorf("start temporal dev server: %w", err)
	}
	c, err := s.waitReady(ctx)
	if err != nil {
		s.kill()
		return nil, fmt.Errorf("start temporal dev server: %w", err)
	}
	defer c.Close()
	// The CLI applies search attributes only when it creates the namespace; an older database may
	// lack attributes added to the configuration since.
	if err := ensureSearchAttributes(ctx, c, opts.Namespace, opts.SearchAttributes); err != nil {
		s.kill()
		return nil, fmt.Errorf("start temporal dev server: %w", err)
	}
	s.log.Info("temporal dev server ready", "address", s.Address(), "ui", s.UIURL(),
		"pid", s.PID(), "startup", time.Since(began).Round(time.Millisecond), "log", s.logPath)
	go s.reportUnexpectedExit()
	return s, nil
}

// prepare fills defaults and checks everything that can be checked before a process is started.
func (o *DevServerOptions) prepare() error {
	o.setDefaults()
	if o.Bin == "" {
		return errors.New("no temporal CLI path given")
	}
	if info, err := os.Stat(o.Bin); err != nil || info.IsDir() {
		return fmt.Errorf("temporal CLI not found at %s (build it with `make bin/temporal`)", o.Bin)
	}
	if o.DataDir == "" {
		return errors.New("no data directory given")
	}
	// The server runs inside DataDir: relative paths would be resolved twice.
	if err := absolute(&o.Bin, &o.DataDir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := checkSQLiteSlots(o.SearchAttributes); err != nil {
		return err
	}
	if err := o.choosePorts(); err != nil {
		return err
	}
	return nil
}

func (o *DevServerOptions) setDefaults() {
	if o.DBFile == "" {
		o.DBFile = "temporal.db"
	}
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Namespace == "" {
		o.Namespace = "flowyard"
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.StopGrace == 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "temporal-dev")
}

func checkSQLiteSlots(attrs map[string]enumspb.IndexedValueType) error {
	used := map[enumspb.IndexedValueType]int{}
	for name, kind := range attrs {
		if !identPattern.MatchString(name) {
			return fmt.Errorf("search attribute %q: a name must be an identifier", name)
		}
		if _, ok := sqlVisibilitySlots[kind]; !ok {
			return fmt.Errorf("search attribute %s: unsupported type %s", name, kind)
		}
		used[kind]++
	}
	for kind, n := range used {
		if n > sqlVisibilitySlots[kind] {
			return fmt.Errorf("%d search attributes of type %s, the dev server holds at most %d", n, kind, sqlVisibilitySlots[kind])
		}
	}
	return nil
}

// choosePorts picks a free frontend port when none is given and fails early, naming the port, when a
// port is taken: the CLI's own message would only be found in the log file.
func (o *DevServerOptions) choosePorts() error {
	if o.Port == 0 {
		port, err := freePort(o.IP)
		if err != nil {
			return err
		}
		o.Port = port
	}
	if !o.Headless && o.UIPort == 0 {
		o.UIPort = o.Port + 1000
	}
	if err := checkPortFree(o.IP, o.Port); err != nil {
		return fmt.Errorf("frontend port: %w", err)
	}
	if o.Headless {
		return nil
	}
	if o.UIPort > 65535 {
		return fmt.Errorf("ui port %d is out of range (frontend port %d + 1000)", o.UIPort, o.Port)
	}
	if err := checkPortFree(o.IP, o.UIPort); err != nil {
		return fmt.Errorf("ui port: %w", err)
	}
	return nil
}

func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func checkPortFree(ip string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d on %s is already in use: %w", port, ip, err)
	}
	return l.Close()
}

func absolute(paths ...*string) error {
	for _, p := range paths {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("resolve %q: %w", *p, err)
		}
		*p = abs
	}
	return nil
}

// args builds the command line of `temporal server start-dev`.
func (o DevServerOptions) args() []string {
	args := []string{"server", "start-dev",
		"--db-filename", filepath.Join(o.DataDir, o.DBFile),
		"--ip", o.IP,
		"--port", strconv.Itoa(o.Port),
		"--namespace", o.Namespace,
		"--log-level", o.LogLevel,
		"--log-format", "json",
		"--color", "never",
	}
	if o.Headless {
		args = append(args, "--headless")
	} else {
		args = append(args, "--ui-port", strconv.Itoa(o.UIPort))
	}
	for _, name := range sortedKeys(o.SearchAttributes) {
		args = append(args, "--search-attribute", name+"="+searchAttributeTypeName(o.SearchAttributes[name]))
	}
	for _, pragma := range sortedKeys(o.SQLitePragmas) {
		args = append(args, "--sqlite-pragma", pragma+"="+o.SQLitePragmas[pragma])
	}
	for _, key := range sortedKeys(o.DynamicConfig) {
		args = append(args, "--dynamic-config-value", key+"="+o.DynamicConfig[key])
	}
	return args
}

// searchAttributeTypeName returns the short name the CLI accepts, e.g. "Keyword".
func searchAttributeTypeName(kind enumspb.IndexedValueType) string {
	for name, value := range enumspb.IndexedValueType_shorthandValue {
		if enumspb.IndexedValueType(value) == kind {
			return name
		}
	}
	return kind.String()
}

func (s *DevServer) spawn() error {
	s.logPath = filepath.Join(s.opts.DataDir, "temporal.log")
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	if info, err := logFile.Stat(); err == nil {
		s.logOffset = info.Size()
	}
	args := s.opts.args()
	fmt.Fprintf(logFile, "### flowyard %s: %s %s\n", time.Now().Format(time.RFC3339), s.opts.Bin, strings.Join(args, " "))

	s.cmd = exec.Command(s.opts.Bin, args...)
	s.cmd.Dir = s.opts.DataDir
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	// Only the minimum: the platform's environment holds its secrets, and TEMPORAL_* variables meant for
	// other tools (a Temporal Cloud address, say) would reach the CLI as client settings.
	s.cmd.Env = childenv.New().List()
	s.cmd.SysProcAttr = childProcAttr()
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.opts.Bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	s.log.Debug("temporal dev server spawned", "pid", s.cmd.Process.Pid, "args", args)
	return nil
}

// waitReady polls until the frontend answers a health check and knows the namespace, and returns the
// client that succeeded. Each attempt dials afresh, so gRPC's reconnect back-off never delays us.
func (s *DevServer) waitReady(ctx context.Context) (client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.StartTimeout)
	defer cancel()
	var lastErr error
	for {
		c, err := s.probe(ctx)
		if err == nil {
			return c, nil
		}
		lastErr = err
		select {
		case <-s.exited:
			return nil, fmt.Errorf("temporal exited during start-up (%v); log %s ends with:\n%s", s.waitErr, s.logPath, s.logTail())
		case <-ctx.Done():
			return nil, fmt.Errorf("temporal did not answer on %s within %s (last error: %v); log %s ends with:\n%s",
				s.Address(), s.opts.StartTimeout, lastErr, s.logPath, s.logTail())
		case <-time.After(150 * time.Millisecond):
		}
	}
}

func (s *DevServer) probe(ctx context.Context) (client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", s.Address())
	if err != nil {
		return nil, err // not listening yet: skip the costlier gRPC dial
	}
	conn.Close()
	c, err := client.DialContext(ctx, client.Options{
		HostPort:  s.Address(),
		Namespace: s.opts.Namespace,
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		return nil, err
	}
	if err := s.checkNamespace(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (s *DevServer) checkNamespace(ctx context.Context, c client.Client) error {
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return err
	}
	_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.opts.Namespace})
	return err
}

// logTail returns the last lines (at most 25 and 4 KiB) this run wrote to the log file.
func (s *DevServer) logTail() string {
	const maxBytes = 4096
	f, err := os.Open(s.logPath)
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	start := max(s.logOffset, info.Size()-maxBytes)
	data, err := io.ReadAll(io.NewSectionReader(f, start, info.Size()-start))
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	const maxLines = 25
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}

func (s *DevServer) reportUnexpectedExit() {
	<-s.exited
	s.stopMu.Lock()
	stopping := s.stopping
	s.stopMu.Unlock()
	if !stopping {
		s.log.Error("temporal dev server exited unexpectedly", "pid", s.PID(), "err", s.waitErr, "log", s.logPath)
	}
}

// Stop sends SIGTERM, then SIGKILL if the server has not exited after StopGrace or when ctx ends, and
// waits until the process is gone. Stopping a server that has already exited returns nil.
func (s *DevServer) Stop(ctx context.Context) error {
	s.stopMu.Lock()
	s.stopping = true
	s.stopMu.Unlock()
	select {
	case <-s.exited:
		return nil
	default:
	}
	began := time.Now()
	if err := terminate(s.cmd.Process); err != nil {
		s.log.Warn("sigterm temporal dev server", "pid", s.PID(), "err", err)
	}
	grace := time.NewTimer(s.opts.StopGrace)
	defer grace.Stop()
	select {
	case <-s.exited:
		s.log.Info("temporal dev server stopped", "pid", s.PID(), "after", time.Since(began).Round(time.Millisecond))
		return nil
	case <-grace.C:
		s.log.Warn("temporal dev server ignored sigterm; killing it", "pid", s.PID(), "grace", s.opts.StopGrace)
	case <-ctx.Done():
		s.log.Warn("stop deadline reached; killing temporal dev server", "pid", s.PID())
	}
	s.kill()
	return nil
}

// kill sends SIGKILL and waits for the process to be reaped.
func (s *DevServer) kill() {
	s.stopMu.Lock()
	s.stopping = true
	s.stopMu.Unlock()
	if err := forceKill(s.cmd.Process); err != nil {
		s.log.Debug("sigkill temporal dev server", "pid", s.PID(), "err", err)
	}
	<-s.exited
}

// Address is the frontend's host:port, for client.Options.HostPort.
func (s *DevServer) Address() string {
	return net.JoinHostPort(s.opts.IP, strconv.Itoa(s.opts.Port))
}

// UIURL is the base URL of the Web UI, or "" when the server runs headless.
func (s *DevServer) UIURL() string {
	if s.opts.Headless {
		return ""
	}
	return "http://" + net.JoinHostPort(s.opts.IP, strconv.Itoa(s.opts.UIPort))
}

// Namespace is the namespace created at start.
func (s *DevServer) Namespace() string { return s.opts.Namespace }

// PID is the process ID of the temporal child process.
func (s *DevServer) PID() int { return s.cmd.Process.Pid }

// LogFile is the path of the file that receives the server's output.
func (s *DevServer) LogFile() string { return s.logPath }

// Exited is closed when the server process has ended, expectedly or not.
func (s *DevServer) Exited() <-chan struct{} { return s.exited }
