//! Authentication: every request to `/mcp` carries an `fm_` key, verified
//! once in a tower layer; tools receive the verified [`Caller`].

mod caller;
mod layer;
pub mod no_oauth;
mod usage;
mod verifier;

pub use caller::{Caller, UserId};
pub use layer::{AuthLayer, AuthService};
pub use usage::UsageRecorder;
pub use verifier::{AuthFailure, Verifier};
