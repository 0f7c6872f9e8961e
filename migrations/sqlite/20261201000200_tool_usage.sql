-- Per key, per tool, per hour: what each key called, how it ended and how
-- long it took (issue 13). Written by every replica's usage flusher, which
-- adds to a row (ON CONFLICT DO UPDATE), so replicas share the rows. Kept
-- --usage-retention-days (default 90), pruned by the flusher.
--
-- hour: the hour's start in seconds since the Unix epoch (UTC).
-- calls: calls that ran (errors included); denied: calls refused (scope,
-- rate limit, quota, address), not in calls. total_micros: the summed
-- durations of the calls that ran. b00..b17: the latency histogram, calls
-- per bucket with upper bounds (ms) 0.1 0.2 0.5 1 2 5 10 20 50 100 200
-- 500 1000 2000 5000 10000 30000 (b00..b16), and b17 above 30 s.
CREATE TABLE tool_usage (
    key_id INTEGER NOT NULL,
    tool TEXT NOT NULL CHECK (length(tool) > 0),
    hour INTEGER NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0 CHECK (calls >= 0),
    errors INTEGER NOT NULL DEFAULT 0 CHECK (errors >= 0),
    denied INTEGER NOT NULL DEFAULT 0 CHECK (denied >= 0),
    total_micros INTEGER NOT NULL DEFAULT 0 CHECK (total_micros >= 0),
    b00 INTEGER NOT NULL DEFAULT 0,
    b01 INTEGER NOT NULL DEFAULT 0,
    b02 INTEGER NOT NULL DEFAULT 0,
    b03 INTEGER NOT NULL DEFAULT 0,
    b04 INTEGER NOT NULL DEFAULT 0,
    b05 INTEGER NOT NULL DEFAULT 0,
    b06 INTEGER NOT NULL DEFAULT 0,
    b07 INTEGER NOT NULL DEFAULT 0,
    b08 INTEGER NOT NULL DEFAULT 0,
    b09 INTEGER NOT NULL DEFAULT 0,
    b10 INTEGER NOT NULL DEFAULT 0,
    b11 INTEGER NOT NULL DEFAULT 0,
    b12 INTEGER NOT NULL DEFAULT 0,
    b13 INTEGER NOT NULL DEFAULT 0,
    b14 INTEGER NOT NULL DEFAULT 0,
    b15 INTEGER NOT NULL DEFAULT 0,
    b16 INTEGER NOT NULL DEFAULT 0,
    b17 INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT fm_tool_usage_pk PRIMARY KEY (key_id, tool, hour)
);
-- Pruning by age, and reports from a date on.
CREATE INDEX fm_tool_usage_hour ON tool_usage (hour);
