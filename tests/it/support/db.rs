//! A database for each test: a fresh, migrated SQLite file, or a Postgres
//! database cloned from a migrated template.
//!
//! Postgres: `FLEETMIND_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names a server where the tests may create databases. The tests that need
//! it are ignored unless it is set (see `build.rs` and `backend_test!`);
//! when they run, an unreachable Postgres fails them.
//!
//! Migrating a database from scratch costs more than copying one, so each
//! run migrates one template database per set of migrations and every test
//! gets a `CREATE DATABASE … TEMPLATE` copy of it. The template's name holds
//! a hash of the migrations (as embedded in this binary, the same the server
//! runs), so a template of other migrations is never used; and once made,
//! the templates of other migrations that no running test binary holds are
//! dropped, so a schema change leaves none behind. Each test's database is
//! dropped when the test ends.

use fleetmind::store::{self, Backend, Db, PoolOptions};
use sqlx::Connection;
use tokio::sync::OnceCell;

/// The Postgres migrations, embedded as the server embeds them.
static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A database for one test; dropped (Postgres) or deleted (SQLite) after.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
}

impl Drop for TestDb {
    // Having a Drop of its own keeps a `move` closure that uses only `t.db`
    // from capturing that field alone and dropping the rest (the SQLite
    // file's directory, the Postgres database) while the test still runs.
    fn drop(&mut self) {
        self.pg.take();
    }
}

/// A Postgres database for one test, dropped when this is. Leftovers of
/// killed runs are removed by `.ci/run` (they are all named fm_test_*).
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop cannot be async, so a short-lived thread with its own runtime
        // does it (FORCE ends whatever connections are still open).
        let name = std::mem::take(&mut self.name);
        let admin = pg_admin_url();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

pub fn pg_admin_url() -> String {
    std::env::var("FLEETMIND_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, migrated SQLite file.
pub async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("fleetmind.db").display());
    let db = store::open(&url, &PoolOptions::default())
        .await
        .expect("open sqlite");
    TestDb {
        db,
        url,
        backend: Backend::Sqlite,
        _dir: Some(dir),
        pg: None,
    }
}

/// A fresh, migrated Postgres database (a copy of the template).
pub async fn pg_db() -> TestDb {
    let pg = create_pg(Some(template().await)).await;
    let db = store::open(&pg.url, &PoolOptions::default())
        .await
        .expect("open postgres");
    TestDb {
        db,
        url: pg.url.clone(),
        backend: Backend::Postgres,
        _dir: None,
        pg: Some(pg),
    }
}

/// A fresh, empty Postgres database, for tests of what the server does to
/// a database it has not migrated.
pub async fn fresh_pg() -> PgDatabase {
    create_pg(None).await
}

pub async fn admin_connection() -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&pg_admin_url())
        .await
        .unwrap_or_else(|err| {
            panic!(
                "Postgres is unreachable at FLEETMIND_TEST_PG ({err}); the Postgres tests need it"
            )
        })
}

fn url_of(name: &str) -> String {
    let admin = pg_admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

async fn create_pg(template: Option<&str>) -> PgDatabase {
    let mut conn = admin_connection().await;
    let name = format!("fm_test_{}", uuid_like());
    let from = template
        .map(|t| format!(" TEMPLATE {t}"))
        .unwrap_or_default();
    sqlx::query(&format!("CREATE DATABASE {name}{from}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    PgDatabase {
        url: url_of(&name),
        name,
    }
}

/// The name of the migrated template database, made once per process and
/// shared by every process that runs the same migrations.
pub async fn template() -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE.get_or_init(make_template).await
}

/// The advisory lock (class, name) a process holds, shared, on the template
/// it copies, for as long as it runs: a template of other migrations is
/// dropped only by whoever gets this lock alone, so a test binary of an
/// older or newer schema running meanwhile keeps its own.
const IN_USE: &str = "hashtext('fm_template'), hashtext($1)";

async fn make_template() -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for migration in PG_MIGRATIONS.iter() {
        hash.update(migration.version.to_le_bytes());
        hash.update(&migration.checksum);
    }
    let name = format!("fm_template_{}", &hex::encode(hash.finalize())[..16]);
    // Taken before looking for the template, so a process dropping it as
    // stale either has done so (and it is made again below) or never will.
    hold_in_use(&name);
    let mut conn = admin_connection().await;
    // One process builds it while the others wait: the lock is the
    // server-wide advisory lock of this name's hash.
    build_lock(&mut conn, &name, true).await;
    if !exists(&mut conn, &name).await {
        // Migrated under another name and renamed when complete, so a run
        // killed half-way never leaves a half-migrated template behind. It
        // is marked a template from the start: only marked databases are
        // ever dropped as stale (see `drop_stale_templates`).
        let partial = format!("{name}_partial");
        drop_template(&mut conn, &partial).await;
        sqlx::query(&format!("CREATE DATABASE {partial} IS_TEMPLATE true"))
            .execute(&mut conn)
            .await
            .expect("create template");
        let db = store::open(&url_of(&partial), &PoolOptions::default())
            .await
            .expect("migrate template");
        drop(db);
        rename_when_built(&mut conn, &partial, &name).await;
    }
    build_lock(&mut conn, &name, false).await;
    drop_stale_templates(&mut conn, &name).await;
    name
}

