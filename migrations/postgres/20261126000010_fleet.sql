-- The fleet: every row belongs to one tenant (user_id NOT NULL), ids are
-- unique per tenant, and an assignment can only join an order and a driver
-- of its own tenant (composite foreign keys), whatever the code does.
--
-- A database the Python predecessor used may already hold tables with these
-- names (global ids, nullable user_id). This migration runs once, so any
-- such table found now is the predecessor's: it is kept, renamed, for a
-- manual import. Constraint and index names carry an fm_ prefix so they do
-- not collide with the renamed tables' ones.
ALTER TABLE IF EXISTS assignments RENAME TO predecessor_assignments;
ALTER TABLE IF EXISTS orders RENAME TO predecessor_orders;
ALTER TABLE IF EXISTS drivers RENAME TO predecessor_drivers;

CREATE TABLE drivers (
    user_id VARCHAR(100) NOT NULL CHECK (length(user_id) > 0),
    driver_id TEXT NOT NULL,
    name TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'busy', 'offline', 'unavailable')),
    vehicle_type TEXT NOT NULL CHECK (vehicle_type IN ('van', 'truck', 'car', 'motorcycle')),
    vehicle_plate TEXT,
    capacity_kg DOUBLE PRECISION NOT NULL CHECK (capacity_kg > 0),
    capacity_m3 DOUBLE PRECISION NOT NULL CHECK (capacity_m3 > 0),
    skills TEXT NOT NULL,
    current_address TEXT NOT NULL,
    current_lat DOUBLE PRECISION NOT NULL CHECK (current_lat BETWEEN -90 AND 90),
    current_lng DOUBLE PRECISION NOT NULL CHECK (current_lng BETWEEN -180 AND 180),
    last_location_update TIMESTAMPTZ NOT NULL,
    search_text TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT fm_drivers_pk PRIMARY KEY (user_id, driver_id)
);

CREATE INDEX fm_drivers_user_status ON drivers (user_id, status);
CREATE INDEX fm_drivers_user_created ON drivers (user_id, created_at);

CREATE TABLE orders (
    user_id VARCHAR(100) NOT NULL CHECK (length(user_id) > 0),
    order_id TEXT NOT NULL,
    customer_name TEXT NOT NULL,
    customer_phone TEXT,
    customer_email TEXT,
    delivery_address TEXT NOT NULL,
    delivery_lat DOUBLE PRECISION NOT NULL CHECK (delivery_lat BETWEEN -90 AND 90),
    delivery_lng DOUBLE PRECISION NOT NULL CHECK (delivery_lng BETWEEN -180 AND 180),
    time_window_start TIMESTAMPTZ,
    time_window_end TIMESTAMPTZ,
    expected_delivery_time TIMESTAMPTZ NOT NULL,
    priority TEXT NOT NULL CHECK (priority IN ('standard', 'express', 'urgent')),
    weight_kg DOUBLE PRECISION CHECK (weight_kg IS NULL OR weight_kg >= 0),
    volume_m3 DOUBLE PRECISION CHECK (volume_m3 IS NULL OR volume_m3 >= 0),
    special_instructions TEXT,
    order_value DOUBLE PRECISION CHECK (order_value IS NULL OR order_value >= 0),
    payment_status TEXT NOT NULL CHECK (payment_status IN ('pending', 'paid', 'cod')),
    requires_signature BOOLEAN NOT NULL,
    is_fragile BOOLEAN NOT NULL,
    requires_cold_storage BOOLEAN NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'assigned', 'in_transit', 'delivered', 'failed', 'cancelled')),
    assigned_driver_id TEXT,
    delivery_status TEXT CHECK (delivery_status IS NULL OR delivery_status IN ('on_time', 'late', 'very_late', 'failed_on_time', 'failed_late')),
    sla_grace_period_minutes BIGINT NOT NULL CHECK (sla_grace_period_minutes >= 0),
    search_text TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ,
    CONSTRAINT fm_orders_pk PRIMARY KEY (user_id, order_id),
    CONSTRAINT fm_orders_driver_fk FOREIGN KEY (user_id, assigned_driver_id)
        REFERENCES drivers (user_id, driver_id)
);

CREATE INDEX fm_orders_user_status ON orders (user_id, status);
CREATE INDEX fm_orders_user_created ON orders (user_id, created_at);
CREATE INDEX fm_orders_user_driver ON orders (user_id, assigned_driver_id);

CREATE TABLE assignments (
    user_id VARCHAR(100) NOT NULL CHECK (length(user_id) > 0),
    assignment_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    driver_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'in_progress', 'completed', 'cancelled', 'failed')),
    assigned_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    route_distance_meters DOUBLE PRECISION NOT NULL,
    route_duration_seconds BIGINT NOT NULL,
    route_summary TEXT NOT NULL,
    driver_start_lat DOUBLE PRECISION NOT NULL,
    driver_start_lng DOUBLE PRECISION NOT NULL,
    delivery_lat DOUBLE PRECISION NOT NULL,
    delivery_lng DOUBLE PRECISION NOT NULL,
    delivery_address TEXT NOT NULL,
    estimated_arrival TIMESTAMPTZ NOT NULL,
    actual_arrival TIMESTAMPTZ,
    actual_distance_meters DOUBLE PRECISION CHECK (actual_distance_meters IS NULL OR actual_distance_meters >= 0),
    vehicle_type TEXT NOT NULL CHECK (vehicle_type IN ('van', 'truck', 'car', 'motorcycle')),
    notes TEXT,
    failure_reason TEXT CHECK (failure_reason IS NULL OR failure_reason IN ('customer_not_available', 'wrong_address', 'refused_delivery', 'damaged_goods', 'payment_issue', 'vehicle_breakdown', 'access_restricted', 'weather_conditions', 'other')),
    CONSTRAINT fm_assignments_pk PRIMARY KEY (user_id, assignment_id),
    CONSTRAINT fm_assignments_order_fk FOREIGN KEY (user_id, order_id)
        REFERENCES orders (user_id, order_id) ON DELETE CASCADE,
    CONSTRAINT fm_assignments_driver_fk FOREIGN KEY (user_id, driver_id)
        REFERENCES drivers (user_id, driver_id) ON DELETE CASCADE
);

CREATE INDEX fm_assignments_user_status ON assignments (user_id, status);
CREATE INDEX fm_assignments_user_order ON assignments (user_id, order_id);
CREATE INDEX fm_assignments_user_driver ON assignments (user_id, driver_id);
-- At most one open assignment per order and per driver.
CREATE UNIQUE INDEX fm_assignments_open_order ON assignments (user_id, order_id)
    WHERE status IN ('active', 'in_progress');
CREATE UNIQUE INDEX fm_assignments_open_driver ON assignments (user_id, driver_id)
    WHERE status IN ('active', 'in_progress');
