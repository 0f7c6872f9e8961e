-- The web console (issue 12): sessions and one-time invitations. Tokens are
-- stored only as their SHA-256. Times are Unix seconds, so that the same
-- SQL compares them on both backends.
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash TEXT PRIMARY KEY,
    key_id INTEGER NOT NULL,
    key_hash TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS idx_console_sessions_created ON console_sessions(created_at);

CREATE TABLE IF NOT EXISTS console_invites (
    invite_id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    scopes TEXT NOT NULL,
    invited_by_key_id INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    claimed_at BIGINT,
    claimed_key_id INTEGER
);
