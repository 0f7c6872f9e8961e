-- The same columns and meanings as the predecessor's Postgres table, plus
-- what this server adds. Timestamps are RFC 3339 text in UTC.
CREATE TABLE IF NOT EXISTS api_keys (
    key_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT,
    api_key_hash TEXT NOT NULL UNIQUE,
    api_key_prefix TEXT NOT NULL,
    created_at TEXT,
    last_used_at TEXT,
    is_active BOOLEAN DEFAULT 1,
    scopes TEXT,
    expires_at TEXT,
    revoked_at TEXT,
    created_by TEXT
);

CREATE INDEX IF NOT EXISTS idx_api_keys_user ON api_keys(user_id);
CREATE INDEX IF NOT EXISTS idx_api_keys_email_lower ON api_keys(lower(trim(email)));

CREATE TABLE IF NOT EXISTS api_key_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    event TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT,
    at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS idx_api_key_events_key ON api_key_events(key_id);

CREATE TRIGGER IF NOT EXISTS api_key_events_no_update
    BEFORE UPDATE ON api_key_events
    BEGIN SELECT RAISE(ABORT, 'api_key_events is append-only'); END;

CREATE TRIGGER IF NOT EXISTS api_key_events_no_delete
    BEFORE DELETE ON api_key_events
    BEGIN SELECT RAISE(ABORT, 'api_key_events is append-only'); END;
