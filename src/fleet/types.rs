//! The fleet's domain values: what the store keeps and the tools show.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A closed set of names stored as text: one list gives the Rust enum, its
/// serde and JSON-schema names, and the parser for stored values.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            Serialize, Deserialize, schemars::JsonSchema,
        )]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value a stored name stands for.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl From<$name> for &'static str {
            fn from(value: $name) -> Self {
                value.as_str()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Where an order is in its life.
    // The default is where a new order starts.
    #[derive(Default)]
    OrderStatus {
        #[default]
        Pending = "pending",
        Assigned = "assigned",
        InTransit = "in_transit",
        Delivered = "delivered",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// How urgent an order is.
    #[derive(Default)]
    Priority {
        #[default]
        Standard = "standard",
        Express = "express",
        Urgent = "urgent",
    }
);

text_enum!(
    /// Whether the order is paid.
    #[derive(Default)]
    PaymentStatus {
        #[default]
        Pending = "pending",
        Paid = "paid",
        Cod = "cod",
    }
);

text_enum!(
    /// How a finished order met its promised time.
    DeliveryStatus {
        OnTime = "on_time",
        Late = "late",
        VeryLate = "very_late",
        FailedOnTime = "failed_on_time",
        FailedLate = "failed_late",
    }
);

text_enum!(
    /// Whether a driver can take work.
    // The default is a new driver's status when the caller gives none.
    #[derive(Default)]
    DriverStatus {
        #[default]
        Active = "active",
        Busy = "busy",
        Offline = "offline",
        Unavailable = "unavailable",
    }
);

text_enum!(
    /// What a driver drives.
    // The default is only the blank a new driver is made from (see
    // `fleet::create`): every caller names the vehicle.
    #[derive(Default)]
    VehicleType {
        #[default]
        Van = "van",
        Truck = "truck",
        Car = "car",
        Motorcycle = "motorcycle",
    }
);

text_enum!(
    /// What a driver is qualified for.
    Skill {
        Refrigerated = "refrigerated",
        MedicalCertified = "medical_certified",
        FragileHandler = "fragile_handler",
        Overnight = "overnight",
        ExpressDelivery = "express_delivery",
    }
);

text_enum!(
    /// Where an assignment is in its life.
    // The default is where a new assignment starts.
    #[derive(Default)]
    AssignmentStatus {
        #[default]
        Active = "active",
        InProgress = "in_progress",
        Completed = "completed",
        Cancelled = "cancelled",
        Failed = "failed",
    }
);

text_enum!(
    /// Why a delivery failed.
    FailureReason {
        CustomerNotAvailable = "customer_not_available",
        WrongAddress = "wrong_address",
        RefusedDelivery = "refused_delivery",
        DamagedGoods = "damaged_goods",
        PaymentIssue = "payment_issue",
        VehicleBreakdown = "vehicle_breakdown",
        AccessRestricted = "access_restricted",
        WeatherConditions = "weather_conditions",
        Other = "other",
    }
);

/// A delivery order of one tenant.
// `Default` is the blank a new order is made from (see `fleet::create`),
// and a stored one read into (see the store's `sql/table.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Order {
    /// The order's id (`ORD-…`), unique within your data.
    pub order_id: String,
    pub customer_name: String,
    pub customer_phone: Option<String>,
    pub customer_email: Option<String>,
    pub delivery_address: String,
    /// Latitude of the delivery point, -90 to 90.
    pub delivery_lat: f64,
    /// Longitude of the delivery point, -180 to 180.
    pub delivery_lng: f64,
    /// Earliest delivery time (RFC 3339, UTC).
    #[schemars(with = "Option<String>")]
    pub time_window_start: Option<DateTime<Utc>>,
    /// Latest delivery time (RFC 3339, UTC).
    #[schemars(with = "Option<String>")]
    pub time_window_end: Option<DateTime<Utc>>,
    /// When the customer expects the delivery (RFC 3339, UTC).
    #[schemars(with = "String")]
    pub expected_delivery_time: DateTime<Utc>,
    pub priority: Priority,
    pub weight_kg: Option<f64>,
    pub volume_m3: Option<f64>,
    pub special_instructions: Option<String>,
    pub order_value: Option<f64>,
    pub payment_status: PaymentStatus,
    pub requires_signature: bool,
    pub is_fragile: bool,
    pub requires_cold_storage: bool,
    pub status: OrderStatus,
    /// The driver of the current (or last completed) assignment.
    pub assigned_driver_id: Option<String>,
    /// Set when the order is delivered or fails.
    pub delivery_status: Option<DeliveryStatus>,
    /// Minutes after the expected time that still count as on time.
    pub sla_grace_period_minutes: i64,
    #[schemars(with = "String")]
    pub created_at: DateTime<Utc>,
    #[schemars(with = "String")]
    pub updated_at: DateTime<Utc>,
    #[schemars(with = "Option<String>")]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A driver of one tenant.
// `Default` is the blank a new driver is made from (see `fleet::create`),
// and a stored one read into (see the store's `sql/table.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Driver {
    /// The driver's id (`DRV-…`), unique within your data.
    pub driver_id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub status: DriverStatus,
    pub vehicle_type: VehicleType,
    pub vehicle_plate: Option<String>,
    pub capacity_kg: f64,
    pub capacity_m3: f64,
    pub skills: Vec<Skill>,
    pub current_address: String,
    pub current_lat: f64,
    pub current_lng: f64,
    #[schemars(with = "String")]
    pub last_location_update: DateTime<Utc>,
    #[schemars(with = "String")]
    pub created_at: DateTime<Utc>,
    #[schemars(with = "String")]
    pub updated_at: DateTime<Utc>,
}

