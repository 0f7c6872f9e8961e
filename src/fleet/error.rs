//! The one error type of the fleet's rules.

/// Why the fleet's rules refuse a value or a change. The message is meant
/// for the caller (it names the field or the row and says what would be
/// accepted); the store wraps it (`StoreError::Fleet`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// A value is wrong (out of range, too long, …); the message starts with
    /// the field's name.
    #[error("{0}")]
    Invalid(String),
    /// The change is not allowed from the row's current state (a state
    /// machine, an unsuitable driver).
    #[error("{0}")]
    Conflict(String),
}
