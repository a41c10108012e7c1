//! The learner's admin API: pools, experiments and gates that routers read as one versioned
//! snapshot (`GET /v1/config`), managed with API keys and kept in a database.
//!
//! Map: [`model`] (the resources and the validation of every body), [`keys`] (key secrets,
//! hashing, who may do what), [`store`] (the store seam, [`AdminStore`]), [`sql`] (the store on
//! SQLite or PostgreSQL, migrations), [`report`] (per-variant tallies and the experiment
//! report), [`http`] (the `/v1` routes, credentials and the audit log).
//!
//! Where the database is (`--database-url`, `LEARNER_DATABASE_URL`): `postgres://...` for
//! several learner instances on one database; `sqlite://PATH`; unset, an SQLite file next to the
//! state file (`--state-file state.json` gives `state.admin.sqlite3`), created on first start;
//! with neither, an SQLite database in memory (gone at exit, said in the log at start).

pub mod http;
pub mod keys;
pub mod model;
pub mod report;
pub mod sql;
pub mod store;

pub use http::Admin;
pub use sql::{Database, SqlStore};
pub use store::AdminStore;

use std::path::{Path, PathBuf};

/// The SQLite file beside a state file: `state.json` -> `state.admin.sqlite3`.
pub fn sqlite_beside(state_file: &Path) -> PathBuf {
    state_file.with_extension("admin.sqlite3")
}

/// Where the admin store is: the URL when given, else beside the state file, else in memory.
pub fn database_for(
    url: Option<&str>,
    state_file: Option<&Path>,
) -> Result<Database, &'static str> {
    match (url, state_file) {
        (Some(url), _) => Database::parse(url),
        (None, Some(state)) => Ok(Database::Sqlite(sqlite_beside(state))),
        (None, None) => Ok(Database::Memory),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_defaults_to_sqlite_beside_the_state_file() {
        assert_eq!(
            database_for(None, Some(Path::new("/var/lib/m/state.json"))),
            Ok(Database::Sqlite("/var/lib/m/state.admin.sqlite3".into()))
        );
        assert_eq!(database_for(None, None), Ok(Database::Memory));
        assert_eq!(
            database_for(Some("postgres://u@h/db"), Some(Path::new("s.json"))),
            Ok(Database::Postgres("postgres://u@h/db".into()))
        );
        assert!(database_for(Some("redis://x"), None).is_err());
    }
}
