package platform_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/broker/mosquitto/mosquittotest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/internal/proctest"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// topology is the production layout on one machine: one Postgres database, a Temporal dev server, then
// `flowyard migrate`, `flowyard worker` and N `flowyard serve` replicas (each with its embedded broker), every
// flowyard a child process of the test with the same database, secret key and Temporal.
type topology struct {
	t        testing.TB
	bin      string
	dbURL    string
	temporal string // host:port
	secret   string
	worker   *child
	serves   []*replica
	// external is the Mosquitto every process uses with --mqtt-broker external; nil: each replica embeds a broker.
	external *mosquittotest.Broker
	// mqttPublic, when set, is the broker URL the replicas hand devices (a load balancer in front of them).
	mqttPublic string
	serveFlags []string // added to every replica's flags
}

// topologyOption changes the layout before its processes start.
type topologyOption func(*topology)

// withExternalBroker makes every process use the external broker mb (its admin password in the environment).
func withExternalBroker(mb *mosquittotest.Broker) topologyOption {
	return func(tp *topology) { tp.external = mb }
}

// withDevicesAt hands devices url as the broker's address, as a load balancer's in front of the replicas.
func withDevicesAt(url string) topologyOption {
	return func(tp *topology) { tp.mqttPublic = url }
}

// withServeFlags adds flags to every replica's.
func withServeFlags(flags ...string) topologyOption {
	return func(tp *topology) { tp.serveFlags = append(tp.serveFlags, flags...) }
}

// replica is one `flowyard serve`: its API URL and its embedded broker's MQTT address ("" with an external broker).
type replica struct {
	*child
	url, mqtt string
}

// child is one flowyard process.
type child struct {
	name string
	cmd  *exec.Cmd
	out  *proctest.Output
}

// startTopology runs the layout with n serve replicas and waits until each is ready and listens for the other
// processes' device notifications.
func startTopology(t testing.TB, replicas int, options ...topologyOption) *topology {
	t.Helper()
	tp := &topology{t: t, bin: buildFlowyard(t), dbURL: storagetest.NewDatabase(t, "postgres"), secret: domain.NewSecret(40)}
	for _, o := range options {
		o(tp)
	}
	tp.temporal = startTemporal(t)
	tp.once("migrate", "--admin-email", "admin@example.com", "--admin-password", "admin-password")
	tp.worker = tp.start("worker", "worker", "--instance-ports", instancePorts())
	for range replicas {
		tp.startServe()
	}
	for _, r := range tp.serves {
		r.waitRelay(t)
	}
	return tp
}

// startServe starts one more `flowyard serve` replica (named serve-a, serve-b, … in order) without waiting for it.
func (tp *topology) startServe() *replica {
	tp.t.Helper()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(tp.t))
	r := &replica{url: "http://" + listen}
	flags := []string{"--listen", listen}
	if tp.external == nil {
		r.mqtt = fmt.Sprintf("127.0.0.1:%d", freePort(tp.t))
		flags = append(flags, "--mqtt-listen", r.mqtt, "--mqtt-ws-listen", "")
	}
	if tp.mqttPublic != "" {
		flags = append(flags, "--mqtt-public-url", tp.mqttPublic)
	}
	r.child = tp.start(fmt.Sprintf("serve-%c", 'a'+len(tp.serves)), "serve", append(flags, tp.serveFlags...)...)
	tp.serves = append(tp.serves, r)
	return r
}

// kill ends the process with SIGKILL, as a crash or an evicted pod would, and waits until it is gone.
func (c *child) kill(t testing.TB) {
	t.Helper()
	proctest.Stop(t, c.cmd, syscall.SIGKILL, 30*time.Second, c.out.String)
}

// startTemporal runs a headless Temporal dev server with Flowyard's namespace and search attributes.
func startTemporal(t testing.TB) string {
	t.Helper()
	return startTemporalWith(t, nil).Address()
}

// args are the flags every flowyard process of the layout shares, then extra.
func (tp *topology) args(sub string, extra ...string) []string {
	repo, _ := filepath.Abs("..")
	dataDir := tp.t.TempDir()
	linkStacks(tp.t, dataDir)
	args := []string{sub, "--database-url", tp.dbURL, "--data-dir", dataDir, "--temporal-config", filepath.Join(repo, "temporal.yaml"),
		"--log-format", "text"}
	if tp.external != nil && sub != "migrate" {
		args = append(args, "--mqtt-broker", "external", "--mqtt-external-url", tp.external.URL(), "--mqtt-external-username", tp.external.AdminUsername)
	}
	return append(args, extra...)
}

