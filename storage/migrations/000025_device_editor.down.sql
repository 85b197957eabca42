CREATE TABLE editor_grants_old (
    token_hash   TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    instance_id  TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    session_hash TEXT NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    access       TEXT NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
--bun:split
INSERT INTO editor_grants_old (token_hash, kind, instance_id, session_hash, access, expires_at, created_at)
SELECT token_hash, kind, instance_id, session_hash, access, expires_at, created_at FROM editor_grants WHERE instance_id IS NOT NULL;
--bun:split
DROP TABLE editor_grants;
--bun:split
ALTER TABLE editor_grants_old RENAME TO editor_grants;
--bun:split
CREATE INDEX editor_grants_session_hash ON editor_grants (session_hash);
--bun:split
CREATE INDEX editor_grants_instance_id ON editor_grants (instance_id);
--bun:split
CREATE INDEX editor_grants_expires_at ON editor_grants (expires_at);
--bun:split
ALTER TABLE devices DROP COLUMN editor_tunnel_addr;
--bun:split
ALTER TABLE devices DROP COLUMN editor_tunnel_id;
--bun:split
ALTER TABLE devices DROP COLUMN editor_token_hash;
