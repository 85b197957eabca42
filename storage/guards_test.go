package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// guardTenant is one team's objects, written straight to the store: the schema alone must keep another team's
// rows from naming them.
type guardTenant struct {
	team           string
	app, otherApp  *storage.Application
	inst           *storage.Instance
	snap           *storage.Snapshot
	group          *storage.DeviceGroup
	dev            *storage.Device
	pipe           *storage.Pipeline
	stage, stage2  storage.PipelineStage
	otherAppsGroup *storage.DeviceGroup
	hook           *storage.AlertWebhook
	rule           *storage.AlertRule
	event          *storage.AlertEvent
}

func newGuardTenant(t *testing.T, st *storage.Store, slug string) *guardTenant {
	t.Helper()
	ctx := context.Background()
	g := &guardTenant{team: newTeam(t, st, slug).ID}
	g.app = &storage.Application{ID: domain.NewID(), TeamID: g.team, Name: "app"}
	g.otherApp = &storage.Application{ID: domain.NewID(), TeamID: g.team, Name: "other app"}
	require.NoError(t, st.InsertApplication(ctx, g.app))
	require.NoError(t, st.InsertApplication(ctx, g.otherApp))
	g.inst = newInstanceIn(t, st, g.app, slug+"-line")
	g.snap = snapshotOf(g.inst, "s", false)
	_, err := st.InsertSnapshot(ctx, g.snap)
	require.NoError(t, err)
	g.group = &storage.DeviceGroup{ID: domain.NewID(), ApplicationID: g.app.ID, TeamID: g.team, Name: "g"}
	g.otherAppsGroup = &storage.DeviceGroup{ID: domain.NewID(), ApplicationID: g.otherApp.ID, TeamID: g.team, Name: "g"}
	require.NoError(t, st.InsertDeviceGroup(ctx, g.group))
	require.NoError(t, st.InsertDeviceGroup(ctx, g.otherAppsGroup))
	g.dev = &storage.Device{ID: domain.NewID(), TeamID: g.team, ApplicationID: &g.app.ID, Name: "d", CredentialSecret: "x", Mode: "autonomous", SettingsHash: "h"}
	require.NoError(t, st.InsertDevice(ctx, g.dev))
	g.pipe = &storage.Pipeline{ID: domain.NewID(), ApplicationID: g.app.ID, TeamID: g.team, Name: "p"}
	require.NoError(t, st.InsertPipeline(ctx, g.pipe))
	g.stage = storage.PipelineStage{ID: domain.NewID(), Name: "dev", Action: domain.StageCreateSnapshot,
		Targets: []domain.StageTarget{{Kind: domain.TargetInstance, ID: g.inst.ID}}}
	g.stage2 = storage.PipelineStage{ID: domain.NewID(), Name: "fleet", Action: domain.StagePrompt,
		Targets: []domain.StageTarget{{Kind: domain.TargetDeviceGroup, ID: g.group.ID}}}
	require.NoError(t, st.ReplaceStages(ctx, g.pipe.ID, []storage.PipelineStage{g.stage, g.stage2}))
	g.hook = &storage.AlertWebhook{ID: domain.NewID(), TeamID: g.team, Name: "h", URL: "https://203.0.113.1/", Secret: "sealed"}
	require.NoError(t, st.InsertAlertWebhook(ctx, g.hook))
	g.rule = &storage.AlertRule{ID: domain.NewID(), TeamID: g.team, Name: "r", Kinds: []string{"instance_crashed"}, WebhookID: &g.hook.ID, Enabled: true}
	require.NoError(t, st.InsertAlertRule(ctx, g.rule))
	g.event = &storage.AlertEvent{ID: domain.NewID(), TeamID: g.team, Kind: "test", SubjectType: "webhook", SubjectID: g.hook.ID, DedupKey: domain.NewID()}
	_, err = st.InsertAlertEvent(ctx, g.event)
	require.NoError(t, err)
	return g
}

// guardCase writes one row of tenant a that names an object of b (or of another application of a's); the
// same write naming a's own object must pass, so a refusal is the guard's.
type guardCase struct {
	name  string
	write func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error
}

func pick[T any](own bool, mine, theirs T) T {
	if own {
		return mine
	}
	return theirs
}

