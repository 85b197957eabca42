package storage

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// Device is Node-RED running outside the platform under an agent. It belongs to a team and to at most one of
// an application or an instance. What the agent reports (state, versions, the snapshot it runs) is written by
// RecordDeviceReport; what the platform wants (owner, target snapshot, mode, env) by UpdateDevice.
type Device struct {
	bun.BaseModel    `bun:"table:devices,alias:dev"`
	ID               string `bun:",pk"`
	TeamID           string
	ApplicationID    *string
	InstanceID       *string
	DeviceGroupID    *string
	Name             string
	Type             string
	CredentialSecret string // sealed
	Mode             string
	Env              []domain.EnvVar `bun:",type:text"`
	SettingsHash     string
	TargetSnapshotID *string
	ActiveSnapshotID *string
	State            string
	StateDetail      string
	AgentVersion     string
	NodeRedVersion   string
	NodejsVersion    string
	LastSeenAt       *time.Time
	Connected        bool
	DisconnectedAt   *time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
	ChangedAt        time.Time  // moves on every change the live event stream shows (see touchDevice)
	FlowsImportedAt  *time.Time // when the device imported the flows it brought at provisioning (once)
	// FleetSettings are the device's own fleet settings, laid over its group's (npmrc sealed).
	FleetSettings domain.FleetSettings `bun:",type:text"`
	// The remote editor (developer mode): the digest of the token handed to the agent ("" = none), and the tunnel
	// open now, with the internal address of the API replica holding it (both "" when none is).
	EditorTokenHash  string
	EditorTunnelID   string
	EditorTunnelAddr string
}

// DeviceReport is what an agent's check-in changes on its device.
type DeviceReport struct {
	State            string
	StateDetail      string
	AgentVersion     string
	NodeRedVersion   string
	NodejsVersion    string
	ActiveSnapshotID *string
	At               time.Time
	// CameBack says the device showed offline (or had never checked in) until this report: a change even when
	// nothing else is.
	CameBack bool
}

// InsertDevice adds a device.
func (s *Store) InsertDevice(ctx context.Context, d *Device) error {
	d.CreatedAt, d.UpdatedAt = now(), now()
	d.ChangedAt = d.UpdatedAt
	if d.Env == nil {
		d.Env = []domain.EnvVar{}
	}
	_, err := s.db.NewInsert().Model(d).Exec(ctx)
	return classify(err, "device")
}

// GetDevice returns one device.
func (s *Store) GetDevice(ctx context.Context, id string) (*Device, error) {
	d := new(Device)
	err := s.db.NewSelect().Model(d).Where("id = ?", id).Scan(ctx)
	return d, classify(err, "device")
}

// GetDevices returns the devices of ids that exist, in no particular order.
func (s *Store) GetDevices(ctx context.Context, ids []string) ([]Device, error) {
	var out []Device
	if len(ids) == 0 {
		return out, nil
	}
	err := s.db.NewSelect().Model(&out).Where("id IN (?)", bun.List(ids)).Scan(ctx)
	return out, err
}

// ListTeamDevices returns a page of a team's devices.
func (s *Store) ListTeamDevices(ctx context.Context, teamID string, p Page) ([]Device, string, error) {
	q := s.db.NewSelect().Model((*Device)(nil)).Where("team_id = ?", teamID)
	return listPage(ctx, q, "id", p, func(d *Device) string { return d.ID })
}

// ListApplicationDevices returns a page of the devices assigned to an application.
func (s *Store) ListApplicationDevices(ctx context.Context, applicationID string, p Page) ([]Device, string, error) {
	q := s.db.NewSelect().Model((*Device)(nil)).Where("application_id = ?", applicationID)
	return listPage(ctx, q, "id", p, func(d *Device) string { return d.ID })
}

// CountTeamDevices counts a team's devices, for the team type's limit.
func (s *Store) CountTeamDevices(ctx context.Context, teamID string) (int, error) {
	return count(s.db.NewSelect().Model((*Device)(nil)).Where("team_id = ?", teamID).Count(ctx))
}

