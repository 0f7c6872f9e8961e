-- Row triggers do not see TRUNCATE; without this the audit trail could be
-- emptied in one statement.
DROP TRIGGER IF EXISTS api_key_events_no_truncate ON api_key_events;
CREATE TRIGGER api_key_events_no_truncate
    BEFORE TRUNCATE ON api_key_events
    FOR EACH STATEMENT EXECUTE FUNCTION api_key_events_append_only();
