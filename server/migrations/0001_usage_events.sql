-- Usage events: non-personal facts kept for reporting. No column may hold a user, session,
-- device-user or free text: kinds and outcomes are fixed names, product ids come from the catalog,
-- device models from the device registry.
CREATE TABLE usage_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL,
    occurred_at_ms INTEGER NOT NULL,
    product_id     TEXT,
    device_model   TEXT,
    outcome        TEXT,
    pages          INTEGER,
    duration_ms    INTEGER
);

CREATE INDEX usage_events_by_time ON usage_events (occurred_at_ms);
CREATE INDEX usage_events_by_kind_time ON usage_events (kind, occurred_at_ms);
