package services_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/services"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
	"github.com/flowyard/flowyard/workflows/instance"
	"github.com/flowyard/flowyard/workflows/rollout"
)

// refusing is a workflow engine that refuses every start, and says whether a run is in progress.
type refusing struct{ busy bool }

func (r refusing) Run(context.Context, instance.Params) (string, error) {
	return "", errors.New("engine refused")
}
func (r refusing) Running(context.Context, string) (bool, error) { return r.busy, nil }

func newSealer(t *testing.T) *domain.Sealer {
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	return sealer
}

func operationsOf(t *testing.T, st *storage.Store, subjectType, id string) []storage.Operation {
	t.Helper()
	ops, _, err := st.ListOperationsBySubject(context.Background(), subjectType, id, storage.Page{})
	require.NoError(t, err)
	return ops
}

// TestRecoverLeavesNoOperationPending: crash recovery records its operation and, when the engine refuses to
// start it, marks it failed with the reason; an instance with a run in progress gets none.
func TestRecoverLeavesNoOperationPending(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		in := storagetest.NewInstance(t, st, newSealer(t), nil)
		flows := &services.Instances{Operations: &services.Operations{Store: st}, Runner: refusing{}}

		require.NoError(t, flows.Recover(ctx, in.ID, refusing{busy: true}))
		assert.Empty(t, operationsOf(t, st, "instance", in.ID), "a busy instance gets no recover operation")

		require.EqualError(t, flows.Recover(ctx, in.ID, refusing{}), "engine refused")
		ops := operationsOf(t, st, "instance", in.ID)
		require.Len(t, ops, 1)
		assert.Equal(t, "recover", ops[0].Kind)
		assert.Equal(t, instance.WorkflowID(in.ID), ops[0].WorkflowID)
		assert.Equal(t, domain.OperationFailed, ops[0].Status)
		assert.Equal(t, "engine refused", ops[0].Error)
	})
}

// TestActionsKeepTheTeamLimitAndAudit: a user's action is recorded with its audit entry, within the team's
// limit on operations in flight; without an engine the operation ends failed.
func TestActionsKeepTheTeamLimitAndAudit(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		in := storagetest.NewInstance(t, st, newSealer(t), nil)
		flows := &services.Instances{Operations: &services.Operations{Store: st, MaxInFlight: 1}}
		// The first stays pending: an engine that accepted it and has not run it yet.
		pending := services.NewOperation("stop", "instance", in.ID, in.TeamID, instance.WorkflowID(in.ID), "")
		_, _, err := st.InsertOperation(ctx, pending)
		require.NoError(t, err)

		_, err = flows.Act(ctx, "", in, instance.Params{Action: instance.ActionStart}, nil)
		require.True(t, domain.IsKind(err, domain.KindRateLimited), "over the team's limit: %v", err)
		assert.Len(t, operationsOf(t, st, "instance", in.ID), 1, "a refused action records nothing")

		pending.Status = domain.OperationSucceeded
		_, err = st.UpdateOperation(ctx, pending, domain.OperationPending)
		require.NoError(t, err)
		op, err := flows.Act(ctx, "", in, instance.Params{Action: instance.ActionStart}, map[string]any{"why": "test"})
		require.True(t, domain.IsKind(err, domain.KindUnavailable), "no engine: %v", err)
		got, err := st.GetOperation(ctx, op.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.OperationFailed, got.Status)
		entries, _, err := st.ListAudit(ctx, in.TeamID, storage.Page{})
		require.NoError(t, err)
		var events []string
		for _, e := range entries {
			events = append(events, e.Event)
		}
		assert.Contains(t, events, "instance.start")
	})
}

// TestAPromotionsRolloutIsRecordedOnce: the rollout a promotion starts in a group is recorded with its operation
// once, however often the activity is retried; an empty group refuses and records nothing.
func TestAPromotionsRolloutIsRecordedOnce(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		in := storagetest.NewInstance(t, st, newSealer(t), nil)
		snap := &storage.Snapshot{ID: domain.NewID(), ApplicationID: in.ApplicationID, TeamID: in.TeamID, Name: "s", Flows: "[]", Credentials: "{}"}
		_, err := st.InsertSnapshot(ctx, snap)
		require.NoError(t, err)
		g := &storage.DeviceGroup{ID: domain.NewID(), ApplicationID: in.ApplicationID, TeamID: in.TeamID, Name: "g"}
		require.NoError(t, st.InsertDeviceGroup(ctx, g))
		flows := &services.Rollouts{Operations: &services.Operations{Store: st}}
		newRollout := func() *storage.Rollout {
			opID := domain.NewID()
			return &storage.Rollout{ID: domain.NewID(), GroupID: g.ID, SnapshotID: snap.ID, Strategy: map[string]any{}, Waves: 1, OperationID: &opID}
		}

		empty := newRollout()
		err = flows.RecordForPromotion(ctx, empty)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no devices")
		_, err = st.GetRollout(ctx, empty.ID)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "an empty group records no rollout")

		d := &storage.Device{ID: domain.NewID(), TeamID: in.TeamID, ApplicationID: &in.ApplicationID, DeviceGroupID: &g.ID, Name: "d",
			CredentialSecret: "x", Mode: "autonomous"}
		require.NoError(t, st.InsertDevice(ctx, d))
		r := newRollout()
		for range 2 {
			again := *r
			require.NoError(t, flows.RecordForPromotion(ctx, &again))
			assert.Equal(t, in.TeamID, again.TeamID)
		}
		got, err := st.GetRollout(ctx, r.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.RolloutRunning, got.Status)
		assert.Equal(t, 1, got.Total)
		ops := operationsOf(t, st, "rollout", r.ID)
		require.Len(t, ops, 1)
		assert.Equal(t, rollout.WorkflowID(r.ID), ops[0].WorkflowID)
		assert.Equal(t, *r.OperationID, ops[0].ID)
	})
}