// TeamDeviceIDs lists the IDs of a team's devices (their broker accounts go with the team).
func (s *Store) TeamDeviceIDs(ctx context.Context, teamID string) ([]string, error) {
	var ids []string
	err := s.db.NewSelect().Model((*Device)(nil)).Column("id").Where("team_id = ?", teamID).Scan(ctx, &ids)
	return ids, err
}

// InstanceDeviceIDs lists the devices whose settings derive from an instance: the ones it owns and the ones
// whose target is one of its snapshots.
func (s *Store) InstanceDeviceIDs(ctx context.Context, instanceID string) ([]string, error) {
	var ids []string
	err := s.db.NewSelect().Model((*Device)(nil)).Column("id").Where("instance_id = ?", instanceID).
		WhereOr("target_snapshot_id IN (?)", s.db.NewSelect().Model((*Snapshot)(nil)).Column("id").Where("instance_id = ?", instanceID)).
		Scan(ctx, &ids)
	return ids, err
}

// DeviceTeams maps those of ids that are devices to their teams (a broker's accounts checked against the store).
func (s *Store) DeviceTeams(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []struct {
		ID     string `bun:"id"`
		TeamID string `bun:"team_id"`
	}
	if err := s.db.NewSelect().Model((*Device)(nil)).Column("id", "team_id").Where("id IN (?)", bun.List(ids)).Scan(ctx, &rows); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ID] = r.TeamID
	}
	return out, nil
}

// UpdateDevice writes the given columns and the update time.
func (s *Store) UpdateDevice(ctx context.Context, d *Device, columns ...string) error {
	d.UpdatedAt = now()
	d.ChangedAt = d.UpdatedAt
	res, err := s.db.NewUpdate().Model(d).Column(append(columns, "updated_at", "changed_at")...).WherePK().Exec(ctx)
	return mustAffect(res, err, "device")
}

// SetSettingsHashes stores the settings hash of each device (by ID) in one statement.
func (s *Store) SetSettingsHashes(ctx context.Context, hashes map[string]string) error {
	if len(hashes) == 0 {
		return nil
	}
	ids := make([]string, 0, len(hashes))
	var cases strings.Builder
	args := make([]any, 0, 2*len(hashes))
	cases.WriteString("settings_hash = CASE id")
	for id, hash := range hashes {
		cases.WriteString(" WHEN ? THEN ?")
		args = append(args, id, hash)
		ids = append(ids, id)
	}
	cases.WriteString(" END")
	_, err := touchDevice(s.db.NewUpdate().Model((*Device)(nil)).Set(cases.String(), args...)).Where("id IN (?)", bun.List(ids)).Exec(ctx)
	return err
}

// touchDevice stamps a bulk device update as a change of the devices' own settings, which the live event
// stream shows.
func touchDevice(q *bun.UpdateQuery) *bun.UpdateQuery {
	t := now()
	return q.Set("updated_at = ?", t).Set("changed_at = ?", t)
}

// reportChanged moves changed_at only when a check-in changes something a dashboard shows: a routine
// heartbeat that only moves last_seen_at is not an event. SET expressions read the row as it was before the
// update, in SQLite and Postgres alike.
const reportChanged = "changed_at = CASE WHEN ? OR last_seen_at IS NULL OR state IS DISTINCT FROM ? OR state_detail IS DISTINCT FROM ?" +
	" OR agent_version IS DISTINCT FROM ? OR node_red_version IS DISTINCT FROM ? OR nodejs_version IS DISTINCT FROM ?" +
	" OR active_snapshot_id IS DISTINCT FROM ? THEN ? ELSE changed_at END"

// RecordDeviceReport stores an agent's check-in: its state, versions, the snapshot it runs (nil when it runs
// none or one the platform does not know) and when it was seen.
func (s *Store) RecordDeviceReport(ctx context.Context, id string, r DeviceReport) error {
	res, err := s.reportUpdate(id, r).Exec(ctx)
	return mustAffect(res, err, "device")
}

