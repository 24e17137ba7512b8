//! Storage of the protection center: every SQL statement and migration lives in this crate, and
//! it is the only crate of the workspace that depends on sqlx (`tests/tests/tidy.rs` holds that).
//!
//! One code path serves SQLite and PostgreSQL through the sqlx `Any` driver. To stay portable:
//! placeholders are `$1, $2, …` (both backends accept them), ids are TEXT, times are Unix
//! seconds in BIGINT, flags are 0/1 BIGINT, JSON is TEXT, and each backend has its own migration
//! folder because only DDL differs (identity columns).

pub mod admin;
mod alarms;
mod audit;
mod auth;
mod baseline;
mod dashboard;
mod editions;
mod enrollment;
mod fim;
mod history;
mod inventory;
mod login_ips;
mod malware;
mod notifications;
mod policy_groups;
mod projects;
mod quarantine;
mod records;
mod replicas;
mod reports;
mod risk;
mod score;
mod servers;
mod ssh_whitelist;
pub mod status;
mod tamper;
mod tasks;
mod two_factor;

pub use alarms::*;
pub use audit::*;
pub use auth::*;
pub use baseline::*;
pub use dashboard::*;
pub use editions::*;
pub use enrollment::*;
pub use fim::*;
pub use history::{HANDLING_KINDS, HandlingEntry, HandlingLogEntry, HandlingLogFilter, History};
pub use inventory::*;
pub use login_ips::*;
pub use malware::*;
pub use notifications::*;
pub use policy_groups::*;
pub use projects::*;
pub use quarantine::*;
pub use records::*;
pub use reports::*;
pub use risk::*;
pub use score::*;
pub use servers::*;
pub use ssh_whitelist::*;
pub use tamper::*;
pub use tasks::*;
pub use two_factor::*;

use std::borrow::Cow;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, AssertSqlSafe, Executor};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A record that fails its own checks (`validate()`), which no retry can change.
    #[error("invalid record: {0}")]
    Invalid(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    BadUrl(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// Whether trying again cannot help: the data breaks a constraint or the row it needs is
    /// gone. Everything else (a pool timeout, a lost connection, a busy SQLite file, a database
    /// restarting) may pass, so a record that failed with it is retried, never skipped.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => {
                !matches!(e.kind(), sqlx::error::ErrorKind::Other)
            }
            StoreError::Db(
                sqlx::Error::ColumnDecode { .. }
                | sqlx::Error::Decode(_)
                | sqlx::Error::TypeNotFound { .. }
                | sqlx::Error::ColumnNotFound(_),
            ) => true,
            StoreError::Db(_) | StoreError::Migrate(_) | StoreError::BadUrl(_) => false,
            StoreError::NotFound(_) | StoreError::Conflict(_) | StoreError::Invalid(_) => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Policies as agents' configs last read them (`Store::policy_for_config`).
    policies: std::sync::Arc<std::sync::Mutex<projects::PolicyCache>>,
    /// The malware rule set as agents' configs last read it (`Store::malware_rules_for_config`).
    rules: std::sync::Arc<std::sync::Mutex<Option<hostward_proto::malware::MalwareRules>>>,
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "inventory",
        include_str!("../migrations/sqlite/0002_inventory.sql"),
    ),
    (
        3,
        "risk",
        include_str!("../migrations/sqlite/0003_risk.sql"),
    ),
    (
        4,
        "alarms",
        include_str!("../migrations/sqlite/0004_alarms.sql"),
    ),
    (
        5,
        "login_ips",
        include_str!("../migrations/sqlite/0005_login_ips.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "inventory",
        include_str!("../migrations/postgres/0002_inventory.sql"),
    ),
    (
        3,
        "risk",
        include_str!("../migrations/postgres/0003_risk.sql"),
    ),
    (
        4,
        "alarms",
        include_str!("../migrations/postgres/0004_alarms.sql"),
    ),
    (
        5,
        "login_ips",
        include_str!("../migrations/postgres/0005_login_ips.sql"),
    ),
];

