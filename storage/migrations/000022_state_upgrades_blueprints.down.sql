DROP TABLE stack_move_instances;
--bun:split
DROP TABLE stack_moves;
--bun:split
DROP TABLE blueprint_team_types;
--bun:split
ALTER TABLE snapshots DROP COLUMN context;
--bun:split
ALTER TABLE instance_types DROP COLUMN context_limit_kb;
--bun:split
DROP TABLE instance_context;
