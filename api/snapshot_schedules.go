package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/services"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/snapshotschedule"
)

// Snapshot schedules: an instance takes automatic snapshots every so often or at cron times, keeping the
// newest few. Members set and delete a schedule, viewers read it. The Temporal Schedule is changed first and
// the row second, so a refused change leaves both as they were; a run whose row is gone takes nothing.

// SnapshotScheduler keeps instances' snapshot Schedules; the snapshot workflow facade implements it.
type SnapshotScheduler interface {
	SetSchedule(ctx context.Context, instanceID, teamID string, spec snapshotschedule.Spec) error
	DeleteSchedule(ctx context.Context, instanceID string) error
}

type snapshotScheduleRequest struct {
	Every string `json:"every,omitempty"`
	Cron  string `json:"cron,omitempty"`
	Keep  *int   `json:"keep,omitempty"`
}

type snapshotScheduleJSON struct {
	InstanceID string    `json:"instanceId"`
	Every      string    `json:"every,omitempty"`
	Cron       string    `json:"cron,omitempty"`
	Keep       int       `json:"keep"`
	ScheduleID string    `json:"scheduleId"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

func snapshotScheduleView(sch *storage.SnapshotSchedule) snapshotScheduleJSON {
	return snapshotScheduleJSON{InstanceID: sch.InstanceID, Every: sch.Every, Cron: sch.Cron, Keep: sch.Keep,
		ScheduleID: snapshotschedule.ScheduleID(sch.InstanceID), CreatedAt: sch.CreatedAt, UpdatedAt: sch.UpdatedAt}
}

func (s *Server) registerSnapshotSchedules() {
	path := "/api/v1/instances/:instanceId/snapshot-schedule"
	s.route(routeDoc{Method: "PUT", Path: path, Tag: "snapshots", Body: snapshotScheduleRequest{},
		Summary: "Take automatic snapshots every interval (at least 1h) or at cron times (five fields, UTC, at most hourly), keeping the newest keep (1-100, default 10) automatic snapshots."}, s.putSnapshotSchedule)
	s.route(routeDoc{Method: "GET", Path: path, Tag: "snapshots",
		Summary: "The instance's snapshot schedule."}, s.getSnapshotSchedule)
	s.route(routeDoc{Method: "DELETE", Path: path, Tag: "snapshots", Status: 204,
		Summary: "Stop taking scheduled snapshots (the snapshots taken stay)."}, s.deleteSnapshotSchedule)
}

// parseSnapshotSchedule checks the whole request and reports every bad field at once.
func parseSnapshotSchedule(req snapshotScheduleRequest) (snapshotschedule.Spec, int, error) {
	spec, specErr := snapshotschedule.ParseSpec(req.Every, req.Cron)
	keep, keepErr := snapshotschedule.ValidateKeep(req.Keep)
	return spec, keep, domain.Collect(specErr, keepErr)
}

func (s *Server) putSnapshotSchedule(c *fiber.Ctx) error {
	who, in, err := s.instanceFor(c, domain.ActionSnapshotSchedule)
	if err != nil {
		return err
	}
	var req snapshotScheduleRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	spec, keep, err := parseSnapshotSchedule(req)
	if err != nil {
		return err
	}
	if s.schedules == nil {
		return services.ErrNoEngine()
	}
	ctx := c.UserContext()
	if err := s.schedules.SetSchedule(ctx, in.ID, in.TeamID, spec); err != nil {
		return err
	}
	sch := &storage.SnapshotSchedule{InstanceID: in.ID, TeamID: in.TeamID, Cron: spec.Cron, Keep: keep, CreatedBy: userIDOf(who)}
	if spec.Cron == "" {
		sch.Every = req.Every
	}
	err = s.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if err := tx.PutSnapshotSchedule(ctx, sch); err != nil {
			return err
		}
		return audit(c, tx, who, in.TeamID, "snapshot_schedule.set", "instance", in.ID, map[string]any{"every": sch.Every, "cron": sch.Cron, "keep": keep})
	})
	if err != nil {
		return err
	}
	return c.JSON(snapshotScheduleView(sch))
}

func (s *Server) getSnapshotSchedule(c *fiber.Ctx) error {
	_, in, err := s.instanceFor(c, domain.ActionSnapshotList)
	if err != nil {
		return err
	}
	sch, err := s.store.GetSnapshotSchedule(c.UserContext(), in.ID)
	if err != nil {
		return err
	}
	return c.JSON(snapshotScheduleView(sch))
}

// deleteSnapshotSchedule removes the Temporal Schedule even when no row names it (one left by a change whose
// row was never written), so it answers 204 whether or not there was a schedule.
func (s *Server) deleteSnapshotSchedule(c *fiber.Ctx) error {
	who, in, err := s.instanceFor(c, domain.ActionSnapshotSchedule)
	if err != nil {
		return err
	}
	if s.schedules == nil {
		return services.ErrNoEngine()
	}
	ctx := c.UserContext()
	if err := s.schedules.DeleteSchedule(ctx, in.ID); err != nil {
		return err
	}
	err = s.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		deleted, err := tx.DeleteSnapshotSchedule(ctx, in.ID)
		if err != nil || !deleted {
			return err
		}
		return audit(c, tx, who, in.TeamID, "snapshot_schedule.deleted", "instance", in.ID, nil)
	})
	if err != nil {
		return err
	}
	return noContent(c)
}
