package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/services"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/rollout"
)

// RolloutRunner starts rollouts and passes operator actions to them; the workflow facade implements it.
type RolloutRunner = services.RolloutRunner

type strategyRequest struct {
	Waves            []int    `json:"waves,omitempty"`
	BatchSize        *int     `json:"batchSize,omitempty"`
	FailureThreshold *float64 `json:"failureThreshold,omitempty"`
	WaveTimeout      *string  `json:"waveTimeout,omitempty"`
	Approval         *string  `json:"approval,omitempty"`
	AutoRollback     *bool    `json:"autoRollback,omitempty"`
}

type createRolloutRequest struct {
	SnapshotID string           `json:"snapshotId"`
	Strategy   *strategyRequest `json:"strategy,omitempty"`
}

type rolloutJSON struct {
	ID                 string               `json:"id"`
	GroupID            string               `json:"groupId"`
	SnapshotID         string               `json:"snapshotId"`
	PreviousSnapshotID *string              `json:"previousSnapshotId,omitempty"`
	Status             domain.RolloutStatus `json:"status"`
	Wave               int                  `json:"wave"`
	Waves              int                  `json:"waves"`
	Counts             map[string]int       `json:"counts"`
	Reason             string               `json:"reason,omitempty"`
	Strategy           map[string]any       `json:"strategy"`
	FailedDevices      []failedDevice       `json:"failedDevices"`
	OperationID        *string              `json:"operationId,omitempty"`
	TemporalURL        string               `json:"temporalUrl,omitempty"`
	CreatedAt          time.Time            `json:"createdAt"`
	FinishedAt         *time.Time           `json:"finishedAt,omitempty"`
}

type failedDevice struct {
	DeviceID string `json:"deviceId"`
	Error    string `json:"error"`
}

// maxListedFailures bounds the failed devices a rollout's answer lists.
const maxListedFailures = 100

func (s *Server) rolloutView(ctx context.Context, r *storage.Rollout) (rolloutJSON, error) {
	v := rolloutJSON{ID: r.ID, GroupID: r.GroupID, SnapshotID: r.SnapshotID, PreviousSnapshotID: r.PreviousSnapshotID, Status: r.Status,
		Wave: r.Wave, Waves: r.Waves, Reason: r.Reason, Strategy: r.Strategy, OperationID: r.OperationID, CreatedAt: r.CreatedAt,
		FinishedAt: r.FinishedAt, FailedDevices: []failedDevice{},
		Counts: map[string]int{"total": r.Total, "updated": r.Updated, "failed": r.Failed, "pending": r.Total - r.Updated - r.Failed, "rolledBack": r.RolledBack}}
	if s.wfURL != nil {
		v.TemporalURL = s.wfURL(rollout.WorkflowID(r.ID), "")
	}
	failures, err := s.store.ListRolloutFailures(ctx, r.ID, maxListedFailures)
	for _, f := range failures {
		v.FailedDevices = append(v.FailedDevices, failedDevice{DeviceID: f.DeviceID, Error: f.Error})
	}
	return v, err
}

func (s *Server) registerRollouts() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/device-groups/:groupId/rollouts", Summary: "Deploy a snapshot to the group in waves (202).", Tag: "rollouts", Body: createRolloutRequest{}, Status: 202}, s.createRollout)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/device-groups/:groupId/rollouts", Summary: "The group's rollouts, newest first.", Tag: "rollouts"}, s.listGroupRollouts)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/rollouts/:rolloutId", Summary: "A rollout's status, counts and failed devices.", Tag: "rollouts"}, s.getRollout)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/rollouts/:rolloutId/actions/:action", Summary: "pause, resume, abort or approve (409 when not allowed now).", Tag: "rollouts"}, s.rolloutAction)
}

func (s *Server) createRollout(c *fiber.Ctx) error {
	who, g, err := s.groupFor(c, domain.ActionRolloutControl)
	if err != nil {
		return err
	}
	var req createRolloutRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	strategy, err := parseStrategy(req.Strategy)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	r := &storage.Rollout{ID: domain.NewID(), GroupID: g.ID, TeamID: g.TeamID, ApplicationID: g.ApplicationID, SnapshotID: req.SnapshotID,
		Strategy: strategyView(strategy), Waves: len(strategy.Waves)}
	op, err := s.svc.rollouts.Start(ctx, who.userID(), r, strategy, func(ctx context.Context, tx *storage.Store) error {
		return checkRolloutSnapshot(ctx, tx, r)
	})
	if err != nil {
		return err
	}
	view, err := s.rolloutView(ctx, r)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderLocation, "/api/v1/operations/"+op.ID)
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"rollout": view, "operation": s.operationView(op)})
}

