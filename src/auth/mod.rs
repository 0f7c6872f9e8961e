//! Authentication: every request to `/mcp` carries an `fm_` key, verified
//! once in a tower layer; tools receive the verified [`Caller`].

mod cache;
mod caller;
mod client_addr;
#[cfg(feature = "bench-noauth")]
mod fixed;
mod known_keys;
mod layer;
mod limiter;
pub mod no_oauth;
mod refusal_log;
mod usage;
mod verifier;

pub use cache::{BLIND_MAX_AGE, CacheOptions, CachedKey, KeyCache};
pub use caller::{Caller, Identity};
pub use client_addr::{ClientAddr, InvalidNetwork, IpNetwork, TrustedProxies};
#[cfg(feature = "bench-noauth")]
pub use fixed::FixedCallerLayer;
pub use known_keys::KnownKeys;
pub use layer::{AuthLayer, AuthService};
pub use limiter::{LimiterOptions, THROTTLED_ANSWER_DELAY};
pub use usage::{UsageRecorder, UsageSlot};
pub use verifier::{AuthFailure, Refusal, Verifier, VerifierOptions};
