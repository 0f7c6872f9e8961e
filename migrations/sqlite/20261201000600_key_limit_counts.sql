-- Issue 13: what every replica admitted per key and month, so a key's rate
-- limit and monthly quota hold across replicas. Each replica adds its own
-- counts every sync interval (INSERT … ON CONFLICT DO UPDATE … RETURNING)
-- and reads the total back; no row is written per request. `month` is
-- yyyymm (UTC); months before the previous one are deleted by the sync.
-- `minute` (minutes since the epoch, the latest a replica wrote) with the
-- calls of that minute and of the one before lets a replica that meets a
-- key (start, restart) take the others' recent calls from its new bucket.
-- Not tenant data: keyed by key id only (no foreign key, so counts never
-- block deleting a key).
CREATE TABLE key_limit_counts (
    key_id BIGINT NOT NULL,
    month INTEGER NOT NULL CHECK (month BETWEEN 190001 AND 999912),
    calls BIGINT NOT NULL DEFAULT 0 CHECK (calls >= 0),
    units BIGINT NOT NULL DEFAULT 0 CHECK (units >= 0),
    minute BIGINT NOT NULL DEFAULT 0,
    minute_calls BIGINT NOT NULL DEFAULT 0 CHECK (minute_calls >= 0),
    prev_minute_calls BIGINT NOT NULL DEFAULT 0 CHECK (prev_minute_calls >= 0),
    CONSTRAINT fm_key_limit_counts_pk PRIMARY KEY (key_id, month)
);
