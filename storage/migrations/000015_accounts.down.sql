DROP TABLE invitations;
--bun:split
DROP TABLE mail_outbox;
