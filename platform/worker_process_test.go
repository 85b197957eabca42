package platform_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/drivers/fake"
	"github.com/flowyard/flowyard/internal/proctest"
	"github.com/flowyard/flowyard/snapshots"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/worker"
)

// The test binary doubles as a worker process: with workerModeEnv set it runs a worker until it is killed (the
// kill tests SIGKILL it). It serves the instances task queue (testTaskQueue) and promotions (pipelinesQueue).
const (
	workerModeEnv  = "FLOWYARD_TEST_WORKER_PROCESS"
	workerDBEnv    = "FLOWYARD_TEST_WORKER_DB"
	workerAddrEnv  = "FLOWYARD_TEST_WORKER_TEMPORAL"
	workerReady    = "worker ready"
	testTaskQueue  = "instances"
	pipelinesQueue = "pipelines"
)

func TestMain(m *testing.M) {
	if os.Getenv(workerModeEnv) == "1" {
		if err := runWorkerProcess(); err != nil {
			fmt.Fprintln(os.Stderr, "worker process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runWorkerProcess serves the instances and pipelines task queues with the real activities on the store, a fake
// driver (no Node-RED: this is about the store) and the platform's registration, until the process is killed.
func runWorkerProcess() error {
	ctx := context.Background()
	st, err := storage.Open(ctx, os.Getenv(workerDBEnv))
	if err != nil {
		return err
	}
	sealer, err := domain.NewSealer(testMasterKey)
	if err != nil {
		return err
	}
	c, err := client.Dial(client.Options{HostPort: os.Getenv(workerAddrEnv), Namespace: testNamespace,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		return err
	}
	svc := &snapshots.Service{Store: st, Sealer: sealer}
	instances := worker.New(c, testTaskQueue, worker.Activities{
		Instances: &activities.Instances{Store: st, Driver: fake.New(nil), Sealer: sealer},
		Snapshots: &activities.Snapshots{Service: svc},
	})
	pipelines := worker.NewPipelines(c, pipelinesQueue, &activities.Pipelines{Store: st, Snapshots: svc})
	for _, w := range []interface{ Start() error }{instances, pipelines} {
		if err := w.Start(); err != nil {
			return err
		}
	}
	fmt.Println(workerReady)
	select {} // until killed
}

// workerProcess starts the test binary as a worker process and waits until it serves.
func workerProcess(t *testing.T, dbURL, temporalAddr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerModeEnv+"=1", workerDBEnv+"="+dbURL, workerAddrEnv+"="+temporalAddr)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { proctest.Stop(t, cmd, syscall.SIGKILL, 30*time.Second, nil) })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == workerReady {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		require.True(t, ok, "the worker process exited before serving")
	case <-time.After(30 * time.Second):
		t.Fatal("the worker process did not start within 30 s")
	}
	return cmd
}
