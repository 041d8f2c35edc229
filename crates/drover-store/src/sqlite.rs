//! The embedded SQLite backend.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};

use crate::{Change, Row, Store, StoreError};

/// Ordered, append-only schema migrations; entry `i` brings the store to version `i + 1`.
const MIGRATIONS: &[&str] = &["CREATE TABLE objects (
        kind TEXT NOT NULL,
        key  TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;"];

/// A store in one SQLite file, in WAL mode with full synchronous commits.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied transaction: SQLite rolls
        // back an unfinished one, so the connection stays usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn load_all(&self) -> Result<Vec<Row>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT kind, key, data FROM objects")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Row {
                    kind: r.get(0)?,
                    key: r.get(1)?,
                    data: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO objects (kind, key, data) VALUES (?1, ?2, ?3)",
            )?;
            let mut del = tx.prepare_cached("DELETE FROM objects WHERE kind = ?1 AND key = ?2")?;
            for c in changes {
                match c {
                    Change::Put(row) => {
                        put.execute(params![row.kind, row.key, row.data])?;
                    }
                    Change::Delete { kind, key } => {
                        del.execute(params![kind, key])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conforms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drover.db");
        crate::conformance::run(&|| Box::new(SqliteStore::open(&path).unwrap()));
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drover.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}
