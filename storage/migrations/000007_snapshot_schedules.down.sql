DROP INDEX snapshot_schedules_team;
--bun:split
DROP TABLE snapshot_schedules;
