-- Device groups and fleet rollouts. A rollout's per-device progress lives here (the source of truth); the
-- rollout workflow keeps only counters.
CREATE TABLE device_groups (
    id                 TEXT PRIMARY KEY,
    application_id     TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    team_id            TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    target_snapshot_id TEXT REFERENCES snapshots (id) ON DELETE SET NULL,
    env                TEXT NOT NULL DEFAULT '[]',
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE UNIQUE INDEX device_groups_application_name ON device_groups (application_id, name);
--bun:split
CREATE INDEX devices_group ON devices (device_group_id, id);
--bun:split
CREATE TABLE rollouts (
    id                   TEXT PRIMARY KEY,
    group_id             TEXT NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    team_id              TEXT NOT NULL,
    application_id       TEXT NOT NULL,
    snapshot_id          TEXT NOT NULL,
    previous_snapshot_id TEXT,
    strategy             TEXT NOT NULL DEFAULT '{}',
    status               TEXT NOT NULL,
    wave                 BIGINT NOT NULL DEFAULT 0,
    waves                BIGINT NOT NULL DEFAULT 0,
    total                BIGINT NOT NULL DEFAULT 0,
    updated              BIGINT NOT NULL DEFAULT 0,
    failed               BIGINT NOT NULL DEFAULT 0,
    pending              BIGINT NOT NULL DEFAULT 0,
    rolled_back          BIGINT NOT NULL DEFAULT 0,
    reason               TEXT NOT NULL DEFAULT '',
    operation_id         TEXT,
    created_by           TEXT,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    finished_at          TIMESTAMPTZ
);
--bun:split
CREATE UNIQUE INDEX rollouts_one_active_per_group ON rollouts (group_id) WHERE status IN ('running', 'paused', 'awaiting_approval', 'rolling_back');
--bun:split
CREATE TABLE rollout_devices (
    rollout_id           TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    device_id            TEXT NOT NULL,
    wave                 BIGINT NOT NULL,
    status               TEXT NOT NULL,
    previous_snapshot_id TEXT,
    error                TEXT NOT NULL DEFAULT '',
    dispatched_at        TIMESTAMPTZ,
    PRIMARY KEY (rollout_id, device_id)
);
--bun:split
CREATE INDEX rollout_devices_wave ON rollout_devices (rollout_id, wave, status);
