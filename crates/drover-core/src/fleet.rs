//! The pool's hosts: a driver for each connected host, joining and ejecting hosts, and
//! reconnecting to them after a restart.
//!
//! The master is the host the engine runs beside (its driver is given to [`Engine::open`]).
//! Every other host runs a host agent (`drover node`) that a [`HostConnector`] enrols and
//! reaches. A host's address is kept in its `other_config:drover_node`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use drover_host::{HostDriver, HostError, HostInfo, HostMetrics};
use drover_model::{Value, NULL_REF};

use crate::db::{Obj, Ref};
use crate::engine::{now, Engine};
use crate::error::{CoreError, Result};
use crate::txn::{new_ref, new_uuid, Txn};

/// `other_config` key of a host's agent address (`HOST:PORT`).
pub const NODE_KEY: &str = "drover_node";

/// `other_config` key of a host's state when it is not up as far as the engine knows:
/// `non_responsive` (missed heartbeats), `down` (fenced) or `powered_off` (by the power saver).
pub const STATE_KEY: &str = "drover_state";

/// How long to wait between attempts to reach a host that is not connected.
const RECONNECT_PERIOD: Duration = Duration::from_secs(2);

/// How the engine reaches host agents other than its local one.
#[async_trait]
pub trait HostConnector: Send + Sync + std::fmt::Debug {
    /// Enrols the host agent at `address` with its one-time `secret` under the name `name`
    /// (the new host's uuid), and connects to it.
    async fn enrol(
        &self,
        address: &str,
        secret: &str,
        name: &str,
    ) -> Result<Arc<dyn HostDriver>, HostError>;
    /// Connects to the host agent enrolled as `name` at `address`.
    async fn connect(&self, address: &str, name: &str) -> Result<Arc<dyn HostDriver>, HostError>;
}

/// The host record of a host with these facts, with its metrics and CPUs.
pub(crate) fn create_host(
    t: &mut Txn,
    info: &HostInfo,
    metrics: &HostMetrics,
    address: &str,
    node: Option<&str>,
) -> Result<Ref> {
    let hm = t.create(
        "host_metrics",
        vec![
            ("memory_total", Value::Int(metrics.memory_total as i64)),
            ("memory_free", Value::Int(metrics.memory_free as i64)),
            ("live", Value::Bool(true)),
            ("last_updated", Value::DateTime(now())),
        ],
    )?;
    let other: Vec<(&str, &str)> = node.map(|n| (NODE_KEY, n)).into_iter().collect();
    let host = t.create(
        "host",
        vec![
            ("name_label", Value::str(&info.hostname)),
            ("hostname", Value::str(&info.hostname)),
            ("address", Value::str(address)),
            ("enabled", Value::Bool(true)),
            ("API_version_major", Value::Int(2)),
            ("API_version_minor", Value::Int(21)),
            ("API_version_vendor", Value::str("Drover")),
            ("metrics", Value::str(&*hm)),
            ("other_config", Value::string_map(other)),
            (
                "software_version",
                Value::string_map([
                    ("product_brand", "Drover"),
                    ("product_version", env!("CARGO_PKG_VERSION")),
                    ("host_driver", info.driver),
                ]),
            ),
            (
                "cpu_info",
                Value::string_map([
                    ("cpu_count", info.cpu_count.to_string().as_str()),
                    ("modelname", info.cpu_model.as_str()),
                    ("speed", info.cpu_speed_mhz.to_string().as_str()),
                ]),
            ),
            (
                "allowed_operations",
                Value::Set(vec![Value::str("provision"), Value::str("evacuate")]),
            ),
        ],
    )?;
    for n in 0..info.cpu_count {
        t.create(
            "host_cpu",
            vec![
                ("host", Value::str(&*host)),
                ("number", Value::Int(n as i64)),
                ("modelname", Value::str(&info.cpu_model)),
                ("speed", Value::Int(info.cpu_speed_mhz as i64)),
                ("vendor", Value::str("Drover")),
            ],
        )?;
    }
    Ok(host)
}

