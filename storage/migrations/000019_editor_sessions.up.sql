-- Each instance's editor is served on an origin of its own, where the platform's session cookie never goes. A
-- signed-in browser gets there with a single-use code the platform issues (kind 'code', a minute), which the
-- editor origin exchanges for a session of its own (kind 'session'), valid for that one instance. Both are
-- stored only as digests, and both belong to the platform session that asked for them: signing out (or any
-- other end of that session, a password change, the user's deletion) ends them. access is what the caller's
-- role gave: 'edit' (members and up) or 'view' (viewers); it is checked again on every use.
CREATE TABLE editor_grants (
    token_hash   TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    instance_id  TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    session_hash TEXT NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    access       TEXT NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX editor_grants_session_hash ON editor_grants (session_hash);
--bun:split
CREATE INDEX editor_grants_instance_id ON editor_grants (instance_id);
--bun:split
CREATE INDEX editor_grants_expires_at ON editor_grants (expires_at);
