package storage

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// DeviceGroup organises an application's devices; its target snapshot is what its devices should run.
type DeviceGroup struct {
	bun.BaseModel    `bun:"table:device_groups,alias:grp"`
	ID               string `bun:",pk"`
	ApplicationID    string
	TeamID           string
	Name             string
	Description      string
	TargetSnapshotID *string
	Env              []domain.EnvVar `bun:",type:text"`
	// FleetSettings are the group's fleet settings, under each device's own (npmrc sealed).
	FleetSettings domain.FleetSettings `bun:",type:text"`
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Admits tells whether a device may be in the group: a group holds devices of its own team and application.
func (g *DeviceGroup) Admits(d *Device) bool {
	return d.TeamID == g.TeamID && d.ApplicationID != nil && *d.ApplicationID == g.ApplicationID
}

// Rollout is one deployment of a snapshot to a group, with the counters its workflow writes.
type Rollout struct {
	bun.BaseModel      `bun:"table:rollouts,alias:ro"`
	ID                 string `bun:",pk"`
	GroupID            string
	TeamID             string
	ApplicationID      string
	SnapshotID         string
	PreviousSnapshotID *string
	Strategy           map[string]any `bun:",type:text"`
	Status             domain.RolloutStatus
	Wave               int
	Waves              int
	Total              int
	Updated            int
	Failed             int
	Pending            int
	RolledBack         int
	Reason             string
	OperationID        *string
	CreatedBy          *string
	CreatedAt          time.Time
	UpdatedAt          time.Time
	FinishedAt         *time.Time
}

// RolloutDevice is one device's part in a rollout.
type RolloutDevice struct {
	bun.BaseModel      `bun:"table:rollout_devices,alias:rd"`
	RolloutID          string `bun:",pk"`
	DeviceID           string `bun:",pk"`
	Wave               int
	Status             domain.RolloutDeviceStatus
	PreviousSnapshotID *string
	Error              string
	DispatchedAt       *time.Time
}

// InsertDeviceGroup adds a group. A name taken in the application is a conflict.
func (s *Store) InsertDeviceGroup(ctx context.Context, g *DeviceGroup) error {
	g.CreatedAt, g.UpdatedAt = now(), now()
	if g.Env == nil {
		g.Env = []domain.EnvVar{}
	}
	_, err := s.db.NewInsert().Model(g).Exec(ctx)
	return classify(err, "device group")
}

// GetDeviceGroup returns one group.
func (s *Store) GetDeviceGroup(ctx context.Context, id string) (*DeviceGroup, error) {
	g := new(DeviceGroup)
	err := s.db.NewSelect().Model(g).Where("id = ?", id).Scan(ctx)
	return g, classify(err, "device group")
}

// ListDeviceGroups returns a page of an application's groups.
func (s *Store) ListDeviceGroups(ctx context.Context, applicationID string, p Page) ([]DeviceGroup, string, error) {
	q := s.db.NewSelect().Model((*DeviceGroup)(nil)).Where("application_id = ?", applicationID)
	return listPage(ctx, q, "id", p, func(g *DeviceGroup) string { return g.ID })
}

// UpdateDeviceGroup writes the given columns.
func (s *Store) UpdateDeviceGroup(ctx context.Context, g *DeviceGroup, columns ...string) error {
	g.UpdatedAt = now()
	res, err := s.db.NewUpdate().Model(g).Column(append(columns, "updated_at")...).WherePK().Exec(ctx)
	return mustAffect(res, err, "device group")
}

// DeleteDeviceGroup removes a group; its devices leave it and keep their targets.
func (s *Store) DeleteDeviceGroup(ctx context.Context, id string) error {
	if _, err := touchDevice(s.db.NewUpdate().Model((*Device)(nil)).Set("device_group_id = NULL")).Where("device_group_id = ?", id).Exec(ctx); err != nil {
		return err
	}
	res, err := s.db.NewDelete().Model((*DeviceGroup)(nil)).Where("id = ?", id).Exec(ctx)
	return mustAffect(res, err, "device group")
}

// CountGroupDevices counts a group's devices.
func (s *Store) CountGroupDevices(ctx context.Context, groupID string) (int, error) {
	return count(s.db.NewSelect().Model((*Device)(nil)).Where("device_group_id = ?", groupID).Count(ctx))
}

// RolloutOfGroup fills what a rollout of r.GroupID takes from its group as the transaction sees it (team,
// application, previous target and device count); a group without devices refuses. Run it in the transaction
// that inserts the rollout.
func (s *Store) RolloutOfGroup(ctx context.Context, r *Rollout) (*DeviceGroup, error) {
	g, err := s.GetDeviceGroup(ctx, r.GroupID)
	if err != nil {
		return nil, err
	}
	if r.Total, err = s.CountGroupDevices(ctx, g.ID); err != nil {
		return nil, err
	}
	if r.Total == 0 {
		return nil, domain.Unprocessable("group_empty", "The group has no devices to roll out to.")
	}
	r.TeamID, r.ApplicationID, r.PreviousSnapshotID = g.TeamID, g.ApplicationID, g.TargetSnapshotID
	return g, nil
}

// InsertRollout records a rollout. A group with a rollout still running answers a conflict.
func (s *Store) InsertRollout(ctx context.Context, r *Rollout) error {
	r.CreatedAt, r.UpdatedAt = now(), now()
	_, err := s.db.NewInsert().Model(r).Exec(ctx)
	if isUniqueViolation(err) {
		return domain.Conflict("rollout_active", "The group already has a rollout running; wait for it, or abort it.")
	}
	return classify(err, "rollout")
}

// GetRollout returns one rollout.
func (s *Store) GetRollout(ctx context.Context, id string) (*Rollout, error) {
	r := new(Rollout)
	err := s.db.NewSelect().Model(r).Where("id = ?", id).Scan(ctx)
	return r, classify(err, "rollout")
}

// SaveRolloutProgress writes a rollout's status and counters. A finished rollout is never changed again.
func (s *Store) SaveRolloutProgress(ctx context.Context, r *Rollout) error {
	r.UpdatedAt = now()
	if !r.Status.Active() {
		t := r.UpdatedAt
		r.FinishedAt = &t
	}
	_, err := s.db.NewUpdate().Model(r).
		Column("status", "wave", "waves", "total", "updated", "failed", "pending", "rolled_back", "reason", "updated_at", "finished_at").
		WherePK().Where("status IN (?)", bun.List(domain.ActiveRolloutStatuses())).Exec(ctx)
	return err
}

// ListRolloutFailures returns up to limit failed devices of a rollout with their errors.
func (s *Store) ListRolloutFailures(ctx context.Context, rolloutID string, limit int) ([]RolloutDevice, error) {
	var out []RolloutDevice
	err := s.db.NewSelect().Model(&out).Where("rollout_id = ? AND error <> ''", rolloutID).Order("device_id").Limit(int64(limit)).Scan(ctx)
	return out, err
}

// WaveSizes splits n devices into cumulative percentage waves, each holding at least one device while any
// remain: 1% of 50 devices is still one canary.
func WaveSizes(n int, waves []int) []int {
	sizes := make([]int, len(waves))
	done := 0
	for i, pct := range waves {
		upTo := int(math.Ceil(float64(n) * float64(pct) / 100))
		upTo = min(max(upTo, done+1), n)
		sizes[i] = upTo - done
		done = upTo
	}
	return sizes
}

// waveOfEach lists, for waves of the given sizes filled in order, the wave of each member.
func waveOfEach(sizes []int) []int {
	var out []int
	for wave, n := range sizes {
		for ; n > 0; n-- {
			out = append(out, wave)
		}
	}
	return out
}

// insertInChunks inserts rows 500 at a time, far under either database's limit on bound parameters.
func insertInChunks[T any](ctx context.Context, db bun.IDB, rows []T) error {
	for start := 0; start < len(rows); start += 500 {
		chunk := rows[start:min(start+500, len(rows))]
		if _, err := db.NewInsert().Model(&chunk).Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// PlanRollout assigns the group's devices to waves, once: a second call (a retried activity) returns the
// plan made by the first. The devices are numbered in ID order and given their waves by one INSERT … SELECT in
// the database: the plan of a group of any size never passes through the platform's memory.
func (s *Store) PlanRollout(ctx context.Context, rolloutID, groupID string, waves []int) ([]int, error) {
	var sizes []int
	err := s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		existing, err := tx.waveSizesOf(ctx, rolloutID, len(waves))
		if err != nil || existing != nil {
			sizes = existing
			return err
		}
		n, err := tx.CountGroupDevices(ctx, groupID)
		if err != nil || n == 0 {
			sizes = WaveSizes(0, waves)
			return err
		}
		sizes = WaveSizes(n, waves)
		// wave = the first wave whose cumulative size reaches the device's number.
		waveOf, args := "CASE", []any{rolloutID}
		upTo := 0
		for wave, size := range sizes {
			upTo += size
			waveOf += " WHEN rn <= ? THEN ?"
			args = append(args, upTo, wave)
		}
		_, err = tx.db.ExecContext(ctx, "INSERT INTO rollout_devices (rollout_id, device_id, wave, status) SELECT ?, id, "+waveOf+
			" END, ? FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS rn FROM devices WHERE device_group_id = ?) AS numbered",
			append(args, domain.RolloutDevicePending, groupID)...)
		return err
	})
	return sizes, err
}

func (s *Store) waveSizesOf(ctx context.Context, rolloutID string, waves int) ([]int, error) {
	var rows []struct {
		Wave int
		N    int
	}
	err := s.db.NewSelect().Model((*RolloutDevice)(nil)).ColumnExpr("wave, COUNT(*) AS n").
		Where("rollout_id = ?", rolloutID).Group("wave").Scan(ctx, &rows)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	sizes := make([]int, waves)
	for _, r := range rows {
		sizes[r.Wave] = r.N
	}
	return sizes, nil
}

// DispatchRolloutBatch moves up to batch pending devices of a wave to the snapshot: it records each device's
// previous target, sets the new one, and returns the devices to notify. An empty answer means the wave is
// fully dispatched; a device is never dispatched twice for a wave.
func (s *Store) DispatchRolloutBatch(ctx context.Context, rolloutID string, wave int, snapshotID string, batch int) ([]string, error) {
	var ids []string
	err := s.runRetryingConflicts(ctx, func(ctx context.Context, tx *Store) error {
		ids = nil
		_, err := tx.db.NewUpdate().Model((*RolloutDevice)(nil)).Set("status = ?", domain.RolloutDeviceFailed).
			Set("error = ?", "left the group before its wave").
			Where("rollout_id = ? AND wave = ? AND status = ?", rolloutID, wave, domain.RolloutDevicePending).
			Where("NOT EXISTS (?)", stillInRolloutGroup(tx.db)).Exec(ctx)
		if err != nil {
			return err
		}
		err = tx.db.NewSelect().Model((*RolloutDevice)(nil)).Column("device_id").
			Where("rollout_id = ? AND wave = ? AND status = ?", rolloutID, wave, domain.RolloutDevicePending).
			Order("device_id").Limit(int64(batch)).Scan(ctx, &ids)
		if err != nil || len(ids) == 0 {
			return err
		}
		// The devices' rows first, in id order, as a batch of status reports locks them (RecordDeviceReports).
		if err := tx.lockDevices(ctx, ids); err != nil {
			return err
		}
		_, err = tx.db.NewUpdate().Model((*RolloutDevice)(nil)).
			Set("status = ?", domain.RolloutDeviceUpdating).Set("dispatched_at = ?", now()).
			Set("previous_snapshot_id = (SELECT target_snapshot_id FROM devices WHERE devices.id = rd.device_id)").
			Where("rollout_id = ? AND device_id IN (?)", rolloutID, bun.List(ids)).Exec(ctx)
		if err != nil {
			return err
		}
		_, err = touchDevice(tx.db.NewUpdate().Model((*Device)(nil)).Set("target_snapshot_id = ?", snapshotID)).
			Where("id IN (?)", bun.List(ids)).Exec(ctx)
		return err
	})
	return ids, err
}

// stillInRolloutGroup selects the device of a rollout_devices row (rd) while it is in the rollout's group. A
// device that left the group (or its application) keeps what it runs: a rollout neither updates nor rolls it back.
func stillInRolloutGroup(db bun.IDB) *bun.SelectQuery {
	return db.NewSelect().TableExpr("devices AS d").ColumnExpr("1").Join("JOIN rollouts AS r ON r.id = rd.rollout_id").
		Where("d.id = rd.device_id AND d.device_group_id = r.group_id")
}

// SyncRolloutDevices reads the devices' reports into the rollout: a device running the snapshot is updated, a
// device that reported an error or crash since it was told is failed with its detail, and a device being
// rolled back that runs its previous snapshot again is rolled back. Each row looks its device up by primary
// key: a subquery over devices that names the row (rd.dispatched_at) is run again for every row, and made the
// rollout workflow's poll quadratic in the fleet (58 % of the platform's CPU in a 10,000-device rollout).
func (s *Store) SyncRolloutDevices(ctx context.Context, rolloutID, snapshotID string) error {
	_, err := s.db.NewUpdate().Model((*RolloutDevice)(nil)).Set("status = ?", domain.RolloutDeviceUpdated).
		Where("rollout_id = ? AND status = ?", rolloutID, domain.RolloutDeviceUpdating).
		Where("EXISTS (SELECT 1 FROM devices d WHERE d.id = rd.device_id AND d.active_snapshot_id = ? AND d.state = 'running')", snapshotID).Exec(ctx)
	if err != nil {
		return err
	}
	_, err = s.db.NewUpdate().Model((*RolloutDevice)(nil)).Set("status = ?", domain.RolloutDeviceFailed).
		Set("error = (SELECT CASE WHEN state_detail = '' THEN state ELSE state_detail END FROM devices WHERE devices.id = rd.device_id)").
		Where("rollout_id = ? AND status = ?", rolloutID, domain.RolloutDeviceUpdating).
		Where("EXISTS (SELECT 1 FROM devices d WHERE d.id = rd.device_id AND d.state IN ('error', 'crashed') AND d.last_seen_at > rd.dispatched_at)").Exec(ctx)
	if err != nil {
		return err
	}
	_, err = s.db.NewUpdate().Model((*RolloutDevice)(nil)).Set("status = ?", domain.RolloutDeviceRolledBack).
		Where("rollout_id = ? AND status = ?", rolloutID, domain.RolloutDeviceRollingBack).
		Where("EXISTS (SELECT 1 FROM devices d WHERE d.id = rd.device_id AND d.active_snapshot_id = rd.previous_snapshot_id AND d.state = 'running')").Exec(ctx)
	return err
}

// RolloutCounts are a rollout's devices by status, overall and in one wave.
type RolloutCounts struct {
	Total, Pending, Updating, Updated, Failed, RollingBack, RolledBack int
	WaveUpdating                                                       int
}

// CountRolloutDevices counts a rollout's devices by status.
func (s *Store) CountRolloutDevices(ctx context.Context, rolloutID string, wave int) (RolloutCounts, error) {
	var rows []struct {
		Wave   int
		Status domain.RolloutDeviceStatus
		N      int
	}
	err := s.db.NewSelect().Model((*RolloutDevice)(nil)).ColumnExpr("wave, status, COUNT(*) AS n").
		Where("rollout_id = ?", rolloutID).Group("wave", "status").Scan(ctx, &rows)
	var c RolloutCounts
	for _, r := range rows {
		c.Total += r.N
		switch r.Status {
		case domain.RolloutDevicePending:
			c.Pending += r.N
		case domain.RolloutDeviceUpdating:
			c.Updating += r.N
			if r.Wave == wave {
				c.WaveUpdating += r.N
			}
		case domain.RolloutDeviceUpdated:
			c.Updated += r.N
		case domain.RolloutDeviceFailed:
			c.Failed += r.N
		case domain.RolloutDeviceRollingBack:
			c.RollingBack += r.N
		case domain.RolloutDeviceRolledBack:
			c.RolledBack += r.N
		}
	}
	return c, err
}

// ExpireRolloutWave fails the devices of a wave that have not reported the snapshot by its deadline.
func (s *Store) ExpireRolloutWave(ctx context.Context, rolloutID string, wave int) (int64, error) {
	res, err := s.db.NewUpdate().Model((*RolloutDevice)(nil)).Set("status = ?", domain.RolloutDeviceFailed).
		Set("error = ?", "did not report running the snapshot before the wave deadline").
		Where("rollout_id = ? AND wave = ? AND status = ?", rolloutID, wave, domain.RolloutDeviceUpdating).Exec(ctx)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// RollBackRolloutBatch returns up to batch devices the rollout changed to their previous target and returns
// them to notify. A device without a previous target gets none and counts as rolled back at once, as does one
// that left the group (it keeps what it runs; telling it is harmless). An empty answer means every changed
// device has been handled.
func (s *Store) RollBackRolloutBatch(ctx context.Context, rolloutID string, batch int) ([]string, error) {
	var ids []string
	err := s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		var rows []RolloutDevice
		err := tx.db.NewSelect().Model(&rows).
			Where("rollout_id = ? AND status IN (?)", rolloutID, bun.List([]domain.RolloutDeviceStatus{domain.RolloutDeviceUpdating, domain.RolloutDeviceUpdated, domain.RolloutDeviceFailed})).
			Order("device_id").Limit(int64(batch)).Scan(ctx)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := tx.rollBackDevice(ctx, rolloutID, r); err != nil {
				return err
			}
			ids = append(ids, r.DeviceID)
		}
		return nil
	})
	return ids, err
}

