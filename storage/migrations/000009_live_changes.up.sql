-- Live events: each API replica polls the rows of a watched team changed since a cursor (issue 10). A device's
-- changed_at moves on every change a dashboard shows (state, connection, versions, snapshots, group), but not on
-- a check-in that only moves last_seen_at, so a large fleet's heartbeats do not flood the stream; updated_at keeps
-- its meaning (the device's own settings changed).
ALTER TABLE devices ADD COLUMN changed_at TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01 00:00:00+00:00';
--bun:split
UPDATE devices SET changed_at = updated_at;
--bun:split
CREATE INDEX instances_team_changes ON instances (team_id, updated_at);
--bun:split
CREATE INDEX operations_team_changes ON operations (team_id, updated_at);
--bun:split
CREATE INDEX devices_team_changes ON devices (team_id, changed_at);
--bun:split
CREATE INDEX rollouts_team_changes ON rollouts (team_id, updated_at);
