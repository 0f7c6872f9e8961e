-- Saved places (depots, regular customers): per tenant, one place per name
-- whatever its case (name_key is the trimmed, lower-cased name).
CREATE TABLE places (
    user_id VARCHAR(100) NOT NULL CHECK (length(user_id) > 0),
    name_key TEXT NOT NULL CHECK (length(name_key) > 0),
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng DOUBLE PRECISION NOT NULL CHECK (lng BETWEEN -180 AND 180),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT fm_places_pk PRIMARY KEY (user_id, name_key)
);