/// An order given to a driver.
// `Default` is the blank a stored one is read into (see the store's
// `sql/table.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Assignment {
    /// The assignment's id (`ASN-…`), unique within your data.
    pub assignment_id: String,
    pub order_id: String,
    pub driver_id: String,
    pub status: AssignmentStatus,
    #[schemars(with = "String")]
    pub assigned_at: DateTime<Utc>,
    #[schemars(with = "String")]
    pub updated_at: DateTime<Utc>,
    /// From the driver to the delivery point: by road when the routing
    /// engine measured it, else the estimate (see route_summary).
    pub route_distance_meters: f64,
    /// Driving time for that route (the engine's, or the estimate's at the
    /// vehicle's average speed).
    pub route_duration_seconds: i64,
    pub route_summary: String,
    pub driver_start_lat: f64,
    pub driver_start_lng: f64,
    pub delivery_lat: f64,
    pub delivery_lng: f64,
    pub delivery_address: String,
    #[schemars(with = "String")]
    pub estimated_arrival: DateTime<Utc>,
    #[schemars(with = "Option<String>")]
    pub actual_arrival: Option<DateTime<Utc>>,
    pub actual_distance_meters: Option<f64>,
    pub vehicle_type: VehicleType,
    pub notes: Option<String>,
    pub failure_reason: Option<FailureReason>,
}

