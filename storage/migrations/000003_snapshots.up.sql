-- Snapshots: point-in-time copies of an instance (flows, credentials, settings, env, modules). The credentials
-- stay encrypted in Node-RED's format with the secret the instance had at capture time; that secret is kept
-- sealed with the platform's master key, never in plain text. instance_id may be NULL for snapshots that belong
-- to no instance (device snapshots, later).
CREATE TABLE snapshots (
    id                 TEXT PRIMARY KEY,
    instance_id        TEXT REFERENCES instances (id) ON DELETE CASCADE,
    application_id     TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    team_id            TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    auto               BOOLEAN NOT NULL DEFAULT FALSE,
    flows              TEXT NOT NULL,
    credentials        TEXT NOT NULL,
    credential_secret  TEXT NOT NULL,
    settings           TEXT NOT NULL DEFAULT '{}',
    env                TEXT NOT NULL DEFAULT '[]',
    modules            TEXT NOT NULL DEFAULT '{}',
    node_red_version   TEXT NOT NULL DEFAULT '',
    size_bytes         BIGINT NOT NULL DEFAULT 0,
    created_by         TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at         TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX snapshots_instance ON snapshots (instance_id, id);
--bun:split
CREATE INDEX snapshots_application ON snapshots (application_id, id);
