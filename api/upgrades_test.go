package api_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/instance"
	"github.com/flowyard/flowyard/workflows/stackmove"
)

// recordingMoves records the moves the API starts.
type recordingMoves struct {
	mu    sync.Mutex
	moves []stackmove.Params
}

func (r *recordingMoves) Start(_ context.Context, p stackmove.Params) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.moves = append(r.moves, p)
	return "run-move", nil
}

func (w *snapWorld) newStack(t *testing.T, name, version string, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"name": name, "nodeRedVersion": version, "memoryMB": 256, "cpuPercent": 50}
	for k, v := range extra {
		body[k] = v
	}
	return w.as["admin"].Must(201, "POST", "/api/v1/stacks", body).String("id")
}

// TestStackChangeIsAnUpgradeOperation: owners change an instance's stack with POST …/upgrade, which records
// an upgrade operation and starts the lifecycle workflow's upgrade; PATCH refuses a stack change and names
// the route, and lesser roles may not upgrade.
func TestStackChangeIsAnUpgradeOperation(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSnapWorld(t, dialect)
		in := w.mine(t, 0, "to-upgrade", "secret")
		newer := w.newStack(t, "newer", "4.1.15", nil)
		path := "/api/v1/instances/" + in.ID

		for _, role := range []string{"member", "viewer", "dashboard"} {
			assert.Equal(t, 403, w.as[role].Do("POST", path+"/upgrade", map[string]any{"stackId": newer}).Status, role)
		}
		assert.Equal(t, 404, w.as["outsider"].Do("POST", path+"/upgrade", map[string]any{"stackId": newer}).Status)
		refuses(t, w.env, w.as["owner"], refusal{422, "already_on_stack", "stackId"}, "POST", path+"/upgrade", map[string]any{"stackId": in.StackID})
		refuses(t, w.env, w.as["owner"], refusal{400, "invalid_request", "stackId"}, "POST", path+"/upgrade", map[string]any{})
		patched := w.as["owner"].Do("PATCH", path, map[string]any{"stackId": newer})
		assert.Equal(t, 422, patched.Status)
		assert.Equal(t, "stack_change_is_an_upgrade", patched.String("code"))
		assert.Contains(t, patched.String("message"), "POST /api/v1/instances/"+in.ID+"/upgrade")
		w.as["owner"].Must(200, "PATCH", path, map[string]any{"stackId": in.StackID}) // naming its own stack changes nothing
		assert.Zero(t, w.runner.count())

		r := w.as["owner"].Must(202, "POST", path+"/upgrade", map[string]any{"stackId": newer})
		op := r.Body["operation"].(map[string]any)
		assert.Equal(t, "upgrade", op["kind"])
		assert.Equal(t, "/api/v1/operations/"+op["id"].(string), r.Header.Get("Location"))
		require.Equal(t, 1, w.runner.count())
		run := w.runner.runs[0]
		assert.Equal(t, instance.Params{InstanceID: in.ID, TeamID: w.teamID, OperationID: op["id"].(string), Action: instance.ActionUpgrade, StackID: newer}, run)
		assert.Equal(t, in.StackID, w.as["owner"].Must(200, "GET", path, nil).String("stackId"), "the workflow changes the stack, not the request")
	})
}