/// Migrations from version 6 on: one file for both backends. The files use portable SQL; the
/// few things the backends spell differently are placeholders filled in at load
/// ([`render_migration`]). The per-backend lists above stay byte-identical, so databases
/// deployed with them keep upgrading.
const SHARED_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        6,
        "enrollment_scope",
        include_str!("../migrations/0006_enrollment_scope.sql"),
    ),
    (
        7,
        "login_attempts",
        include_str!("../migrations/0007_login_attempts.sql"),
    ),
    (
        8,
        "policies",
        include_str!("../migrations/0008_policies.sql"),
    ),
    (
        9,
        "delivery",
        include_str!("../migrations/0009_delivery.sql"),
    ),
    (
        10,
        "quarantine",
        include_str!("../migrations/0010_quarantine.sql"),
    ),
    (11, "fim", include_str!("../migrations/0011_fim.sql")),
    (12, "tamper", include_str!("../migrations/0012_tamper.sql")),
    (
        13,
        "malware",
        include_str!("../migrations/0013_malware.sql"),
    ),
    (
        14,
        "risk_reason",
        include_str!("../migrations/0014_risk_reason.sql"),
    ),
    (
        15,
        "baselines",
        include_str!("../migrations/0015_baselines.sql"),
    ),
    (
        16,
        "two_factor",
        include_str!("../migrations/0016_two_factor.sql"),
    ),
    (
        17,
        "notifications",
        include_str!("../migrations/0017_notifications.sql"),
    ),
    (
        18,
        "reports",
        include_str!("../migrations/0018_reports.sql"),
    ),
    (
        19,
        "ssh_whitelist",
        include_str!("../migrations/0019_ssh_whitelist.sql"),
    ),
    (
        20,
        "editions",
        include_str!("../migrations/0020_editions.sql"),
    ),
];

/// Placeholders of shared migrations and their text per backend.
const PLACEHOLDERS: &[(&str, &str, &str)] = &[(
    // An auto-numbered BIGINT primary key column type.
    "{{id_column}}",
    "INTEGER PRIMARY KEY AUTOINCREMENT",
    "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
)];

/// A shared migration's SQL for `backend`.
fn render_migration(sql: &str, backend: Backend) -> String {
    PLACEHOLDERS
        .iter()
        .fold(sql.to_string(), |sql, (name, sqlite, postgres)| {
            sql.replace(
                name,
                match backend {
                    Backend::Sqlite => sqlite,
                    Backend::Postgres => postgres,
                },
            )
        })
}

impl Store {
    /// Connects and brings the schema up to date. `url` is `sqlite://PATH` (created if missing) or
    /// `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store> {
        let store = Store::connect_unmigrated(url).await?;
        store.migrate(i64::MAX).await?;
        Ok(store)
    }

    async fn connect_unmigrated(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        opts = match backend {
            // One writer at a time is SQLite's model anyway; a few readers keep pages responsive.
            Backend::Sqlite => opts.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL;")
                        .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => opts.max_connections(16),
        };
        let pool = opts.connect(&url).await?;
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL;").await?;
        }
        Ok(Store {
            pool,
            backend,
            policies: Default::default(),
            rules: Default::default(),
        })
    }

    /// A store whose schema stops at `version`, as an older release left it.
    #[cfg(test)]
    pub(crate) async fn connect_at_version(url: &str, version: i64) -> Result<Store> {
        let store = Store::connect_unmigrated(url).await?;
        store.migrate(version).await?;
        Ok(store)
    }

    /// Applies the migrations up to `max_version` that are not applied yet.
    async fn migrate(&self, max_version: i64) -> Result<()> {
        let list = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations =
            list.iter()
                .map(|(version, desc, sql)| (*version, *desc, sql.to_string()))
                .chain(SHARED_MIGRATIONS.iter().map(|(version, desc, sql)| {
                    (*version, *desc, render_migration(sql, self.backend))
                }))
                .map(|(version, desc, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(desc),
                        MigrationType::Simple,
                        AssertSqlSafe(sql).into_sql_str(),
                        false,
                    )
                })
                .filter(|m: &Migration| m.version <= max_version)
                .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Crate-private like [`Store::begin`]: no sqlx type leaves the store, so no other crate can
    /// run SQL of its own through it.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction. On SQLite it takes the write lock up front (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads and then writes fails with
    /// SQLITE_BUSY_SNAPSHOT when another connection wrote in between, and busy_timeout cannot
    /// help with that.
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Round-trip time of a trivial query, for `/metrics` and health checks.
    pub async fn ping(&self) -> Result<Duration> {
        let start = std::time::Instant::now();
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(start.elapsed())
    }
}

