//! Database administration for tests and harnesses: create and drop a PostgreSQL database, and
//! read any center database with one raw query. The center never calls these at run time; they
//! live here because the store is the only crate that may speak SQL (the e2e harness and the
//! store's own test databases use them instead of a sqlx of their own).

use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::{Result, StoreError};

/// Creates the empty database `name` on the PostgreSQL server of `admin_url` (a URL of a
/// database where the user may `CREATE DATABASE`, e.g. `postgres://postgres@host/postgres`).
/// Returns the new database's URL ([`database_url`]).
pub async fn create_database(admin_url: &str, name: &str) -> Result<String> {
    let url = database_url(admin_url, name)?;
    execute_once(admin_url, &format!("CREATE DATABASE {name}")).await?;
    Ok(url)
}

/// Drops the database `name` on the server of `admin_url`, closing its connections first
/// (a test's center may still hold some); a database already gone is not an error.
pub async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    check_name(name)?;
    execute_once(
        admin_url,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await
}

/// The URL of database `name` on the server of `admin_url`: its database path replaced, its
/// query string (e.g. `?sslmode=…`) kept.
pub fn database_url(admin_url: &str, name: &str) -> Result<String> {
    check_name(name)?;
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let (prefix, _) = base
        .rsplit_once('/')
        .filter(|(prefix, _)| prefix.contains("://") && !prefix.ends_with('/'))
        .ok_or_else(|| StoreError::BadUrl(admin_url.to_string()))?;
    Ok(format!("{prefix}/{name}{query}"))
}

/// Runs one statement on the database at `url` (`sqlite://PATH` or `postgres://…`) with text
/// binds `$1, $2, …`, and returns its rows, each column as JSON: integers as numbers, text as
/// strings, NULL as null (also floats, booleans, and blobs as hex strings). Meant for tests
/// checking what a center stored; it opens and closes its own single connection.
pub async fn query(url: &str, sql: &str, binds: &[&str]) -> Result<Vec<Vec<Value>>> {
    let pool = connect(url).await?;
    let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
    for b in binds {
        q = q.bind(b.to_string());
    }
    let rows = q.fetch_all(&pool).await;
    pool.close().await;
    rows?.iter().map(json_row).collect()
}

/// Identifiers cannot be bound as parameters, so a database name is spliced into the SQL; only
/// names that need no quoting are taken.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "database name {name:?}: use lower-case letters, digits and _"
        )))
    }
}

async fn connect(url: &str) -> Result<AnyPool> {
    sqlx::any::install_default_drivers();
    Ok(AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?)
}

async fn execute_once(url: &str, sql: &str) -> Result<()> {
    let pool = connect(url).await?;
    let done = sqlx::query(AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await;
    pool.close().await;
    done?;
    Ok(())
}

/// The Any driver decodes a column only as a compatible type, so each type is tried in turn.
fn json_row(row: &AnyRow) -> Result<Vec<Value>> {
    (0..row.len())
        .map(|i| {
            if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                return Ok(v.map_or(Value::Null, Value::from));
            }
            if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                return Ok(v.map_or(Value::Null, Value::from));
            }
            if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
                return Ok(v.map_or(Value::Null, Value::from));
            }
            if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
                return Ok(v.map_or(Value::Null, Value::from));
            }
            let v: Option<Vec<u8>> = row.try_get(i)?;
            Ok(v.map_or(Value::Null, |b| {
                Value::from(b.iter().map(|x| format!("{x:02x}")).collect::<String>())
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_replaces_the_path_and_keeps_the_query() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "hw_t1").unwrap(),
            "postgres://postgres@127.0.0.1:5432/hw_t1"
        );
        assert_eq!(
            database_url("postgres://u@h/postgres?sslmode=disable", "hw_t1").unwrap(),
            "postgres://u@h/hw_t1?sslmode=disable"
        );
        assert!(database_url("postgres://u@h", "hw_t1").is_err());
    }

    #[test]
    fn database_names_that_would_need_quoting_are_refused() {
        for bad in ["", "a;drop", "A", "1a", "a b", "a\"b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("hw_e2e_0a1b").unwrap();
    }

    #[tokio::test]
    async fn query_returns_rows_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("q.db").display());
        crate::Store::connect(&url).await.unwrap();
        let rows = query(
            &url,
            "SELECT COUNT(*) AS n, $1 AS t, NULL AS z FROM projects",
            &["x"],
        )
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![vec![Value::from(0), Value::from("x"), Value::Null]]
        );
    }
}
