//! Drover's durable store.
//!
//! The engine keeps its working set in memory and writes every change through a [`Store`] before
//! it acknowledges it. The trait is deliberately narrow — load everything at start, commit a batch
//! atomically — so that a PostgreSQL backend can sit beside the embedded SQLite one.

mod sqlite;

pub use sqlite::SqliteStore;

/// One stored object: its kind (class), key (reference) and serialized body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The object's class or internal table name.
    pub kind: String,
    /// The object's key, unique within its kind.
    pub key: String,
    /// The serialized object.
    pub data: Vec<u8>,
}

/// One change in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Insert or replace a row.
    Put(Row),
    /// Delete a row if present.
    Delete {
        /// Kind of the row.
        kind: String,
        /// Key of the row.
        key: String,
    },
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed.
    #[error("store backend: {0}")]
    Backend(#[from] rusqlite::Error),
    /// The stored schema is newer than this program knows.
    #[error("store schema version {found} is newer than this program's {known}")]
    TooNew {
        /// Version found in the store.
        found: i64,
        /// Newest version this program knows.
        known: i64,
    },
}

/// A durable, atomic store of rows.
pub trait Store: Send + Sync {
    /// Every row, in unspecified order.
    fn load_all(&self) -> Result<Vec<Row>, StoreError>;
    /// Applies all changes atomically and durably: when this returns `Ok`, a crash loses none of
    /// them; when it fails or the process dies inside it, none of them is applied.
    fn commit(&self, changes: &[Change]) -> Result<(), StoreError>;
}

#[cfg(test)]
pub(crate) mod conformance {
    //! Behaviour every backend must show.
    use super::*;

    fn row(kind: &str, key: &str, data: &str) -> Row {
        Row {
            kind: kind.into(),
            key: key.into(),
            data: data.as_bytes().to_vec(),
        }
    }

    pub fn run(open: &dyn Fn() -> Box<dyn Store>) {
        let s = open();
        assert!(s.load_all().unwrap().is_empty());
        s.commit(&[
            Change::Put(row("VM", "r1", "a")),
            Change::Put(row("VM", "r2", "b")),
        ])
        .unwrap();
        s.commit(&[
            Change::Put(row("VM", "r1", "c")),
            Change::Delete {
                kind: "VM".into(),
                key: "r2".into(),
            },
        ])
        .unwrap();
        s.commit(&[Change::Delete {
            kind: "VM".into(),
            key: "missing".into(),
        }])
        .unwrap();
        drop(s);
        let s = open();
        let mut rows = s.load_all().unwrap();
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(rows, vec![row("VM", "r1", "c")]);
        // Same key in two kinds are two rows.
        s.commit(&[Change::Put(row("SR", "r1", "x"))]).unwrap();
        assert_eq!(s.load_all().unwrap().len(), 2);
    }
}
