-- SQLite has no NOTIFY, and the CLI that revokes keys is another process.
-- Every change a verification cache cares about bumps one counter; each
-- server polls it and drops its cache when it moves. Updates of
-- last_used_at alone (the usage flush) do not bump it.
CREATE TABLE IF NOT EXISTS api_key_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);

INSERT OR IGNORE INTO api_key_changes (id, generation) VALUES (1, 0);

CREATE TRIGGER IF NOT EXISTS api_keys_changed_update
    AFTER UPDATE OF user_id, api_key_hash, api_key_prefix, is_active, scopes, expires_at,
        revoked_at ON api_keys
    BEGIN UPDATE api_key_changes SET generation = generation + 1 WHERE id = 1; END;

CREATE TRIGGER IF NOT EXISTS api_keys_changed_delete
    AFTER DELETE ON api_keys
    BEGIN UPDATE api_key_changes SET generation = generation + 1 WHERE id = 1; END;