// RecordDeviceReports stores many check-ins in one statement: one parse and one commit for a burst of status
// messages rather than one each. A device reported twice keeps its last report (reports are in order); a device
// that no longer exists is skipped and named in gone.
func (s *Store) RecordDeviceReports(ctx context.Context, ids []string, reports []DeviceReport) (gone []string, err error) {
	rows := make([]reportRow, 0, len(ids))
	at := make(map[string]int, len(ids))
	for i, id := range ids {
		r := reports[i]
		row := reportRow{ID: id, State: r.State, StateDetail: r.StateDetail, AgentVersion: r.AgentVersion, NodeRedVersion: r.NodeRedVersion,
			NodejsVersion: r.NodejsVersion, ActiveSnapshotID: r.ActiveSnapshotID, At: r.At.UTC(), CameBack: r.CameBack}
		if j, twice := at[id]; twice {
			rows[j] = row
			continue
		}
		at[id] = len(rows)
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	var updated int64
	update := func(ctx context.Context, s *Store) error {
		res, err := s.db.NewUpdate().With("rep", s.db.NewValues(&rows)).Model((*Device)(nil)).TableExpr("rep").
			Set("state = rep.r_state").Set("state_detail = rep.r_state_detail").Set("agent_version = rep.r_agent_version").
			Set("node_red_version = rep.r_node_red_version").Set("nodejs_version = rep.r_nodejs_version").
			Set("active_snapshot_id = rep.r_active_snapshot_id").Set("last_seen_at = rep.r_at").
			Set("changed_at = CASE WHEN rep.r_came_back OR dev.last_seen_at IS NULL OR dev.state IS DISTINCT FROM rep.r_state"+
				" OR dev.state_detail IS DISTINCT FROM rep.r_state_detail OR dev.agent_version IS DISTINCT FROM rep.r_agent_version"+
				" OR dev.node_red_version IS DISTINCT FROM rep.r_node_red_version OR dev.nodejs_version IS DISTINCT FROM rep.r_nodejs_version"+
				" OR dev.active_snapshot_id IS DISTINCT FROM rep.r_active_snapshot_id THEN ? ELSE dev.changed_at END", now()).
			Where("dev.id = rep.r_id").Exec(ctx)
		if err == nil {
			updated, err = res.RowsAffected()
		}
		return err
	}
	if s.Dialect() == "pg" {
		// A rollout's dispatch writes the same rows (DispatchRolloutBatch): both lock them in id order first,
		// and a batch aborted for a deadlock all the same (with another writer) runs again rather than fail.
		err = s.runRetryingConflicts(ctx, func(ctx context.Context, tx *Store) error {
			if err := tx.lockDevices(ctx, slices.Collect(maps.Keys(at))); err != nil {
				return err
			}
			return update(ctx, tx)
		})
	} else {
		err = update(ctx, s)
	}
	if err != nil || updated == int64(len(rows)) {
		return nil, err
	}
	found, err := s.GetDevices(ctx, slices.Collect(maps.Keys(at)))
	if err != nil {
		return nil, err
	}
	for _, d := range found {
		delete(at, d.ID)
	}
	for _, id := range ids {
		if _, missing := at[id]; missing {
			gone = append(gone, id)
			delete(at, id)
		}
	}
	return gone, nil
}

// reportRow is one device's report in RecordDeviceReports' VALUES list.
type reportRow struct {
	ID               string    `bun:"r_id"`
	State            string    `bun:"r_state"`
	StateDetail      string    `bun:"r_state_detail"`
	AgentVersion     string    `bun:"r_agent_version"`
	NodeRedVersion   string    `bun:"r_node_red_version"`
	NodejsVersion    string    `bun:"r_nodejs_version"`
	ActiveSnapshotID *string   `bun:"r_active_snapshot_id"`
	At               time.Time `bun:"r_at,type:timestamptz"`
	CameBack         bool      `bun:"r_came_back"`
}

func (s *Store) reportUpdate(id string, r DeviceReport) *bun.UpdateQuery {
	return s.db.NewUpdate().Model((*Device)(nil)).
		Set("state = ?", r.State).Set("state_detail = ?", r.StateDetail).
		Set("agent_version = ?", r.AgentVersion).Set("node_red_version = ?", r.NodeRedVersion).
		Set("nodejs_version = ?", r.NodejsVersion).Set("active_snapshot_id = ?", r.ActiveSnapshotID).
		Set("last_seen_at = ?", r.At.UTC()).
		Set(reportChanged, r.CameBack, r.State, r.StateDetail, r.AgentVersion, r.NodeRedVersion, r.NodejsVersion, r.ActiveSnapshotID, now()).
		Where("id = ?", id)
}

// SetDeviceState changes only the reported state and its detail (an audit event from the agent, say).
func (s *Store) SetDeviceState(ctx context.Context, id, state, detail string) error {
	res, err := s.db.NewUpdate().Model((*Device)(nil)).Set("state = ?", state).Set("state_detail = ?", detail).
		Set("changed_at = ?", now()).Where("id = ?", id).Exec(ctx)
	return mustAffect(res, err, "device")
}

// SetDeviceConnected records that a device's broker connection opened or closed at a time.
func (s *Store) SetDeviceConnected(ctx context.Context, id string, connected bool, at time.Time) error {
	q := s.db.NewUpdate().Model((*Device)(nil)).Set("connected = ?", connected).Set("changed_at = ?", now()).Where("id = ?", id)
	if connected {
		q = q.Set("last_seen_at = ?", at.UTC())
	} else {
		q = q.Set("disconnected_at = ?", at.UTC())
	}
	_, err := q.Exec(ctx)
	return err
}

// SetDeviceConnectedTo records that a device's connection to the broker brokerID opened or closed at a time. A
// closing is recorded only while the device is held by that broker: a device that moved to another replica's
// broker is not marked disconnected when its old connection's end is recorded late.
func (s *Store) SetDeviceConnectedTo(ctx context.Context, id, brokerID string, connected bool, at time.Time) error {
	q := s.db.NewUpdate().Model((*Device)(nil)).Set("connected = ?", connected).Set("changed_at = ?", now()).Where("id = ?", id)
	if connected {
		q = q.Set("last_seen_at = ?", at.UTC()).Set("broker_id = ?", brokerID)
	} else {
		q = q.Set("disconnected_at = ?", at.UTC()).Set("broker_id = NULL").Where("broker_id = ?", brokerID)
	}
	_, err := q.Exec(ctx)
	return err
}

// BrokerAlive records that the broker brokerID was alive at a time (see SweepDeviceConnections).
func (s *Store) BrokerAlive(ctx context.Context, brokerID string, at time.Time) error {
	_, err := s.db.NewInsert().Model(&broker{ID: brokerID, SeenAt: at.UTC()}).
		On("CONFLICT (id) DO UPDATE").Set("seen_at = EXCLUDED.seen_at").Exec(ctx)
	return err
}

// broker is one embedded broker's last sign of life.
type broker struct {
	bun.BaseModel `bun:"table:brokers"`
	ID            string `bun:",pk"`
	SeenAt        time.Time
}

// SweepDeviceConnections marks disconnected the devices held by brokers not seen alive since aliveSince (a
// process that was killed, or one from before brokers were recorded), and forgets those brokers. The devices of
// the brokers still alive, other replicas' included, keep their connection.
func (s *Store) SweepDeviceConnections(ctx context.Context, at, aliveSince time.Time) (int, error) {
	alive := s.db.NewSelect().Model((*broker)(nil)).Column("id").Where("seen_at >= ?", aliveSince.UTC())
	res, err := s.db.NewUpdate().Model((*Device)(nil)).Set("connected = ?", false).Set("disconnected_at = ?", at.UTC()).
		Set("broker_id = NULL").Set("changed_at = ?", now()).Where("connected = ?", true).
		Where("broker_id IS NULL OR broker_id NOT IN (?)", alive).Exec(ctx)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	_, err = s.db.NewDelete().Model((*broker)(nil)).Where("seen_at < ?", aliveSince.UTC()).Exec(ctx)
	return int(n), err
}

// ForgetBroker marks the devices held by the broker brokerID disconnected and forgets it: the broker closes.
func (s *Store) ForgetBroker(ctx context.Context, brokerID string, at time.Time) error {
	_, err := s.db.NewUpdate().Model((*Device)(nil)).Set("connected = ?", false).Set("disconnected_at = ?", at.UTC()).
		Set("broker_id = NULL").Set("changed_at = ?", now()).Where("connected = ?", true).Where("broker_id = ?", brokerID).Exec(ctx)
	if err != nil {
		return err
	}
	_, err = s.db.NewDelete().Model((*broker)(nil)).Where("id = ?", brokerID).Exec(ctx)
	return err
}

// ResetDeviceConnections marks every device disconnected: a broker that starts holds no connection yet.
func (s *Store) ResetDeviceConnections(ctx context.Context, at time.Time) error {
	_, err := s.db.NewUpdate().Model((*Device)(nil)).Set("connected = ?", false).Set("disconnected_at = ?", at.UTC()).
		Set("broker_id = NULL").Set("changed_at = ?", now()).Where("connected = ?", true).Exec(ctx)
	return err
}

// DeleteDevice removes a device and every token it holds, in one transaction.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	return s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		if err := tx.DeleteTokensOfOwner(ctx, "device", id); err != nil {
			return err
		}
		res, err := tx.db.NewDelete().Model((*Device)(nil)).Where("id = ?", id).Exec(ctx)
		return mustAffect(res, err, "device")
	})
}

