//! A console sign-in refused by the failed-attempt limit is answered (429)
//! after `THROTTLED_ANSWER_DELAY`, like `/mcp`, so a client looping on
//! refusals is slowed down; and that wait is the refused client's alone:
//! other clients sign in meanwhile without it (issue 12).
//!
//! Clients are told apart by `X-Forwarded-For` from a trusted proxy
//! (127.0.0.1), as behind a reverse proxy.

use crate::support::*;
use fleetmind::app::ServeOptions;
use fleetmind::auth::{LimiterOptions, THROTTLED_ANSWER_DELAY, TrustedProxies, VerifierOptions};
use fleetmind::keys::ApiKey;
use std::time::{Duration, Instant};

const BURST: u32 = 3;
const FLOODER: &str = "203.0.113.10";
const OTHER: &str = "203.0.113.20";
/// Throttled sign-ins in flight while the other client signs in.
const IN_FLIGHT: usize = 8;

struct Answer {
    status: u16,
    body: String,
    took: Duration,
}

async fn sign_in_from(http: &reqwest::Client, base: &str, key: &str, client: &str) -> Answer {
    let started = Instant::now();
    let response = http
        .post(format!("{base}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", client)
        .body(format!("api_key={key}"))
        .send()
        .await
        .expect("the console answers");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Answer {
        status,
        body,
        took: started.elapsed(),
    }
}

fn unknown_key() -> String {
    ApiKey::generate().expect("key").expose().to_owned()
}

backend_test!(
    a_throttled_sign_in_waits_and_holds_no_one_else,
    |t| async move {
        let db = t.db.clone();
        let good = issue_key(&db, "patient@example.com", None).await;
        let options = ServeOptions {
            auth: VerifierOptions {
                limiter: LimiterOptions {
                    burst: BURST,
                    per_second: 0.001,
                    ..LimiterOptions::default()
                },
                ..VerifierOptions::default()
            },
            trusted_proxies: "127.0.0.1".parse::<TrustedProxies>().expect("list"),
            ..ServeOptions::default()
        };
        let server = start_server_with(db.clone(), options).await;
        let base = format!("http://{}", server.addr);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();

        // Within the budget: refused at once (401), with the API's reason.
        for _ in 0..BURST {
            let answer = sign_in_from(&http, &base, &unknown_key(), FLOODER).await;
            assert_eq!(answer.status, 401, "{}", answer.body);
        }
        // Past it: 429, and not before the delay (bounded above, not exact).
        let answer = sign_in_from(&http, &base, &unknown_key(), FLOODER).await;
        assert_eq!(answer.status, 429, "{}", answer.body);
        assert!(answer.body.contains("too many"), "{}", answer.body);
        assert!(
            answer.took >= THROTTLED_ANSWER_DELAY,
            "answered after {:?}",
            answer.took
        );
        assert!(answer.took < Duration::from_secs(10), "{:?}", answer.took);

        // While the flooder's refusals wait, the other client signs in without
        // waiting for them; the best of three tries is under the delay.
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            let flood: Vec<_> = (0..IN_FLIGHT)
                .map(|_| {
                    let (http, base) = (http.clone(), base.clone());
                    tokio::spawn(async move {
                        sign_in_from(&http, &base, &unknown_key(), FLOODER).await
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(20)).await;
            let other = sign_in_from(&http, &base, good.api_key.expose(), OTHER).await;
            assert_eq!(other.status, 303, "{}", other.body);
            best = best.min(other.took);
            for refused in flood {
                let refused = refused.await.unwrap();
                assert_eq!(refused.status, 429, "{}", refused.body);
                assert!(refused.took >= THROTTLED_ANSWER_DELAY, "{:?}", refused.took);
            }
            // The refusals waited side by side, not one after another.
            let all = started.elapsed();
            assert!(
                all < THROTTLED_ANSWER_DELAY * IN_FLIGHT as u32,
                "{IN_FLIGHT} throttled sign-ins took {all:?}: their waits were serialised"
            );
        }
        assert!(
            best < THROTTLED_ANSWER_DELAY,
            "the other client's sign-in took {best:?}: it waited for the throttled ones"
        );

        server.stop().await;
        drop(t);
    }
);