/// A new order, as the caller describes it: also the `create_order` tool's
/// arguments (each field's doc is its description there). A field left out
/// or `null` takes its default. Written out (`Serialize`), it is read as
/// the [`OrderPatch`] that makes the order (see `fleet::create`), field by
/// name: each field here must be one of the patch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = super::parse::schema_as_arguments)]
pub struct NewOrder {
    /// The customer's name (at most 200 characters).
    pub customer_name: String,
    /// Where to deliver (at most 500 characters).
    pub delivery_address: String,
    /// Latitude of the delivery point, -90 to 90.
    #[schemars(range(min = -90, max = 90))]
    pub delivery_lat: f64,
    /// Longitude of the delivery point, -180 to 180.
    #[schemars(range(min = -180, max = 180))]
    pub delivery_lng: f64,
    /// When the customer expects the delivery, ISO 8601 (e.g. 2026-11-26T15:00:00Z; no offset means UTC).
    #[serde(deserialize_with = "super::parse::time")]
    #[schemars(with = "String")]
    pub expected_delivery_time: DateTime<Utc>,
    /// The customer's phone (digits, spaces and + - ( ) .).
    pub customer_phone: Option<String>,
    /// The customer's email.
    pub customer_email: Option<String>,
    /// standard (default), express or urgent.
    #[serde(default, deserialize_with = "super::parse::or_default")]
    #[schemars(with = "Option<Priority>")]
    pub priority: Priority,
    /// Weight in kg (0 to 100000).
    pub weight_kg: Option<f64>,
    /// Volume in m³ (0 to 1000).
    pub volume_m3: Option<f64>,
    /// Notes for the driver (at most 2000 characters).
    pub special_instructions: Option<String>,
    /// Earliest delivery time, ISO 8601.
    #[serde(default, deserialize_with = "super::parse::opt_time")]
    #[schemars(with = "Option<String>")]
    pub time_window_start: Option<DateTime<Utc>>,
    /// Latest delivery time, ISO 8601.
    #[serde(default, deserialize_with = "super::parse::opt_time")]
    #[schemars(with = "Option<String>")]
    pub time_window_end: Option<DateTime<Utc>>,
    /// The goods' value.
    pub order_value: Option<f64>,
    /// pending (default), paid or cod.
    #[serde(default, deserialize_with = "super::parse::or_default")]
    #[schemars(with = "Option<PaymentStatus>")]
    pub payment_status: PaymentStatus,
    #[serde(default, deserialize_with = "super::parse::or_default")]
    #[schemars(with = "Option<bool>")]
    pub requires_signature: bool,
    #[serde(default, deserialize_with = "super::parse::or_default")]
    #[schemars(with = "Option<bool>")]
    pub is_fragile: bool,
    /// Only drivers with the 'refrigerated' skill can take it.
    #[serde(default, deserialize_with = "super::parse::or_default")]
    #[schemars(with = "Option<bool>")]
    pub requires_cold_storage: bool,
    /// Minutes after expected_delivery_time that still count as on time (default 15).
    #[serde(
        default = "super::parse::default_grace",
        deserialize_with = "super::parse::grace"
    )]
    #[schemars(with = "Option<i64>")]
    pub sla_grace_period_minutes: i64,
}

/// Changes to an order; `None` (or `null`) leaves a field as it is. Also
/// the `update_order` tool's arguments besides `order_id` (each field's doc
/// is its description there).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
// Written out only by a test: a new row's fields arrive whole.
#[cfg_attr(test, derive(Serialize))]
#[serde(deny_unknown_fields)]
#[schemars(transform = super::parse::schema_as_arguments)]
pub struct OrderPatch {
    pub customer_name: Option<String>,
    pub customer_phone: Option<String>,
    pub customer_email: Option<String>,
    pub delivery_address: Option<String>,
    #[schemars(range(min = -90, max = 90))]
    pub delivery_lat: Option<f64>,
    #[schemars(range(min = -180, max = 180))]
    pub delivery_lng: Option<f64>,
    /// ISO 8601.
    #[serde(default, deserialize_with = "super::parse::opt_time")]
    #[schemars(with = "Option<String>")]
    pub expected_delivery_time: Option<DateTime<Utc>>,
    /// ISO 8601.
    #[serde(default, deserialize_with = "super::parse::opt_time")]
    #[schemars(with = "Option<String>")]
    pub time_window_start: Option<DateTime<Utc>>,
    /// ISO 8601.
    #[serde(default, deserialize_with = "super::parse::opt_time")]
    #[schemars(with = "Option<String>")]
    pub time_window_end: Option<DateTime<Utc>>,
    pub priority: Option<Priority>,
    pub weight_kg: Option<f64>,
    pub volume_m3: Option<f64>,
    pub special_instructions: Option<String>,
    pub order_value: Option<f64>,
    pub payment_status: Option<PaymentStatus>,
    pub requires_signature: Option<bool>,
    pub is_fragile: Option<bool>,
    pub requires_cold_storage: Option<bool>,
    pub sla_grace_period_minutes: Option<i64>,
    /// pending or cancelled (the other statuses follow the assignment tools).
    pub status: Option<OrderStatus>,
}

