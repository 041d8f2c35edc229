//! Background work: following guest events and refreshing metrics (host, VM, VBD and guest
//! agent figures) from the host.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use drover_host::{GuestEvent, GuestMetrics, HostDriver};
use drover_model::{Value, NULL_REF};

use crate::db::Ref;
use crate::engine::{now, Engine};
use crate::error::Result;
use crate::txn::Txn;

/// How often metrics are refreshed.
const METRICS_PERIOD: Duration = Duration::from_secs(5);

/// Follows the guest events of a host while the engine holds this driver for it.
pub(crate) fn follow_events(engine: &Arc<Engine>, host: &Ref, driver: &Arc<dyn HostDriver>) {
    let weak = Arc::downgrade(engine);
    let mut events = driver.subscribe();
    let (host, driver) = (host.clone(), Arc::downgrade(driver));
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            let Some(engine) = weak.upgrade() else { return };
            let current = engine.driver(&host).ok();
            let same = match (current, driver.upgrade()) {
                (Some(c), Some(d)) => Arc::ptr_eq(&c, &d),
                _ => false,
            };
            if !same {
                return;
            }
            let GuestEvent::Exited { uuid, reason } = ev;
            engine.guest_exited(&host, &uuid, &reason);
        }
    });
}

/// Refreshes the metrics of every connected host periodically.
pub(crate) fn spawn(engine: &Arc<Engine>) {
    let weak = Arc::downgrade(engine);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(METRICS_PERIOD);
        loop {
            tick.tick().await;
            let Some(engine) = weak.upgrade() else { return };
            let hosts = engine.connected();
            engine.refresh_metrics(&hosts).await;
            engine.refresh_pif_metrics(&hosts).await;
        }
    });
}

impl Engine {
    /// A guest stopped without the engine asking (or while it asked): mark its VM halted unless
    /// an operation of the engine is handling it.
    fn guest_exited(&self, host: &str, uuid: &str, reason: &str) {
        let _ = self.write(|t| {
            let vm = t
                .db()
                .table("VM")
                .and_then(|tb| tb.by_uuid(uuid))
                .map(|r| r.to_string());
            let Some(vm) = vm else { return Ok(()) };
            let obj = t.must("VM", &vm)?;
            if obj.str("resident_on") != host {
                return Ok(());
            }
            let busy = obj
                .get("current_operations")
                .as_map()
                .is_some_and(|m| !m.is_empty());
            if busy || obj.str("power_state") == "Halted" || obj.str("power_state") == "Suspended" {
                return Ok(());
            }
            tracing::info!(vm, reason, "guest stopped on its own");
            crate::vm::record_unplanned_stop(t, &vm, reason)?;
            crate::vm::halt(t, &vm)?;
            crate::vm::refresh_allowed(t, &vm)
        });
    }

    /// Reads the figures of every host and its guests, then records them all in one change.
    async fn refresh_metrics(&self, hosts: &[(Ref, Arc<dyn HostDriver>)]) {
        let mut running: HashMap<String, Vec<(String, String)>> = self.read(|db| {
            let mut by_host: HashMap<String, Vec<(String, String)>> = HashMap::new();
            for v in db.all("VM") {
                let host = v.str("resident_on");
                if host != NULL_REF {
                    by_host
                        .entry(host.to_string())
                        .or_default()
                        .push((v.r.to_string(), v.uuid().to_string()));
                }
            }
            by_host
        });
        let mut readings = Vec::with_capacity(hosts.len());
        for (host, driver) in hosts {
            let hm = driver.metrics().await;
            let mut figures = Vec::new();
            for (vm, uuid) in running.remove(&**host).unwrap_or_default() {
                if let Ok(m) = driver.guest_metrics(&uuid).await {
                    figures.push((vm, m));
                }
            }
            readings.push((host.clone(), hm, figures));
        }
        let on = |t: &Txn, vm: &str, host: &str| {
            t.get("VM", vm)
                .is_some_and(|v| v.str("resident_on") == host)
        };
        let made = self.write(|t| {
            for (host, _, figures) in &readings {
                for (vm, m) in figures {
                    if on(t, vm, host) {
                        add_metrics_records(t, vm, m)?;
                    }
                }
            }
            Ok(())
        });
        if let Err(e) = made {
            tracing::warn!(error = %e, "could not record new guest metrics");
        }
        let _ = self.write_volatile(|t| {
            for (host, hm, figures) in &readings {
                let Some(obj) = t.get("host", host).cloned() else {
                    continue;
                };
                let hmr = obj.str("metrics");
                if t.get("host_metrics", hmr).is_some() {
                    t.set(
                        "host_metrics",
                        hmr,
                        "memory_free",
                        Value::Int(hm.memory_free as i64),
                    )?;
                    t.set("host_metrics", hmr, "last_updated", Value::DateTime(now()))?;
                }
                for c in obj.refs("host_CPUs") {
                    let Some(n) = t.get("host_cpu", &c).map(|c| c.int("number")) else {
                        continue;
                    };
                    let util = usize::try_from(n)
                        .ok()
                        .and_then(|n| hm.cpu_utilisation.get(n))
                        .copied()
                        .unwrap_or(0.0);
                    t.set("host_cpu", &c, "utilisation", Value::Float(util))?;
                }
                for (vm, m) in figures {
                    if on(t, vm, host) {
                        record_guest(t, vm, m)?;
                    }
                }
            }
            Ok(())
        });
    }
}