func (tp *topology) env() []string {
	env := append(os.Environ(), "FLOWYARD_SECRET_KEY="+tp.secret, "FLOWYARD_TEMPORAL_ADDRESS="+tp.temporal)
	if tp.external != nil {
		env = append(env, "FLOWYARD_MQTT_EXTERNAL_PASSWORD="+tp.external.AdminPassword)
	}
	return env
}

// once runs a subcommand to its end.
func (tp *topology) once(sub string, extra ...string) {
	tp.t.Helper()
	cmd := exec.Command(tp.bin, tp.args(sub, extra...)...)
	cmd.Env = tp.env()
	out, err := cmd.CombinedOutput()
	require.NoError(tp.t, err, "flowyard %s:\n%s", sub, out)
}

// start runs a long-lived subcommand, stopped with SIGTERM when the test ends (its output is shown when the
// test failed).
func (tp *topology) start(name, sub string, extra ...string) *child {
	tp.t.Helper()
	c := &child{name: name, out: &proctest.Output{}}
	c.cmd = exec.Command(tp.bin, tp.args(sub, extra...)...)
	c.cmd.Env = tp.env()
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	require.NoError(tp.t, c.cmd.Start())
	tp.t.Cleanup(func() {
		proctest.Stop(tp.t, c.cmd, syscall.SIGTERM, 30*time.Second, c.out.String)
		if tp.t.Failed() {
			tp.t.Logf("flowyard %s output:\n%s", c.name, c.out.String())
		}
	})
	return c
}

// waitRelay waits until the replica is ready and listens for device notifications ("relay": "ok" in /readyz).
func (r *replica) waitRelay(t testing.TB) {
	t.Helper()
	waitReady(t, r.url)
	c := (&apitest.Env{URL: r.url}).Client(t)
	waitFor(t, 30*time.Second, r.name+" to listen for device notifications", func() bool {
		return c.Do("GET", "/readyz", nil).String("relay") == "ok"
	})
}

// client signs the admin in on the replica.
func (r *replica) client(t testing.TB) *apitest.Client {
	t.Helper()
	c := (&apitest.Env{URL: r.url}).Client(t)
	c.Login("admin@example.com", "admin-password")
	return c
}

// store opens the layout's database from the test, for fixtures and checks.
func (tp *topology) store() *storage.Store {
	tp.t.Helper()
	st, err := storage.Open(context.Background(), tp.dbURL)
	require.NoError(tp.t, err)
	tp.t.Cleanup(func() { _ = st.Close() })
	return st
}

// listenerPIDs are the Postgres backends of the layout's database that listen for notifications.
func (tp *topology) listenerPIDs() []int {
	tp.t.Helper()
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(tp.dbURL)))
	defer db.Close()
	rows, err := db.Query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'")
	require.NoError(tp.t, err)
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var pid int
		require.NoError(tp.t, rows.Scan(&pid))
		pids = append(pids, pid)
	}
	return pids
}

// killListeners ends every listening connection of the database, as a Postgres restart or a network cut would.
func (tp *topology) killListeners() []int {
	tp.t.Helper()
	pids := tp.listenerPIDs()
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(tp.dbURL)))
	defer db.Close()
	for _, pid := range pids {
		_, err := db.Exec("SELECT pg_terminate_backend($1)", pid)
		require.NoError(tp.t, err)
	}
	return pids
}

// insertSnapshots stores application snapshots (no instance needed) for devices to target, their credential
// secret sealed with the layout's key so that agents can download them.
func (tp *topology) insertSnapshots(st *storage.Store, team, app string, n int) []string {
	t := tp.t
	t.Helper()
	sealer, err := domain.NewSealer(tp.secret)
	require.NoError(t, err)
	var ids []string
	for i := range n {
		snap := &storage.Snapshot{ID: domain.NewID(), ApplicationID: app, TeamID: team, Name: fmt.Sprint("v", i), NodeRedVersion: "4.1.15",
			Flows: `[{"id":"tab1","type":"tab","label":"v` + fmt.Sprint(i) + `"}]`, Credentials: "{}", CredentialSecret: sealer.Seal(domain.NewSecret(32))}
		_, err := st.InsertSnapshot(context.Background(), snap)
		require.NoError(t, err)
		ids = append(ids, snap.ID)
	}
	return ids
}
