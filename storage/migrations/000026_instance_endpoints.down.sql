DELETE FROM tokens WHERE kind = 'endpoint';
--bun:split
DELETE FROM editor_grants WHERE kind IN ('app_code', 'app_session');
--bun:split
ALTER TABLE instances DROP COLUMN endpoints_protected;
