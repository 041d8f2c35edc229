//! Events: what changed since a token (`event.from`) and the older per-session registration
//! (`event.register` / `next` / `unregister`).

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Caller, Registration};
use crate::db::{Change, Db, Obj, Ref};
use crate::engine::{now, Engine};
use crate::error::{CoreError, Result};

/// One event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Generation of the change.
    pub id: u64,
    /// When it was reported, seconds since the epoch.
    pub timestamp: i64,
    /// Class, lower-case as XenAPI reports it.
    pub class: String,
    /// `add`, `mod` or `del`.
    pub operation: &'static str,
    /// The object.
    pub r: Ref,
    /// The object after the change (as it was, for deletions).
    pub snapshot: Arc<Obj>,
}

/// The answer to an event query.
#[derive(Debug, Clone)]
pub struct EventBatch {
    /// Events, oldest first.
    pub events: Vec<Event>,
    /// Number of objects of each class asked for.
    pub valid_ref_counts: Vec<(String, i64)>,
    /// Token for the next call.
    pub token: String,
}

/// The longest a single wait may last.
const MAX_WAIT: f64 = 3600.0;

fn matcher(classes: &[String]) -> impl Fn(&str, &str) -> bool + '_ {
    move |class: &str, r: &str| {
        classes.iter().any(|c| {
            c == "*"
                || c.eq_ignore_ascii_case(class)
                || c.split_once('/')
                    .is_some_and(|(k, cr)| k.eq_ignore_ascii_case(class) && cr == r)
        })
    }
}

fn collect(db: &Db, since: u64, classes: &[String]) -> Vec<Event> {
    let want = matcher(classes);
    let t = now();
    db.changes_since(since, &want)
        .into_iter()
        .map(|c| match c {
            Change::Live(o) => Event {
                id: o.modified,
                timestamp: t,
                class: o.class.name.to_lowercase(),
                operation: if o.created > since { "add" } else { "mod" },
                r: o.r.clone(),
                snapshot: o,
            },
            Change::Deleted(tomb) => Event {
                id: tomb.deleted,
                timestamp: t,
                class: tomb.obj.class.name.to_lowercase(),
                operation: "del",
                r: tomb.obj.r.clone(),
                snapshot: tomb.obj,
            },
        })
        .collect()
}

impl Engine {
    async fn wait_for_change(&self, since: u64, deadline: tokio::time::Instant) {
        let mut rx = self.generations();
        loop {
            if *rx.borrow_and_update() > since {
                return;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    pub(crate) async fn event_from(
        &self,
        classes: &[String],
        token: &str,
        timeout: f64,
    ) -> Result<EventBatch> {
        let since: u64 = if token.is_empty() {
            0
        } else {
            token
                .parse()
                .map_err(|_| CoreError::EventTokenInvalid(token.into()))?
        };
        let timeout = if timeout.is_finite() {
            timeout.clamp(0.0, MAX_WAIT)
        } else {
            MAX_WAIT
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(timeout);
        let mut cursor = since;
        loop {
            let (events, gen) = self.read(|db| (collect(db, cursor, classes), db.gen));
            if !events.is_empty() || tokio::time::Instant::now() >= deadline {
                let counts = self.read(|db| {
                    let mut names: Vec<String> = Vec::new();
                    for c in classes {
                        let k = c.split('/').next().unwrap_or(c);
                        if k == "*" {
                            continue;
                        }
                        if let Some(class) = drover_model::Schema::get()
                            .classes()
                            .iter()
                            .find(|x| x.name.eq_ignore_ascii_case(k))
                        {
                            if !names.contains(&class.name.to_string()) {
                                names.push(class.name.to_string());
                            }
                        }
                    }
                    names
                        .into_iter()
                        .map(|n| {
                            let count = db.all(&n).count() as i64;
                            (n, count)
                        })
                        .collect()
                });
                return Ok(EventBatch {
                    events,
                    valid_ref_counts: counts,
                    token: gen.max(cursor).to_string(),
                });
            }
            cursor = gen;
            self.wait_for_change(gen, deadline).await;
        }
    }

    pub(crate) fn event_register(&self, caller: &Caller, classes: Vec<String>) {
        let gen = self.read(|db| db.gen);
        let mut reg = caller
            .session_info()
            .registration
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let r = reg.get_or_insert_with(|| Registration {
            classes: Vec::new(),
            cursor: gen,
        });
        for c in classes {
            if !r.classes.contains(&c) {
                r.classes.push(c);
            }
        }
    }

    pub(crate) fn event_unregister(&self, caller: &Caller, classes: &[String]) {
        let mut reg = caller
            .session_info()
            .registration
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(r) = reg.as_mut() {
            r.classes.retain(|c| !classes.contains(c));
        }
    }

    pub(crate) async fn event_next(&self, caller: &Caller) -> Result<EventBatch> {
        loop {
            let (classes, cursor) = {
                let reg = caller
                    .session_info()
                    .registration
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let r = reg
                    .as_ref()
                    .ok_or_else(|| CoreError::SessionNotRegistered(caller.session.to_string()))?;
                (r.classes.clone(), r.cursor)
            };
            if cursor < self.read(|db| db.horizon()) {
                return Err(CoreError::EventsLost);
            }
            let (events, gen) = self.read(|db| (collect(db, cursor, &classes), db.gen));
            if let Some(r) = caller
                .session_info()
                .registration
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
            {
                r.cursor = gen;
            }
            if !events.is_empty() {
                return Ok(EventBatch {
                    events,
                    valid_ref_counts: Vec::new(),
                    token: gen.to_string(),
                });
            }
            // Wake up now and then to notice a logout or an unregister.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            self.wait_for_change(gen, deadline).await;
            self.authenticate(&caller.session)?;
        }
    }
}