var guardCases = []guardCase{
	{"an alert rule sends to another team's webhook", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		return st.InsertAlertRule(ctx, &storage.AlertRule{ID: domain.NewID(), TeamID: a.team, Name: "r", Kinds: []string{"instance_crashed"},
			WebhookID: &pick(own, a.hook, b.hook).ID, Enabled: true})
	}},
	{"an alert event narrowed to another team's rule", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		_, err := st.InsertAlertEvent(ctx, &storage.AlertEvent{ID: domain.NewID(), TeamID: a.team, Kind: "device_offline", SubjectType: "device",
			SubjectID: a.dev.ID, DedupKey: domain.NewID(), RuleID: &pick(own, a.rule, b.rule).ID})
		return err
	}},
	{"a held alert event of another team's rule", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		return st.InsertAlertHeld(ctx, &storage.AlertHeld{RuleID: pick(own, a.rule, b.rule).ID, EventID: a.event.ID, TeamID: a.team, Kind: "test"})
	}},
	{"an alert event for another team's webhook", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		_, err := st.InsertAlertEvent(ctx, &storage.AlertEvent{ID: domain.NewID(), TeamID: a.team, Kind: "test", SubjectType: "webhook",
			SubjectID: a.hook.ID, DedupKey: domain.NewID(), WebhookID: &pick(own, a.hook, b.hook).ID})
		return err
	}},
	{"an alert delivery of another team's event", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		_, err := st.PutAlertDelivery(ctx, &storage.AlertDelivery{ID: domain.NewID(), TeamID: a.team, EventID: pick(own, a.event, b.event).ID,
			Channel: "email", Target: "x@example.com", Status: storage.DeliveryPending})
		return err
	}},
	{"a device joins another team's group", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		d := *a.dev
		d.DeviceGroupID = &pick(own, a.group, b.group).ID
		return st.UpdateDevice(ctx, &d, "device_group_id")
	}},
	{"a device joins a group of another application of its team", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		d := *a.dev
		d.DeviceGroupID = &pick(own, a.group, a.otherAppsGroup).ID
		return st.UpdateDevice(ctx, &d, "device_group_id")
	}},
	{"a device is registered into another team's group", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		d := &storage.Device{ID: domain.NewID(), TeamID: a.team, ApplicationID: &a.app.ID, DeviceGroupID: &pick(own, a.group, b.group).ID,
			Name: "new", CredentialSecret: "x", Mode: "autonomous", SettingsHash: "h"}
		return st.InsertDevice(ctx, d)
	}},
	{"a device joins a group that does not exist", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		d, group := *a.dev, pick(own, a.group.ID, "no-such-group")
		d.DeviceGroupID = &group
		return st.UpdateDevice(ctx, &d, "device_group_id")
	}},
	{"a device is assigned another team's application", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		d := *a.dev
		d.ApplicationID = &pick(own, a.app, b.app).ID
		return st.UpdateDevice(ctx, &d, "application_id")
	}},
	{"a device is assigned another team's instance", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		d := *a.dev
		d.ApplicationID, d.InstanceID = nil, &pick(own, a.inst, b.inst).ID
		return st.UpdateDevice(ctx, &d, "application_id", "instance_id")
	}},
	{"a device targets another team's snapshot", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		d := *a.dev
		d.TargetSnapshotID = &pick(own, a.snap, b.snap).ID
		return st.UpdateDevice(ctx, &d, "target_snapshot_id")
	}},
	{"a device reports running another team's snapshot", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		return st.RecordDeviceReport(ctx, a.dev.ID, storage.DeviceReport{State: "running", ActiveSnapshotID: &pick(own, a.snap, b.snap).ID})
	}},
	{"a group targets another team's snapshot", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		g := *a.group
		g.TargetSnapshotID = &pick(own, a.snap, b.snap).ID
		return st.UpdateDeviceGroup(ctx, &g, "target_snapshot_id")
	}},
	{"a snapshot is filed under another team's application", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		snap := snapshotOf(a.inst, "x", false)
		snap.InstanceID, snap.ApplicationID = "", pick(own, a.app, b.app).ID
		_, err := st.InsertSnapshot(ctx, snap)
		return err
	}},
	{"a device snapshot links another team's snapshot", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		return st.LinkDeviceSnapshot(ctx, pick(own, a.snap, b.snap).ID, a.dev.ID)
	}},
	{"a snapshot schedule of another team's instance", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		return st.PutSnapshotSchedule(ctx, &storage.SnapshotSchedule{InstanceID: pick(own, a.inst, b.inst).ID, TeamID: a.team, Every: "1h", Keep: 1})
	}},
	{"an instance in another team's application", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		in := *a.inst
		in.ID, in.Name, in.ApplicationID = domain.NewID(), "copy-"+domain.NewID(), pick(own, a.app, b.app).ID
		return st.InsertInstance(ctx, &in)
	}},
	{"an instance's device target is another team's snapshot", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		in := *a.inst
		in.DeviceTargetSnapshotID = &pick(own, a.snap, b.snap).ID
		return st.UpdateInstance(ctx, &in, "device_target_snapshot_id")
	}},
	{"a rollout of another team's group", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		return st.InsertRollout(ctx, &storage.Rollout{ID: domain.NewID(), GroupID: pick(own, a.group, b.group).ID, TeamID: a.team,
			ApplicationID: a.app.ID, SnapshotID: a.snap.ID, Status: "succeeded"})
	}},
	{"a rollout of another team's snapshot", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		return st.InsertRollout(ctx, &storage.Rollout{ID: domain.NewID(), GroupID: a.group.ID, TeamID: a.team,
			ApplicationID: a.app.ID, SnapshotID: pick(own, a.snap, b.snap).ID, Status: "succeeded"})
	}},
	{"a pipeline of another team's application", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		return st.InsertPipeline(ctx, &storage.Pipeline{ID: domain.NewID(), ApplicationID: pick(own, a.app, b.app).ID, TeamID: a.team, Name: domain.NewID()})
	}},
	{"a stage targets another team's instance", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		s := a.stage
		s.Targets = []domain.StageTarget{{Kind: domain.TargetInstance, ID: pick(own, a.inst, b.inst).ID}}
		return st.ReplaceStages(ctx, a.pipe.ID, []storage.PipelineStage{s, a.stage2})
	}},
	{"a stage targets another team's device", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		s := a.stage
		s.Targets = []domain.StageTarget{{Kind: domain.TargetDevice, ID: pick(own, a.dev, b.dev).ID}}
		return st.ReplaceStages(ctx, a.pipe.ID, []storage.PipelineStage{s, a.stage2})
	}},
	{"a stage targets another team's group", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		s := a.stage2
		s.Targets = []domain.StageTarget{{Kind: domain.TargetDeviceGroup, ID: pick(own, a.group, b.group).ID}}
		return st.ReplaceStages(ctx, a.pipe.ID, []storage.PipelineStage{a.stage, s})
	}},
	{"a promotion into another pipeline's stage", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		return st.InsertPromotion(ctx, &storage.Promotion{ID: domain.NewID(), PipelineID: a.pipe.ID, TeamID: a.team, SourceStageID: a.stage.ID,
			TargetStageID: pick(own, a.stage2, b.stage2).ID, Status: domain.PromotionRunning})
	}},
	{"a promotion of another team's snapshot", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		return st.InsertPromotion(ctx, &storage.Promotion{ID: domain.NewID(), PipelineID: a.pipe.ID, TeamID: a.team, SourceStageID: a.stage.ID,
			TargetStageID: a.stage2.ID, SnapshotID: &pick(own, a.snap, b.snap).ID, Status: domain.PromotionRunning})
	}},
	{"a provisioning token scoped to another team's group", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		return st.InsertToken(ctx, &storage.Token{ID: domain.NewID(), TokenHash: domain.NewID(), Kind: "provisioning", Name: "p", OwnerType: "team",
			OwnerID: a.team, TeamID: &a.team, Scopes: []string{"device:provision", "deviceGroup:" + pick(own, a.group, b.group).ID}})
	}},
	{"a provisioning token scoped to another team's application", func(ctx context.Context, st *storage.Store, a, b *guardTenant, own bool) error {
		return st.InsertToken(ctx, &storage.Token{ID: domain.NewID(), TokenHash: domain.NewID(), Kind: "provisioning", Name: "p", OwnerType: "team",
			OwnerID: a.team, TeamID: &a.team, Scopes: []string{"device:provision", "application:" + pick(own, a.app, b.app).ID}})
	}},
}