/// Takes (`true`) or releases (`false`) the server-wide advisory lock of
/// `name`: one process builds a shared database while the others wait.
pub async fn build_lock(conn: &mut sqlx::PgConnection, name: &str, take: bool) {
    let query = if take {
        "SELECT pg_advisory_lock(hashtext($1))"
    } else {
        "SELECT pg_advisory_unlock(hashtext($1))"
    };
    sqlx::query(query)
        .bind(name)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("advisory lock of {name}: {e}"));
}

/// Gives the database built as `partial` its real `name`, so a run killed
/// half-way never leaves a half-built one under that name. The builder's
/// connections may still be closing (the rename cannot wait with FORCE), so
/// they are ended first.
pub async fn rename_when_built(conn: &mut sqlx::PgConnection, partial: &str, name: &str) {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 \
         AND pid <> pg_backend_pid()",
    )
    .bind(partial)
    .execute(&mut *conn)
    .await
    .expect("close the builder's connections");
    sqlx::query(&format!("ALTER DATABASE {partial} RENAME TO {name}"))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("rename {partial} to {name}: {e}"));
}

pub async fn exists(conn: &mut sqlx::PgConnection, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .expect("find template")
}

/// Drops a template (or its half-made `_partial`) if it is there: a
/// database marked a template must be unmarked before it can be dropped.
async fn drop_template(conn: &mut sqlx::PgConnection, name: &str) {
    if !exists(conn, name).await {
        return;
    }
    for sql in [
        format!("ALTER DATABASE {name} IS_TEMPLATE false"),
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    ] {
        sqlx::query(&sql)
            .execute(&mut *conn)
            .await
            .expect("drop stale template");
    }
}

/// Drops the templates of other migrations (a schema change leaves the
/// previous one behind) that no running test binary holds. Only databases
/// marked templates and named `fm_template_…` are candidates: the ones this
/// code made. One that a running binary holds is left for a later run.
pub async fn drop_stale_templates(conn: &mut sqlx::PgConnection, current: &str) {
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datistemplate \
         AND datname LIKE 'fm\\_template\\_%' AND datname <> $1 ORDER BY datname",
    )
    .bind(current)
    .fetch_all(&mut *conn)
    .await
    .expect("list templates");
    for name in stale {
        let base = name.strip_suffix("_partial").unwrap_or(&name).to_owned();
        let free: bool = sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({IN_USE})"))
            .bind(&base)
            .fetch_one(&mut *conn)
            .await
            .expect("template in-use lock");
        if !free {
            continue;
        }
        drop_template(conn, &name).await;
        sqlx::query(&format!("SELECT pg_advisory_unlock({IN_USE})"))
            .bind(&base)
            .execute(&mut *conn)
            .await
            .expect("template in-use unlock");
    }
}

/// Takes the shared in-use lock of `template` for `conn`'s session.
pub async fn take_in_use(conn: &mut sqlx::PgConnection, template: &str) {
    sqlx::query(&format!("SELECT pg_advisory_lock_shared({IN_USE})"))
        .bind(template)
        .execute(conn)
        .await
        .expect("template in-use lock");
}

/// Holds the shared in-use lock of `template` until the process ends, on a
/// connection of its own: a thread with its own runtime keeps it, since
/// each test's runtime (and its connections) ends with the test.
fn hold_in_use(template: &str) {
    let (taken, wait) = std::sync::mpsc::channel();
    let template = template.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("in-use lock runtime");
        rt.block_on(async move {
            let mut conn = admin_connection().await;
            take_in_use(&mut conn, &template).await;
            let _ = taken.send(());
            // Kept until the process exits, which ends the session and so
            // releases the lock.
            std::future::pending::<()>().await;
        });
    });
    wait.recv_timeout(std::time::Duration::from_secs(60))
        .expect("template in-use lock within 60 s");
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