/// The devices (VBDs or VIFs) of a running VM whose figures the host reports, each with the
/// index of its figures.
fn reported(
    t: &Txn,
    vm: &str,
    class: &str,
    reports: impl Fn(&str) -> Option<usize>,
) -> Result<Vec<(Ref, usize)>> {
    let (set, position) = if class == "VBD" {
        ("VBDs", "userdevice")
    } else {
        ("VIFs", "device")
    };
    Ok(t.must("VM", vm)?
        .refs(set)
        .into_iter()
        .filter_map(|dev| {
            let i = reports(t.get(class, &dev)?.str(position))?;
            Some((dev, i))
        })
        .collect())
}

fn reported_vbds(t: &Txn, vm: &str, m: &GuestMetrics) -> Result<Vec<(Ref, usize)>> {
    reported(t, vm, "VBD", |d| m.disks.iter().position(|x| x.device == d))
}

fn reported_vifs(t: &Txn, vm: &str, m: &GuestMetrics) -> Result<Vec<(Ref, usize)>> {
    reported(t, vm, "VIF", |d| m.nics.iter().position(|x| x.device == d))
}

/// The guest's addresses by `<device>/ip` (and `<device>/ipv4/<n>`): what its agent reports,
/// and for NICs the agent says nothing about (or without an agent), the DHCP leases.
fn guest_networks(m: &GuestMetrics) -> BTreeMap<String, String> {
    let mut networks = m
        .agent
        .as_ref()
        .map(|a| a.networks.clone())
        .unwrap_or_default();
    for nic in &m.nics {
        if networks.contains_key(&format!("{}/ip", nic.device)) {
            continue;
        }
        for (i, ip) in nic.leased_ipv4.iter().enumerate() {
            if i == 0 {
                networks.insert(format!("{}/ip", nic.device), ip.to_string());
            }
            networks.insert(format!("{}/ipv4/{i}", nic.device), ip.to_string());
        }
    }
    networks
}

/// The IPv4 addresses of a guest NIC in CIDR form (the prefix of its network's address range,
/// when it has one; else the bare address).
fn vif_addresses(t: &Txn, vif: &str, device: &str, networks: &BTreeMap<String, String>) -> Value {
    let prefix = t
        .get("VIF", vif)
        .and_then(|v| t.get("network", v.str("network")))
        .and_then(|n| {
            crate::network::dhcp::range(n.get("other_config"))
                .ok()
                .flatten()
        })
        .map(|r| r.prefix());
    let mut addresses: Vec<&String> = networks
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix(device)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|rest| rest == "ip" || rest.starts_with("ipv4/"))
        })
        .map(|(_, v)| v)
        .collect();
    addresses.sort();
    addresses.dedup();
    Value::Set(
        addresses
            .into_iter()
            .map(|a| match prefix {
                Some(p) if !a.contains('/') => Value::str(format!("{a}/{p}")),
                _ => Value::str(a),
            })
            .collect(),
    )
}

/// Creates the metrics records a guest's figures need: metrics of its reported disks and NICs,
/// and guest metrics on its agent's first report or its first DHCP lease.
fn add_metrics_records(t: &mut Txn, vm: &str, m: &GuestMetrics) -> Result<()> {
    for (class, devices) in [
        ("VBD", reported_vbds(t, vm, m)?),
        ("VIF", reported_vifs(t, vm, m)?),
    ] {
        let mclass = format!("{class}_metrics");
        for (dev, _) in devices {
            if t.get(&mclass, t.must(class, &dev)?.str("metrics"))
                .is_none()
            {
                let metrics = t.create(&mclass, vec![])?;
                t.set(class, &dev, "metrics", Value::str(&*metrics))?;
            }
        }
    }
    let guest = t.must("VM", vm)?.str("guest_metrics");
    let leased = m.nics.iter().any(|n| !n.leased_ipv4.is_empty());
    if (m.agent.is_some() || leased) && t.get("VM_guest_metrics", guest).is_none() {
        let guest = t.create("VM_guest_metrics", vec![])?;
        t.set("VM", vm, "guest_metrics", Value::str(&*guest))?;
    }
    Ok(())
}

