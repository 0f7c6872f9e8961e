-- Inserted keys are notified too (the trigger of …03_key_notify covers
-- UPDATE and DELETE only): every server keeps the set of known keys in
-- memory (src/auth/known_keys.rs) and learns of a key issued by another
-- process from this notification, with the same payload (the row's
-- api_key_hash) and at commit, like the others.
CREATE OR REPLACE FUNCTION api_keys_notify_insert() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('fleetmind_api_keys', NEW.api_key_hash);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS api_keys_notify_insert ON api_keys;
CREATE TRIGGER api_keys_notify_insert
    AFTER INSERT ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify_insert();
