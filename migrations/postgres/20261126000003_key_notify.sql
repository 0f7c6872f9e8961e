-- Every server process caches verified keys; this tells all of them, through
-- NOTIFY, which key changed (revoked, rotated, re-scoped, deleted), so that
-- none keeps serving a stale row. The payload is the row's api_key_hash (the
-- cache's key); NOTIFY is delivered at commit, to listeners only. Updates that
-- touch nothing but last_used_at (the usage flush) stay quiet.
CREATE OR REPLACE FUNCTION api_keys_notify_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (to_jsonb(NEW) - 'last_used_at') = (to_jsonb(OLD) - 'last_used_at') THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('fleetmind_api_keys', OLD.api_key_hash);
    IF TG_OP = 'UPDATE' AND NEW.api_key_hash IS DISTINCT FROM OLD.api_key_hash THEN
        PERFORM pg_notify('fleetmind_api_keys', NEW.api_key_hash);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS api_keys_notify ON api_keys;
CREATE TRIGGER api_keys_notify
    AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify_change();

-- TRUNCATE has no rows to name: '*' means "forget every key".
CREATE OR REPLACE FUNCTION api_keys_notify_truncate() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('fleetmind_api_keys', '*');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS api_keys_notify_truncate ON api_keys;
CREATE TRIGGER api_keys_notify_truncate
    AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION api_keys_notify_truncate();
