//! The engine: the working set, the store beneath it, the host driver, and the write path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use drover_host::{HostDriver, PifCounters};
use drover_model::{Schema, Value};
use drover_store::{Change as StoreChange, Row, SqliteStore, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditLog, AUDIT_KIND, DEFAULT_AUDIT_RETENTION};
use crate::auth::{Account, SessionInfo};
use crate::balancer::DEFAULT_BALANCE_PERIOD;
use crate::db::{Db, Obj, Ref};
use crate::error::{CoreError, Result};
use crate::fence::PowerManager;
use crate::fleet::HostConnector;
use crate::migrate::DEFAULT_MAX_DOWNTIME_MS;
use crate::txn::Txn;

/// Classes that live only in memory: they do not survive a restart.
const EPHEMERAL: &[&str] = &["session"];

/// Store kind of login accounts.
pub(crate) const ACCOUNT_KIND: &str = "_account";

/// Store kind of secrets (power-management passwords), kept out of every object.
pub(crate) const SECRET_KIND: &str = "_secret";

/// How an engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Directory of the store and other state.
    pub data_dir: PathBuf,
    /// Password of the built-in superuser on first start; random (and written to
    /// `DIR/admin-password`) when absent.
    pub admin_password: Option<String>,
    /// Base URL of the HTTP server that serves guest consoles (`http://host:port`); consoles'
    /// `location` starts with it. Empty means `http://127.0.0.1`.
    pub console_base: String,
    /// Directory of the tiny test guest to offer as the template `Tiny Linux`, if any.
    pub tiny_guest: Option<PathBuf>,
    /// Entries the audit log keeps (at least one); the oldest go when a new one would exceed it.
    pub audit_retention: usize,
    /// How the engine reaches hosts other than its local one (enrolment and reconnection);
    /// without one, the pool has the local host only.
    pub connector: Option<Arc<dyn HostConnector>>,
    /// Runs hosts' power-management agents (fencing, the power saver); without one, no host
    /// can be fenced and HA guests of a host that stops answering are not restarted.
    pub power_manager: Option<Arc<dyn PowerManager>>,
    /// The longest pause of a live migration, in milliseconds.
    pub max_migration_downtime_ms: u64,
    /// How often load balancing and the power saver run.
    pub balance_period: Duration,
}

impl Default for EngineConfig {
    /// No data directory (callers set one), a random admin password, consoles on
    /// `http://127.0.0.1`, no tiny guest, and [`DEFAULT_AUDIT_RETENTION`] audit entries.
    fn default() -> EngineConfig {
        EngineConfig {
            data_dir: PathBuf::new(),
            admin_password: None,
            console_base: String::new(),
            tiny_guest: None,
            audit_retention: DEFAULT_AUDIT_RETENTION,
            connector: None,
            power_manager: None,
            max_migration_downtime_ms: DEFAULT_MAX_DOWNTIME_MS,
            balance_period: DEFAULT_BALANCE_PERIOD,
        }
    }
}

/// The domain core. Every API facade holds an `Arc<Engine>` and enters through
/// [`Engine::call`] or [`Engine::submit`].
pub struct Engine {
    pub(crate) db: RwLock<Db>,
    store: Box<dyn Store>,
    write_lock: Mutex<()>,
    gen_tx: watch::Sender<u64>,
    /// The host this engine runs beside, the pool's master.
    pub(crate) local: Arc<dyn HostDriver>,
    /// The driver of every host that is connected now, by host reference.
    pub(crate) drivers: RwLock<HashMap<String, Arc<dyn HostDriver>>>,
    pub(crate) connector: Option<Arc<dyn HostConnector>>,
    pub(crate) power_manager: Option<Arc<dyn PowerManager>>,
    pub(crate) max_downtime_ms: u64,
    /// Hosts' heartbeat bookkeeping.
    pub(crate) liveness: Mutex<HashMap<String, crate::ha::Liveness>>,
    /// HA guests of fenced hosts waiting to be restarted, with their hosts, in order.
    pub(crate) ha_restarts: Mutex<Vec<(drover_sched::VmId, drover_sched::HostId)>>,
    /// Since when each host's CPU load has been at or over the policy's `HighUtilization`.
    pub(crate) overcommit: Mutex<HashMap<String, u64>>,
    pub(crate) sessions: RwLock<HashMap<Ref, Arc<SessionInfo>>>,
    pub(crate) accounts: RwLock<HashMap<String, Account>>,
    /// Secrets by uuid: values objects name but do not show.
    pub(crate) secrets: RwLock<HashMap<String, String>>,
    pub(crate) cancels: Mutex<HashMap<Ref, CancellationToken>>,
    pub(crate) data_dir: PathBuf,
    pub(crate) console_base: String,
    /// Held while the inventory's networks and the hosts' network devices are brought in line.
    pub(crate) net_lock: tokio::sync::Mutex<()>,
    /// The previous counters of each host interface, for rates.
    pub(crate) pif_counters: Mutex<HashMap<String, (Instant, PifCounters)>>,
    /// The audit log.
    pub(crate) audit: AuditLog,
}

