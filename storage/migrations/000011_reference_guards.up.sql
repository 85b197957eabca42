-- Every stored reference names only objects of its row's own team (and application, where the model says so):
-- a device's group, owner and snapshots, a group's target, a rollout's group and snapshots, a promotion's
-- stages and snapshot, a pipeline stage's targets, a provisioning token's scopes, an instance's application and
-- stack. The API checks each one in the transaction that writes it; these guards refuse what it might miss
-- (storage/guards.go). Rows written before the guards that break them (a device put in another team's group,
-- a provisioning token naming another team's group) lose the reference first.
UPDATE devices SET device_group_id = NULL WHERE device_group_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM device_groups g WHERE g.id = devices.device_group_id AND g.team_id = devices.team_id
        AND (devices.application_id IS NULL OR g.application_id = devices.application_id));
--bun:split
UPDATE devices SET application_id = NULL WHERE EXISTS (
    SELECT 1 FROM applications a WHERE a.id = devices.application_id AND a.team_id <> devices.team_id);
--bun:split
UPDATE devices SET instance_id = NULL WHERE EXISTS (
    SELECT 1 FROM instances i WHERE i.id = devices.instance_id AND i.team_id <> devices.team_id);
--bun:split
UPDATE devices SET target_snapshot_id = NULL WHERE EXISTS (
    SELECT 1 FROM snapshots s WHERE s.id = devices.target_snapshot_id
        AND (s.team_id <> devices.team_id OR s.application_id <> COALESCE(devices.application_id, s.application_id)));
--bun:split
UPDATE devices SET active_snapshot_id = NULL WHERE EXISTS (
    SELECT 1 FROM snapshots s WHERE s.id = devices.active_snapshot_id AND s.team_id <> devices.team_id);
--bun:split
UPDATE device_groups SET target_snapshot_id = NULL WHERE EXISTS (
    SELECT 1 FROM snapshots s WHERE s.id = device_groups.target_snapshot_id AND s.application_id <> device_groups.application_id);
--bun:split
DELETE FROM device_snapshots WHERE EXISTS (
    SELECT 1 FROM snapshots s, devices d WHERE s.id = device_snapshots.snapshot_id AND d.id = device_snapshots.device_id AND s.team_id <> d.team_id);
--bun:split
DELETE FROM tokens WHERE kind = 'provisioning' AND EXISTS (
    SELECT 1 FROM {{.JSONStrings "tokens.scopes"}} sc WHERE
        EXISTS (SELECT 1 FROM applications a WHERE sc.value = 'application:' || a.id AND a.team_id <> tokens.team_id)
        OR EXISTS (SELECT 1 FROM instances i WHERE sc.value = 'instance:' || i.id AND i.team_id <> tokens.team_id)
        OR sc.value LIKE 'deviceGroup:%' AND NOT EXISTS (
            SELECT 1 FROM device_groups g WHERE sc.value = 'deviceGroup:' || g.id AND g.team_id = tokens.team_id));
--bun:split
-- A device imports the flows it brings at provisioning once: the time it did.
ALTER TABLE devices ADD COLUMN flows_imported_at TIMESTAMPTZ;
--bun:split
{{.Guard "devices_refs" "devices" "team_id, application_id, instance_id, device_group_id, target_snapshot_id, active_snapshot_id" `
    (NEW.application_id IS NULL OR NEW.instance_id IS NULL)
    AND NOT EXISTS (SELECT 1 FROM applications a WHERE a.id = NEW.application_id AND a.team_id <> NEW.team_id)
    AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = NEW.instance_id AND i.team_id <> NEW.team_id)
    AND (NEW.device_group_id IS NULL OR EXISTS (SELECT 1 FROM device_groups g WHERE g.id = NEW.device_group_id
        AND g.team_id = NEW.team_id AND (NEW.application_id IS NULL OR g.application_id = NEW.application_id)))
    AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.id = NEW.target_snapshot_id
        AND (s.team_id <> NEW.team_id OR s.application_id <> COALESCE(NEW.application_id, s.application_id)))
    AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.id = NEW.active_snapshot_id AND s.team_id <> NEW.team_id)`}}
--bun:split
-- devices.device_group_id has no foreign key (SQLite cannot add one to a table): its ON DELETE SET NULL.
{{.AfterDelete "device_groups_release_devices" "device_groups" "UPDATE devices SET device_group_id = NULL WHERE device_group_id = OLD.id"}}
--bun:split
{{.Guard "device_groups_refs" "device_groups" "team_id, application_id, target_snapshot_id" `
    NOT EXISTS (SELECT 1 FROM applications a WHERE a.id = NEW.application_id AND a.team_id <> NEW.team_id)
    AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.id = NEW.target_snapshot_id AND s.application_id <> NEW.application_id)`}}
