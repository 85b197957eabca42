-- Team owners may move their team only onto self-service team types; the others only platform admins assign.
-- New types are not self-service. The type seeded on first start (Starter) is, so that on a platform that already
-- runs, new teams and their owners keep the type they were offered.
ALTER TABLE team_types ADD COLUMN self_service BOOLEAN NOT NULL DEFAULT FALSE;
--bun:split
UPDATE team_types SET self_service = TRUE WHERE name = 'Starter';