// TestMovingAStacksInstances: a platform admin starts a move of every instance of a stack to another one;
// the move, its operation (admins only) and its instances can be read, a second move of the stack while one
// runs is refused, and bad targets and strategies change nothing.
func TestMovingAStacksInstances(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		moves := &recordingMoves{}
		w := newSnapWorld(t, dialect, func(d *api.Deps) { d.StackMoves = moves })
		in := w.mine(t, 0, "on-old", "secret")
		old := in.StackID
		newer := w.newStack(t, "newer", "4.1.15", nil)
		retired := w.newStack(t, "retired", "4.1.15", map[string]any{"active": false})
		admin, owner := w.as["admin"], w.as["owner"]
		path := "/api/v1/stacks/" + old + "/move"

		assert.Equal(t, 403, owner.Do("POST", path, map[string]any{"toStackId": newer}).Status)
		refuses(t, w.env, admin, refusal{422, "same_stack", "toStackId"}, "POST", path, map[string]any{"toStackId": old})
		refuses(t, w.env, admin, refusal{422, "stack_inactive", "toStackId"}, "POST", path, map[string]any{"toStackId": retired})
		refuses(t, w.env, admin, refusal{422, "unknown_reference", "toStackId"}, "POST", path, map[string]any{"toStackId": "nope"})
		refuses(t, w.env, admin, refusal{400, "invalid_request", "waves"}, "POST", path, map[string]any{"toStackId": newer, "waves": []int{50, 20}})
		refuses(t, w.env, admin, refusal{400, "invalid_request", "concurrency"}, "POST", path, map[string]any{"toStackId": newer, "concurrency": 0})
		refuses(t, w.env, admin, refusal{400, "invalid_request", "failureThreshold"}, "POST", path, map[string]any{"toStackId": newer, "failureThreshold": 2})
		assert.Empty(t, moves.moves)

		r := admin.Must(202, "POST", path, map[string]any{"toStackId": newer, "waves": []int{50, 100}, "concurrency": 2})
		move := r.Body["move"].(map[string]any)
		opID := r.Body["operation"].(map[string]any)["id"].(string)
		require.Len(t, moves.moves, 1)
		p := moves.moves[0]
		assert.Equal(t, stackmove.Params{MoveID: move["id"].(string), FromStackID: old, ToStackID: newer, OperationID: opID,
			CreatedBy: p.CreatedBy, Strategy: stackmove.Strategy{Waves: []int{50, 100}, FailureThreshold: 0.1, Concurrency: 2}}, p)
		assert.NotEmpty(t, p.CreatedBy)

		got := admin.Must(200, "GET", "/api/v1/stack-moves/"+move["id"].(string), nil)
		assert.Equal(t, "running", got.String("status"))
		assert.Equal(t, newer, got.String("toStackId"))
		assert.Equal(t, "stack_move", admin.Must(200, "GET", "/api/v1/operations/"+opID, nil).String("kind"))
		assert.Equal(t, 404, owner.Do("GET", "/api/v1/operations/"+opID, nil).Status, "a platform operation")
		assert.Equal(t, 404, owner.Do("GET", "/api/v1/stack-moves/"+move["id"].(string), nil).Status)
		list := admin.Must(200, "GET", "/api/v1/stacks/"+old+"/moves", nil).Body["items"].([]any)
		require.Len(t, list, 1)

		refuses(t, w.env, admin, refusal{409, "stack_move_running", ""}, "POST", path, map[string]any{"toStackId": newer})

		// The store plans every team's instances on the stack into the move's waves; the instances route shows
		// each part.
		sizes, err := w.env.Store.PlanStackMove(context.Background(), move["id"].(string), old, []int{50, 100})
		require.NoError(t, err)
		assert.Equal(t, []int{1, 1}, sizes, "this team's instance and the outsider's")
		parts := admin.Must(200, "GET", "/api/v1/stack-moves/"+move["id"].(string)+"/instances", nil).Body["items"].([]any)
		require.Len(t, parts, 2)
		assert.Contains(t, parts, map[string]any{"instanceId": in.ID, "name": "on-old", "wave": float64(indexOf(parts, in.ID)),
			"status": string(domain.StackMoveInstancePending), "operationId": nil})
	})
}

// indexOf is the position of the part of the instance in a move's instance list (ordered by instance ID,
// planned into waves in that order).
func indexOf(parts []any, instanceID string) int {
	for i, p := range parts {
		if p.(map[string]any)["instanceId"] == instanceID {
			return i
		}
	}
	return -1
}

// stackMoveOf records a move of the instance's stack to a new one, planned, with the instance in it, as the
// API and the workflow would.
func stackMoveOf(t *testing.T, st *storage.Store, in *storage.Instance) string {
	t.Helper()
	ctx := context.Background()
	to := &storage.Stack{ID: domain.NewID(), Name: "move-target-" + strings.ToLower(domain.NewID()), NodeRedVersion: "4.1.15", MemoryMB: 256, CPUPercent: 50, Active: true}
	require.NoError(t, storage.InsertObject(ctx, st, to))
	m := &storage.StackMove{ID: domain.NewID(), FromStackID: in.StackID, ToStackID: to.ID, Status: domain.StackMoveSucceeded}
	require.NoError(t, st.InsertStackMove(ctx, m))
	_, err := st.PlanStackMove(ctx, m.ID, in.StackID, []int{100})
	require.NoError(t, err)
	return m.ID
}

// refusingMoves is a workflow engine that refuses every move.
type refusingMoves struct{}

func (refusingMoves) Start(context.Context, stackmove.Params) (string, error) {
	return "", errors.New("engine refused")
}

// TestARefusedStackMoveFreesTheStack: when the engine refuses to start a move, the move and its operation end
// failed with the reason, so the stack is free for the next move.
func TestARefusedStackMoveFreesTheStack(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSnapWorld(t, dialect, func(d *api.Deps) { d.StackMoves = refusingMoves{} })
		in := w.mine(t, 0, "on-old", "secret")
		newer := w.newStack(t, "newer", "4.1.15", nil)
		admin := w.as["admin"]
		path := "/api/v1/stacks/" + in.StackID + "/move"

		for range 2 {
			r := admin.Do("POST", path, map[string]any{"toStackId": newer})
			assert.Equal(t, 500, r.Status, "the engine's refusal, not stack_move_running: %s", r.String("code"))
		}
		moves := admin.Must(200, "GET", "/api/v1/stacks/"+in.StackID+"/moves", nil).Body["items"].([]any)
		require.Len(t, moves, 2)
		for _, m := range moves {
			m := m.(map[string]any)
			assert.Equal(t, "failed", m["status"])
			assert.Equal(t, "engine refused", m["reason"])
			op := admin.Must(200, "GET", "/api/v1/operations/"+m["operationId"].(string), nil)
			assert.Equal(t, "failed", op.String("status"))
		}
	})
}
