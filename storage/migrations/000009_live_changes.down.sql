DROP INDEX rollouts_team_changes;
--bun:split
DROP INDEX devices_team_changes;
--bun:split
DROP INDEX operations_team_changes;
--bun:split
DROP INDEX instances_team_changes;
--bun:split
ALTER TABLE devices DROP COLUMN changed_at;