// TestSchemaRefusesReferencesToAnotherTeam writes, below the API, every kind of stored reference naming
// another team's object: the store refuses each with unknown_reference and keeps nothing, while the same
// write naming the team's own object passes.
func TestSchemaRefusesReferencesToAnotherTeam(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		require.NoError(t, st.SeedDefaults(ctx))
		a, b := newGuardTenant(t, st, "guard-a"), newGuardTenant(t, st, "guard-b")
		for _, c := range guardCases {
			before, err := st.DumpTables(ctx)
			require.NoError(t, err)
			err = st.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error { return c.write(ctx, tx, a, b, false) })
			if assert.Error(t, err, c.name) {
				assert.True(t, domain.IsKind(err, domain.KindUnprocessable), "%s: %v", c.name, err)
			}
			after, err := st.DumpTables(ctx)
			require.NoError(t, err)
			assert.Equal(t, before, after, "%s: nothing was written", c.name)
			// The same write with the team's own object passes, inside a transaction rolled back after.
			errOwn := st.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
				if err := c.write(ctx, tx, a, b, true); err != nil {
					return err
				}
				return errRollBack
			})
			assert.ErrorIs(t, errOwn, errRollBack, "%s with the team's own object", c.name)
		}
	})
}

var errRollBack = domain.Conflict("roll_back", "the test rolls back")