/// Writes a guest's figures into its VM, VBD, VIF and guest metrics, and its NICs' addresses.
fn record_guest(t: &mut Txn, vm: &str, m: &GuestMetrics) -> Result<()> {
    let record = t.must("VM", vm)?.clone();
    let metrics = record.str("metrics");
    if t.get("VM_metrics", metrics).is_some() {
        let util = m
            .vcpu_utilisation
            .iter()
            .enumerate()
            .map(|(i, u)| (Value::Int(i as i64), Value::Float(*u)))
            .collect();
        for (field, v) in [
            ("memory_actual", Value::Int(m.memory_actual as i64)),
            ("VCPUs_number", Value::Int(m.vcpus as i64)),
            ("VCPUs_utilisation", Value::Map(util)),
            ("last_updated", Value::DateTime(now())),
        ] {
            t.set("VM_metrics", metrics, field, v)?;
        }
        let cpu = m.cpu_time_us.to_string();
        t.update("VM_metrics", metrics, "other_config", |c| {
            c.map_insert(Value::str("cpu_time_us"), Value::str(cpu));
        })?;
    }
    for (vbd, i) in reported_vbds(t, vm, m)? {
        let metrics = t.must("VBD", &vbd)?.str("metrics").to_string();
        if t.get("VBD_metrics", &metrics).is_some() {
            for (field, v) in [
                ("io_read_kbs", Value::Float(m.disks[i].read_kbs)),
                ("io_write_kbs", Value::Float(m.disks[i].write_kbs)),
                ("last_updated", Value::DateTime(now())),
            ] {
                t.set("VBD_metrics", &metrics, field, v)?;
            }
        }
    }
    let networks = guest_networks(m);
    for (vif, i) in reported_vifs(t, vm, m)? {
        let nic = &m.nics[i];
        let metrics = t.must("VIF", &vif)?.str("metrics").to_string();
        if t.get("VIF_metrics", &metrics).is_some() {
            for (field, v) in [
                ("io_read_kbs", Value::Float(nic.read_kbs)),
                ("io_write_kbs", Value::Float(nic.write_kbs)),
                ("last_updated", Value::DateTime(now())),
            ] {
                t.set("VIF_metrics", &metrics, field, v)?;
            }
            t.update("VIF_metrics", &metrics, "other_config", |c| {
                for (k, n) in [
                    ("rx_bytes", nic.rx_bytes),
                    ("tx_bytes", nic.tx_bytes),
                    ("rx_errors", nic.rx_errors),
                    ("tx_errors", nic.tx_errors),
                ] {
                    c.map_insert(Value::str(k), Value::str(n.to_string()));
                }
            })?;
        }
        // A static configuration (`VIF.configure_ipv4`) is the administrator's, not a report.
        if t.must("VIF", &vif)?.str("ipv4_configuration_mode") == "Static" {
            continue;
        }
        let addresses = vif_addresses(t, &vif, &nic.device, &networks);
        if *t.must("VIF", &vif)?.get("ipv4_addresses") != addresses {
            t.set("VIF", &vif, "ipv4_addresses", addresses)?;
        }
    }
    let guest = record.str("guest_metrics");
    if t.get("VM_guest_metrics", guest).is_none() {
        return Ok(());
    }
    let map = |m: &BTreeMap<String, String>| Value::string_map(m.clone());
    t.set("VM_guest_metrics", guest, "networks", map(&networks))?;
    t.set(
        "VM_guest_metrics",
        guest,
        "live",
        Value::Bool(m.agent.is_some()),
    )?;
    t.set(
        "VM_guest_metrics",
        guest,
        "last_updated",
        Value::DateTime(now()),
    )?;
    if let Some(agent) = &m.agent {
        for (field, v) in [
            ("os_version", map(&agent.os_version)),
            ("memory", map(&agent.memory)),
            ("disks", map(&agent.disks)),
            ("other", map(&agent.other)),
        ] {
            t.set("VM_guest_metrics", guest, field, v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use drover_host::{AgentReport, DiskIo};

    use super::*;
    use crate::db::Db;

    fn apply(db: &mut Db, f: impl FnOnce(&mut Txn) -> Result<()>) {
        let changes = {
            let mut t = Txn::new(db);
            f(&mut t).unwrap();
            t.into_changes()
        };
        for ((class, r), obj) in changes {
            match obj {
                Some(o) => db.upsert(o),
                None => db.remove(&class, &r),
            }
        }
    }

    #[test]
    fn the_agent_names_addresses_and_leases_fill_in_the_rest() {
        let lease = |device: &str, ips: &[[u8; 4]]| drover_host::NicIo {
            device: device.into(),
            leased_ipv4: ips.iter().map(|a| (*a).into()).collect(),
            ..drover_host::NicIo::default()
        };
        let figures = GuestMetrics {
            nics: vec![
                lease("0", &[[10, 0, 0, 9]]),
                lease("1", &[[10, 1, 0, 2], [10, 1, 0, 3]]),
                lease("2", &[]),
            ],
            agent: Some(AgentReport {
                networks: [("0/ip".to_string(), "10.0.0.5".to_string())].into(),
                ..AgentReport::default()
            }),
            ..GuestMetrics::default()
        };
        let networks = guest_networks(&figures);
        let get = |k: &str| networks.get(k).map(String::as_str);
        assert_eq!(get("0/ip"), Some("10.0.0.5"), "the agent's word wins");
        assert_eq!(get("0/ipv4/0"), None);
        assert_eq!(get("1/ip"), Some("10.1.0.2"));
        assert_eq!(get("1/ipv4/1"), Some("10.1.0.3"));
        assert_eq!(networks.len(), 4);
    }

    #[test]
    fn guest_figures_reach_vbd_and_guest_metrics() {
        let mut db = Db::default();
        let vm: Ref = "OpaqueRef:vm".into();
        let vbd: Ref = "OpaqueRef:vbd".into();
        apply(&mut db, |t| {
            let metrics = t.create("VM_metrics", vec![])?;
            t.create_with_ref(
                "VM",
                vm.clone(),
                vec![
                    ("power_state", Value::str("Running")),
                    ("metrics", Value::str(&*metrics)),
                ],
            )?;
            t.create_with_ref(
                "VBD",
                vbd.clone(),
                vec![("VM", Value::str(&*vm)), ("userdevice", Value::str("0"))],
            )?;
            Ok(())
        });
        let figures = GuestMetrics {
            memory_actual: 1 << 30,
            vcpus: 2,
            vcpu_utilisation: vec![0.5, 0.25],
            cpu_time_us: 1_500_000,
            disks: vec![
                DiskIo {
                    device: "0".into(),
                    read_kbs: 1.5,
                    write_kbs: 2.5,
                },
                DiskIo {
                    device: "9".into(),
                    read_kbs: 1.0,
                    write_kbs: 1.0,
                },
            ],
            agent: Some(AgentReport {
                os_version: [("name".to_string(), "Debian".to_string())].into(),
                networks: [("0/ip".to_string(), "10.0.0.2".to_string())].into(),
                ..AgentReport::default()
            }),
            nics: Vec::new(),
        };
        apply(&mut db, |t| add_metrics_records(t, &vm, &figures));
        apply(&mut db, |t| record_guest(t, &vm, &figures));
        let get = |class: &str, r: &str| db.get(class, r).unwrap().clone();
        let vm_metrics = get("VM_metrics", get("VM", &vm).str("metrics"));
        assert_eq!(vm_metrics.int("memory_actual"), 1 << 30);
        assert_eq!(
            vm_metrics.get("other_config").map_get("cpu_time_us"),
            Some(&Value::str("1500000"))
        );
        assert_eq!(vm_metrics.int("VCPUs_number"), 2);
        let io = get("VBD_metrics", get("VBD", &vbd).str("metrics"));
        assert_eq!(io.get("io_read_kbs"), &Value::Float(1.5));
        assert_eq!(io.get("io_write_kbs"), &Value::Float(2.5));
        let guest = get("VM_guest_metrics", get("VM", &vm).str("guest_metrics"));
        assert!(guest.bool("live"));
        assert_eq!(
            guest
                .get("os_version")
                .map_get("name")
                .and_then(|v| v.as_str()),
            Some("Debian")
        );
        assert_eq!(
            guest
                .get("networks")
                .map_get("0/ip")
                .and_then(|v| v.as_str()),
            Some("10.0.0.2")
        );
        assert_eq!(
            db.all("VBD_metrics").count(),
            1,
            "unknown devices are ignored"
        );
    }
}
