-- Per-key limits (issue 13), on the key's own row: read in the same query as
-- the key. NULL is no limit.
--   rate_limit_per_minute: tool calls in any minute (1 to 4294967295)
--   monthly_quota: tool-call units per calendar month, UTC
--   allowed_ips: comma-separated networks in canonical form
--                (10.0.0.0/8,192.0.2.7/32)
ALTER TABLE api_keys ADD COLUMN rate_limit_per_minute INTEGER
    CHECK (rate_limit_per_minute > 0 AND rate_limit_per_minute <= 4294967295);
ALTER TABLE api_keys ADD COLUMN monthly_quota INTEGER CHECK (monthly_quota > 0);
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT CHECK (allowed_ips <> '');

-- A change of limits is a change the verification caches must see (see
-- …03_key_notify): it bumps the same counter.
CREATE TRIGGER IF NOT EXISTS api_keys_changed_limits
    AFTER UPDATE OF rate_limit_per_minute, monthly_quota, allowed_ips ON api_keys
    BEGIN UPDATE api_key_changes SET generation = generation + 1 WHERE id = 1; END;
