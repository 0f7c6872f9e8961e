//! Tenant isolation of the console's key list (issue 12): a caller without
//! the admin scope sees exactly its tenant's keys, found by `user_id`, not
//! by email. A predecessor's database holds rows where the two disagree:
//! `user_id` is `"user_" + md5(email as typed)`, so an email typed in
//! another case is another tenant, and an operator may have changed a row's
//! email after its id was derived.

use crate::console::Browser;
use crate::support::*;
use fleetmind::keys::{ApiKey, user_id_for_email};
use fleetmind::scopes::Scopes;
use fleetmind::store::{Db, KeyRecord, NewKey};
use fleetmind::tenant::UserId;

/// A row as the predecessor could have left it: any `user_id` with any
/// email; returns its key too.
async fn predecessor_row(db: &Db, user_id: &str, email: &str) -> (ApiKey, KeyRecord) {
    let api_key = ApiKey::generate().expect("key");
    let record = db
        .insert_key(&NewKey {
            user_id: user_id.into(),
            email: email.into(),
            name: None,
            hash: api_key.hash(),
            prefix: api_key.display_prefix(),
            scopes: Scopes::PREDECESSOR_DEFAULT,
            expires_at: None,
            created_by: "cli".into(),
            limits: Default::default(),
            created_at: chrono::Utc::now(),
        })
        .await
        .expect("insert a predecessor row");
    (api_key, record)
}

backend_test!(a_non_admin_lists_its_tenant_by_user_id, |t| async move {
    let db = t.db.clone();
    let carol = issue_key(&db, "carol@example.com", None).await;
    let dave = issue_key(&db, "dave@example.com", None).await;
    let carol_id = carol.record.user_id.to_string();
    assert_eq!(carol_id, user_id_for_email("carol@example.com"));
    assert_ne!(carol_id, dave.record.user_id.as_str());
    // Carol's tenant, under the email she had before (the row kept its id).
    let (_, renamed) = predecessor_row(&db, &carol_id, "carol.old@example.com").await;
    // Another tenant whose email differs from Carol's only in case: the
    // predecessor derived its id from the email as typed.
    let other_case_id = user_id_for_email("Carol@Example.com");
    assert_ne!(other_case_id, carol_id);
    let (_, other_case) = predecessor_row(&db, &other_case_id, "Carol@Example.com").await;

    // The store: exactly the tenant's rows, newest first.
    let ids = |keys: Vec<KeyRecord>| keys.iter().map(|k| k.key_id).collect::<Vec<_>>();
    let carols = db
        .tenant_keys(&UserId::new(carol_id.as_str()))
        .await
        .unwrap();
    assert_eq!(ids(carols), [renamed.key_id, carol.record.key_id]);
    let others = db
        .tenant_keys(&UserId::new(other_case_id.as_str()))
        .await
        .unwrap();
    assert_eq!(ids(others), [other_case.key_id]);
    let nobody = db
        .tenant_keys(&UserId::new("user_000000000000"))
        .await
        .unwrap();
    assert!(nobody.is_empty());

    // The console shows Carol her tenant's keys, and nobody else's.
    let server = start_server(db.clone()).await;
    let mut browser = Browser::new(&server);
    let page = browser.sign_in(carol.api_key.expose()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&carol.record.key_prefix));
    assert!(
        page.body.contains(&renamed.key_prefix),
        "a key of Carol's tenant under another email is missing"
    );
    assert!(
        !page.body.contains(&other_case.key_prefix),
        "another tenant's key (same email, other case) is listed"
    );
    assert!(!page.body.contains(&dave.record.key_prefix));

    // What she sees she may manage; the other tenant's row stays out of reach.
    let csrf = page.csrf();
    let path = format!("/console/keys/{}/revoke", renamed.key_id);
    assert_eq!(browser.post(&path, &[("csrf", &csrf)]).await.status, 303);
    let path = format!("/console/keys/{}/revoke", other_case.key_id);
    assert_eq!(browser.post(&path, &[("csrf", &csrf)]).await.status, 404);
    let still = db.key_by_id(other_case.key_id).await.unwrap().unwrap();
    assert!(!still.is_revoked());

    server.stop().await;
    drop(t);
});

backend_test!(
    a_non_admin_issues_keys_into_its_own_tenant,
    |t| async move {
        let db = t.db.clone();
        // The predecessor's database: "Erin@Example.com" first, then
        // "erin@example.com" (it compared emails as typed), two tenants.
        let older_id = user_id_for_email("Erin@Example.com");
        let (_, older) = predecessor_row(&db, &older_id, "Erin@Example.com").await;
        let erin_id = user_id_for_email("erin@example.com");
        assert_ne!(erin_id, older_id);
        let (erin_key, _) = predecessor_row(&db, &erin_id, "erin@example.com").await;

        // Signed in with the second tenant's key, Erin issues a key for her own
        // email: it belongs to her tenant, not to the email's oldest row.
        let server = start_server(db.clone()).await;
        let mut browser = Browser::new(&server);
        let page = browser.sign_in(erin_key.expose()).await;
        assert!(!page.body.contains(&older.key_prefix));
        let csrf = page.csrf();
        for email in [None, Some("erin@example.com"), Some(" Erin@Example.com ")] {
            let mut form = vec![
                ("csrf", csrf.as_str()),
                ("name", "second"),
                ("scopes", "orders:read"),
            ];
            form.extend(email.map(|e| ("email", e)));
            let page = browser.post("/console/keys", &form).await;
            assert_eq!(page.status, 200, "{email:?}: {}", page.body);
            let new_key = ApiKey::parse(&page.key()).unwrap();
            let record = fleetmind::store::KeyStore::key_by_hash(db.as_ref(), &new_key.hash())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                record.user_id, erin_id,
                "{email:?}: a key issued into another tenant"
            );
        }
        let older_tenant = db
            .tenant_keys(&UserId::new(older_id.as_str()))
            .await
            .unwrap();
        assert_eq!(older_tenant.len(), 1, "the older tenant gained keys");

        server.stop().await;
        drop(t);
    }
);
