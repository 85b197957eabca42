{{.DropGuard "provisioning_tokens_refs" "tokens"}}
--bun:split
{{.DropGuard "promotions_refs" "promotions"}}
--bun:split
{{.DropGuard "pipeline_stages_refs" "pipeline_stages"}}
--bun:split
{{.DropGuard "pipelines_refs" "pipelines"}}
--bun:split
{{.DropGuard "rollout_devices_refs" "rollout_devices"}}
--bun:split
{{.DropGuard "rollouts_refs" "rollouts"}}
--bun:split
{{.DropGuard "snapshot_schedules_refs" "snapshot_schedules"}}
--bun:split
{{.DropGuard "device_snapshots_refs" "device_snapshots"}}
--bun:split
{{.DropGuard "snapshots_refs" "snapshots"}}
--bun:split
{{.DropGuard "instances_refs" "instances"}}
--bun:split
{{.DropGuard "device_groups_refs" "device_groups"}}
--bun:split
{{.DropAfterDelete "device_groups_release_devices" "device_groups"}}
--bun:split
{{.DropGuard "devices_refs" "devices"}}
--bun:split
ALTER TABLE devices DROP COLUMN flows_imported_at;