// rollBackDevice gives one device of a rollout its previous target while it is still in the rollout's group,
// and records its status.
func (s *Store) rollBackDevice(ctx context.Context, rolloutID string, r RolloutDevice) error {
	res, err := touchDevice(s.db.NewUpdate().Model((*Device)(nil)).Set("target_snapshot_id = ?", r.PreviousSnapshotID)).
		Where("id = ? AND device_group_id = (SELECT group_id FROM rollouts WHERE id = ?)", r.DeviceID, rolloutID).Exec(ctx)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	status := domain.RolloutDeviceRollingBack
	if r.PreviousSnapshotID == nil || n == 0 {
		status = domain.RolloutDeviceRolledBack
	}
	_, err = s.db.NewUpdate().Model((*RolloutDevice)(nil)).Set("status = ?", status).
		Where("rollout_id = ? AND device_id = ?", rolloutID, r.DeviceID).Exec(ctx)
	return err
}

// SettleGroupTarget makes snapshotID the group's target and moves every device of the group that targets
// something else (devices that joined during the rollout, or came back later) onto it; it returns them. It locks
// them in id order first, as status batches do, and runs again if Postgres aborts it for a deadlock.
func (s *Store) SettleGroupTarget(ctx context.Context, groupID string, snapshotID *string) ([]string, error) {
	var ids []string
	err := s.runRetryingConflicts(ctx, func(ctx context.Context, tx *Store) error {
		ids = nil
		if _, err := tx.db.NewUpdate().Model((*DeviceGroup)(nil)).Set("target_snapshot_id = ?", snapshotID).
			Set("updated_at = ?", now()).Where("id = ?", groupID).Exec(ctx); err != nil {
			return err
		}
		q := tx.db.NewSelect().Model((*Device)(nil)).Column("id").Where("device_group_id = ?", groupID)
		if snapshotID == nil {
			q = q.Where("target_snapshot_id IS NOT NULL")
		} else {
			q = q.Where("target_snapshot_id IS NULL OR target_snapshot_id <> ?", *snapshotID)
		}
		if err := q.Scan(ctx, &ids); err != nil || len(ids) == 0 {
			return err
		}
		if err := tx.lockDevices(ctx, ids); err != nil {
			return err
		}
		_, err := touchDevice(tx.db.NewUpdate().Model((*Device)(nil)).Set("target_snapshot_id = ?", snapshotID)).
			Where("id IN (?)", bun.List(ids)).Exec(ctx)
		return err
	})
	return ids, err
}

