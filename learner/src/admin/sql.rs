//! [`AdminStore`] on SQL through sqlx's `Any` driver: SQLite (bundled, embedded, one file) or
//! PostgreSQL (several learner instances on one database), chosen by the URL.
//!
//! Migrations are the SQL files under `learner/migrations/{sqlite,postgres}/`, compiled into the
//! binary and run on start by sqlx's migrator (which records them in `_sqlx_migrations` and, on
//! PostgreSQL, holds an advisory lock meanwhile, so learners starting together migrate once).
//! The two dialects differ only where SQL does (an auto-increment key); queries are written
//! once with `?` placeholders, numbered `$1, $2, ...` for PostgreSQL.
//!
//! Concurrency: every change first bumps the single `config_version` row. On PostgreSQL that
//! row lock serializes changes across learner instances, so the integrity checks that follow
//! (an experiment's pool exists, a deleted pool has no experiments) see every earlier change;
//! SQLite serializes writers by itself, and the pool keeps one connection to its file, in WAL
//! mode with `synchronous = NORMAL` (no fsync per commit: an audit row per call would otherwise
//! cap the API at the disk's fsync rate, ~50 calls/s on the machine this was measured on).

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, AssertSqlSafe, Row, SqlSafeStr};
use tracing::info;

use crate::admin::model::{self, Kind, Resource, Scope};
use crate::admin::store::{
    AdminStore, ApiKey, AuditEntry, ConfigSnapshot, StoreError, StoreResult, Stored,
};

/// Where the admin store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file, created on first start.
    Sqlite(std::path::PathBuf),
    /// An SQLite database in memory: gone when the learner stops (no `--state-file`, no URL).
    Memory,
    /// `postgres://user@host:port/db` (the URL is kept out of logs: it may hold a password).
    Postgres(String),
}

impl Database {
    /// Parses `LEARNER_DATABASE_URL`: `postgres://` or `postgresql://`, `sqlite://PATH`, or
    /// `sqlite::memory:`.
    pub fn parse(url: &str) -> Result<Database, &'static str> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_owned()));
        }
        if url == "sqlite::memory:" {
            return Ok(Database::Memory);
        }
        match url.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() && !path.contains('?') => {
                Ok(Database::Sqlite(path.into()))
            }
            _ => Err("must be postgres://..., sqlite://PATH or sqlite::memory:"),
        }
    }

    /// What logs and `--print-config` show: no credentials.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("sqlite://{}", path.display()),
            Database::Memory => "sqlite::memory:".into(),
            Database::Postgres(url) => {
                let rest = url.split_once("://").map_or("", |(_, r)| r);
                let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                format!("postgres://{host}")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The admin store on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn migrator(backend: Backend) -> Migrator {
    let files: &[(i64, &str, &'static str)] = match backend {
        Backend::Sqlite => &[(1, "admin", include_str!("../../migrations/sqlite/0001_admin.sql"))],
        Backend::Postgres => {
            &[(1, "admin", include_str!("../../migrations/postgres/0001_admin.sql"))]
        }
    };
    let migrations = files
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                (*description).into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Run on every SQLite connection (`journal_mode` is a no-op in memory).
const SQLITE_PRAGMAS: &[&str] =
    &["PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA busy_timeout = 5000"];

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqlStore {
    /// Connects (creating an SQLite file if needed) and runs the migrations.
    pub async fn open(database: &Database) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = match database {
            Database::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Database(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                (format!("sqlite://{}?mode=rwc", path.display()), Backend::Sqlite)
            }
            Database::Memory => ("sqlite::memory:".to_owned(), Backend::Sqlite),
            Database::Postgres(url) => (url.clone(), Backend::Postgres),
        };
        let options = match backend {
            // One connection: SQLite has one writer anyway, and an in-memory database lives
            // exactly as long as its connection.
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // Write-ahead log, synced at checkpoints: a commit survives the learner
                        // crashing (not the machine losing power), without an fsync per audit
                        // row; a held lock is waited for, not failed at once.
                        for pragma in SQLITE_PRAGMAS {
                            sqlx::query(*pragma).execute(&mut *conn).await?;
                        }
                        Ok(())
                    })
                }),
            Backend::Postgres => AnyPoolOptions::new().max_connections(8),
        };
        let pool =
            options.acquire_timeout(Duration::from_secs(10)).connect(&url).await.map_err(|e| {
                StoreError::Database(format!("cannot connect to {}: {e}", database.describe()))
            })?;
        migrator(backend)
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(format!("migrations: {e}")))?;
        info!(database = %database.describe(), "admin store ready");
        Ok(SqlStore { pool, backend })
    }

    /// `sql` with `?` numbered `$1, $2, ...` on PostgreSQL (no query here has a `?` elsewhere).
    fn sql(&self, sql: &str) -> AssertSqlSafe<String> {
        match self.backend {
            Backend::Sqlite => AssertSqlSafe(sql.to_owned()),
            Backend::Postgres => {
                let mut out = String::with_capacity(sql.len() + 8);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                AssertSqlSafe(out)
            }
        }
    }
}

