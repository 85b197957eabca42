-- Devices: Node-RED running outside the platform under an agent that speaks the FlowFuse device protocol.
-- A device belongs to a team and to at most one of an application or an instance. Its credential secret is
-- sealed with the platform's master key; its tokens (device token, broker password) live in tokens as hashes.
CREATE TABLE devices (
    id                 TEXT PRIMARY KEY,
    team_id            TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    application_id     TEXT REFERENCES applications (id) ON DELETE SET NULL,
    instance_id        TEXT REFERENCES instances (id) ON DELETE SET NULL,
    device_group_id    TEXT,
    name               TEXT NOT NULL,
    type               TEXT NOT NULL DEFAULT '',
    credential_secret  TEXT NOT NULL,
    mode               TEXT NOT NULL DEFAULT 'autonomous',
    env                TEXT NOT NULL DEFAULT '[]',
    settings_hash      TEXT NOT NULL,
    target_snapshot_id TEXT REFERENCES snapshots (id) ON DELETE SET NULL,
    active_snapshot_id TEXT REFERENCES snapshots (id) ON DELETE SET NULL,
    state              TEXT NOT NULL DEFAULT '',
    state_detail       TEXT NOT NULL DEFAULT '',
    agent_version      TEXT NOT NULL DEFAULT '',
    node_red_version   TEXT NOT NULL DEFAULT '',
    nodejs_version     TEXT NOT NULL DEFAULT '',
    last_seen_at       TIMESTAMPTZ,
    connected          BOOLEAN NOT NULL DEFAULT FALSE,
    disconnected_at    TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX devices_team ON devices (team_id, id);
--bun:split
CREATE INDEX devices_application ON devices (application_id, id);
--bun:split
CREATE INDEX devices_instance ON devices (instance_id, id);
--bun:split
-- Which snapshots were pulled from a device (developer mode). The snapshot itself stays an application's
-- snapshot (instance_id NULL) when the device goes away.
CREATE TABLE device_snapshots (
    snapshot_id TEXT PRIMARY KEY REFERENCES snapshots (id) ON DELETE CASCADE,
    device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE
);
--bun:split
CREATE INDEX device_snapshots_device ON device_snapshots (device_id, snapshot_id);
