-- The predecessor's table, created exactly as its create_api_keys_table() did
-- (minus UNIQUE(user_id), which the next statements remove where it exists).
-- On a database the Python server created, this is a no-op: the table is
-- adopted in place.
CREATE TABLE IF NOT EXISTS api_keys (
    key_id SERIAL PRIMARY KEY,
    user_id VARCHAR(100) NOT NULL,
    email VARCHAR(255) NOT NULL,
    name VARCHAR(255),
    api_key_hash VARCHAR(64) NOT NULL UNIQUE,
    api_key_prefix VARCHAR(20) NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    last_used_at TIMESTAMP,
    is_active BOOLEAN DEFAULT true
);

CREATE INDEX IF NOT EXISTS idx_api_keys_user ON api_keys(user_id);

-- Several keys per user: drop the predecessor's UNIQUE(user_id), whatever its
-- constraint is called.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT con.conname
        FROM pg_constraint con
        WHERE con.conrelid = 'api_keys'::regclass
          AND con.contype = 'u'
          AND con.conkey = ARRAY[(
              SELECT attnum FROM pg_attribute
              WHERE attrelid = 'api_keys'::regclass AND attname = 'user_id'
          )]::int2[]
    LOOP
        EXECUTE format('ALTER TABLE api_keys DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;

-- What this server adds. NULL scopes means the predecessor's five scopes, so
-- adopted rows keep exactly the access they had.
ALTER TABLE api_keys
    ADD COLUMN IF NOT EXISTS scopes TEXT,
    ADD COLUMN IF NOT EXISTS expires_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS revoked_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS created_by TEXT;

CREATE INDEX IF NOT EXISTS idx_api_keys_email_lower ON api_keys (lower(trim(email)));

-- Append-only record of every key event.
CREATE TABLE IF NOT EXISTS api_key_events (
    event_id BIGSERIAL PRIMARY KEY,
    key_id INTEGER NOT NULL,
    user_id VARCHAR(100) NOT NULL,
    event TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT,
    at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_api_key_events_key ON api_key_events(key_id);

-- Append-only: refuse updates and deletes.
CREATE OR REPLACE FUNCTION api_key_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'api_key_events is append-only';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS api_key_events_no_change ON api_key_events;
CREATE TRIGGER api_key_events_no_change
    BEFORE UPDATE OR DELETE ON api_key_events
    FOR EACH ROW EXECUTE FUNCTION api_key_events_append_only();
