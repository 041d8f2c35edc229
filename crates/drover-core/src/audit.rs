//! The engine's audit log: an entry for every operation that changed something (who did what
//! to which objects, and how it ended), and the entries facades add of their own (logins).
//!
//! Entries are numbered in order. They are store rows of kind `audit` keyed by their zero-padded
//! id, committed before they become visible, and kept in memory in id order up to a retention
//! limit: the commit that adds an entry beyond it deletes the oldest. The newest entry always
//! stays, so ids keep increasing across restarts.

mod catalog;
pub mod codes;
mod words;

use std::collections::VecDeque;
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use drover_store::{Change as StoreChange, Row};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::ops::Reply;

pub(crate) use catalog::{plan, Plan};

/// Store kind of audit entries.
pub(crate) const AUDIT_KIND: &str = "audit";

/// Entries the audit log keeps unless the engine is configured otherwise.
pub const DEFAULT_AUDIT_RETENTION: usize = 100_000;

/// How grave an audit entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Severity {
    /// Something was done.
    Normal,
    /// Something needs attention.
    Warning,
    /// Something failed.
    Error,
    /// Something needs action now.
    Alert,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log: higher is newer.
    pub id: u64,
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub time: i64,
    /// How grave it is.
    pub severity: Severity,
    /// Its oVirt `AuditLogType` code (see [`codes`]).
    pub code: u32,
    /// What happened, in words.
    pub message: String,
    /// The account that did it.
    pub user: String,
    /// The correlation id the client gave the operation, if any.
    pub correlation_id: Option<String>,
    /// The objects involved, as (class, uuid).
    pub subjects: Vec<(String, String)>,
}

/// An entry before it has an id and a time.
pub(crate) struct Draft {
    pub severity: Severity,
    pub code: u32,
    pub message: String,
    pub user: String,
    pub correlation_id: Option<String>,
    pub subjects: Vec<(String, String)>,
}

/// The entries in memory, and the writer's turn.
pub(crate) struct AuditLog {
    entries: RwLock<VecDeque<AuditEntry>>,
    /// The next id; held while an entry is committed, so that entries are committed in id order.
    next: Mutex<u64>,
    retention: usize,
}

impl AuditLog {
    /// The log from its stored rows; an unreadable row is skipped, but its id is not reused.
    pub(crate) fn load(rows: Vec<Row>, retention: usize) -> AuditLog {
        let next = rows
            .iter()
            .filter_map(|r| r.key.parse::<u64>().ok())
            .max()
            .map_or(1, |id| id + 1);
        let mut entries: Vec<AuditEntry> = rows
            .iter()
            .filter_map(|row| match serde_json::from_slice::<AuditEntry>(&row.data) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(key = %row.key, error = %e, "skipping an unreadable audit entry");
                    None
                }
            })
            .collect();
        entries.sort_by_key(|e| e.id);
        AuditLog {
            entries: RwLock::new(entries.into()),
            next: Mutex::new(next),
            retention: retention.max(1),
        }
    }
}

/// The store key of an entry: its id, zero-padded so that keys sort in id order.
fn key(id: u64) -> String {
    format!("{id:020}")
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Engine {
    /// Entries newer than `after` (all when `None`), newest first, at most `max` of them.
    pub fn audit_log(&self, after: Option<u64>, max: Option<usize>) -> Vec<AuditEntry> {
        let after = after.unwrap_or(0);
        let entries = self.audit.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .rev()
            .take_while(|e| e.id > after)
            .take(max.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    /// The entry with this id, if the log still has it.
    pub fn audit_entry(&self, id: u64) -> Option<AuditEntry> {
        let entries = self.audit.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .and_then(|i| entries.get(i).cloned())
    }

    /// Adds an entry of a facade's own (a login, say) for `caller`, through the same write
    /// path as the engine's; answers its id.
    pub fn audit_record(
        &self,
        caller: &Caller,
        code: u32,
        severity: Severity,
        message: &str,
        subjects: Vec<(String, String)>,
        correlation_id: Option<String>,
    ) -> Result<u64> {
        self.audit_append(Draft {
            severity,
            code,
            message: message.to_string(),
            user: caller.user.clone(),
            correlation_id,
            subjects,
        })
    }

    /// Records something the engine did or saw by itself (a host failing, a guest restarted
    /// by HA) about one object.
    pub(crate) fn audit_system(
        &self,
        code: u32,
        severity: Severity,
        class: &str,
        r: &str,
        message: &str,
    ) {
        let uuid = self
            .read(|db| db.get(class, r).map(|o| o.uuid().to_string()))
            .unwrap_or_else(|| r.to_string());
        let draft = Draft {
            severity,
            code,
            message: message.to_string(),
            user: "drover-engine".into(),
            correlation_id: None,
            subjects: vec![(class.to_string(), uuid)],
        };
        if let Err(e) = self.audit_append(draft) {
            tracing::error!(error = %e, "could not record an audit entry");
        }
    }

    /// Records how a planned operation ended. A failure to record is logged, not returned: the
    /// operation has happened either way.
    pub(crate) fn audit_outcome(
        &self,
        caller: &Caller,
        plan: Plan,
        outcome: &Result<Reply>,
        correlation_id: Option<String>,
        task: Option<&str>,
    ) {
        let draft = self.read(|db| plan.finish(db, &caller.user, outcome, correlation_id, task));
        if let Err(e) = self.audit_append(draft) {
            tracing::error!(error = %e, "could not record an audit entry");
        }
    }

    /// Commits an entry, with the deletion of the oldest beyond the retention limit, then
    /// makes it visible.
    fn audit_append(&self, draft: Draft) -> Result<u64> {
        let mut next = self.audit.next.lock().unwrap_or_else(|e| e.into_inner());
        let entry = AuditEntry {
            id: *next,
            time: now_ms(),
            severity: draft.severity,
            code: draft.code,
            message: draft.message,
            user: draft.user,
            correlation_id: draft.correlation_id,
            subjects: draft.subjects,
        };
        let data = serde_json::to_vec(&entry).map_err(|e| CoreError::Internal(e.to_string()))?;
        let expired: Vec<u64> = {
            let entries = self.audit.entries.read().unwrap_or_else(|e| e.into_inner());
            let excess = (entries.len() + 1).saturating_sub(self.audit.retention);
            entries.iter().take(excess).map(|e| e.id).collect()
        };
        let mut changes = vec![StoreChange::Put(Row {
            kind: AUDIT_KIND.into(),
            key: key(entry.id),
            data,
        })];
        changes.extend(expired.iter().map(|id| StoreChange::Delete {
            kind: AUDIT_KIND.into(),
            key: key(*id),
        }));
        self.commit_rows(&changes)?;
        *next = entry.id + 1;
        let id = entry.id;
        let mut entries = self
            .audit
            .entries
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let gone = expired.len().min(entries.len());
        entries.drain(..gone);
        entries.push_back(entry);
        Ok(id)
    }
}
