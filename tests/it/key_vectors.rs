//! Key hashing, display prefix, user ids and the shape check, against vectors
//! computed outside this code base with Python's hashlib:
//!
//! ```python
//! import hashlib
//! k = "fm_" + "A"*10 + "b"*10 + "-_"*5 + "0123456789abc"
//! hashlib.sha256(k.encode()).hexdigest(); k[:12]
//! "user_" + hashlib.md5(email.encode()).hexdigest()[:12]
//! ```

use fleetmind::keys::{self, ApiKey};

/// A documented test vector, not a real key.
const VECTOR_KEY: &str = "fm_AAAAAAAAAAbbbbbbbbbb-_-_-_-_-_0123456789abc";

#[test]
fn sha256_hex_of_the_whole_key() {
    let key = ApiKey::parse(VECTOR_KEY).expect("vector has the shape");
    assert_eq!(
        key.hash().as_hex(),
        "40c9431555f665c82f2dedf2021909fcb2f8970e87e3c6652dc2d61626638717"
    );
}

#[test]
fn display_prefix_is_the_first_12_characters() {
    let key = ApiKey::parse(VECTOR_KEY).unwrap();
    assert_eq!(key.display_prefix(), "fm_AAAAAAAAA");
}

#[test]
fn user_id_is_md5_of_the_email_as_given() {
    for (email, expected) in [
        ("alice@example.com", "user_c160f8cc69a4"),
        ("bob@example.com", "user_4b9bb80620f0"),
        // The predecessor hashed emails unnormalised: existing ids stay as they are.
        ("Legacy.User@Example.com", "user_eb3187401c46"),
        ("legacy.user@example.com", "user_3f937a782374"),
    ] {
        assert_eq!(keys::user_id_for_email(email), expected, "{email}");
    }
}

#[test]
fn new_emails_are_trimmed_and_lower_cased() {
    assert_eq!(
        keys::normalize_email("  Alice@Example.COM \n"),
        "alice@example.com"
    );
}

#[test]
fn shape_check_accepts_only_fm_plus_43_base64url_characters() {
    assert!(keys::has_key_shape(VECTOR_KEY));
    let generated = ApiKey::generate().unwrap();
    assert!(keys::has_key_shape(generated.expose()));

    let too_short = &VECTOR_KEY[..45];
    let too_long = format!("{VECTOR_KEY}x");
    let wrong_prefix = VECTOR_KEY.replacen("fm_", "fx_", 1);
    let upper_prefix = VECTOR_KEY.replacen("fm_", "FM_", 1);
    let padded = format!("{}=", &VECTOR_KEY[..45]);
    let plus = VECTOR_KEY.replacen('A', "+", 1);
    let slash = VECTOR_KEY.replacen('A', "/", 1);
    let space = VECTOR_KEY.replacen('A', " ", 1);
    let unicode = VECTOR_KEY.replacen("AA", "é", 1);
    let nul = VECTOR_KEY.replacen('A', "\0", 1);
    let sql = "fm_' OR '1'='1' --aaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for bad in [
        "",
        "fm_",
        too_short,
        &too_long,
        &wrong_prefix,
        &upper_prefix,
        &padded,
        &plus,
        &slash,
        &space,
        &unicode,
        &nul,
        sql,
    ] {
        assert!(!keys::has_key_shape(bad), "accepted {bad:?}");
        assert!(ApiKey::parse(bad).is_err(), "parsed {bad:?}");
    }
}

#[test]
fn debug_output_never_shows_key_or_hash() {
    let key = ApiKey::parse(VECTOR_KEY).unwrap();
    let shown = format!("{key:?} {:?}", key.hash());
    assert!(!shown.contains(VECTOR_KEY));
    assert!(!shown.contains("40c9431555f665c8"));
}
