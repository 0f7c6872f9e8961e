//! `fm_` API keys: generation, the shape check, hashing, display prefix and
//! user ids, compatible with the Python predecessor (`shared/seed/api_keys.py`).
//!
//! The plaintext key lives in [`ApiKey`], whose `Debug` never prints it, and
//! leaves the process only in the response that creates it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::Md5;
use rand::TryRngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;

/// Every key starts with this.
pub const KEY_PREFIX: &str = "fm_";
/// `fm_` + 43 base64url characters (32 random bytes, no padding).
pub const KEY_LEN: usize = 46;
/// How many leading characters of a key are kept for display.
pub const DISPLAY_PREFIX_LEN: usize = 12;

/// A plaintext API key. Cloning is cheap; printing it with `{:?}` shows only
/// the display prefix.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// A new key from the OS CSPRNG. Fails only if the OS cannot supply
    /// randomness, in which case no key must be issued.
    pub fn generate() -> Result<Self, KeyGenError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|_| KeyGenError)?;
        let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        Ok(Self(SecretString::from(key)))
    }

    /// Accepts a string only if it has the exact shape of a key:
    /// `fm_` followed by 43 characters of `[A-Za-z0-9_-]`. No database work
    /// happens for anything else.
    pub fn parse(candidate: &str) -> Result<Self, MalformedKey> {
        if has_key_shape(candidate) {
            Ok(Self(SecretString::from(candidate.to_owned())))
        } else {
            Err(MalformedKey)
        }
    }

    /// The plaintext, for the one response that hands a new key to its owner.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The lowercase hex SHA-256 of the whole key, as stored in `api_key_hash`.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(self.expose())
    }

    /// The first 12 characters, as stored in `api_key_prefix`.
    pub fn display_prefix(&self) -> String {
        self.expose()[..DISPLAY_PREFIX_LEN].to_owned()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", &self.expose()[..DISPLAY_PREFIX_LEN])
    }
}

/// The shape check on its own, for callers that only need a yes or no.
pub fn has_key_shape(candidate: &str) -> bool {
    candidate.len() == KEY_LEN
        && candidate.starts_with(KEY_PREFIX)
        && candidate.as_bytes()[KEY_PREFIX.len()..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// The OS random source failed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the operating system's random source failed")]
pub struct KeyGenError;

/// A candidate that does not have the shape of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed API key")]
pub struct MalformedKey;

/// The stored form of a key: lowercase hex SHA-256. Kept opaque so that it is
/// never printed by accident (`Debug` shows only that it is a hash).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(String);

impl KeyHash {
    fn of(key: &str) -> Self {
        // Every request with a key comes here. `hex::encode` collects its
        // string a char at a time, about 2,000 instructions a call (as much
        // as the rest of a cache hit); pushing ASCII digits is a tenth of it.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for byte in Sha256::digest(key.as_bytes()) {
            hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        Self(hex)
    }

    /// The hex string, for binding into a query.
    pub fn as_hex(&self) -> &str {
        &self.0
    }

    /// A hash as the database stores it (64 lowercase hex digits), e.g. from
    /// a change notification; anything else is `None`.
    pub fn from_stored(hex: &str) -> Option<Self> {
        (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(hex.to_owned()))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(<redacted>)")
    }
}

/// Trims and lower-cases an email, as every new email is stored.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// `"user_"` + the first 12 hex digits of MD5 of the email, exactly as given
/// (callers normalise new emails first; existing users keep their id).
pub fn user_id_for_email(email: &str) -> String {
    let digest = hex::encode(Md5::digest(email.as_bytes()));
    format!("user_{}", &digest[..12])
}

/// Checks the shape of an email just enough to refuse obvious mistakes.
pub fn validate_email(email: &str) -> Result<(), &'static str> {
    let email = email.trim();
    if email.is_empty() {
        return Err("email is empty");
    }
    if email.len() > 254 {
        return Err("email is longer than 254 characters");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err("email contains whitespace or control characters")
            } else {
                Ok(())
            }
        }
        _ => Err("email must look like name@domain"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_shape_and_differ() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert!(has_key_shape(a.expose()));
        assert_eq!(a.expose().len(), KEY_LEN);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.display_prefix().len(), DISPLAY_PREFIX_LEN);
    }

    #[test]
    fn debug_never_prints_the_key_or_hash() {
        let key = ApiKey::generate().unwrap();
        let shown = format!("{key:?} {:?}", key.hash());
        assert!(!shown.contains(key.expose()));
        assert!(!shown.contains(key.hash().as_hex()));
    }

    #[test]
    fn the_hash_is_lowercase_hex_sha256_as_the_predecessor_stores_it() {
        // sha256("abc"), FIPS 180-2's first example.
        assert_eq!(
            KeyHash::of("abc").as_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let key = ApiKey::generate().unwrap();
        assert_eq!(
            key.hash().as_hex(),
            hex::encode(Sha256::digest(key.expose().as_bytes()))
        );
    }
}
