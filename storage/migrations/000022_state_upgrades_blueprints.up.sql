-- Persistent context: the values a flow keeps in the "persistent" context store, one JSON object per context
-- scope ("global", a flow's ID, "<node>:<flow>"), written by the instance's context plugin through the runtime
-- API. size_bytes is the body's length, so an instance's total is one SUM against its instance type's limit.
CREATE TABLE instance_context (
    instance_id TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    body        TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (instance_id, scope)
);
--bun:split
-- How much persistent context an instance of the type may keep, in KiB (0: none).
ALTER TABLE instance_types ADD COLUMN context_limit_kb BIGINT NOT NULL DEFAULT 1024;
--bun:split
-- A snapshot's persistent context, only when its taker asked for it; NULL: not captured (a rollback to it
-- leaves the instance's context alone).
ALTER TABLE snapshots ADD COLUMN context TEXT;
--bun:split
-- The team types a blueprint is offered to; a blueprint without rows is offered to every team type.
CREATE TABLE blueprint_team_types (
    blueprint_id TEXT NOT NULL REFERENCES blueprints (id) ON DELETE CASCADE,
    team_type_id TEXT NOT NULL REFERENCES team_types (id),
    PRIMARY KEY (blueprint_id, team_type_id)
);
--bun:split
CREATE INDEX blueprint_team_types_team_type ON blueprint_team_types (team_type_id);
--bun:split
-- Moves of every instance of one stack to another, in waves; each instance's part is a row of
-- stack_move_instances (the source of truth), the workflow keeps counters.
CREATE TABLE stack_moves (
    id            TEXT PRIMARY KEY,
    from_stack_id TEXT NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    to_stack_id   TEXT NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    strategy      TEXT NOT NULL DEFAULT '{}',
    status        TEXT NOT NULL,
    wave          BIGINT NOT NULL DEFAULT 0,
    waves         BIGINT NOT NULL DEFAULT 0,
    total         BIGINT NOT NULL DEFAULT 0,
    moved         BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    skipped       BIGINT NOT NULL DEFAULT 0,
    pending       BIGINT NOT NULL DEFAULT 0,
    reason        TEXT NOT NULL DEFAULT '',
    operation_id  TEXT,
    created_by    TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ
);
--bun:split
CREATE UNIQUE INDEX stack_moves_one_running_per_stack ON stack_moves (from_stack_id) WHERE status = 'running';
--bun:split
-- instance_id has no foreign key: an instance deleted during a move keeps its row (skipped).
CREATE TABLE stack_move_instances (
    move_id      TEXT NOT NULL REFERENCES stack_moves (id) ON DELETE CASCADE,
    instance_id  TEXT NOT NULL,
    wave         BIGINT NOT NULL,
    status       TEXT NOT NULL,
    operation_id TEXT,
    error        TEXT NOT NULL DEFAULT '',
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (move_id, instance_id)
);
--bun:split
CREATE INDEX stack_move_instances_wave ON stack_move_instances (move_id, wave, status);