fn table(kind: Kind) -> &'static str {
    match kind {
        Kind::Pool => "pools",
        Kind::Experiment => "experiments",
        Kind::Gate => "gates",
    }
}

fn stored(kind: Kind, row: &AnyRow) -> Result<Stored, StoreError> {
    let spec: String = row.try_get("spec").map_err(db)?;
    let resource = model::from_stored(kind, &spec)
        .map_err(|e| StoreError::Database(format!("{} row does not validate: {e}", table(kind))))?;
    Ok(Stored {
        resource,
        created_ms: to_u64(row.try_get("created_ms").map_err(db)?),
        updated_ms: to_u64(row.try_get("updated_ms").map_err(db)?),
    })
}

fn api_key(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let scope: String = row.try_get("scope").map_err(db)?;
    Ok(ApiKey {
        id: row.try_get("id").map_err(db)?,
        scope: Scope::parse(&scope)
            .ok_or_else(|| StoreError::Database(format!("api_keys row with scope {scope:?}")))?,
        label: row.try_get("label").map_err(db)?,
        created_by: row.try_get("created_by").map_err(db)?,
        created_ms: to_u64(row.try_get("created_ms").map_err(db)?),
        revoked_ms: row.try_get::<Option<i64>, _>("revoked_ms").map_err(db)?.map(to_u64),
    })
}

const SELECT_COLUMNS: &str = "spec, created_ms, updated_ms";
const KEY_COLUMNS: &str = "id, scope, label, created_by, created_ms, revoked_ms";

