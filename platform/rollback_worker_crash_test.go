package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/internal/proctest"
	"github.com/flowyard/flowyard/nodered"
	"github.com/flowyard/flowyard/snapshots"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
	"github.com/flowyard/flowyard/workflows/instance"
)

// killTestSecret is the credential secret of the instances the worker kill tests seed.
const killTestSecret = "instance-secret"

// content is what a rollback must move as one: flows, credentials and env.
type content struct {
	flows string
	creds map[string]any
	env   []domain.EnvVar
}

func versioned(v string, size int) content {
	flows := fmt.Sprintf(`[{"id":"tab1","type":"tab","label":"%s"},{"id":"c1","type":"comment","z":"tab1","info":"%s"}]`, v, strings.Repeat(v, size/len(v)))
	return content{flows: flows, creds: map[string]any{"req1": map[string]any{"password": "password-" + v}},
		env: []domain.EnvVar{{Name: "VERSION", Value: v}}}
}

// read returns the instance's content as the store holds it.
func read(t *testing.T, st *storage.Store, sealer *domain.Sealer, id string) content {
	t.Helper()
	ctx := context.Background()
	in, err := st.GetInstance(ctx, id)
	require.NoError(t, err)
	secret, err := sealer.Open(in.CredentialSecret)
	require.NoError(t, err)
	flows, err := st.GetInstanceStorage(ctx, id, storage.StorageFlows)
	require.NoError(t, err)
	blob, err := st.GetInstanceStorage(ctx, id, storage.StorageCredentials)
	require.NoError(t, err)
	creds, err := nodered.DecryptCredentials(secret, json.RawMessage(blob))
	require.NoError(t, err)
	return content{flows: flows, creds: creds, env: in.Env}
}

func label(c content) string {
	var flows []map[string]any
	if err := json.Unmarshal([]byte(c.flows), &flows); err != nil || len(flows) == 0 {
		return "unreadable flows"
	}
	pw, _ := c.creds["req1"].(map[string]any)["password"].(string)
	env := ""
	if len(c.env) > 0 {
		env = c.env[0].Value
	}
	return fmt.Sprintf("flows %v, credentials %s, env %s", flows[0]["label"], pw, env)
}

// TestCrashWorkerDuringRollback SIGKILLs the worker process (the platform's worker registration with the
// real activities, in a process of its own) while the rollback's write transaction waits at a lock on Postgres
// (10 MB of flows), checks that the store then holds the complete old content, starts a new worker, and checks that the
// rollback finishes with the complete new content (never a mix), one automatic snapshot (the retried step did
// not take a second one) and a final operation.
func TestCrashWorkerDuringRollback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	temporal := startTemporal(t)

	dbURL, st, sealer := crashStore(ctx, t)
	in := seedInstance(t, st, sealer)
	old, target := versioned("old", 10<<20), versioned("new", 10<<20)
	svc := &snapshots.Service{Store: st, Sealer: sealer}
	write(t, st, sealer, in, target)
	snap, err := svc.Capture(ctx, in.ID, snapshots.Meta{Name: "new"})
	require.NoError(t, err)
	write(t, st, sealer, in, old)

	first := workerProcess(t, dbURL, temporal)
	c := dialTemporal(t, temporal)
	facade := &instance.Client{Temporal: c, TaskQueue: testTaskQueue}
	op := insertOperation(t, st, in, "rollback")
	gate := storagetest.HoldInstanceWrites(t, dbURL)
	_, err = facade.Run(ctx, instance.Params{InstanceID: in.ID, TeamID: in.TeamID, OperationID: op, Action: instance.ActionRollback, SnapshotID: snap.ID})
	require.NoError(t, err)

	gate.WaitForWriter(in.ID)
	proctest.Stop(t, first, syscall.SIGKILL, 30*time.Second, nil)
	gate.Release()
	assert.Equal(t, label(old), label(read(t, st, sealer, in.ID)), "right after the kill the store holds the complete old content")
	list, _, err := st.ListSnapshots(ctx, in.ID, storage.Page{})
	require.NoError(t, err)
	require.Len(t, list, 2, "the kill came after the automatic snapshot, in the write")
	assert.True(t, list[1].Auto)

	workerProcess(t, dbURL, temporal)
	res, err := facade.Wait(ctx, in.ID)
	require.NoError(t, err, "the rollback finishes on the new worker")
	assert.Equal(t, domain.InstanceRunning, res.State)
	got := read(t, st, sealer, in.ID)
	assert.Equal(t, label(target), label(got), "the complete new content")
	assert.Equal(t, target.flows, got.flows)
	reread, err := st.GetInstance(ctx, in.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.InstanceRunning, reread.State)
	list, _, err = st.ListSnapshots(ctx, in.ID, storage.Page{})
	require.NoError(t, err)
	assert.Equal(t, 1, countAuto(list), "one automatic snapshot: the retried rollback did not take another")
	assert.Len(t, list, 2, "the rolled-back snapshot and the automatic one, nothing else")
	assertOperationFinal(t, st, op, domain.OperationSucceeded)
}