use sqlx::SqlSafeStr as _;

/// Current Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A bind value for dynamically built statements (filters, batches).
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

/// Builds SQL with `$N` placeholders, which both backends accept. (sqlx's QueryBuilder would emit
/// `?` for the Any driver, which PostgreSQL rejects.)
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            binds: Vec::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        self.text.push_str(&format!("${}", self.binds.len()));
        self
    }

    /// Appends `(...)` with one placeholder per value, for `IN` lists.
    pub fn bind_list(&mut self, values: &[String]) -> &mut Self {
        self.text.push('(');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(Bind::Text(v.clone()));
        }
        self.text.push(')');
        self
    }

    pub fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.text.clone()));
        for b in &self.binds {
            q = match b {
                Bind::Text(s) => q.bind(s.clone()),
                Bind::OptText(s) => q.bind(s.clone()),
                Bind::Int(i) => q.bind(*i),
                Bind::OptInt(i) => q.bind(*i),
            };
        }
        q
    }
}

/// Reads a column that is NULL-able BIGINT.
pub(crate) fn opt_i64(row: &AnyRow, col: &str) -> Option<i64> {
    use sqlx::Row;
    row.try_get::<Option<i64>, _>(col).ok().flatten()
}

/// Reads a 0/1 flag column.
pub(crate) fn flag(row: &AnyRow, col: &str) -> bool {
    use sqlx::Row;
    row.try_get::<i64, _>(col).map(|v| v != 0).unwrap_or(false)
}

/// `%q%` for a case-insensitive LIKE with `ESCAPE '\\'`: wildcards in `q` are taken literally.
pub(crate) fn like(q: &str) -> String {
    let escaped: String = q
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%{}%", escaped.to_lowercase())
}

pub(crate) fn offset(page: i64, per_page: i64) -> (i64, i64) {
    let per_page = per_page.clamp(1, 1000);
    (per_page, (page.max(1) - 1) * per_page)
}

/// Rows matching a filter (`FROM … WHERE …`).
pub(crate) async fn count(store: &Store, filter: &Sql) -> Result<i64> {
    use sqlx::Row;
    let sql = Sql {
        text: format!("SELECT COUNT(*) AS n{}", filter.text),
        binds: filter.binds.clone(),
    };
    Ok(sql.query().fetch_one(store.pool()).await?.try_get("n")?)
}

/// `SELECT <columns><filter> ORDER BY <order>` for one page, and the filter's total row count.
pub(crate) async fn paged(
    store: &Store,
    columns: &str,
    filter: Sql,
    order: &str,
    page: i64,
    per_page: i64,
) -> Result<(Vec<AnyRow>, i64)> {
    let total = count(store, &filter).await?;
    let (limit, off) = offset(page, per_page);
    let mut sql = Sql {
        text: format!("SELECT {columns}{} ORDER BY {order} LIMIT ", filter.text),
        binds: filter.binds,
    };
    sql.bind(Bind::Int(limit))
        .push(" OFFSET ")
        .bind(Bind::Int(off));
    Ok((sql.query().fetch_all(store.pool()).await?, total))
}

#[cfg(test)]
mod migration_tests;

#[cfg(any(test, feature = "testdb"))]
pub mod testdb {
    //! Storage tests run against both backends: SQLite in a temp dir always, PostgreSQL when
    //! `HOSTWARD_TEST_POSTGRES_URL` points at a server where we may create databases (CI sets it).
    //! Public behind the `testdb` feature because the center's API and console tests use it too.
    use super::*;

    pub struct TestDb {
        pub store: Store,
        _dir: Option<tempfile::TempDir>,
        // After `store`: fields drop in order, so the pool goes before its database.
        _pg: Option<PgTestDatabase>,
    }