// MarkFlowsImported records that a device imports the flows it brought at provisioning, and reports false when
// it did so before: a device imports them once. Two concurrent imports cannot both pass (the row is locked by
// the first UPDATE until its transaction ends).
func (s *Store) MarkFlowsImported(ctx context.Context, id string, at time.Time) (bool, error) {
	res, err := touchDevice(s.db.NewUpdate().Model((*Device)(nil)).Set("flows_imported_at = ?", at.UTC())).
		Where("id = ? AND flows_imported_at IS NULL", id).Exec(ctx)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// AllowFlowsImport lets a device import the flows it brings once more: it was set up again with a one-time
// code, after which FlowFuse's agent offers the import.
func (s *Store) AllowFlowsImport(ctx context.Context, id string) error {
	_, err := s.db.NewUpdate().Model((*Device)(nil)).Set("flows_imported_at = NULL").Where("id = ?", id).Exec(ctx)
	return err
}

// ConsumeToken deletes an unexpired token of the kind and returns it: a single-use code works once, even when
// two requests race for it (only one DELETE finds the row).
func (s *Store) ConsumeToken(ctx context.Context, hash, kind string, at time.Time) (*Token, error) {
	var rows []Token
	err := s.db.NewDelete().Model(&rows).Where("token_hash = ? AND kind = ?", hash, kind).
		Where("expires_at IS NULL OR expires_at > ?", at.UTC()).Returning("*").Scan(ctx)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, domain.NotFound("token")
	}
	return &rows[0], nil
}

