DROP TABLE operations;
--bun:split
DROP TABLE audit_log;
--bun:split
DROP TABLE blueprints;
--bun:split
DROP TABLE templates;
--bun:split
DROP TABLE stacks;
--bun:split
DROP TABLE instance_types;
--bun:split
DROP TABLE applications;
--bun:split
DROP TABLE memberships;
--bun:split
DROP TABLE teams;
--bun:split
DROP TABLE team_types;
--bun:split
DROP TABLE tokens;
--bun:split
DROP TABLE sessions;
--bun:split
DROP TABLE users;