    /// Imports a vulnerability database of one advisory that matches nothing: enough for a
    /// server's risk status to be more than `pending` once its checks ran.
    pub async fn import_one_advisory(s: &Store) {
        s.import_advisories(
            "feed",
            &[("X".into(), "{\"id\":\"X\"}".into())],
            &[],
            false,
            "cli",
        )
        .await
        .unwrap();
    }

    /// A failed baseline check with no evidence.
    pub fn failed_check(
        id: i64,
        title: &str,
        severity: hostward_proto::Severity,
    ) -> hostward_proto::baseline::CheckResult {
        hostward_proto::baseline::CheckResult {
            id,
            title: title.into(),
            result: hostward_proto::baseline::Outcome::Fail,
            reason: None,
            evidence: Vec::new(),
            severity,
            rationale: String::new(),
            remediation: String::new(),
            compliance: Default::default(),
        }
    }

    /// A `risk` record of a baselines-only scan that ran `policy_id` with `checks`.
    pub fn baseline_run(
        policy_id: &str,
        checks: Vec<hostward_proto::baseline::CheckResult>,
    ) -> hostward_proto::Message {
        use hostward_proto::baseline::{BaselineResult, PolicyReport};
        use hostward_proto::risk::{RiskReport, ScanCheck, ScanTrigger};
        hostward_proto::Message::Risk(RiskReport {
            task_id: None,
            trigger: ScanTrigger::Task,
            started_at: now() - 1,
            finished_at: now(),
            checks: vec![ScanCheck::Baselines],
            weak_passwords: None,
            password_policy: None,
            baselines: Some(BaselineResult {
                policies: vec![PolicyReport {
                    policy_id: policy_id.into(),
                    name: policy_id.into(),
                    applicable: true,
                    reason: None,
                    checks,
                }],
                ..Default::default()
            }),
        })
    }

    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        TestDb {
            store: Store::connect(&url).await.unwrap(),
            _dir: Some(dir),
            _pg: None,
        }
    }

    /// A fresh database on the test PostgreSQL server, or None when none is configured.
    pub async fn postgres() -> Option<TestDb> {
        let pg = postgres_database().await?;
        Some(TestDb {
            store: Store::connect(&pg.url).await.unwrap(),
            _dir: None,
            _pg: Some(pg),
        })
    }

    /// A new, empty database on the test PostgreSQL server, dropped when this is dropped: a
    /// suite run thousands of times must not leave thousands of databases behind (a cluster
    /// that large takes minutes to recover after an unclean stop).
    pub struct PgTestDatabase {
        pub url: String,
        admin_url: String,
        name: String,
    }

    impl Drop for PgTestDatabase {
        fn drop(&mut self) {
            let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
            // Drop runs inside the test's runtime, which cannot be blocked on: a thread of
            // its own with a runtime of its own.
            let dropped = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(admin::drop_database(&admin_url, &name))
                    .map_err(std::io::Error::other)
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test database {}: {dropped:?}", self.name);
            }
        }
    }

    pub async fn postgres_database() -> Option<PgTestDatabase> {
        let admin_url = std::env::var("HOSTWARD_TEST_POSTGRES_URL").ok()?;
        let name = format!("hw_test_{}", uuid::Uuid::new_v4().simple());
        let url = admin::create_database(&admin_url, &name)
            .await
            .expect("create a database on HOSTWARD_TEST_POSTGRES_URL");
        Some(PgTestDatabase {
            url,
            admin_url,
            name,
        })
    }

    /// Both backends that are available: SQLite always, PostgreSQL when configured. In CI
    /// (`CI=true`) a missing PostgreSQL is an error, so the suite cannot silently skip it.
    pub async fn all() -> Vec<(&'static str, TestDb)> {
        let mut v = vec![("sqlite", sqlite().await)];
        match postgres().await {
            Some(db) => v.push(("postgres", db)),
            None if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but HOSTWARD_TEST_POSTGRES_URL is not set")
            }
            None => {
                eprintln!("HOSTWARD_TEST_POSTGRES_URL not set: storage test ran on SQLite only")
            }
        }
        v
    }
}