// CountDeviceSnapshots counts the snapshots pulled from a device, for its cap.
func (s *Store) CountDeviceSnapshots(ctx context.Context, deviceID string) (int, error) {
	return count(s.db.NewSelect().TableExpr("device_snapshots").Where("device_id = ?", deviceID).Count(ctx))
}

// LinkDeviceSnapshot records that a snapshot was pulled from a device.
func (s *Store) LinkDeviceSnapshot(ctx context.Context, snapshotID, deviceID string) error {
	_, err := s.db.NewRaw("INSERT INTO device_snapshots (snapshot_id, device_id) VALUES (?, ?)", snapshotID, deviceID).Exec(ctx)
	return classify(err, "device snapshot")
}

// SnapshotDevice returns the device a snapshot was pulled from, or "" for an instance's snapshot.
func (s *Store) SnapshotDevice(ctx context.Context, snapshotID string) (string, error) {
	var ids []string
	err := s.db.NewSelect().TableExpr("device_snapshots").Column("device_id").Where("snapshot_id = ?", snapshotID).Scan(ctx, &ids)
	if err != nil || len(ids) == 0 {
		return "", err
	}
	return ids[0], nil
}

// ListDeviceSnapshots returns a page of the snapshots pulled from a device, without their content.
func (s *Store) ListDeviceSnapshots(ctx context.Context, deviceID string, p Page) ([]Snapshot, string, error) {
	q := s.db.NewSelect().Model((*Snapshot)(nil)).ExcludeColumn(snapshotHeavyColumns...).
		Where("snap.id IN (?)", s.db.NewSelect().TableExpr("device_snapshots").Column("snapshot_id").Where("device_id = ?", deviceID))
	return listPage(ctx, q, "snap.id", p, func(snap *Snapshot) string { return snap.ID })
}

