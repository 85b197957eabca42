package platform_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/internal/proctest"
)

// TestMakeRunFromAFreshFolder runs `flowyard dev` as `make run` does on a fresh clone: from a new working
// directory holding only the binaries and temporal.yaml, with every default (the relative ./data among them)
// and only the ports moved, through their FLOWYARD_* variables, so it cannot collide with other tests. It then
// runs the README's quick-start commands as written, stops the platform with SIGTERM, starts it again in the
// same folder and finds the same admin and the instance running again.
func TestMakeRunFromAFreshFolder(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's quick start needs %s: %v", tool, err)
		}
	}
	folder := freshFolder(t)
	run := newMakeRun(t, folder)
	t.Cleanup(func() { killInstanceRuntimes(filepath.Join(folder, "data")) })

	run.start()
	runQuickstart(t, run.url, run.generatedPassword(), quickstartPassword)
	password := quickstartPassword // the quick start changed the generated one
	c := (&apitest.Env{URL: run.url}).Client(t)
	c.Login("admin@localhost", password)
	instance := onlyInstance(t, c, "My Team")
	waitFor(t, 3*time.Minute, "the quick start's instance to run after its restart", func() bool {
		return c.Must(200, "GET", "/api/v1/instances/"+instance, nil).String("state") == "running"
	})

	run.stop()
	run.start()
	assert.NotContains(t, run.out.String(), "generated password", "a second start must keep the first admin")
	c = (&apitest.Env{URL: run.url}).Client(t)
	c.Login("admin@localhost", password)
	waitFor(t, 3*time.Minute, "the instance to run again after the restart of the platform", func() bool {
		return c.Must(200, "GET", "/api/v1/instances/"+instance, nil).String("state") == "running"
	})
	run.stop()
}

// freshFolder is a new working directory laid out as a clone after `make build`: bin/flowyard, bin/temporal
// and temporal.yaml, nothing else.
func freshFolder(t *testing.T) string {
	t.Helper()
	repo, err := filepath.Abs("..")
	require.NoError(t, err)
	folder := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(folder, "bin"), 0o755))
	out, err := exec.Command("go", "build", "-o", filepath.Join(folder, "bin", "flowyard"), "../cmd/flowyard").CombinedOutput()
	require.NoError(t, err, string(out))
	copyFile(t, filepath.Join(repo, "bin", "temporal"), filepath.Join(folder, "bin", "temporal"), 0o755)
	copyFile(t, filepath.Join(repo, "temporal.yaml"), filepath.Join(folder, "temporal.yaml"), 0o644)
	return folder
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err, "run `make build` first")
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}

// makeRun is `./bin/flowyard dev` started in a folder the way `make run` starts it.
type makeRun struct {
	t      *testing.T
	folder string
	env    []string
	url    string
	cmd    *exec.Cmd
	out    *proctest.Output
}

func newMakeRun(t *testing.T, folder string) *makeRun {
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := []string{"FLOWYARD_LISTEN=" + listen, fmt.Sprintf("FLOWYARD_TEMPORAL_PORT=%d", temporalPort(t)),
		fmt.Sprintf("FLOWYARD_MQTT_LISTEN=127.0.0.1:%d", freePort(t)), fmt.Sprintf("FLOWYARD_MQTT_WS_LISTEN=127.0.0.1:%d", freePort(t)),
		"FLOWYARD_INSTANCE_PORTS=" + instancePorts()}
	// The user's environment, but none of the test run's own FLOWYARD_* settings.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLOWYARD_") {
			env = append(env, kv)
		}
	}
	r := &makeRun{t: t, folder: folder, env: env, url: "http://" + listen}
	t.Cleanup(func() {
		if t.Failed() && r.out != nil {
			t.Logf("flowyard output:\n%s", r.out.String())
		}
		r.stop()
	})
	return r
}

func (r *makeRun) start() {
	r.t.Helper()
	r.out = &proctest.Output{}
	r.cmd = exec.Command("./bin/flowyard", "dev")
	r.cmd.Dir, r.cmd.Env = r.folder, r.env
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	require.NoError(r.t, r.cmd.Start())
	waitReady(r.t, r.url)
}

// stop sends SIGTERM and requires the process to exit well within its own shutdown bound.
func (r *makeRun) stop() {
	proctest.Stop(r.t, r.cmd, syscall.SIGTERM, 30*time.Second, r.out.String)
	r.cmd = nil
}

// generatedPassword reads the admin's password from the start-up log, as a newcomer does.
func (r *makeRun) generatedPassword() string {
	r.t.Helper()
	sc := bufio.NewScanner(strings.NewReader(r.out.String()))
	for sc.Scan() {
		var line struct{ Msg, Email, Password, SignIn string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.Contains(line.Msg, "generated password") {
			require.Equal(r.t, "admin@localhost", line.Email)
			require.Equal(r.t, r.url+"/", line.SignIn, "the log says where to sign in")
			return line.Password
		}
	}
	r.t.Fatalf("no generated password in the log:\n%s", r.out.String())
	return ""
}

// quickstartPassword is what the quick start is told to change the generated admin password to.
const quickstartPassword = "quick-start-admin-password"

// runQuickstart runs the README's quick-start blocks with bash from an empty folder, the generated password and
// a new one typed at its prompts; only the address is moved to the test's port.
func runQuickstart(t *testing.T, url, password, newPassword string) {
	t.Helper()
	script := quickstartScript(t)
	script = strings.ReplaceAll(script, "http://127.0.0.1:8080", url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader(password + "\n" + newPassword + "\n")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the README's quick start failed:\n%s\noutput:\n%s", script, out)
}

// quickstartScript is the sh blocks of the README between its quickstart markers, in order.
func quickstartScript(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	section := regexp.MustCompile(`(?s)<!-- quickstart:.*?-->(.*?)<!-- /quickstart -->`).FindSubmatch(readme)
	require.NotNil(t, section, "README.md has no quickstart markers")
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllSubmatch(section[1], -1)
	require.NotEmpty(t, blocks, "the README's quick start holds no sh block")
	var script strings.Builder
	for _, b := range blocks {
		script.Write(b[1])
	}
	return script.String()
}

// onlyInstance finds the one instance of the one application of the named team.
func onlyInstance(t *testing.T, c *apitest.Client, teamName string) string {
	t.Helper()
	var team string
	for _, item := range c.Must(200, "GET", "/api/v1/teams", nil).Body["items"].([]any) {
		if m := item.(map[string]any); m["name"] == teamName {
			team = m["id"].(string)
		}
	}
	require.NotEmpty(t, team, "the quick start's team %q", teamName)
	app := firstID(c.Must(200, "GET", "/api/v1/teams/"+team+"/applications", nil))
	return firstID(c.Must(200, "GET", "/api/v1/applications/"+app+"/instances", nil))
}
