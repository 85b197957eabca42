-- DevOps pipelines: ordered stages of an application, each with one or more targets, and the promotions that
-- move a snapshot from one stage to the next. A stage's history is its succeeded promotions.
CREATE TABLE pipelines (
    id             TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    team_id        TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE UNIQUE INDEX pipelines_application_name ON pipelines (application_id, name);
--bun:split
CREATE TABLE pipeline_stages (
    id                   TEXT PRIMARY KEY,
    pipeline_id          TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    position             BIGINT NOT NULL,
    name                 TEXT NOT NULL,
    action               TEXT NOT NULL,
    targets              TEXT NOT NULL DEFAULT '[]',
    deploy_to_devices    BOOLEAN NOT NULL DEFAULT FALSE,
    requires_approval    BOOLEAN NOT NULL DEFAULT FALSE,
    approver_role        TEXT NOT NULL DEFAULT 'owner',
    forbid_self_approval BOOLEAN NOT NULL DEFAULT FALSE,
    protected            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX pipeline_stages_order ON pipeline_stages (pipeline_id, position);
--bun:split
CREATE TABLE promotions (
    id              TEXT PRIMARY KEY,
    pipeline_id     TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    team_id         TEXT NOT NULL,
    source_stage_id TEXT NOT NULL,
    target_stage_id TEXT NOT NULL,
    snapshot_id     TEXT,
    status          TEXT NOT NULL,
    requested_by    TEXT,
    decided_by      TEXT,
    scheduled_at    TIMESTAMPTZ,
    results         TEXT NOT NULL DEFAULT '[]',
    reason          TEXT NOT NULL DEFAULT '',
    operation_id    TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ
);
--bun:split
CREATE INDEX promotions_target_stage ON promotions (target_stage_id, status, finished_at);
--bun:split
CREATE INDEX promotions_pipeline ON promotions (pipeline_id, id);
