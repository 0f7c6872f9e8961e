//! The per-request cost of authentication, without HTTP: the key's shape
//! check and SHA-256, a cache lookup, and a whole cache-hit verification
//! (target: under 2 µs). `cargo bench --bench auth`.

// Set-up that fails here (a temp dir, a runtime, the key issued) leaves
// nothing to measure: stopping with its message is all a benchmark can do.
#![allow(clippy::expect_used)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use fleetmind::auth::{CacheOptions, KeyCache, UsageRecorder, Verifier};
use fleetmind::key_admin::{self, CreateKey};
use fleetmind::keys::ApiKey;
use fleetmind::scopes::Scopes;
use fleetmind::store::{self, Identity, KeyChange, KeyRecord, PoolOptions};
use fleetmind::tenant::UserId;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn record(key_id: i64) -> KeyRecord {
    KeyRecord {
        identity: Identity {
            user_id: UserId::new(format!("user_{key_id:012}")),
            key_id,
            key_prefix: "fm_benchmark".into(),
            scopes: Scopes::PREDECESSOR_DEFAULT,
            expires_at: None,
            limits: Default::default(),
        },
        email: String::new(),
        name: None,
        created_at: None,
        last_used_at: None,
        revoked_at: None,
        is_active: true,
        created_by: None,
        successor_key_id: None,
    }
}

fn parse_and_hash(c: &mut Criterion) {
    let key = ApiKey::generate().expect("key");
    let presented = key.expose().to_owned();
    c.bench_function("parse_and_hash", |b| {
        b.iter(|| ApiKey::parse(black_box(&presented)).map(|k| k.hash()))
    });
}

fn cache_lookup(c: &mut Criterion) {
    let cache = KeyCache::new(CacheOptions::default());
    cache.apply(KeyChange::All);
    // A cache with 10,000 keys in it, looked up by one of them.
    let mut wanted = None;
    for id in 0..10_000 {
        let key = ApiKey::generate().expect("key");
        let entry = Arc::new(fleetmind::auth::CachedKey::from_record(record(id)));
        cache.insert(key.hash(), entry, cache.epoch());
        wanted = Some(key.hash());
    }
    let wanted = wanted.expect("a key");
    let clock = fleetmind::clock::Clock::system();
    c.bench_function("cache_lookup_hit", |b| {
        b.iter(|| cache.get(black_box(&wanted), &clock).is_some())
    });
}

fn verify_cache_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let shutdown = CancellationToken::new();
    let (verifier, presented) = rt.block_on(async {
        let db = store::open(&url, &PoolOptions::default())
            .await
            .expect("open");
        let issued = key_admin::create_key(
            db.as_ref(),
            CreateKey {
                email: "bench@example.com".into(),
                name: None,
                scopes: None,
                expires_in_days: Some(30),
                created_by: "cli".into(),
                issuer_scopes: None,
                limits: Default::default(),
            },
            // The verifier's clock.
            fleetmind::clock::Clock::system().now(),
        )
        .await
        .expect("issue key");
        let verifier = Verifier::new(db, UsageRecorder::new());
        let _watch = verifier.spawn_watch(shutdown.clone());
        while !verifier.cache().is_watching() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let presented = issued.api_key.expose().to_owned();
        verifier.verify(&presented).await.expect("valid key");
        (verifier, presented)
    });
    assert!(verifier.verify_cached(&presented).is_some(), "cached");
    c.bench_function("verify_cache_hit", |b| {
        b.iter(|| verifier.verify_cached(black_box(&presented)))
    });
    shutdown.cancel();
}

criterion_group!(benches, parse_and_hash, cache_lookup, verify_cache_hit);
criterion_main!(benches);
