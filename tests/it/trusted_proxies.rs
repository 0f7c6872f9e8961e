//! Behind a reverse proxy every request comes from the proxy's address. With
//! that address trusted, the failed-lookup budget is per `X-Forwarded-For`
//! client, so one client flooding unknown keys gets 429 while another behind
//! the same proxy does not; without it, the header is ignored and everyone
//! behind the proxy shares one budget. Real HTTP on 127.0.0.1 (the "proxy").
//!
//! SQLite only: which address a request counts against does not touch the
//! store, and the flood test in `auth_cache.rs` covers the limit on both
//! backends.

use crate::support::*;
use fleetmind::app::ServeOptions;
use fleetmind::auth::{
    AuthFailure, LimiterOptions, TrustedProxies, UsageRecorder, Verifier, VerifierOptions,
};
use fleetmind::keys::ApiKey;
use std::sync::atomic::{AtomicU32, Ordering};

const CLIENT_A: &str = "203.0.113.1";
const CLIENT_B: &str = "203.0.113.2";
/// Failed lookups a client may make before it is throttled.
const BURST: u32 = 3;

/// `POST /register` with `key`, as forwarded for `forwarded_for`.
async fn register_status(http: &reqwest::Client, url: &str, key: &str, forwarded_for: &str) -> u16 {
    status_of(
        http.post(url.replace("/mcp", "/register"))
            .header("Authorization", format!("Bearer {key}"))
            .header("X-Forwarded-For", forwarded_for),
    )
    .await
}

fn unknown_key() -> String {
    ApiKey::generate().expect("key").expose().to_owned()
}

/// What client B and the valid key meet after client A spent its budget.
#[derive(Debug, PartialEq)]
struct AfterFlood {
    a_mcp: u16,
    a_register: u16,
    b_mcp: u16,
    b_register: u16,
    good_as_a: u16,
    good_as_b: u16,
}

/// Client A sends `BURST` unknown keys (all 401), then the other answers.
async fn flood_from_a(trusted_proxies: &str) -> AfterFlood {
    let t = sqlite_db().await;
    let issued = issue_key(&t.db, "proxy@example.com", None).await;
    let good = issued.api_key.expose();
    let options = ServeOptions {
        auth: VerifierOptions {
            limiter: LimiterOptions {
                burst: BURST,
                per_second: 0.1,
                ..LimiterOptions::default()
            },
            ..VerifierOptions::default()
        },
        trusted_proxies: trusted_proxies.parse::<TrustedProxies>().expect("list"),
        ..ServeOptions::default()
    };
    let server = start_server_with(t.db.clone(), options).await;
    let url = server.mcp_url();
    let http = reqwest::Client::new();
    assert_eq!(
        forwarded_whoami_status(&http, &url, good, CLIENT_A).await,
        200
    );
    for _ in 0..BURST {
        assert_eq!(
            forwarded_whoami_status(&http, &url, &unknown_key(), CLIENT_A).await,
            401,
            "within A's budget"
        );
    }
    // A forged leftmost entry (the client wrote it, the proxy appended the
    // real address) is never read: A cannot pose as a fresh client.
    let a_mcp = forwarded_whoami_status(
        &http,
        &url,
        &unknown_key(),
        &format!("198.51.100.77, {CLIENT_A}"),
    )
    .await;
    let after = AfterFlood {
        a_mcp,
        a_register: register_status(&http, &url, &unknown_key(), CLIENT_A).await,
        b_mcp: forwarded_whoami_status(&http, &url, &unknown_key(), CLIENT_B).await,
        b_register: register_status(&http, &url, &unknown_key(), CLIENT_B).await,
        good_as_a: forwarded_whoami_status(&http, &url, good, CLIENT_A).await,
        good_as_b: forwarded_whoami_status(&http, &url, good, CLIENT_B).await,
    };
    server.stop().await;
    after
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    assert_eq!(
        flood_from_a("127.0.0.1").await,
        AfterFlood {
            a_mcp: 429,
            a_register: 429,
            b_mcp: 401,
            b_register: 401,
            good_as_a: 200,
            good_as_b: 200,
        }
    );
}

/// Everyone behind the proxy in one budget: A's flood throttles B too.
const SHARED: AfterFlood = AfterFlood {
    a_mcp: 429,
    a_register: 429,
    b_mcp: 429,
    b_register: 429,
    good_as_a: 200,
    good_as_b: 200,
};

#[tokio::test]
async fn without_trusted_proxies_forwarded_clients_share_the_peers_budget() {
    assert_eq!(flood_from_a("").await, SHARED);
}

#[tokio::test]
async fn a_peer_that_is_not_a_trusted_proxy_is_not_believed() {
    // Proxies are configured, but 127.0.0.1 is not one of them.
    assert_eq!(flood_from_a("10.0.0.0/8,::1").await, SHARED);
}

#[tokio::test]
async fn the_client_address_is_worked_out_only_on_a_cache_miss() {
    let t = sqlite_db().await;
    let issued = issue_key(&t.db, "lazy@example.com", None).await;
    let good = issued.api_key.expose();
    let verifier = Verifier::new(t.db.clone(), UsageRecorder::new());
    let asked = AtomicU32::new(0);
    let client = || {
        asked.fetch_add(1, Ordering::Relaxed);
        Some(CLIENT_A.parse().expect("address"))
    };
    verifier.verify_from(good, client).await.expect("valid");
    assert_eq!(asked.load(Ordering::Relaxed), 1, "a miss asks once");
    for _ in 0..10 {
        verifier.verify_from(good, client).await.expect("cached");
    }
    assert_eq!(asked.load(Ordering::Relaxed), 1, "a cache hit never asks");
    assert_eq!(
        verifier.verify_from(&unknown_key(), client).await.err(),
        Some(AuthFailure::Unknown)
    );
    assert_eq!(asked.load(Ordering::Relaxed), 2, "an unknown key asks once");
    assert_eq!(
        verifier.verify_from("fm_short", client).await.err(),
        Some(AuthFailure::Malformed)
    );
    assert_eq!(
        asked.load(Ordering::Relaxed),
        2,
        "a malformed key never asks"
    );
}