// TestDeletedGroupsReleaseTheirDevices: devices.device_group_id has no foreign key, so the schema clears it
// when its group goes with its application (DeleteDeviceGroup clears it itself).
func TestDeletedGroupsReleaseTheirDevices(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		team := newTeam(t, st, "release")
		app := &storage.Application{ID: domain.NewID(), TeamID: team.ID, Name: "going"}
		require.NoError(t, st.InsertApplication(ctx, app))
		g := &storage.DeviceGroup{ID: domain.NewID(), ApplicationID: app.ID, TeamID: team.ID, Name: "g"}
		require.NoError(t, st.InsertDeviceGroup(ctx, g))
		d := &storage.Device{ID: domain.NewID(), TeamID: team.ID, ApplicationID: &app.ID, DeviceGroupID: &g.ID, Name: "d",
			CredentialSecret: "x", Mode: "autonomous", SettingsHash: "h"}
		require.NoError(t, st.InsertDevice(ctx, d))

		require.NoError(t, st.DeleteApplication(ctx, app.ID))
		got, err := st.GetDevice(ctx, d.ID)
		require.NoError(t, err)
		assert.Nil(t, got.ApplicationID)
		assert.Nil(t, got.DeviceGroupID, "the device left the group that went with its application")
	})
}

// TestGuardsMigrationDropsCrossTeamReferences upgrades a database an older release left with a device in
// another team's group and a provisioning token naming it (the attack the guards close): the device leaves
// the group, the token is revoked, and the rows that broke no rule are kept. The old rows are written in SQL
// of that release's schema, which later migrations may add columns to.
func TestGuardsMigrationDropsCrossTeamReferences(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			st, err := storage.Open(ctx, storagetest.NewDatabase(t, dialect))
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			require.NoError(t, st.MigrateUpTo(ctx, "000010"))
			at := time.Now()
			insert := func(query string, args ...any) string {
				id := domain.NewID()
				require.NoError(t, st.ExecRaw(ctx, query, append([]any{id}, args...)...))
				return id
			}
			teamType := insert("INSERT INTO team_types (id, name, created_at, updated_at) VALUES (?, 'old', ?, ?)", at, at)
			var teams, apps, groups [2]string
			for i, slug := range []string{"victim", "attacker"} {
				teams[i] = insert("INSERT INTO teams (id, name, slug, team_type_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)", slug, slug, teamType, at, at)
				apps[i] = insert("INSERT INTO applications (id, team_id, name, created_at, updated_at) VALUES (?, ?, 'app', ?, ?)", teams[i], at, at)
				groups[i] = insert("INSERT INTO device_groups (id, application_id, team_id, name, created_at, updated_at) VALUES (?, ?, ?, 'g', ?, ?)",
					apps[i], teams[i], at, at)
			}
			device := func(group string) string {
				return insert("INSERT INTO devices (id, team_id, application_id, device_group_id, name, credential_secret, settings_hash, created_at, updated_at)"+
					" VALUES (?, ?, ?, ?, 'd', 'x', 'h', ?, ?)", teams[1], apps[1], group, at, at)
			}
			token := func(group string) string {
				hash := domain.NewID()
				insert("INSERT INTO tokens (id, token_hash, kind, name, owner_type, owner_id, team_id, scopes, created_at) VALUES (?, ?, 'provisioning', 'p', 'team', ?, ?, ?, ?)",
					hash, teams[1], teams[1], `["device:provision","deviceGroup:`+group+`"]`, at)
				return hash
			}
			intruder, member := device(groups[0]), device(groups[1])
			stolen, own := token(groups[0]), token(groups[1])

			_, err = st.Migrate(ctx)
			require.NoError(t, err)
			got, err := st.GetDevice(ctx, intruder)
			require.NoError(t, err)
			assert.Nil(t, got.DeviceGroupID, "the device left the other team's group")
			got, err = st.GetDevice(ctx, member)
			require.NoError(t, err)
			assert.Equal(t, &groups[1], got.DeviceGroupID, "a device of its own team's group stays")
			_, err = st.GetTokenByHash(ctx, stolen, time.Now(), "provisioning")
			assert.True(t, domain.IsKind(err, domain.KindNotFound), "the token naming the other team's group is revoked")
			_, err = st.GetTokenByHash(ctx, own, time.Now(), "provisioning")
			assert.NoError(t, err)
		})
	}
}