// DeviceToken is a device's credential as authentication sees it.
type DeviceToken struct {
	DeviceID string
	TeamID   string
}

// GetDeviceByToken returns the device holding an unexpired token of the kind ("device" or "broker").
func (s *Store) GetDeviceByToken(ctx context.Context, hash, kind string, at time.Time) (*Device, error) {
	d := new(Device)
	err := s.db.NewSelect().Model(d).
		Join("JOIN tokens AS t ON t.owner_id = dev.id AND t.owner_type = 'device'").
		Where("t.token_hash = ? AND t.kind = ?", hash, kind).
		Where("t.expires_at IS NULL OR t.expires_at > ?", at.UTC()).
		Scan(ctx)
	return d, classify(err, "device")
}

// DeleteTokensOfOwnerKind revokes an owner's tokens of one kind (a device's old credentials when new ones are issued).
func (s *Store) DeleteTokensOfOwnerKind(ctx context.Context, ownerType, ownerID, kind string) error {
	_, err := s.db.NewDelete().Model((*Token)(nil)).Where("owner_type = ? AND owner_id = ? AND kind = ?", ownerType, ownerID, kind).Exec(ctx)
	return err
}

// GetTeamToken returns one token a team holds, of a kind.
func (s *Store) GetTeamToken(ctx context.Context, id, kind, teamID string) (*Token, error) {
	t := new(Token)
	err := s.db.NewSelect().Model(t).Where("id = ? AND kind = ? AND owner_type = 'team' AND owner_id = ?", id, kind, teamID).Scan(ctx)
	return t, classify(err, "token")
}

// SetDeviceEditorToken stores the digest of the editor token handed to a device's agent ("" disables the editor).
func (s *Store) SetDeviceEditorToken(ctx context.Context, id, tokenHash string) error {
	res, err := s.db.NewUpdate().Model((*Device)(nil)).Set("editor_token_hash = ?", tokenHash).Where("id = ?", id).Exec(ctx)
	return mustAffect(res, err, "device")
}

// OpenDeviceEditorTunnel records the tunnel a device's agent opened with the editor token of that digest, and the
// internal address of the replica holding it; KindNotFound when the device's token is another by now.
func (s *Store) OpenDeviceEditorTunnel(ctx context.Context, id, tokenHash, tunnelID, addr string) error {
	res, err := s.db.NewUpdate().Model((*Device)(nil)).Set("editor_tunnel_id = ?", tunnelID).Set("editor_tunnel_addr = ?", addr).
		Set("changed_at = ?", now()).Where("id = ? AND editor_token_hash = ? AND editor_token_hash <> ''", id, tokenHash).Exec(ctx)
	return mustAffect(res, err, "device editor token")
}

// CloseDeviceEditorTunnel forgets a device's tunnel, if it is still the one recorded (a newer one may have taken
// its place on another replica).
func (s *Store) CloseDeviceEditorTunnel(ctx context.Context, id, tunnelID string) error {
	_, err := s.db.NewUpdate().Model((*Device)(nil)).Set("editor_tunnel_id = ''").Set("editor_tunnel_addr = ''").
		Set("changed_at = ?", now()).Where("id = ? AND editor_tunnel_id = ?", id, tunnelID).Exec(ctx)
	return err
}
