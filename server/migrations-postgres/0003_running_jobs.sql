-- Jobs in flight, so a restart can report the ones it interrupted. No personal data: ids of the
-- job and product, the printer model, when it started.
CREATE TABLE running_jobs (
    job_id       TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    product_id   TEXT NOT NULL,
    device_model TEXT NOT NULL,
    started_ms   BIGINT NOT NULL
);