// ListGroupDeviceIDs lists the IDs of a group's devices.
func (s *Store) ListGroupDeviceIDs(ctx context.Context, groupID string) ([]string, error) {
	var ids []string
	err := s.db.NewSelect().Model((*Device)(nil)).Column("id").Where("device_group_id = ?", groupID).Order("id").Scan(ctx, &ids)
	return ids, err
}

// ListGroupRollouts lists a group's rollouts, one page.
func (s *Store) ListGroupRollouts(ctx context.Context, groupID string, p Page) ([]Rollout, string, error) {
	q := s.db.NewSelect().Model((*Rollout)(nil)).Where("group_id = ?", groupID)
	return listPage(ctx, q, "id", p, func(r *Rollout) string { return r.ID })
}

// ActiveRolloutOfGroup returns the ID of the group's running rollout, or "".
func (s *Store) ActiveRolloutOfGroup(ctx context.Context, groupID string) (string, error) {
	var ids []string
	err := s.db.NewSelect().Model((*Rollout)(nil)).Column("id").
		Where("group_id = ? AND status IN (?)", groupID, bun.List(domain.ActiveRolloutStatuses())).Limit(1).Scan(ctx, &ids)
	if err != nil || len(ids) == 0 {
		return "", err
	}
	return ids[0], nil
}

