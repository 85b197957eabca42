-- Automatic snapshots on a user-set schedule, at most one per instance. The Temporal Schedule
-- snapshot-schedule/<instance_id> fires the snapshots; this row is what the API shows and what each scheduled
-- run checks first (a run that finds no row takes nothing). keep_count is the instance's retention of
-- automatic snapshots while the row exists.
CREATE TABLE snapshot_schedules (
    instance_id TEXT PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
    team_id     TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    every       TEXT NOT NULL DEFAULT '',
    cron        TEXT NOT NULL DEFAULT '',
    keep_count  BIGINT NOT NULL,
    created_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX snapshot_schedules_team ON snapshot_schedules (team_id);
