-- Usage events: non-personal facts kept for reporting. No column may hold a user, session,
-- device-user or free text: kinds and outcomes are fixed names, product ids come from the catalog,
-- device models from the device registry. PostgreSQL's twin of migrations/0001: text compares
-- byte by byte (COLLATE "C") so groups come in the order SQLite gives them.
CREATE TABLE usage_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           TEXT COLLATE "C" NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    product_id     TEXT COLLATE "C",
    device_model   TEXT COLLATE "C",
    outcome        TEXT COLLATE "C",
    pages          BIGINT,
    duration_ms    BIGINT
);

CREATE INDEX usage_events_by_time ON usage_events (occurred_at_ms);
CREATE INDEX usage_events_by_kind_time ON usage_events (kind, occurred_at_ms);