--bun:split
{{.Guard "instances_refs" "instances" "team_id, application_id, instance_type_id, stack_id" `
    NOT EXISTS (SELECT 1 FROM applications a WHERE a.id = NEW.application_id AND a.team_id <> NEW.team_id)
    AND NOT EXISTS (SELECT 1 FROM stacks s WHERE s.id = NEW.stack_id
        AND s.instance_type_id IS NOT NULL AND s.instance_type_id <> NEW.instance_type_id)`}}
--bun:split
{{.Guard "snapshots_refs" "snapshots" "team_id, application_id, instance_id" `
    NOT EXISTS (SELECT 1 FROM applications a WHERE a.id = NEW.application_id AND a.team_id <> NEW.team_id)
    AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = NEW.instance_id AND i.application_id <> NEW.application_id)`}}
--bun:split
{{.Guard "device_snapshots_refs" "device_snapshots" "snapshot_id, device_id" `
    NOT EXISTS (SELECT 1 FROM snapshots s, devices d WHERE s.id = NEW.snapshot_id AND d.id = NEW.device_id AND s.team_id <> d.team_id)`}}
--bun:split
{{.Guard "snapshot_schedules_refs" "snapshot_schedules" "instance_id, team_id" `
    NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = NEW.instance_id AND i.team_id <> NEW.team_id)`}}
--bun:split
{{.Guard "rollouts_refs" "rollouts" "group_id, team_id, application_id, snapshot_id, previous_snapshot_id" `
    NOT EXISTS (SELECT 1 FROM device_groups g WHERE g.id = NEW.group_id
        AND (g.team_id <> NEW.team_id OR g.application_id <> NEW.application_id))
    AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.id IN (NEW.snapshot_id, NEW.previous_snapshot_id)
        AND s.application_id <> NEW.application_id)`}}
--bun:split
{{.Guard "rollout_devices_refs" "rollout_devices" "rollout_id, device_id" `
    NOT EXISTS (SELECT 1 FROM rollouts r, devices d WHERE r.id = NEW.rollout_id AND d.id = NEW.device_id AND d.team_id <> r.team_id)`}}
--bun:split
{{.Guard "pipelines_refs" "pipelines" "team_id, application_id" `
    NOT EXISTS (SELECT 1 FROM applications a WHERE a.id = NEW.application_id AND a.team_id <> NEW.team_id)`}}
--bun:split
{{.Guard "pipeline_stages_refs" "pipeline_stages" "pipeline_id, targets" (printf `
    NOT EXISTS (SELECT 1 FROM pipelines p, %s t WHERE p.id = NEW.pipeline_id AND (
        t.kind = 'instance' AND EXISTS (SELECT 1 FROM instances i WHERE i.id = t.id AND i.application_id <> p.application_id)
        OR t.kind = 'device_group' AND EXISTS (SELECT 1 FROM device_groups g WHERE g.id = t.id AND g.application_id <> p.application_id)
        OR t.kind = 'device' AND EXISTS (SELECT 1 FROM devices d WHERE d.id = t.id AND d.team_id <> p.team_id)))` (.JSONFields "NEW.targets" "kind" "id"))}}
--bun:split
{{.Guard "promotions_refs" "promotions" "pipeline_id, team_id, source_stage_id, target_stage_id, snapshot_id" `
    NOT EXISTS (SELECT 1 FROM pipelines p WHERE p.id = NEW.pipeline_id AND p.team_id <> NEW.team_id)
    AND NOT EXISTS (SELECT 1 FROM pipeline_stages st WHERE st.id IN (NEW.source_stage_id, NEW.target_stage_id) AND st.pipeline_id <> NEW.pipeline_id)
    AND NOT EXISTS (SELECT 1 FROM snapshots s, pipelines p WHERE s.id = NEW.snapshot_id AND p.id = NEW.pipeline_id
        AND s.application_id <> p.application_id)`}}
--bun:split
{{.Guard "provisioning_tokens_refs" "tokens" "kind, team_id, scopes" (printf `
    NEW.kind <> 'provisioning' OR NOT EXISTS (SELECT 1 FROM %s sc WHERE
        sc.value LIKE 'application:%%' AND NOT EXISTS (SELECT 1 FROM applications a WHERE a.id = substr(sc.value, 13) AND a.team_id = NEW.team_id)
        OR sc.value LIKE 'instance:%%' AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = substr(sc.value, 10) AND i.team_id = NEW.team_id)
        OR sc.value LIKE 'deviceGroup:%%' AND NOT EXISTS (SELECT 1 FROM device_groups g WHERE g.id = substr(sc.value, 13) AND g.team_id = NEW.team_id))` (.JSONStrings "NEW.scopes"))}}