impl SqlStore {
    async fn write(
        &self,
        resource: &Resource,
        now_ms: u64,
        create: bool,
    ) -> Result<Stored, StoreError> {
        let kind = resource.kind();
        let id = resource.id();
        let mut tx = self.pool.begin().await.map_err(db)?;
        // First: the row lock that orders this change after every earlier one.
        sqlx::query("UPDATE config_version SET version = version + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let key = kind.id_field();
        let existing = sqlx::query(
            self.sql(&format!("SELECT created_ms FROM {} WHERE {key} = ?", table(kind))),
        )
        .bind(id.to_owned())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let created_ms = match (existing, create) {
            (Some(_), true) => return Err(StoreError::Exists { kind, id: id.to_owned() }),
            (None, false) => return Err(StoreError::NotFound { kind, id: id.to_owned() }),
            (Some(row), false) => to_u64(row.try_get("created_ms").map_err(db)?),
            (None, true) => now_ms,
        };
        if let Resource::Experiment(e) = resource {
            let pool = sqlx::query(self.sql("SELECT name FROM pools WHERE name = ?"))
                .bind(e.pool.clone())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if pool.is_none() {
                return Err(StoreError::Conflict {
                    field: "pool",
                    problem: format!("no pool named {:?}; create it first", e.pool),
                });
            }
        }
        let spec = resource.to_json().to_string();
        let (now, created) = (to_i64(now_ms), to_i64(created_ms));
        let result = match resource {
            Resource::Pool(p) if create => {
                sqlx::query(self.sql(
                    "INSERT INTO pools (name, spec, created_ms, updated_ms) VALUES (?, ?, ?, ?)",
                ))
                .bind(p.name.clone())
                .bind(spec)
                .bind(created)
                .bind(now)
                .execute(&mut *tx)
                .await
            }
            Resource::Pool(p) => {
                sqlx::query(self.sql("UPDATE pools SET spec = ?, updated_ms = ? WHERE name = ?"))
                    .bind(spec)
                    .bind(now)
                    .bind(p.name.clone())
                    .execute(&mut *tx)
                    .await
            }
            Resource::Experiment(e) if create => {
                sqlx::query(self.sql(
                    "INSERT INTO experiments (id, pool, state, spec, created_ms, updated_ms) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                ))
                .bind(e.id.clone())
                .bind(e.pool.clone())
                .bind(e.state.as_str())
                .bind(spec)
                .bind(created)
                .bind(now)
                .execute(&mut *tx)
                .await
            }
            Resource::Experiment(e) => {
                sqlx::query(self.sql(
                    "UPDATE experiments SET pool = ?, state = ?, spec = ?, updated_ms = ? \
                     WHERE id = ?",
                ))
                .bind(e.pool.clone())
                .bind(e.state.as_str())
                .bind(spec)
                .bind(now)
                .bind(e.id.clone())
                .execute(&mut *tx)
                .await
            }
            Resource::Gate(g) if create => {
                sqlx::query(self.sql(
                    "INSERT INTO gates (id, feature, spec, created_ms, updated_ms) \
                     VALUES (?, ?, ?, ?, ?)",
                ))
                .bind(g.id.clone())
                .bind(g.feature.clone())
                .bind(spec)
                .bind(created)
                .bind(now)
                .execute(&mut *tx)
                .await
            }
            Resource::Gate(g) => {
                sqlx::query(
                    self.sql("UPDATE gates SET feature = ?, spec = ?, updated_ms = ? WHERE id = ?"),
                )
                .bind(g.feature.clone())
                .bind(spec)
                .bind(now)
                .bind(g.id.clone())
                .execute(&mut *tx)
                .await
            }
        };
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Exists { kind, id: id.to_owned() });
            }
            other => {
                other.map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(Stored { resource: resource.clone(), created_ms, updated_ms: now_ms })
    }
}

impl AdminStore for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    fn create<'a>(&'a self, resource: &'a Resource, now_ms: u64) -> StoreResult<'a, Stored> {
        Box::pin(self.write(resource, now_ms, true))
    }

    fn replace<'a>(&'a self, resource: &'a Resource, now_ms: u64) -> StoreResult<'a, Stored> {
        Box::pin(self.write(resource, now_ms, false))
    }

    fn get<'a>(&'a self, kind: Kind, id: &'a str) -> StoreResult<'a, Option<Stored>> {
        Box::pin(async move {
            let row = sqlx::query(self.sql(&format!(
                "SELECT {SELECT_COLUMNS} FROM {} WHERE {} = ?",
                table(kind),
                kind.id_field()
            )))
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            row.map(|r| stored(kind, &r)).transpose()
        })
    }

    fn list(&self, kind: Kind) -> StoreResult<'_, Vec<Stored>> {
        Box::pin(async move {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {SELECT_COLUMNS} FROM {} ORDER BY {}",
                table(kind),
                kind.id_field()
            )))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter().map(|r| stored(kind, r)).collect()
        })
    }

    fn delete<'a>(&'a self, kind: Kind, id: &'a str) -> StoreResult<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db)?;
            sqlx::query("UPDATE config_version SET version = version + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if kind == Kind::Pool {
                let using =
                    sqlx::query(self.sql("SELECT id FROM experiments WHERE pool = ? ORDER BY id"))
                        .bind(id.to_owned())
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db)?;
                if !using.is_empty() {
                    let ids = using
                        .iter()
                        .map(|r| r.try_get::<String, _>("id"))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(db)?;
                    return Err(StoreError::Conflict {
                        field: "name",
                        problem: format!(
                            "pool {id:?} has experiments ({}); delete them first",
                            ids.join(", ")
                        ),
                    });
                }
            }
            let done = sqlx::query(self.sql(&format!(
                "DELETE FROM {} WHERE {} = ?",
                table(kind),
                kind.id_field()
            )))
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound { kind, id: id.to_owned() });
            }
            tx.commit().await.map_err(db)?;
            Ok(())
        })
    }

    fn snapshot(&self) -> StoreResult<'_, ConfigSnapshot> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db)?;
            if self.backend == Backend::Postgres {
                // One consistent view of the three tables and the version.
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            let version: i64 = sqlx::query("SELECT version FROM config_version WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?
                .try_get("version")
                .map_err(db)?;
            let mut snapshot = ConfigSnapshot {
                version: to_u64(version),
                pools: Vec::new(),
                experiments: Vec::new(),
                gates: Vec::new(),
            };
            for kind in Kind::ALL {
                let filter = if kind == Kind::Experiment { " WHERE state = 'running'" } else { "" };
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {SELECT_COLUMNS} FROM {}{filter} ORDER BY {}",
                    table(kind),
                    kind.id_field()
                )))
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
                for row in &rows {
                    match stored(kind, row)?.resource {
                        Resource::Pool(p) => snapshot.pools.push(p),
                        Resource::Experiment(e) => snapshot.experiments.push(e),
                        Resource::Gate(g) => snapshot.gates.push(g),
                    }
                }
            }
            tx.commit().await.map_err(db)?;
            Ok(snapshot)
        })
    }

    fn insert_key<'a>(&'a self, key: &'a ApiKey, secret_sha256: &'a str) -> StoreResult<'a, ()> {
        Box::pin(async move {
            sqlx::query(self.sql(
                "INSERT INTO api_keys (id, secret_sha256, scope, label, created_by, created_ms) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            ))
            .bind(key.id.clone())
            .bind(secret_sha256.to_owned())
            .bind(key.scope.as_str())
            .bind(key.label.clone())
            .bind(key.created_by.clone())
            .bind(to_i64(key.created_ms))
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        })
    }

    fn key_by_hash<'a>(&'a self, secret_sha256: &'a str) -> StoreResult<'a, Option<ApiKey>> {
        Box::pin(async move {
            let row = sqlx::query(
                self.sql(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_sha256 = ?")),
            )
            .bind(secret_sha256.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            row.map(|r| api_key(&r)).transpose()
        })
    }

    fn list_keys(&self) -> StoreResult<'_, Vec<ApiKey>> {
        Box::pin(async move {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_ms, id"
            )))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter().map(api_key).collect()
        })
    }

    fn revoke_key<'a>(&'a self, id: &'a str, now_ms: u64) -> StoreResult<'a, ApiKey> {
        Box::pin(async move {
            sqlx::query(
                self.sql("UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL"),
            )
            .bind(to_i64(now_ms))
            .bind(id.to_owned())
            .execute(&self.pool)
            .await
            .map_err(db)?;
            let row =
                sqlx::query(self.sql(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?")))
                    .bind(id.to_owned())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?;
            match row {
                Some(r) => api_key(&r),
                None => Err(StoreError::NoKey(id.to_owned())),
            }
        })
    }

    fn record_audit<'a>(&'a self, entry: &'a AuditEntry) -> StoreResult<'a, ()> {
        Box::pin(async move {
            sqlx::query(self.sql(
                "INSERT INTO audit (at_ms, actor, method, path, status) VALUES (?, ?, ?, ?, ?)",
            ))
            .bind(to_i64(entry.at_ms))
            .bind(entry.actor.clone())
            .bind(entry.method.clone())
            .bind(entry.path.clone())
            .bind(i64::from(entry.status))
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        })
    }

    fn audit_log(&self, limit: u32) -> StoreResult<'_, Vec<AuditEntry>> {
        Box::pin(async move {
            let rows = sqlx::query(self.sql(
                "SELECT at_ms, actor, method, path, status FROM audit ORDER BY id DESC LIMIT ?",
            ))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter()
                .map(|r| {
                    Ok(AuditEntry {
                        at_ms: to_u64(r.try_get("at_ms").map_err(db)?),
                        actor: r.try_get("actor").map_err(db)?,
                        method: r.try_get("method").map_err(db)?,
                        path: r.try_get("path").map_err(db)?,
                        status: u16::try_from(r.try_get::<i64, _>("status").map_err(db)?)
                            .unwrap_or(0),
                    })
                })
                .collect()
        })
    }
}

impl FromStr for Database {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Database::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_parse_and_hide_passwords() {
        assert_eq!(
            Database::parse("postgres://u:secret@127.0.0.1:5432/magnetar").unwrap().describe(),
            "postgres://127.0.0.1:5432/magnetar"
        );
        assert_eq!(
            Database::parse("sqlite://data/admin.db"),
            Ok(Database::Sqlite("data/admin.db".into()))
        );
        assert_eq!(Database::parse("sqlite::memory:"), Ok(Database::Memory));
        for bad in ["", "mysql://x", "sqlite://", "sqlite://a?mode=ro", "file.db"] {
            assert!(Database::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn placeholders_are_numbered_for_postgres_only() {
        let store = SqlStore::open(&Database::Memory).await.unwrap();
        assert_eq!(store.sql("a = ? AND b = ?").0, "a = ? AND b = ?");
        let pg = SqlStore { backend: Backend::Postgres, ..store };
        assert_eq!(pg.sql("a = ? AND b = ?").0, "a = $1 AND b = $2");
    }
}