// insertOperation records a pending operation on the instance, as the API does before it starts a run.
func insertOperation(t *testing.T, st *storage.Store, in *storage.Instance, kind string) string {
	t.Helper()
	op := &storage.Operation{ID: domain.NewID(), Kind: kind, SubjectType: "instance", SubjectID: in.ID, TeamID: &in.TeamID,
		Status: domain.OperationPending, WorkflowID: instance.WorkflowID(in.ID)}
	_, _, err := st.InsertOperation(context.Background(), op)
	require.NoError(t, err)
	return op.ID
}

// assertOperationFinal checks that an operation ended with the status and a finish time: never left pending or
// running after the crash.
func assertOperationFinal(t *testing.T, st *storage.Store, id string, status domain.OperationStatus) {
	t.Helper()
	op, err := st.GetOperation(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, status, op.Status, "operation %s (%s): %s", op.ID, op.Kind, op.Error)
	assert.NotNil(t, op.FinishedAt, "operation %s (%s) has a finish time", op.ID, op.Kind)
}

func countAuto(list []storage.Snapshot) int {
	n := 0
	for _, s := range list {
		if s.Auto {
			n++
		}
	}
	return n
}

func seedInstance(t *testing.T, st *storage.Store, sealer *domain.Sealer) *storage.Instance {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, st.SeedDefaults(ctx))
	types, _, err := storage.ListObjects[storage.TeamType](ctx, st, storage.Page{})
	require.NoError(t, err)
	team := &storage.Team{ID: domain.NewID(), Name: "T", Slug: "t", TeamTypeID: types[0].ID}
	require.NoError(t, st.InsertTeam(ctx, team))
	app := &storage.Application{ID: domain.NewID(), TeamID: team.ID, Name: "app"}
	require.NoError(t, st.InsertApplication(ctx, app))
	itypes, _, err := storage.ListObjects[storage.InstanceType](ctx, st, storage.Page{})
	require.NoError(t, err)
	stacks, _, err := storage.ListObjects[storage.Stack](ctx, st, storage.Page{})
	require.NoError(t, err)
	templates, _, err := storage.ListObjects[storage.Template](ctx, st, storage.Page{})
	require.NoError(t, err)
	in := &storage.Instance{ID: domain.NewID(), Name: "killed", ApplicationID: app.ID, TeamID: team.ID,
		InstanceTypeID: itypes[0].ID, StackID: stacks[0].ID, TemplateID: templates[0].ID, State: "running", DesiredState: "running",
		Settings: map[string]any{}, Env: []domain.EnvVar{}, Modules: map[string]string{}, CredentialSecret: sealer.Seal(killTestSecret),
		AdminToken: sealer.Seal("admin"), ReadToken: sealer.Seal("read"), RuntimeToken: sealer.Seal("runtime")}
	require.NoError(t, st.InsertInstance(ctx, in))
	return in
}

// write puts content into the instance as a deploy would.
func write(t *testing.T, st *storage.Store, sealer *domain.Sealer, in *storage.Instance, c content) {
	t.Helper()
	ctx := context.Background()
	blob, err := nodered.EncryptCredentials(killTestSecret, c.creds)
	require.NoError(t, err)
	require.NoError(t, st.PutInstanceStorage(ctx, in.ID, storage.StorageFlows, c.flows))
	require.NoError(t, st.PutInstanceStorage(ctx, in.ID, storage.StorageCredentials, string(blob)))
	in.Env = c.env
	require.NoError(t, st.UpdateInstance(ctx, in, "env"))
}

// crashStore is a fresh, migrated Postgres database for a crash test (the write that the kill interrupts waits
// at a Postgres lock), its URL for the worker process, and the platform's sealer.
func crashStore(ctx context.Context, t *testing.T) (string, *storage.Store, *domain.Sealer) {
	t.Helper()
	dbURL := storagetest.NewDatabase(t, "postgres")
	st, err := storage.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Migrate(ctx)
	require.NoError(t, err)
	sealer, err := domain.NewSealer(testMasterKey)
	require.NoError(t, err)
	return dbURL, st, sealer
}
