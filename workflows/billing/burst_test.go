package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	billingsvc "github.com/flowyard/flowyard/billing"
	"github.com/flowyard/flowyard/billing/billingtest"
	"github.com/flowyard/flowyard/billing/stripetest"
	"github.com/flowyard/flowyard/storage/storagetest"
	billingwf "github.com/flowyard/flowyard/workflows/billing"
)

// burst runs a team's billing workflow with real activities on a real store and the stateful Stripe double,
// applies n instance changes (creations, suspensions, resumptions, deletions) spaced by gap, each followed by
// its usage signal, and returns the Stripe calls they cost and the double's final quantities.
func burst(t *testing.T, n int, gap time.Duration, failures ...error) (int, map[string]int64, int64) {
	t.Helper()
	st := storagetest.New(t, "sqlite")
	fake := stripetest.NewFake()
	tm := billingtest.NewTeam(t, st, nil)
	subID := fake.AddSubscription("cus_1", billingsvc.Item{PriceID: billingtest.PlanPrice, Quantity: 1})
	tm.Subscribe(subID)
	svc := &billingsvc.Service{Store: st, Stripe: fake}
	_, err := svc.Sync(context.Background(), tm.ID, "initial", false)
	require.NoError(t, err)
	fake.ResetCalls()
	fake.FailNext(failures...)

	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(billingwf.Team, workflow.RegisterOptions{Name: billingwf.WorkflowName})
	env.RegisterActivity(&activities.Billing{Service: svc})
	var ids []string
	for i := range n {
		env.RegisterDelayedCallback(func() {
			switch {
			case i%4 == 3 && len(ids) > 0: // delete one
				require.NoError(t, st.DeleteInstance(context.Background(), ids[0]))
				ids = ids[1:]
			case i%4 == 2 && len(ids) > 0: // suspend one
				tm.SetState(ids[len(ids)-1], "suspended")
			case i%8 == 5 && len(ids) > 1: // resume one
				tm.SetState(ids[len(ids)-1], "starting")
			default:
				ids = append(ids, tm.AddInstance("provisioning"))
			}
			env.SignalWorkflow(billingwf.SignalUsageChanged, nil)
		}, time.Second+time.Duration(i)*gap)
	}
	env.ExecuteWorkflow(billingwf.Team, billingwf.Params{TeamID: tm.ID, Debounce: billingwf.DefaultDebounce, IdleTimeout: time.Minute})
	require.NoError(t, env.GetWorkflowError())

	usage, err := st.TeamUsage(context.Background(), tm.ID)
	require.NoError(t, err)
	return fake.Calls(), fake.Quantities(subID), int64(max(0, usage.InstancesByType[tm.InstanceTypeID]-1))
}

// TestBurstOf100ChangesCostsAHandfulOfStripeCalls is the figure: 100 instance changes in one team,
// 10 ms apart, cost one read and one write of the subscription, and the bill ends right.
// Run: go test ./workflows/billing -run Burst -v
func TestBurstOf100ChangesCostsAHandfulOfStripeCalls(t *testing.T) {
	calls, quantities, want := burst(t, 100, 10*time.Millisecond)
	t.Logf("100 instance changes within 1 s: %d Stripe calls", calls)
	assert.LessOrEqual(t, calls, 2)
	assert.Equal(t, want, quantities[billingtest.InstancePrice])

	calls, quantities, want = burst(t, 100, 600*time.Millisecond)
	t.Logf("100 instance changes spread over 60 s: %d Stripe calls (one read and one write per %s window)", calls, billingwf.DefaultDebounce)
	assert.LessOrEqual(t, calls, 2*(60/5+1))
	assert.Equal(t, want, quantities[billingtest.InstancePrice])
}

// Stripe failing (500s, a timeout) during the burst: the sync is retried with back-off and the bill converges,
// counted once.
func TestBurstConvergesThroughStripeFailures(t *testing.T) {
	calls, quantities, want := burst(t, 100, 10*time.Millisecond, stripetest.Server500, stripetest.Server500, stripetest.Timeout)
	t.Logf("with two 500s and a timeout: %d Stripe calls", calls)
	assert.Equal(t, want, quantities[billingtest.InstancePrice])
	assert.Equal(t, int64(1), quantities[billingtest.PlanPrice])
	assert.LessOrEqual(t, calls, 5)
}
