package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// StackMove moves every instance of one stack to another, in waves. Each instance's part is a
// StackMoveInstance row (the source of truth); the workflow keeps counters and writes them here.
type StackMove struct {
	bun.BaseModel `bun:"table:stack_moves,alias:sm"`
	ID            string `bun:",pk"`
	FromStackID   string
	ToStackID     string
	Strategy      map[string]any `bun:",type:text"`
	Status        domain.StackMoveStatus
	Wave          int
	Waves         int
	Total         int
	Moved         int
	Failed        int
	Skipped       int
	Pending       int
	Reason        string
	OperationID   *string
	CreatedBy     *string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	FinishedAt    *time.Time
}

// StackMoveInstance is one instance's part in a stack move.
type StackMoveInstance struct {
	bun.BaseModel `bun:"table:stack_move_instances,alias:smi"`
	MoveID        string `bun:",pk"`
	InstanceID    string `bun:",pk"`
	Wave          int
	Status        domain.StackMoveInstanceStatus
	OperationID   *string
	Error         string
	UpdatedAt     time.Time
}

// InsertStackMove records a move. One move of a stack runs at a time: a second is a conflict.
func (s *Store) InsertStackMove(ctx context.Context, m *StackMove) error {
	m.CreatedAt, m.UpdatedAt = now(), now()
	if m.Strategy == nil {
		m.Strategy = map[string]any{}
	}
	_, err := s.db.NewInsert().Model(m).Exec(ctx)
	if isUniqueViolation(err) {
		return domain.Conflict("stack_move_running", "The stack's instances are being moved already; wait for that move to finish.")
	}
	return classify(err, "stack move")
}

// GetStackMove returns one move.
func (s *Store) GetStackMove(ctx context.Context, id string) (*StackMove, error) {
	m := new(StackMove)
	err := s.db.NewSelect().Model(m).Where("id = ?", id).Scan(ctx)
	return m, classify(err, "stack move")
}

// ListStackMoves returns a page of the moves away from a stack, newest first.
func (s *Store) ListStackMoves(ctx context.Context, fromStackID string, p Page) ([]StackMove, string, error) {
	q := s.db.NewSelect().Model((*StackMove)(nil)).Where("from_stack_id = ?", fromStackID)
	p.NewestFirst = true
	return listPage(ctx, q, "id", p, func(m *StackMove) string { return m.ID })
}

// SaveStackMoveProgress writes a move's status, wave and counters; a final status also sets finished_at.
func (s *Store) SaveStackMoveProgress(ctx context.Context, m *StackMove) error {
	m.UpdatedAt = now()
	cols := []string{"status", "wave", "waves", "total", "moved", "failed", "skipped", "pending", "reason", "updated_at"}
	if m.Status != domain.StackMoveRunning && m.FinishedAt == nil {
		at := now()
		m.FinishedAt = &at
		cols = append(cols, "finished_at")
	}
	res, err := s.db.NewUpdate().Model(m).Column(cols...).WherePK().Exec(ctx)
	return mustAffect(res, err, "stack move")
}

// PlanStackMove assigns the instances on the move's stack to waves, once: a second call (a retried activity)
// returns the plan made by the first. Instances created on the stack later are not part of the move.
func (s *Store) PlanStackMove(ctx context.Context, moveID, fromStackID string, waves []int) ([]int, error) {
	var sizes []int
	err := s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		var planned []struct {
			Wave int
			N    int
		}
		err := tx.db.NewSelect().Model((*StackMoveInstance)(nil)).ColumnExpr("wave, COUNT(*) AS n").
			Where("move_id = ?", moveID).Group("wave").Scan(ctx, &planned)
		if err != nil {
			return err
		}
		if len(planned) > 0 {
			sizes = make([]int, len(waves))
			for _, w := range planned {
				sizes[w.Wave] = w.N
			}
			return nil
		}
		var ids []string
		if err := tx.db.NewSelect().Model((*Instance)(nil)).Column("id").Where("stack_id = ?", fromStackID).Order("id").Scan(ctx, &ids); err != nil {
			return err
		}
		sizes = WaveSizes(len(ids), waves)
		rows := make([]StackMoveInstance, 0, len(ids))
		for i, wave := range waveOfEach(sizes) {
			rows = append(rows, StackMoveInstance{MoveID: moveID, InstanceID: ids[i], Wave: wave, Status: domain.StackMoveInstancePending, UpdatedAt: now()})
		}
		return insertInChunks(ctx, tx.db, rows)
	})
	return sizes, err
}

// StackMoveTarget is an instance a move is about to change, with the operation that records it.
type StackMoveTarget struct {
	InstanceID  string
	TeamID      string
	OperationID string
}