/// A host's own directory SR, `Local storage`, plugged, with its PBD.
pub(crate) fn create_local_sr(t: &mut Txn, host: &str) -> Result<Ref> {
    let uuid = new_uuid();
    let sr = t.create(
        "SR",
        vec![
            ("name_label", Value::str("Local storage")),
            ("type", Value::str("local")),
            ("content_type", Value::str("user")),
            ("shared", Value::Bool(false)),
        ],
    )?;
    t.set("SR", &sr, "uuid", Value::str(&uuid))?;
    t.create(
        "PBD",
        vec![
            ("host", Value::str(host)),
            ("SR", Value::str(&*sr)),
            (
                "device_config",
                Value::string_map([("path", format!("sr-{uuid}"))]),
            ),
            ("currently_attached", Value::Bool(true)),
        ],
    )?;
    Ok(sr)
}

/// The IP part of `HOST:PORT`.
fn ip_of(address: &str) -> &str {
    address
        .rsplit_once(':')
        .map_or(address, |(ip, _)| ip)
        .trim_start_matches('[')
        .trim_end_matches(']')
}

impl Engine {
    /// The driver of a connected host; `HOST_OFFLINE` when the engine cannot reach it now.
    pub(crate) fn driver(&self, host: &str) -> Result<Arc<dyn HostDriver>> {
        if let Some(d) = self.lock_drivers().get(host) {
            return Ok(d.clone());
        }
        self.get("host", host)?;
        Err(CoreError::HostOffline(host.into()))
    }

    /// Whether the engine is connected to `host` now.
    pub fn host_connected(&self, host: &str) -> bool {
        self.lock_drivers().contains_key(host)
    }

    fn lock_drivers(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, std::collections::HashMap<String, Arc<dyn HostDriver>>>
    {
        self.drivers.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The host a VM runs on (its `resident_on`) and its driver.
    pub(crate) fn resident(&self, vm: &Obj) -> Result<(Ref, Arc<dyn HostDriver>)> {
        let host = vm.str("resident_on");
        if host == NULL_REF || host.is_empty() {
            return Err(CoreError::VmBadPowerState {
                vm: vm.r.to_string(),
                expected: "Running".into(),
                actual: vm.str("power_state").to_string(),
            });
        }
        Ok((host.into(), self.driver(host)?))
    }

    /// The hosts on which an SR is plugged now, the master first.
    pub(crate) fn sr_hosts(&self, sr: &str) -> Vec<Ref> {
        let master = self.this_host();
        let mut hosts: Vec<Ref> = self.read(|db| {
            db.get("SR", sr)
                .map(|s| {
                    s.refs("PBDs")
                        .iter()
                        .filter_map(|p| db.get("PBD", p))
                        .filter(|p| p.bool("currently_attached"))
                        .map(|p| Ref::from(p.str("host")))
                        .collect()
                })
                .unwrap_or_default()
        });
        hosts.sort_by_key(|h| **h != *master);
        hosts
    }

    /// A connected host on which the SR is plugged, to work on its images; the master when it
    /// has it.
    pub(crate) fn sr_driver(&self, sr: &str) -> Result<Arc<dyn HostDriver>> {
        let hosts = self.sr_hosts(sr);
        for h in &hosts {
            if let Some(d) = self.lock_drivers().get(&**h) {
                return Ok(d.clone());
            }
        }
        match hosts.first() {
            Some(h) => Err(CoreError::HostOffline(h.to_string())),
            None => Err(CoreError::SrNotAttached(sr.into())),
        }
    }

    /// Every connected host with its driver.
    pub(crate) fn connected(&self) -> Vec<(Ref, Arc<dyn HostDriver>)> {
        let drivers = self.lock_drivers();
        self.read(|db| {
            db.all("host")
                .filter_map(|h| Some((h.r.clone(), drivers.get(&*h.r)?.clone())))
                .collect()
        })
    }

    /// Makes `driver` the connection to `host`, follows its guest events and brings it in
    /// line with the inventory (storage, networks, guests).
    pub(crate) async fn attach_driver(
        self: &Arc<Self>,
        host: &Ref,
        driver: Arc<dyn HostDriver>,
    ) -> Result<()> {
        self.drivers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_string(), driver.clone());
        self.liveness
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&**host);
        self.set_host_state(host, None, true)?;
        crate::monitor::follow_events(self, host, &driver);
        crate::bootstrap::recover_host(self, host, &driver).await
    }