#[derive(Serialize, Deserialize)]
struct StoredObj {
    fields: HashMap<String, Value>,
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Engine {
    /// Opens the engine on its data directory: loads the store, creates a fresh installation on
    /// first start, and reconciles with the host.
    pub async fn open(config: EngineConfig, host: Arc<dyn HostDriver>) -> Result<Arc<Engine>> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| CoreError::Internal(format!("data dir: {e}")))?;
        let store = SqliteStore::open(&config.data_dir.join("drover.db"))?;
        Engine::with_store(config, Box::new(store), host).await
    }

    /// Opens the engine over any store.
    pub async fn with_store(
        config: EngineConfig,
        store: Box<dyn Store>,
        host: Arc<dyn HostDriver>,
    ) -> Result<Arc<Engine>> {
        let rows = store.load_all()?;
        let mut db = Db::default();
        let mut accounts = HashMap::new();
        let mut secrets = HashMap::new();
        let mut audit_rows = Vec::new();
        let schema = Schema::get();
        for row in rows {
            if row.kind == AUDIT_KIND {
                audit_rows.push(row);
                continue;
            }
            if row.kind == SECRET_KIND {
                if let Ok(value) = String::from_utf8(row.data.clone()) {
                    secrets.insert(row.key.clone(), value);
                }
                continue;
            }
            if row.kind == ACCOUNT_KIND {
                if let Ok(a) = serde_json::from_slice::<Account>(&row.data) {
                    accounts.insert(row.key.clone(), a);
                }
                continue;
            }
            let Some(class) = schema.class(&row.kind) else {
                continue;
            };
            let stored: StoredObj = serde_json::from_slice(&row.data).map_err(|e| {
                CoreError::Internal(format!(
                    "stored {} {} is unreadable: {e}",
                    row.kind, row.key
                ))
            })?;
            let mut obj = Obj::new(class, row.key.as_str().into());
            for (i, f) in class.fields.iter().enumerate() {
                if let Some(v) = stored.fields.get(&*f.name) {
                    obj.fields[i] = v.clone();
                }
            }
            db.load(obj);
        }
        let gen = db.gen;
        let engine = Arc::new(Engine {
            db: RwLock::new(db),
            store,
            write_lock: Mutex::new(()),
            gen_tx: watch::channel(gen).0,
            local: host,
            drivers: RwLock::new(HashMap::new()),
            connector: config.connector.clone(),
            power_manager: config.power_manager.clone(),
            max_downtime_ms: config.max_migration_downtime_ms,
            liveness: Mutex::new(HashMap::new()),
            overcommit: Mutex::new(HashMap::new()),
            ha_restarts: Mutex::new(Vec::new()),
            sessions: RwLock::new(HashMap::new()),
            accounts: RwLock::new(accounts),
            secrets: RwLock::new(secrets),
            cancels: Mutex::new(HashMap::new()),
            data_dir: config.data_dir.clone(),
            net_lock: tokio::sync::Mutex::new(()),
            pif_counters: Mutex::new(HashMap::new()),
            audit: AuditLog::load(audit_rows, config.audit_retention),
            console_base: match config.console_base.trim_end_matches('/') {
                "" => "http://127.0.0.1".to_string(),
                base => base.to_string(),
            },
        });
        if engine.read(|db| db.all("pool").next().is_none()) {
            crate::bootstrap::first_start(&engine, config.admin_password.as_deref()).await?;
        }
        crate::bootstrap::recover(&engine)?;
        let master = engine.this_host();
        engine.attach_driver(&master, engine.local.clone()).await?;
        if let Some(dir) = &config.tiny_guest {
            engine.register_tiny_guest(dir)?;
        }
        crate::monitor::spawn(&engine);
        crate::ha::spawn(&engine);
        crate::balancer::spawn(&engine, config.balance_period);
        engine.reconnect_all();
        Ok(engine)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Reads the working set.
    pub fn read<T>(&self, f: impl FnOnce(&Db) -> T) -> T {
        let db = self.db.read().unwrap_or_else(|e| e.into_inner());
        f(&db)
    }

    /// An object by class and reference, or `HANDLE_INVALID`.
    pub fn get(&self, class: &str, r: &str) -> Result<Arc<Obj>> {
        self.read(|db| db.get(class, r).cloned())
            .ok_or_else(|| CoreError::handle(class, r))
    }

    /// Runs `f` as one transaction: durable in the store, then visible, then announced.
    /// Nothing of a failed transaction is applied anywhere.
    pub fn write<T>(&self, f: impl FnOnce(&mut Txn) -> Result<T>) -> Result<T> {
        self.write_inner(true, f)
    }

    /// Like [`Engine::write`] for runtime figures (metrics, progress) that need not survive a
    /// crash: visible and announced, written to the store only with the next durable change.
    pub(crate) fn write_volatile<T>(&self, f: impl FnOnce(&mut Txn) -> Result<T>) -> Result<T> {
        self.write_inner(false, f)
    }

    fn write_inner<T>(&self, durable: bool, f: impl FnOnce(&mut Txn) -> Result<T>) -> Result<T> {
        let _w = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let (out, changes) = {
            let db = self.db.read().unwrap_or_else(|e| e.into_inner());
            let mut txn = Txn::new(&db);
            let out = f(&mut txn)?;
            (out, txn.into_changes())
        };
        if changes.is_empty() {
            return Ok(out);
        }
        if durable {
            let rows: Vec<StoreChange> = changes
                .iter()
                .filter(|((class, _), _)| !EPHEMERAL.contains(&&**class))
                .map(|((class, r), obj)| match obj {
                    Some(o) => StoreChange::Put(Row {
                        kind: class.to_string(),
                        key: r.to_string(),
                        data: encode(o),
                    }),
                    None => StoreChange::Delete {
                        kind: class.to_string(),
                        key: r.to_string(),
                    },
                })
                .collect();
            if !rows.is_empty() {
                blocking(|| self.store.commit(&rows))?;
            }
        }
        let gen = {
            let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
            for ((class, r), obj) in changes {
                match obj {
                    Some(o) => db.upsert(o),
                    None => db.remove(&class, &r),
                }
            }
            db.gen
        };
        self.gen_tx.send_replace(gen);
        Ok(out)
    }

    /// Commits rows that are not objects (audit entries) to the store, durably.
    pub(crate) fn commit_rows(&self, rows: &[StoreChange]) -> Result<()> {
        blocking(|| self.store.commit(rows))?;
        Ok(())
    }

    /// Writes a login account durably.
    pub(crate) fn put_account(&self, name: &str, account: Account) -> Result<()> {
        let _w = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let data = serde_json::to_vec(&account).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.store.commit(&[StoreChange::Put(Row {
            kind: ACCOUNT_KIND.into(),
            key: name.into(),
            data,
        })])?;
        self.accounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.into(), account);
        Ok(())
    }

    /// Stores secrets and forgets others, durably, in one commit.
    pub(crate) fn change_secrets(&self, put: &[(String, String)], forget: &[String]) -> Result<()> {
        let _w = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let rows: Vec<StoreChange> = put
            .iter()
            .map(|(k, v)| {
                StoreChange::Put(Row {
                    kind: SECRET_KIND.into(),
                    key: k.clone(),
                    data: v.clone().into_bytes(),
                })
            })
            .chain(forget.iter().map(|k| StoreChange::Delete {
                kind: SECRET_KIND.into(),
                key: k.clone(),
            }))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        blocking(|| self.store.commit(&rows))?;
        let mut secrets = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        for k in forget {
            secrets.remove(k);
        }
        secrets.extend(put.iter().cloned());
        Ok(())
    }

    /// A secret's value.
    pub(crate) fn secret(&self, uuid: &str) -> Option<String> {
        self.secrets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(uuid)
            .cloned()
    }

    /// A receiver that sees the newest generation after every change.
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.gen_tx.subscribe()
    }

    /// The pool master's reference: the host this engine runs beside.
    pub fn this_host(&self) -> Ref {
        self.read(master_of)
    }
}

/// The pool master in `db` (before the pool exists, the first host).
pub(crate) fn master_of(db: &Db) -> Ref {
    db.all("pool")
        .next()
        .map(|p| Ref::from(p.str("master")))
        .or_else(|| db.all("host").next().map(|h| h.r.clone()))
        .unwrap_or_else(|| drover_model::NULL_REF.into())
}

/// Runs a blocking store call, letting the async runtime move other work off this thread.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn encode(o: &Obj) -> Vec<u8> {
    let fields: HashMap<&str, &Value> = o
        .class
        .fields
        .iter()
        .zip(&o.fields)
        .map(|(f, v)| (&*f.name, v))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "fields": fields })).unwrap_or_default()
}
