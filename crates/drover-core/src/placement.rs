//! The scheduler's view of the pool: a [`Cluster`] made from the inventory, and choosing a
//! host for a VM to start or migrate on.
//!
//! The pool is one cluster. Its policy is `pool.other_config:scheduling_policy` (a built-in
//! policy's name, `none` by default) with parameters from `scheduling_policy:<Param>` keys.

use std::collections::{HashMap, HashSet};

use drover_model::{Value, NULL_REF};
use drover_sched::{Cluster, HostId, HostState, HostStatus, Policy, PolicyKind, Purpose, VmState};

use crate::db::{Db, Obj, Ref};
use crate::engine::Engine;
use crate::error::{CoreError, Result};

/// `pool.other_config` key of the scheduling policy's name.
pub const POLICY_KEY: &str = "scheduling_policy";

const MIB: i64 = 1 << 20;

/// The pool's scheduling policy with its parameters.
pub(crate) fn pool_policy(db: &Db) -> Policy {
    let Some(pool) = db.all("pool").next() else {
        return Policy::none();
    };
    let config = pool.get("other_config");
    let kind = config
        .map_get(POLICY_KEY)
        .and_then(|v| v.as_str())
        .and_then(PolicyKind::from_name)
        .unwrap_or(PolicyKind::None);
    let mut policy = Policy::builtin(kind);
    if let Some(map) = config.as_map() {
        for (k, v) in map {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                continue;
            };
            if let Some(param) = k.strip_prefix("scheduling_policy:") {
                if let Err(e) = policy.params.set(param, v) {
                    tracing::warn!(param, error = %e, "ignoring a scheduling parameter");
                }
            }
        }
    }
    policy
}

/// What the scheduler needs of every host, gathered in one pass over the inventory.
#[derive(Default)]
struct HostIndex<'a> {
    /// Sum and count of each host's CPU utilisations.
    cpu: HashMap<&'a str, (f64, usize)>,
    /// The networks with a PIF on each host.
    networks: HashMap<&'a str, Vec<String>>,
    /// Networks with no PIF anywhere: host-internal networks, there wherever a guest needs
    /// them.
    internal: Vec<String>,
}