// AddGroupDevices puts devices of the group's application into it and gives each the group's target (when the
// group has one). A device of another application, another group or unknown is refused, naming it; nothing
// is changed then. It returns the devices whose target changed.
func (s *Store) AddGroupDevices(ctx context.Context, g *DeviceGroup, ids []string) ([]string, error) {
	found, err := s.teamDevices(ctx, g, "add", ids)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	for i, id := range ids {
		d := found[id]
		switch {
		case !g.Admits(d):
			return nil, domain.Unprocessable("device_in_other_application", "Device "+id+" belongs to another application.", domain.FieldError{Field: "add[" + itoa(i) + "]", Detail: "is not a device of the group's application"})
		case d.DeviceGroupID != nil && *d.DeviceGroupID != g.ID:
			return nil, domain.Conflict("device_in_other_group", "Device "+id+" is in another group; remove it from there first.")
		}
	}
	q := touchDevice(s.db.NewUpdate().Model((*Device)(nil)).Set("device_group_id = ?", g.ID)).Where("id IN (?)", bun.List(ids))
	if g.TargetSnapshotID != nil {
		q = q.Set("target_snapshot_id = ?", *g.TargetSnapshotID)
	}
	if _, err := q.Exec(ctx); err != nil {
		return nil, err
	}
	return ids, nil
}