/// A new driver, as the caller describes them: also the `create_driver`
/// tool's arguments (each field's doc is its description there). A field
/// left out or `null` takes its default. Like [`NewOrder`], it is read as
/// the [`DriverPatch`] that makes the driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = super::parse::schema_as_arguments)]
pub struct NewDriver {
    /// The driver's name (at most 200 characters).
    pub name: String,
    /// van, truck, car or motorcycle.
    pub vehicle_type: VehicleType,
    /// Where the driver is now (at most 500 characters).
    pub current_address: String,
    /// -90 to 90.
    #[schemars(range(min = -90, max = 90))]
    pub current_lat: f64,
    /// -180 to 180.
    #[schemars(range(min = -180, max = 180))]
    pub current_lng: f64,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// At most 20 characters.
    pub vehicle_plate: Option<String>,
    /// Payload in kg (default 1000).
    #[serde(
        default = "super::parse::default_capacity_kg",
        deserialize_with = "super::parse::capacity_kg"
    )]
    #[schemars(with = "Option<f64>")]
    pub capacity_kg: f64,
    /// Cargo space in m³ (default 12).
    #[serde(
        default = "super::parse::default_capacity_m3",
        deserialize_with = "super::parse::capacity_m3"
    )]
    #[schemars(with = "Option<f64>")]
    pub capacity_m3: f64,
    /// Any of refrigerated, medical_certified, fragile_handler, overnight, express_delivery.
    #[serde(default, deserialize_with = "super::parse::or_default")]
    #[schemars(with = "Option<Vec<Skill>>")]
    pub skills: Vec<Skill>,
    /// active (default), offline or unavailable ('busy' follows assignments).
    #[serde(default, deserialize_with = "super::parse::or_default")]
    #[schemars(with = "Option<DriverStatus>")]
    pub status: DriverStatus,
}

/// Changes to a driver; `None` (or `null`) leaves a field as it is. Also
/// the `update_driver` tool's arguments besides `driver_id` (each field's
/// doc is its description there).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
// Written out only by a test: a new row's fields arrive whole.
#[cfg_attr(test, derive(Serialize))]
#[serde(deny_unknown_fields)]
#[schemars(transform = super::parse::schema_as_arguments)]
pub struct DriverPatch {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// active, offline or unavailable ('busy' follows assignments).
    pub status: Option<DriverStatus>,
    pub vehicle_type: Option<VehicleType>,
    pub vehicle_plate: Option<String>,
    pub capacity_kg: Option<f64>,
    pub capacity_m3: Option<f64>,
    /// Replaces the driver's skills.
    pub skills: Option<Vec<Skill>>,
    pub current_address: Option<String>,
    #[schemars(range(min = -90, max = 90))]
    pub current_lat: Option<f64>,
    #[schemars(range(min = -180, max = 180))]
    pub current_lng: Option<f64>,
}

/// How to sort a list of orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderSort {
    #[default]
    CreatedAt,
    Priority,
    TimeWindowStart,
}

/// Which orders a count or list covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub priority: Option<Priority>,
    pub payment_status: Option<PaymentStatus>,
    pub assigned_driver_id: Option<String>,
}

/// A page of orders.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderQuery {
    pub filter: OrderFilter,
    pub sort: OrderSort,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
}

/// Which drivers a count or list covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriverFilter {
    pub status: Option<DriverStatus>,
    pub vehicle_type: Option<VehicleType>,
}

/// How to sort a list of drivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverSort {
    #[default]
    CreatedAt,
    Name,
}

/// A page of drivers.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverQuery {
    pub filter: DriverFilter,
    pub sort: DriverSort,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
}

/// What happens to an assignment (with its cascade to order and driver).
#[derive(Debug, Clone, PartialEq)]
pub enum AssignmentStep {
    /// The driver is on the way: order `in_transit`.
    Start,
    /// Delivered: order `delivered`, driver `active` at the delivery point.
    Complete,
    /// Not delivered: order `failed`, driver `active` where they are.
    Fail {
        reason: FailureReason,
        address: String,
        lat: f64,
        lng: f64,
    },
    /// Taken back before it started: order `pending`, driver `active`.
    Cancel,
}

/// A change to an assignment; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssignmentChange {
    pub step: Option<AssignmentStep>,
    pub actual_arrival: Option<DateTime<Utc>>,
    pub actual_distance_meters: Option<f64>,
    pub notes: Option<String>,
}

/// How many rows there are, per status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub total: i64,
    pub by_status: Vec<(String, i64)>,
}