impl<'a> HostIndex<'a> {
    fn new(db: &'a Db) -> HostIndex<'a> {
        let mut index = HostIndex::default();
        for c in db.all("host_cpu") {
            let util = match c.get("utilisation") {
                Value::Float(f) => *f,
                _ => 0.0,
            };
            let e = index.cpu.entry(c.str("host")).or_default();
            e.0 += util;
            e.1 += 1;
        }
        for n in db.all("network") {
            let pifs = n.refs("PIFs");
            if pifs.is_empty() {
                index.internal.push(n.r.to_string());
            }
            for p in pifs.iter().filter_map(|p| db.get("PIF", p)) {
                index
                    .networks
                    .entry(p.str("host"))
                    .or_default()
                    .push(n.r.to_string());
            }
        }
        index
    }

    /// Mean utilisation of a host's CPUs, in percent.
    fn load(&self, host: &str) -> u32 {
        match self.cpu.get(host) {
            Some((sum, n)) if *n > 0 => (sum / *n as f64 * 100.0).round() as u32,
            _ => 0,
        }
    }

    /// The networks a host has.
    fn networks(&self, host: &str) -> Vec<String> {
        let mut nets = self.networks.get(host).cloned().unwrap_or_default();
        nets.extend(self.internal.iter().cloned());
        nets
    }
}

/// The scheduler's status of a host: up when enabled, connected and live; a disabled host
/// that still runs guests (`busy`) is preparing for maintenance.
fn host_status(db: &Db, host: &Obj, connected: bool, busy: bool) -> HostStatus {
    let live = db
        .get("host_metrics", host.str("metrics"))
        .is_none_or(|m| m.bool("live"));
    let state = host.other(crate::fleet::STATE_KEY).unwrap_or("");
    match state {
        "powered_off" | "powering_up" => return HostStatus::PoweredOff,
        "down" => return HostStatus::Down,
        "non_responsive" => return HostStatus::NonResponsive,
        _ => {}
    }
    if !connected || !live {
        return HostStatus::NonResponsive;
    }
    if !host.bool("enabled") {
        return if busy {
            HostStatus::PreparingForMaintenance
        } else {
            HostStatus::Maintenance
        };
    }
    HostStatus::Up
}

/// The scheduler's view of a VM.
pub(crate) fn vm_state(db: &Db, vm: &Obj) -> VmState {
    let vcpus = vm.int("VCPUs_at_startup").max(1) as u32;
    let memory = (vm.int("memory_dynamic_max").max(0) + MIB - 1) / MIB;
    let mut state = VmState::new(&*vm.r, vcpus, memory as u64);
    let host = vm.str("resident_on");
    if matches!(vm.str("power_state"), "Running" | "Paused") && host != NULL_REF {
        state.host = Some(HostId::from(host));
    }
    state.required_networks = vm
        .refs("VIFs")
        .iter()
        .filter_map(|v| db.get("VIF", v))
        .map(|v| v.str("network").to_string())
        .collect();
    let affinity = vm.str("affinity");
    let pinned = vm.other("pinned_hosts").unwrap_or("");
    state.pinned_to = pinned
        .split(',')
        .filter(|h| !h.is_empty())
        .map(HostId::from)
        .collect();
    let strict = vm.other("affinity_strict") == Some("true");
    if state.pinned_to.is_empty() && affinity != NULL_REF && !affinity.is_empty() && strict {
        state.pinned_to = vec![HostId::from(affinity)];
    }
    state.migratable = vm.other("migratable") != Some("false");
    state.ha = is_ha(vm);
    state.ha_priority = ha_priority(vm);
    state.cpu_load_percent = db.get("VM_metrics", vm.str("metrics")).and_then(|m| {
        let utils = m.get("VCPUs_utilisation").as_map()?;
        if utils.is_empty() {
            return None;
        }
        let sum: f64 = utils
            .iter()
            .map(|(_, u)| match u {
                Value::Float(f) => *f,
                _ => 0.0,
            })
            .sum();
        Some((sum / utils.len() as f64 * 100.0).round() as u32)
    });
    state
}

/// Whether a VM is highly available: XenAPI `ha_always_run`, or a restart priority of
/// `restart`.
pub(crate) fn is_ha(vm: &Obj) -> bool {
    vm.bool("ha_always_run") || vm.str("ha_restart_priority") == "restart"
}

/// A VM's HA priority: higher restarts first. XenAPI's `order` counts the other way (lower
/// starts first), so the priority is its negation.
pub(crate) fn ha_priority(vm: &Obj) -> i32 {
    -(vm.int("order").clamp(-1_000_000, 1_000_000) as i32)
}

impl Engine {
    /// The pool as the scheduler sees it now.
    pub(crate) fn cluster(&self) -> Cluster {
        let connected: HashSet<String> = self
            .connected()
            .into_iter()
            .map(|(h, _)| h.to_string())
            .collect();
        self.read(|db| {
            let index = HostIndex::new(db);
            let master = crate::engine::master_of(db);
            // Only guests that run take room; a VM being placed is given on its own.
            let vms: Vec<VmState> = db
                .all("VM")
                .filter(|v| {
                    matches!(v.str("power_state"), "Running" | "Paused")
                        && !v.bool("is_a_template")
                        && !v.bool("is_a_snapshot")
                        && !v.bool("is_control_domain")
                })
                .map(|v| vm_state(db, v))
                .collect();
            let busy: HashSet<&str> = vms
                .iter()
                .filter_map(|v| v.host.as_ref().map(HostId::as_str))
                .collect();
            let hosts = db
                .all("host")
                .map(|h| {
                    let memory = db
                        .get("host_metrics", h.str("metrics"))
                        .map_or(0, |m| m.int("memory_total").max(0) / MIB);
                    let cpus = h.refs("host_CPUs").len().max(1) as u32;
                    let mut state = HostState::new(&*h.r, cpus, memory as u64);
                    let busy = busy.contains(&*h.r);
                    state.status = host_status(db, h, connected.contains(&*h.r), busy);
                    state.cpu_load_percent = index.load(&h.r);
                    state.networks = index.networks(&h.r);
                    state.power_management = crate::fence::has_power_management(h);
                    state.spm = h.r == master;
                    state
                })
                .collect();
            Cluster {
                policy: pool_policy(db),
                memory_overcommit_percent: 100,
                hosts,
                vms,
                affinity: Vec::new(),
            }
        })
    }

    /// Chooses a host for `vm` by the pool's policy: to start it, or (with `from`) to move it
    /// off the host it runs on.
    pub(crate) fn choose_host(&self, vm: &Obj, from: Option<&str>) -> Result<Ref> {
        let cluster = self.cluster();
        let state = self.read(|db| vm_state(db, vm));
        let purpose = match from {
            Some(h) => Purpose::Migrate {
                from: HostId::from(h),
            },
            None => Purpose::Start,
        };
        drover_sched::place(&cluster, &state, &purpose)
            .map(|p| Ref::from(p.host.as_str()))
            .map_err(|e| CoreError::NoHostsAvailable {
                vm: vm.r.to_string(),
                reason: e.to_string(),
            })
    }

    /// Checks that `host` may take `vm` by the pool's policy's filters.
    pub(crate) fn check_host_for(&self, vm: &Obj, host: &str, from: Option<&str>) -> Result<()> {
        let mut cluster = self.cluster();
        cluster
            .hosts
            .retain(|h| h.id.as_str() == host || Some(h.id.as_str()) == from);
        let kept: Vec<HostId> = cluster.hosts.iter().map(|h| h.id.clone()).collect();
        cluster
            .vms
            .retain(|v| v.host.as_ref().is_none_or(|h| kept.contains(h)));
        if !cluster.hosts.iter().any(|h| h.id.as_str() == host) {
            return Err(CoreError::handle("host", host));
        }
        let state = self.read(|db| vm_state(db, vm));
        let purpose = match from {
            Some(h) => Purpose::Migrate {
                from: HostId::from(h),
            },
            None => Purpose::Start,
        };
        match drover_sched::place(&cluster, &state, &purpose) {
            Ok(p) if p.host.as_str() == host => Ok(()),
            Ok(_) => Err(CoreError::NoHostsAvailable {
                vm: vm.r.to_string(),
                reason: format!("host {host} cannot take it"),
            }),
            Err(e) => Err(CoreError::NoHostsAvailable {
                vm: vm.r.to_string(),
                reason: e.to_string(),
            }),
        }
    }
}
