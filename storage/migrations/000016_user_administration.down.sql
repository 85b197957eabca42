DROP TABLE email_verifications;
--bun:split
ALTER TABLE users DROP COLUMN email_unverified;
--bun:split
ALTER TABLE users DROP COLUMN suspended_at;
--bun:split
DROP TABLE platform_settings;
