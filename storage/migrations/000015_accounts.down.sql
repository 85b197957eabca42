DROP TABLE password_resets;
--bun:split
ALTER TABLE users DROP COLUMN password_change_required;
--bun:split
DROP TABLE invitations;
--bun:split
DROP TABLE mail_outbox;
