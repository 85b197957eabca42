package platform_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/drivers/local"
	"github.com/flowyard/flowyard/internal/proctest"
)

// devProcess is `flowyard dev` run as a real child process, so a test can SIGKILL it.
type devProcess struct {
	t       *testing.T
	bin     string
	dataDir string
	args    []string
	env     []string // added to the test's environment
	cmd     *exec.Cmd
	out     *bytes.Buffer
	url     string
}

func buildFlowyard(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flowyard")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/flowyard").CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

// newDevProcess prepares `flowyard dev` on free ports with its own data dir; extra flags override the defaults.
func newDevProcess(t *testing.T, extra ...string) *devProcess {
	t.Helper()
	repo, _ := filepath.Abs("..")
	dataDir := t.TempDir()
	linkStacks(t, dataDir)
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := &devProcess{t: t, bin: buildFlowyard(t), dataDir: dataDir, url: "http://" + listen,
		args: []string{"dev", "--data-dir", dataDir, "--listen", listen, "--temporal-port", fmt.Sprint(temporalPort(t)),
			"--temporal-bin", filepath.Join(repo, "bin", "temporal"), "--temporal-config", filepath.Join(repo, "temporal.yaml"),
			"--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--instance-ports", instancePorts(), "--mqtt-ws-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--admin-email", "admin@example.com",
			"--admin-password", "admin-password", "--log-format", "text"}}
	d.args = append(d.args, extra...)
	t.Cleanup(func() {
		if t.Failed() && d.out != nil {
			t.Logf("flowyard output:\n%s", d.out.String())
		}
		d.kill(syscall.SIGTERM)
		killInstanceRuntimes(dataDir)
	})
	return d
}

func (d *devProcess) start() {
	d.t.Helper()
	d.out = &bytes.Buffer{}
	d.cmd = exec.Command(d.bin, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.Env = append(append(os.Environ(), "FLOWYARD_SECRET_KEY="), d.env...)
	require.NoError(d.t, d.cmd.Start())
	waitReady(d.t, d.url)
}

// client signs the admin in.
func (d *devProcess) client() *apitest.Client {
	d.t.Helper()
	c := (&apitest.Env{URL: d.url}).Client(d.t)
	c.Login("admin@example.com", "admin-password")
	return c
}

// kill signals the process and waits for it; one that has not exited 30 s after the signal is dumped
// (SIGQUIT) and fails the test, so a hung shutdown shows its stacks instead of the package's timeout.
func (d *devProcess) kill(sig syscall.Signal) {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	proctest.Stop(d.t, d.cmd, sig, 30*time.Second, d.out.String)
	d.cmd = nil
}

// nodeRedProcesses lists the PIDs of Node-RED processes of one instance dir, however they were started.
func nodeRedProcesses(t *testing.T, instanceDir string) []int {
	t.Helper()
	return local.InstanceProcesses(instanceDir)
}

// killInstanceRuntimes ends Node-RED processes a test left behind: they outlive the platform by design.
func killInstanceRuntimes(dataDir string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err == nil && bytes.Contains(env, []byte("FLOWYARD_INSTANCE_DIR="+dataDir)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestCrashDuringProvisioning SIGKILLs the whole `flowyard dev` (API, worker and, through it, the Temporal dev
// server) in the middle of provisioning, at two points, restarts it, and checks that the instance ends running
// with exactly one Node-RED process and one port.
func TestCrashDuringProvisioning(t *testing.T) {
	for _, point := range []string{"accepted", "runtime-started"} {
		t.Run(point, func(t *testing.T) {
			d := newDevProcess(t)
			d.start()
			c := d.client()
			id, opID := createInstance(t, c, "crash-"+point)
			instanceDir := filepath.Join(d.dataDir, "instances", id)
			if point == "runtime-started" {
				waitFor(t, 2*time.Minute, "Node-RED to start", func() bool { return len(nodeRedProcesses(t, instanceDir)) > 0 })
			}
			d.kill(syscall.SIGKILL)

			d.start()
			c = d.client()
			op := waitOperation(t, c, opID)
			require.Equal(t, "succeeded", op.String("status"), "%s\n%s", op.Raw, d.out.String())
			assert.Equal(t, "running", c.Must(200, "GET", "/api/v1/instances/"+id, nil).String("state"))
			assert.Len(t, nodeRedProcesses(t, instanceDir), 1, "exactly one Node-RED for the instance")
			port, err := os.ReadFile(filepath.Join(instanceDir, "port"))
			require.NoError(t, err)
			assert.Equal(t, 1, countListeners(t, strings.TrimSpace(string(port))), "one port, held once")
		})
	}
}

// countListeners counts listening TCP sockets on a port (from /proc/net/tcp, port in hex).
func countListeners(t *testing.T, port string) int {
	t.Helper()
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	data, err := os.ReadFile("/proc/net/tcp")
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[3] == "0A" && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", p)) {
			n++
		}
	}
	return n
}
