{{.DropAfterDelete "snapshots_release_device_targets" "snapshots"}}
--bun:split
{{.DropGuard "instances_device_target_refs" "instances"}}
--bun:split
ALTER TABLE instances DROP COLUMN device_target_snapshot_id;
--bun:split
ALTER TABLE device_groups DROP COLUMN fleet_settings;
--bun:split
ALTER TABLE devices DROP COLUMN fleet_settings;