// checkRolloutSnapshot checks the snapshot a rollout names against its group as it is in the transaction that
// records it: the snapshot must be one of the group's application.
func checkRolloutSnapshot(ctx context.Context, tx *storage.Store, r *storage.Rollout) error {
	if r.SnapshotID == "" {
		return domain.InvalidField("snapshotId", "is required")
	}
	g, err := tx.GetDeviceGroup(ctx, r.GroupID)
	if err != nil {
		return err
	}
	_, err = applicationSnapshot(ctx, tx, "snapshotId", g.ApplicationID, r.SnapshotID)
	return err
}

func parseStrategy(req *strategyRequest) (rollout.Strategy, error) {
	st := rollout.DefaultStrategy()
	if req == nil {
		return st, nil
	}
	var errs []domain.FieldError
	bad := func(field, detail string) {
		errs = append(errs, domain.FieldError{Field: "strategy." + field, Detail: detail})
	}
	if req.Waves != nil {
		st.Waves = req.Waves
		if !validWaves(req.Waves) {
			bad("waves", "must be increasing percentages from 1 to 100, ending at 100")
		}
	}
	if req.BatchSize != nil {
		if st.BatchSize = *req.BatchSize; st.BatchSize < 1 || st.BatchSize > 5000 {
			bad("batchSize", "must be from 1 to 5000")
		}
	}
	if req.FailureThreshold != nil {
		if st.FailureThreshold = *req.FailureThreshold; st.FailureThreshold < 0 || st.FailureThreshold > 1 {
			bad("failureThreshold", "must be within 0..1")
		}
	}
	if req.WaveTimeout != nil {
		d, err := time.ParseDuration(*req.WaveTimeout)
		if st.WaveTimeout = d; err != nil || d < time.Second || d > 7*24*time.Hour {
			bad("waveTimeout", `must be a duration such as "10m", from 1s to 168h`)
		}
	}
	if req.Approval != nil {
		if st.Approval = *req.Approval; st.Approval != rollout.ApprovalNone && st.Approval != rollout.ApprovalBetweenWaves {
			bad("approval", "must be none or between-waves")
		}
	}
	if req.AutoRollback != nil {
		st.AutoRollback = *req.AutoRollback
	}
	if errs != nil {
		return st, domain.Invalid(errs...)
	}
	return st, nil
}

func validWaves(w []int) bool {
	if len(w) == 0 || len(w) > 20 || w[len(w)-1] != 100 {
		return false
	}
	prev := 0
	for _, p := range w {
		if p <= prev || p > 100 {
			return false
		}
		prev = p
	}
	return true
}

func strategyView(s rollout.Strategy) map[string]any {
	return map[string]any{"waves": s.Waves, "batchSize": s.BatchSize, "failureThreshold": s.FailureThreshold,
		"waveTimeout": s.WaveTimeout.String(), "approval": s.Approval, "autoRollback": s.AutoRollback}
}

// rolloutFor loads the rollout in the path after checking the caller's access to its team.
func (s *Server) rolloutFor(c *fiber.Ctx, action domain.Action) (*caller, *storage.Rollout, error) {
	r, err := s.store.GetRollout(c.UserContext(), c.Params("rolloutId"))
	if err != nil {
		return nil, nil, err
	}
	who, _, err := s.teamAccess(c, r.TeamID, action, "rollout")
	return who, r, err
}

func (s *Server) getRollout(c *fiber.Ctx) error {
	_, r, err := s.rolloutFor(c, domain.ActionRolloutRead)
	if err != nil {
		return err
	}
	v, err := s.rolloutView(c.UserContext(), r)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

// listGroupRollouts answers the group's rollouts newest first, so ?limit=1 is the latest (the dashboard's group
// page shows it).
func (s *Server) listGroupRollouts(c *fiber.Ctx) error {
	_, g, err := s.groupFor(c, domain.ActionRolloutRead)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	p.NewestFirst = true
	ctx := c.UserContext()
	rows, next, err := s.store.ListGroupRollouts(ctx, g.ID, p)
	if err != nil {
		return err
	}
	items := make([]rolloutJSON, 0, len(rows))
	for i := range rows {
		v, err := s.rolloutView(ctx, &rows[i])
		if err != nil {
			return err
		}
		items = append(items, v)
	}
	return c.JSON(listResponse[rolloutJSON]{Items: items, Next: next})
}

func (s *Server) rolloutAction(c *fiber.Ctx) error {
	action := c.Params("action")
	switch action {
	case rollout.UpdatePause, rollout.UpdateResume, rollout.UpdateAbort, rollout.UpdateApprove:
	default:
		return domain.InvalidField("action", "must be pause, resume, abort or approve")
	}
	who, r, err := s.rolloutFor(c, domain.ActionRolloutControl)
	if err != nil {
		return err
	}
	if err := s.svc.rollouts.Act(c.UserContext(), who.user.ID, r, action); err != nil {
		return err
	}
	return s.getRollout(c)
}