// teamDevices loads the devices a membership change names (in field), refusing, by its place in the list, one
// that is not a device of the group's team.
func (s *Store) teamDevices(ctx context.Context, g *DeviceGroup, field string, ids []string) (map[string]*Device, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var devs []Device
	if err := s.db.NewSelect().Model(&devs).Where("id IN (?) AND team_id = ?", bun.List(ids), g.TeamID).Scan(ctx); err != nil {
		return nil, err
	}
	found := make(map[string]*Device, len(devs))
	for i := range devs {
		found[devs[i].ID] = &devs[i]
	}
	for i, id := range ids {
		if found[id] == nil {
			return nil, domain.Unprocessable("unknown_device", "Device "+id+" does not exist.",
				domain.FieldError{Field: field + "[" + itoa(i) + "]", Detail: "is not a device of this team"})
		}
	}
	return found, nil
}

// RemoveGroupDevices takes devices of the group's team out of the group (a device of the team that is not in
// it stays as it is); they keep their target. A device of another team, or none, is refused.
func (s *Store) RemoveGroupDevices(ctx context.Context, g *DeviceGroup, ids []string) error {
	if _, err := s.teamDevices(ctx, g, "remove", ids); err != nil || len(ids) == 0 {
		return err
	}
	_, err := touchDevice(s.db.NewUpdate().Model((*Device)(nil)).Set("device_group_id = NULL")).
		Where("device_group_id = ? AND id IN (?)", g.ID, bun.List(ids)).Exec(ctx)
	return err
}

func itoa(i int) string { return strconv.Itoa(i) }

// CountDevicesConnected counts the devices that are (or are not) connected to the broker.
func (s *Store) CountDevicesConnected(ctx context.Context, connected bool) (int, error) {
	return count(s.db.NewSelect().Model((*Device)(nil)).Where("connected = ?", connected).Count(ctx))
}

// CountDevicesByGroup counts the devices of each of the groups in one query.
func (s *Store) CountDevicesByGroup(ctx context.Context, groupIDs []string) (map[string]int, error) {
	counts := make(map[string]int, len(groupIDs))
	if len(groupIDs) == 0 {
		return counts, nil
	}
	var rows []struct {
		DeviceGroupID string
		N             int
	}
	err := s.db.NewSelect().Model((*Device)(nil)).ColumnExpr("device_group_id, COUNT(*) AS n").
		Where("device_group_id IN (?)", bun.List(groupIDs)).Group("device_group_id").Scan(ctx, &rows)
	for _, r := range rows {
		counts[r.DeviceGroupID] = r.N
	}
	return counts, err
}
