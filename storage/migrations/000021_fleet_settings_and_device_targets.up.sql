-- Fleet settings a device's agent applies (docs/device-protocol.md §2.4): the Node-RED version it installs, its
-- palette's npm configuration and catalogues, and its local editor login; a group's, then a device's own, the
-- device's winning field by field. A JSON object; the .npmrc in it is sealed with the platform key (it may hold a
-- registry token) and the local login's password is a bcrypt hash.
ALTER TABLE devices ADD COLUMN fleet_settings TEXT NOT NULL DEFAULT '{}';
--bun:split
ALTER TABLE device_groups ADD COLUMN fleet_settings TEXT NOT NULL DEFAULT '{}';
--bun:split
-- An instance's device target: a snapshot of that instance which every device assigned to the instance runs, and
-- which a device assigned later takes.
ALTER TABLE instances ADD COLUMN device_target_snapshot_id TEXT;
--bun:split
{{.Guard "instances_device_target_refs" "instances" "device_target_snapshot_id" `
    NEW.device_target_snapshot_id IS NULL OR EXISTS (SELECT 1 FROM snapshots s
        WHERE s.id = NEW.device_target_snapshot_id AND s.instance_id = NEW.id AND s.team_id = NEW.team_id)`}}
--bun:split
-- instances.device_target_snapshot_id has no foreign key (SQLite could not drop the column again): its ON DELETE SET NULL.
{{.AfterDelete "snapshots_release_device_targets" "snapshots" "UPDATE instances SET device_target_snapshot_id = NULL WHERE device_target_snapshot_id = OLD.id"}}