// NextStackMoveBatch returns up to n instances of the wave to move now: those already marked moving (a retried
// activity gets the same ones), else pending ones, which it marks moving with an upgrade operation each. An
// instance deleted, or put on another stack, since the plan is skipped. An empty answer means the wave is done.
func (s *Store) NextStackMoveBatch(ctx context.Context, moveID, fromStackID string, wave, n int, createdBy *string) ([]StackMoveTarget, error) {
	var out []StackMoveTarget
	err := s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		_, err := tx.db.NewUpdate().Model((*StackMoveInstance)(nil)).Set("status = ?", domain.StackMoveInstanceSkipped).
			Set("error = ?", "deleted or put on another stack before its wave").Set("updated_at = ?", now()).
			Where("move_id = ? AND wave = ? AND status = ?", moveID, wave, domain.StackMoveInstancePending).
			Where("NOT EXISTS (SELECT 1 FROM instances WHERE instances.id = smi.instance_id AND instances.stack_id = ?)", fromStackID).Exec(ctx)
		if err != nil {
			return err
		}
		var rows []StackMoveInstance
		err = tx.db.NewSelect().Model(&rows).Where("move_id = ? AND wave = ? AND status IN (?)", moveID, wave,
			bun.List([]domain.StackMoveInstanceStatus{domain.StackMoveInstanceMoving, domain.StackMoveInstancePending})).
			OrderExpr("CASE WHEN status = ? THEN 0 ELSE 1 END, instance_id", domain.StackMoveInstanceMoving).Limit(int64(n)).Scan(ctx)
		if err != nil {
			return err
		}
		for _, row := range rows {
			target, err := tx.startStackMoveInstance(ctx, row, createdBy)
			if err != nil {
				return err
			}
			out = append(out, target)
		}
		return nil
	})
	return out, err
}

// startStackMoveInstance marks a pending instance moving with a new upgrade operation, or returns the one a
// moving instance has.
func (s *Store) startStackMoveInstance(ctx context.Context, row StackMoveInstance, createdBy *string) (StackMoveTarget, error) {
	in, err := s.GetInstance(ctx, row.InstanceID)
	if err != nil {
		return StackMoveTarget{}, err
	}
	target := StackMoveTarget{InstanceID: in.ID, TeamID: in.TeamID}
	if row.Status == domain.StackMoveInstanceMoving && row.OperationID != nil {
		target.OperationID = *row.OperationID
		return target, nil
	}
	op := &Operation{ID: domain.NewID(), Kind: "upgrade", SubjectType: "instance", SubjectID: in.ID, TeamID: &in.TeamID,
		Status: domain.OperationPending, WorkflowID: "instance/" + in.ID, CreatedBy: createdBy}
	if _, _, err := s.InsertOperation(ctx, op); err != nil {
		return StackMoveTarget{}, err
	}
	_, err = s.db.NewUpdate().Model((*StackMoveInstance)(nil)).Set("status = ?", domain.StackMoveInstanceMoving).
		Set("operation_id = ?", op.ID).Set("updated_at = ?", now()).
		Where("move_id = ? AND instance_id = ?", row.MoveID, row.InstanceID).Exec(ctx)
	target.OperationID = op.ID
	return target, err
}

// FinishStackMoveInstance records how an instance's move ended (moved, or failed with the reason), once.
func (s *Store) FinishStackMoveInstance(ctx context.Context, moveID, instanceID string, status domain.StackMoveInstanceStatus, reason string) error {
	_, err := s.db.NewUpdate().Model((*StackMoveInstance)(nil)).Set("status = ?", status).Set("error = ?", reason).
		Set("updated_at = ?", now()).Where("move_id = ? AND instance_id = ? AND status = ?", moveID, instanceID, domain.StackMoveInstanceMoving).Exec(ctx)
	return err
}

// StackMoveCounts are a move's instances by status.
type StackMoveCounts struct {
	Total, Pending, Moving, Moved, Failed, Skipped int
}

// CountStackMove counts a move's instances by status.
func (s *Store) CountStackMove(ctx context.Context, moveID string) (StackMoveCounts, error) {
	var rows []struct {
		Status domain.StackMoveInstanceStatus
		N      int
	}
	err := s.db.NewSelect().Model((*StackMoveInstance)(nil)).ColumnExpr("status, COUNT(*) AS n").
		Where("move_id = ?", moveID).Group("status").Scan(ctx, &rows)
	var c StackMoveCounts
	for _, r := range rows {
		c.Total += r.N
		switch r.Status {
		case domain.StackMoveInstancePending:
			c.Pending = r.N
		case domain.StackMoveInstanceMoving:
			c.Moving = r.N
		case domain.StackMoveInstanceMoved:
			c.Moved = r.N
		case domain.StackMoveInstanceFailed:
			c.Failed = r.N
		case domain.StackMoveInstanceSkipped:
			c.Skipped = r.N
		}
	}
	return c, err
}

// StackMoveInstanceView is an instance's part in a move, with the instance's name while it exists.
type StackMoveInstanceView struct {
	StackMoveInstance `bun:",extend"`
	Name              string `bun:",scanonly"`
}

// ListStackMoveInstances returns a page of a move's instances, in wave order.
func (s *Store) ListStackMoveInstances(ctx context.Context, moveID string, p Page) ([]StackMoveInstanceView, string, error) {
	q := s.db.NewSelect().Model((*StackMoveInstanceView)(nil)).ColumnExpr("smi.*").
		ColumnExpr("COALESCE((SELECT name FROM instances WHERE instances.id = smi.instance_id), '') AS name").
		Where("move_id = ?", moveID)
	return listPage(ctx, q, "instance_id", p, func(v *StackMoveInstanceView) string { return v.InstanceID })
}
