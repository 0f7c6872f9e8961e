-- Per-key limits (issue 13), on the key's own row: read in the same query as
-- the key, and a change of them fires the key's change notification (the
-- trigger of …03_key_notify compares whole rows), so every replica reloads
-- the key within the watch's bound. NULL is no limit. Nullable columns
-- without defaults: the predecessor's server, which shares this table,
-- neither reads nor writes them.
--   rate_limit_per_minute: tool calls in any minute (1 to 4294967295)
--   monthly_quota: tool-call units per calendar month, UTC
--   allowed_ips: comma-separated networks in canonical form
--                (10.0.0.0/8,192.0.2.7/32)
ALTER TABLE api_keys
    ADD COLUMN IF NOT EXISTS rate_limit_per_minute BIGINT
        CONSTRAINT api_keys_rate_limit_positive
        CHECK (rate_limit_per_minute > 0 AND rate_limit_per_minute <= 4294967295),
    ADD COLUMN IF NOT EXISTS monthly_quota BIGINT
        CONSTRAINT api_keys_monthly_quota_positive CHECK (monthly_quota > 0),
    ADD COLUMN IF NOT EXISTS allowed_ips TEXT
        CONSTRAINT api_keys_allowed_ips_not_empty CHECK (allowed_ips <> '');
