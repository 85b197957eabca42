-- A device in developer mode serves its Node-RED editor through a tunnel the agent opens to the platform (a
-- websocket, docs/device-protocol.md §3.6). editor_token_hash is the digest of the token the platform handed the
-- agent with `startEditor` ('' = no editor enabled); editor_tunnel_id names the tunnel connection that is open now
-- and editor_tunnel_addr the internal address of the API replica holding it, where the other replicas forward
-- the editor's traffic ('' = no tunnel open).
ALTER TABLE devices ADD COLUMN editor_token_hash TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE devices ADD COLUMN editor_tunnel_id TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE devices ADD COLUMN editor_tunnel_addr TEXT NOT NULL DEFAULT '';
--bun:split
-- Editor grants (codes and sessions of an editor origin) are for an instance or a device: exactly one of the two.
-- SQLite cannot drop a NOT NULL, so the table is built anew on both databases.
CREATE TABLE editor_grants_new (
    token_hash   TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    instance_id  TEXT REFERENCES instances (id) ON DELETE CASCADE,
    device_id    TEXT REFERENCES devices (id) ON DELETE CASCADE,
    session_hash TEXT NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    access       TEXT NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    CHECK ((instance_id IS NULL) <> (device_id IS NULL))
);
--bun:split
INSERT INTO editor_grants_new (token_hash, kind, instance_id, session_hash, access, expires_at, created_at)
SELECT token_hash, kind, instance_id, session_hash, access, expires_at, created_at FROM editor_grants;
--bun:split
DROP TABLE editor_grants;
--bun:split
ALTER TABLE editor_grants_new RENAME TO editor_grants;
--bun:split
CREATE INDEX editor_grants_session_hash ON editor_grants (session_hash);
--bun:split
CREATE INDEX editor_grants_instance_id ON editor_grants (instance_id);
--bun:split
CREATE INDEX editor_grants_device_id ON editor_grants (device_id);
--bun:split
CREATE INDEX editor_grants_expires_at ON editor_grants (expires_at);
