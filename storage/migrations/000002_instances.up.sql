-- Hosted Node-RED instances and the data their storage plugin keeps in the platform.
CREATE TABLE instances (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    application_id     TEXT NOT NULL REFERENCES applications (id),
    team_id            TEXT NOT NULL REFERENCES teams (id),
    instance_type_id   TEXT NOT NULL REFERENCES instance_types (id),
    stack_id           TEXT NOT NULL REFERENCES stacks (id),
    template_id        TEXT NOT NULL REFERENCES templates (id),
    blueprint_id       TEXT REFERENCES blueprints (id),
    state              TEXT NOT NULL,
    state_reason       TEXT NOT NULL DEFAULT '',
    desired_state      TEXT NOT NULL,
    settings           TEXT NOT NULL DEFAULT '{}',
    env                TEXT NOT NULL DEFAULT '[]',
    modules            TEXT NOT NULL DEFAULT '{}',
    credential_secret  TEXT NOT NULL,
    admin_token        TEXT NOT NULL,
    read_token         TEXT NOT NULL,
    runtime_token      TEXT NOT NULL,
    runtime_url        TEXT NOT NULL DEFAULT '',
    crash_count        BIGINT NOT NULL DEFAULT 0,
    last_crash_at      TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX instances_application ON instances (application_id, id);
--bun:split
CREATE INDEX instances_team ON instances (team_id);
--bun:split
CREATE TABLE instance_storage (
    instance_id TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (instance_id, kind)
);
--bun:split
CREATE TABLE instance_library (
    instance_id TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    type        TEXT NOT NULL,
    name        TEXT NOT NULL,
    meta        TEXT NOT NULL DEFAULT '{}',
    body        TEXT NOT NULL DEFAULT '',
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (instance_id, type, name)
);