    /// Forgets the connection to `host` (it stopped answering, or was ejected).
    pub(crate) fn detach_driver(&self, host: &str) -> Option<Arc<dyn HostDriver>> {
        self.drivers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(host)
    }

    /// After a start: connects to every host other than the master in the background, again
    /// and again until it answers.
    pub(crate) fn reconnect_all(self: &Arc<Self>) {
        let hosts: Vec<(Ref, String)> = self.read(|db| {
            db.all("host")
                .filter_map(|h| Some((h.r.clone(), h.other(NODE_KEY)?.to_string())))
                .collect()
        });
        for (host, address) in hosts {
            self.spawn_reconnect(host, address);
        }
    }

    /// Takes `host` back once its agent, at the address it joined with, answers again.
    pub(crate) fn reconnect_later(self: &Arc<Self>, host: &str) {
        let address = self
            .get("host", host)
            .ok()
            .and_then(|h| h.other(NODE_KEY).map(str::to_string));
        if let Some(address) = address {
            self.spawn_reconnect(host.into(), address);
        }
    }

    /// Tries to reach `host` at `address` until it answers, then attaches it.
    pub(crate) fn spawn_reconnect(self: &Arc<Self>, host: Ref, address: String) {
        let Some(connector) = self.connector.clone() else {
            tracing::warn!(%host, "no connector to reach the host with");
            return;
        };
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(engine) = weak.upgrade() else { return };
                if engine.get("host", &host).is_err() || engine.host_connected(&host) {
                    return;
                }
                let uuid = engine.get("host", &host).map(|h| h.uuid().to_string());
                let Ok(uuid) = uuid else { return };
                let answered = match connector.connect(&address, &uuid).await {
                    Ok(driver) => driver.ping().await.map(|()| driver),
                    Err(e) => Err(e),
                };
                match answered {
                    Ok(driver) => {
                        if let Err(e) = engine.attach_driver(&host, driver).await {
                            tracing::warn!(%host, error = %e, "cannot bring a host in line");
                        }
                        return;
                    }
                    Err(e) => tracing::debug!(%host, error = %e, "host not reachable yet"),
                }
                drop(engine);
                tokio::time::sleep(RECONNECT_PERIOD).await;
            }
        });
    }

    /// Enrols the host agent at `address` with its one-time `secret` and makes it a host of
    /// the pool: its record, CPUs, local storage and interfaces (joining the pool's networks
    /// of the same device), and a PBD for each shared SR, which it plugs.
    pub async fn join_host(self: &Arc<Self>, address: &str, secret: &str) -> Result<Ref> {
        let connector = self.connector.clone().ok_or_else(|| {
            CoreError::JoiningHostConnectionFailed(
                "this engine is not set up to reach other hosts".into(),
            )
        })?;
        let taken = self.read(|db| db.all("host").any(|h| h.other(NODE_KEY) == Some(address)));
        if taken {
            return Err(CoreError::InvalidValue {
                field: "address".into(),
                value: format!("{address} is already a host of this pool"),
            });
        }
        let uuid = new_uuid();
        let driver = connector
            .enrol(address, secret, &uuid)
            .await
            .map_err(|e| CoreError::JoiningHostConnectionFailed(e.to_string()))?;
        let info = driver.info();
        let metrics = driver.metrics().await;
        let interfaces: Vec<_> = driver
            .pif_scan()
            .await?
            .into_iter()
            .map(|i| (i, new_ref()))
            .collect();
        let host = self.write(|t| {
            let host = create_host(t, &info, &metrics, ip_of(address), Some(address))?;
            t.set("host", &host, "uuid", Value::str(&uuid))?;
            create_local_sr(t, &host)?;
            let shared: Vec<(Ref, Value)> = t
                .db()
                .all("SR")
                .filter(|s| s.bool("shared"))
                .filter_map(|s| {
                    let config = s
                        .refs("PBDs")
                        .iter()
                        .filter_map(|p| t.db().get("PBD", p))
                        .next()?
                        .get("device_config")
                        .clone();
                    Some((s.r.clone(), config))
                })
                .collect();
            for (sr, config) in shared {
                t.create(
                    "PBD",
                    vec![
                        ("host", Value::str(&*host)),
                        ("SR", Value::str(&*sr)),
                        ("device_config", config),
                        ("currently_attached", Value::Bool(true)),
                    ],
                )?;
            }
            crate::network::pif::record_interfaces(t, &host, &interfaces)?;
            Ok(host)
        })?;
        tracing::info!(%host, address, "host joined the pool");
        self.attach_driver(&host, driver).await?;
        Ok(host)
    }

    /// Removes a host that runs no guests from the pool: forgets its storage records (its
    /// local SRs with their VDIs), interfaces and records, and drops the connection. The
    /// master cannot leave.
    pub async fn eject_host(&self, host: &str) -> Result<()> {
        let obj = self.get("host", host)?;
        if *self.this_host() == *host {
            return Err(CoreError::OperationNotAllowed(
                "the pool master cannot be ejected".into(),
            ));
        }
        if let Some(vm) = self.read(|db| {
            db.all("VM")
                .find(|v| v.str("resident_on") == host && !v.bool("is_control_domain"))
                .map(|v| v.r.to_string())
        }) {
            return Err(CoreError::HostHasResidentVms {
                host: host.into(),
                vm,
            });
        }
        if let Some(driver) = self.detach_driver(host) {
            for pbd in obj.refs("PBDs") {
                if let Ok(p) = self.get("PBD", &pbd) {
                    if p.bool("currently_attached") {
                        let _ = driver.sr_detach(p.str("SR")).await;
                    }
                }
            }
            if let Err(e) = driver.network_prune(&[]).await {
                tracing::warn!(host, error = %e, "could not remove the ejected host's networks");
            }
        }
        self.write(|t| {
            let obj = t.must("host", host)?.clone();
            for pbd in obj.refs("PBDs") {
                let Some(p) = t.get("PBD", &pbd).cloned() else {
                    continue;
                };
                let sr = p.str("SR").to_string();
                t.destroy("PBD", &pbd)?;
                let orphan = t.get("SR", &sr).is_some_and(|s| s.refs("PBDs").is_empty());
                if orphan && !t.must("SR", &sr)?.bool("shared") {
                    for vdi in t.must("SR", &sr)?.refs("VDIs") {
                        crate::storage::unlink_vdi(t, &vdi)?;
                    }
                    t.destroy("SR", &sr)?;
                }
            }
            crate::network::pif::forget_host_pifs(t, host)?;
            let fond: Vec<Ref> = t
                .db()
                .all("VM")
                .filter(|v| v.str("affinity") == host)
                .map(|v| v.r.clone())
                .collect();
            for vm in fond {
                t.set("VM", &vm, "affinity", Value::str(NULL_REF))?;
            }
            let cpus: Vec<Ref> = t
                .db()
                .all("host_cpu")
                .filter(|c| c.str("host") == host)
                .map(|c| c.r.clone())
                .collect();
            for c in cpus {
                t.destroy("host_cpu", &c)?;
            }
            let metrics = obj.str("metrics").to_string();
            if t.get("host_metrics", &metrics).is_some() {
                t.destroy("host_metrics", &metrics)?;
            }
            t.destroy("host", host)
        })?;
        tracing::info!(host, "host ejected from the pool");
        Ok(())
    }
}
