-- The fleet: every row belongs to one tenant (user_id NOT NULL), ids are
-- unique per tenant, and an assignment can only join an order and a driver
-- of its own tenant (composite foreign keys), whatever the code does.
-- Timestamps are RFC 3339 text in UTC; skills are a comma-separated list.

CREATE TABLE drivers (
    user_id TEXT NOT NULL CHECK (length(user_id) > 0),
    driver_id TEXT NOT NULL,
    name TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'busy', 'offline', 'unavailable')),
    vehicle_type TEXT NOT NULL CHECK (vehicle_type IN ('van', 'truck', 'car', 'motorcycle')),
    vehicle_plate TEXT,
    capacity_kg REAL NOT NULL CHECK (capacity_kg > 0),
    capacity_m3 REAL NOT NULL CHECK (capacity_m3 > 0),
    skills TEXT NOT NULL,
    current_address TEXT NOT NULL,
    current_lat REAL NOT NULL CHECK (current_lat BETWEEN -90 AND 90),
    current_lng REAL NOT NULL CHECK (current_lng BETWEEN -180 AND 180),
    last_location_update TEXT NOT NULL,
    search_text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT fm_drivers_pk PRIMARY KEY (user_id, driver_id)
);

CREATE INDEX fm_drivers_user_status ON drivers (user_id, status);
CREATE INDEX fm_drivers_user_created ON drivers (user_id, created_at);

CREATE TABLE orders (
    user_id TEXT NOT NULL CHECK (length(user_id) > 0),
    order_id TEXT NOT NULL,
    customer_name TEXT NOT NULL,
    customer_phone TEXT,
    customer_email TEXT,
    delivery_address TEXT NOT NULL,
    delivery_lat REAL NOT NULL CHECK (delivery_lat BETWEEN -90 AND 90),
    delivery_lng REAL NOT NULL CHECK (delivery_lng BETWEEN -180 AND 180),
    time_window_start TEXT,
    time_window_end TEXT,
    expected_delivery_time TEXT NOT NULL,
    priority TEXT NOT NULL CHECK (priority IN ('standard', 'express', 'urgent')),
    weight_kg REAL CHECK (weight_kg IS NULL OR weight_kg >= 0),
    volume_m3 REAL CHECK (volume_m3 IS NULL OR volume_m3 >= 0),
    special_instructions TEXT,
    order_value REAL CHECK (order_value IS NULL OR order_value >= 0),
    payment_status TEXT NOT NULL CHECK (payment_status IN ('pending', 'paid', 'cod')),
    requires_signature BOOLEAN NOT NULL,
    is_fragile BOOLEAN NOT NULL,
    requires_cold_storage BOOLEAN NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'assigned', 'in_transit', 'delivered', 'failed', 'cancelled')),
    assigned_driver_id TEXT,
    delivery_status TEXT CHECK (delivery_status IS NULL OR delivery_status IN ('on_time', 'late', 'very_late', 'failed_on_time', 'failed_late')),
    sla_grace_period_minutes INTEGER NOT NULL CHECK (sla_grace_period_minutes >= 0),
    search_text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    delivered_at TEXT,
    CONSTRAINT fm_orders_pk PRIMARY KEY (user_id, order_id),
    CONSTRAINT fm_orders_driver_fk FOREIGN KEY (user_id, assigned_driver_id)
        REFERENCES drivers (user_id, driver_id)
);

CREATE INDEX fm_orders_user_status ON orders (user_id, status);
CREATE INDEX fm_orders_user_created ON orders (user_id, created_at);
CREATE INDEX fm_orders_user_driver ON orders (user_id, assigned_driver_id);

CREATE TABLE assignments (
    user_id TEXT NOT NULL CHECK (length(user_id) > 0),
    assignment_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    driver_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'in_progress', 'completed', 'cancelled', 'failed')),
    assigned_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    route_distance_meters REAL NOT NULL,
    route_duration_seconds INTEGER NOT NULL,
    route_summary TEXT NOT NULL,
    driver_start_lat REAL NOT NULL,
    driver_start_lng REAL NOT NULL,
    delivery_lat REAL NOT NULL,
    delivery_lng REAL NOT NULL,
    delivery_address TEXT NOT NULL,
    estimated_arrival TEXT NOT NULL,
    actual_arrival TEXT,
    actual_distance_meters REAL CHECK (actual_distance_meters IS NULL OR actual_distance_meters >= 0),
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
