-- Which key replaced a key retired by rotation, so that the old key is
-- refused as "replaced by rotation (key N)" rather than "expired". A table
-- of our own, not a column of api_keys: the predecessor's server shares
-- that table and needs nothing new in it. One row per retired key (a key
-- rotated again during its grace names its latest successor); the time it
-- stopped working is the key's own expires_at.
CREATE TABLE IF NOT EXISTS api_key_successors (
    key_id INTEGER PRIMARY KEY,
    successor_key_id INTEGER NOT NULL
);
