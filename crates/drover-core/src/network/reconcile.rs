//! Bringing the host in line with the inventory's networks. A change is first tried on a scratch
//! transaction; the host is brought to the state the changed inventory implies; only then is the
//! change committed. A host refusal or a failed commit puts the host back as it was, so nothing
//! is left half-made in the store or on the host.

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_host::{BondSpec, HostDriver, HostError, NetCapabilities, NetworkSpec, Uplink};
use drover_model::Value;

use super::pif::{ip6_config, ip_config};
use super::spec::{bond_specs, network_spec};
use crate::db::{Ref, View};
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::txn::Txn;

/// One action on the host.
#[derive(Debug, Clone)]
enum Step {
    Ensure(NetworkSpec),
    Remove(String),
    BondCreate(BondSpec),
    BondDestroy(String),
    /// A guest NIC's host end becomes a port of another bridge.
    MoveNic {
        uuid: String,
        device: String,
        bridge: String,
        mtu: u32,
    },
}

/// A NIC of a running guest that a network change takes from one bridge to another: its
/// guest's uuid, its position, and the bridge and MTU it leaves and those it takes.
#[derive(Debug, Clone)]
pub(crate) struct NicMove {
    pub uuid: String,
    pub device: String,
    pub from: (String, u32),
    pub to: (String, u32),
}

impl NicMove {
    fn steps(&self) -> (Step, Step) {
        let step = |(bridge, mtu): &(String, u32)| Step::MoveNic {
            uuid: self.uuid.clone(),
            device: self.device.clone(),
            bridge: bridge.clone(),
            mtu: *mtu,
        };
        (step(&self.to), step(&self.from))
    }
}

/// Some networks and all bonds of one host as the inventory wants them.
struct Desired {
    networks: Vec<Option<NetworkSpec>>,
    bonds: BTreeMap<String, BondSpec>,
}

/// The networks `nets` (absent: `None`) and the bonds of `host`. A network whose uplink cannot
/// be made (the host lacks a capability) is a bare bridge where `lenient` says so, else an
/// error.
fn desired(
    v: &impl View,
    nets: &[Ref],
    host: &str,
    caps: &NetCapabilities,
    lenient: &[bool],
) -> Result<Desired> {
    let mut networks = Vec::new();
    for (n, lenient) in nets.iter().zip(lenient) {
        networks.push(match v.obj("network", n) {
            None => None,
            Some(net) => match network_spec(v, net, host, caps) {
                Ok(spec) => Some(spec),
                Err(_) if *lenient => Some(NetworkSpec {
                    bridge: net.str("bridge").into(),
                    mtu: net.int("MTU").max(0) as u32,
                    uplink: None,
                    dhcp: None,
                }),
                Err(e) => return Err(e),
            },
        });
    }
    Ok(Desired {
        networks,
        bonds: bond_specs(v, host),
    })
}

/// The host actions (each with its undo) that take the host from `before` to `after`, in an
/// order that frees devices before they are taken again: bridges let go of their uplinks, old
/// bonds go, new bonds come, and bridges take their new uplinks.
fn plan(before: &Desired, after: &Desired) -> Vec<(Step, Step)> {
    let mut phases: [Vec<(Step, Step)>; 4] = Default::default();
    for (name, b) in &before.bonds {
        if after.bonds.get(name) != Some(b) {
            phases[1].push((Step::BondDestroy(name.clone()), Step::BondCreate(b.clone())));
        }
    }
    for (name, a) in &after.bonds {
        if before.bonds.get(name) != Some(a) {
            phases[2].push((Step::BondCreate(a.clone()), Step::BondDestroy(name.clone())));
        }
    }
    for (b, a) in before.networks.iter().zip(&after.networks) {
        match (b, a) {
            (None, None) => {}
            (Some(b), None) => {
                phases[0].push((Step::Remove(b.bridge.clone()), Step::Ensure(b.clone())))
            }
            (b, Some(a)) => {
                let on_new_bond = matches!(&a.uplink, Some(Uplink::Device(d))
                    if after.bonds.contains_key(d) && before.bonds.get(d) != after.bonds.get(d));
                let acquires = a.uplink.is_some()
                    && (b.as_ref().map(|b| &b.uplink) != Some(&a.uplink) || on_new_bond);
                if b.as_ref() == Some(a) && !acquires {
                    continue;
                }
                let undo = match b {
                    Some(b) => Step::Ensure(b.clone()),
                    None => Step::Remove(a.bridge.clone()),
                };
                if acquires {
                    let bare = NetworkSpec {
                        uplink: None,
                        ..a.clone()
                    };
                    phases[0].push((Step::Ensure(bare.clone()), undo));
                    phases[3].push((Step::Ensure(a.clone()), Step::Ensure(bare)));
                } else {
                    phases[0].push((Step::Ensure(a.clone()), undo));
                }
            }
        }
    }
    phases.into_iter().flatten().collect()
}

/// The device a host error is about, if it names one.
fn device_of(e: &HostError) -> Option<&str> {
    match e {
        HostError::DeviceTaken(d) | HostError::DeviceInUse(d) => Some(d),
        HostError::NetConfig { device, .. } => Some(device),
        _ => None,
    }
}

/// Carries out one step on a host.
async fn run(host: &dyn HostDriver, step: &Step) -> Result<(), HostError> {
    match step {
        Step::Ensure(spec) => host.network_ensure(spec).await,
        Step::Remove(bridge) => host.network_remove(bridge).await,
        Step::BondCreate(spec) => host.bond_create(spec).await,
        Step::BondDestroy(name) => host.bond_destroy(name).await,
        Step::MoveNic {
            uuid,
            device,
            bridge,
            mtu,
        } => host.nic_move(uuid, device, bridge, *mtu).await,
    }
}

impl Engine {
    /// Commits `change` (run twice: on a scratch transaction, then for real) after bringing the
    /// host's `nets` and bonds to the state it implies; undoes the host's part if the host
    /// refuses or the commit fails. `change` must do the same thing both times.
    pub(crate) async fn net_change<T>(
        &self,
        nets: &[Ref],
        change: impl Fn(&mut Txn) -> Result<T>,
    ) -> Result<T> {
        self.net_change_moving(nets, &[], change).await
    }

    /// [`Engine::net_change`] that also moves guest NICs between bridges, once the networks
    /// are as the change wants them (and back if anything fails).
    pub(crate) async fn net_change_moving<T>(
        &self,
        nets: &[Ref],
        moves: &[NicMove],
        change: impl Fn(&mut Txn) -> Result<T>,
    ) -> Result<T> {
        let _held = self.net_lock.lock().await;
        let hosts = self.connected();
        let mut caps = Vec::with_capacity(hosts.len());
        for (host, driver) in &hosts {
            caps.push(match self.recorded_capabilities(host) {
                Some(c) => c,
                None => driver.net_capabilities().await,
            });
        }
        // The change is tried once on a scratch transaction; every host's plan comes from it.
        let plans = self.read(|db| -> Result<Vec<Vec<(Step, Step)>>> {
            let mut t = Txn::new(db);
            change(&mut t)?;
            hosts
                .iter()
                .zip(&caps)
                .map(|((host, _), caps)| {
                    // A network that cannot be made as it is now does not hold up other
                    // changes; one the change makes impossible does.
                    let broken: Vec<bool> = nets
                        .iter()
                        .map(|n| {
                            db.obj("network", n)
                                .is_some_and(|net| network_spec(db, net, host, caps).is_err())
                        })
                        .collect();
                    let before = desired(db, nets, host, caps, &vec![true; nets.len()])?;
                    let after = desired(&t, nets, host, caps, &broken)?;
                    Ok(plan(&before, &after))
                })
                .collect()
        })?;
        let mut done: Vec<(Arc<dyn HostDriver>, Step, Step)> = Vec::new();
        for ((host, driver), mut steps) in hosts.into_iter().zip(plans) {
            steps.extend(
                moves
                    .iter()
                    .filter(|m| self.guest_host(&m.uuid).as_deref() == Some(&*host))
                    .map(NicMove::steps),
            );
            for (step, undo) in steps {
                if let Err(e) = run(&*driver, &step).await {
                    self.undo(&done).await;
                    return Err(self.net_error(&host, e, &step));
                }
                done.push((driver.clone(), step, undo));
            }
        }
        match self.write(|t| change(t)) {
            Ok(out) => Ok(out),
            Err(e) => {
                self.undo(&done).await;
                Err(e)
            }
        }
    }

    /// What a host's kernel can do, as recorded in its `other_config` when it was last
    /// brought in line (see [`Engine::restore_networks`]).
    fn recorded_capabilities(&self, host: &str) -> Option<NetCapabilities> {
        let obj = self.get("host", host).ok()?;
        let flag = |key: &str| obj.other(key).map(|v| v == "true");
        Some(NetCapabilities {
            bridge: flag("net_bridge")?,
            vlan_8021q: flag("net_vlan_8021q")?,
            vlan_filtering: flag("net_vlan_filtering")?,
            bonding: flag("net_bonding")?,
            vxlan: flag("net_vxlan")?,
        })
    }

    /// The host a guest runs on, by its VM's uuid.
    fn guest_host(&self, uuid: &str) -> Option<Ref> {
        self.read(|db| {
            let vm = db.table("VM")?.by_uuid(uuid)?;
            Some(Ref::from(db.get("VM", vm)?.str("resident_on")))
        })
    }

    async fn undo(&self, done: &[(Arc<dyn HostDriver>, Step, Step)]) {
        for (driver, step, undo) in done.iter().rev() {
            if let Err(e) = run(&**driver, undo).await {
                tracing::warn!(?step, error = %e, "could not undo a network change on the host");
            }
        }
    }

    /// A host's refusal of a network step in the terms of the inventory: a device it names
    /// (else the uplink or the bridge of the network being made) stands for its PIF.
    fn net_error(&self, host: &str, e: HostError, step: &Step) -> CoreError {
        match (e, step) {
            (e, Step::MoveNic { .. }) => self.host_error(e, "move"),
            (HostError::DeviceTaken(name), Step::Ensure(_)) => CoreError::BridgeNameExists(name),
            (e, _) => {
                let Some(device) = device_of(&e) else {
                    return e.into();
                };
                let mut pif = self.pif_of_device(host, device);
                if let (true, Step::Ensure(spec)) = (pif.is_empty(), step) {
                    let uplink = match &spec.uplink {
                        Some(Uplink::Device(d)) => Some(d),
                        Some(Uplink::Vlan { device, .. } | Uplink::Vxlan { device, .. }) => {
                            Some(device)
                        }
                        None => None,
                    };
                    pif = uplink
                        .map(|d| self.pif_of_device(host, d))
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| self.pif_of_device(host, &spec.bridge));
                }
                CoreError::PifConfigurationError {
                    pif,
                    msg: e.to_string(),
                }
            }
        }
    }

    /// The PIF of `host` that a device name stands for: the interface itself, or the PIF of
    /// the network whose bridge it is; empty if none.
    pub(crate) fn pif_of_device(&self, host: &str, device: &str) -> String {
        self.read(|db| {
            let pifs: Vec<_> = db.all("PIF").filter(|p| p.str("host") == host).collect();
            pifs.iter()
                .filter(|p| p.str("device") == device)
                .min_by_key(|p| !p.bool("physical"))
                .or_else(|| {
                    pifs.iter().find(|p| {
                        db.get("network", p.str("network"))
                            .is_some_and(|n| n.str("bridge") == device)
                    })
                })
                .map(|p| p.r.to_string())
                .unwrap_or_default()
        })
    }

    /// After a start: removes what Drover made on the host that the inventory no longer has,
    /// makes the bonds and networks again (a refusal is logged, the rest goes on), gives plugged
    /// PIFs back their addresses, and records in the host's `other_config` what its kernel can
    /// do (`net_bridge`, `net_vlan_8021q`, `net_vlan_filtering`, `net_bonding`, `net_vxlan`).
    pub(crate) async fn restore_networks(
        &self,
        host: &Ref,
        driver: &Arc<dyn HostDriver>,
    ) -> Result<()> {
        let _held = self.net_lock.lock().await;
        let caps = driver.net_capabilities().await;
        let (specs, bonds, keep, (addresses, addresses6)) = self.read(|db| {
            let bonds = bond_specs(db, host);
            let mut specs = Vec::new();
            let mut keep: Vec<String> = bonds.keys().cloned().collect();
            for net in db.all("network") {
                keep.push(net.str("bridge").to_string());
                match network_spec(db, net, host, &caps) {
                    Ok(spec) => specs.push(spec),
                    Err(e) => tracing::warn!(network = %net.r, error = %e, "cannot make a network"),
                }
            }
            let addresses: Vec<(String, drover_host::IpConfig)> = db
                .all("PIF")
                .filter(|p| p.str("host") == &**host && !p.bool("management"))
                .filter_map(|p| {
                    let bridge = db.get("network", p.str("network"))?.str("bridge");
                    Some((bridge.to_string(), ip_config(p)?))
                })
                .collect();
            let addresses6: Vec<(String, drover_host::Ip6Config)> = db
                .all("PIF")
                .filter(|p| p.str("host") == &**host && !p.bool("management"))
                .filter_map(|p| {
                    let bridge = db.get("network", p.str("network"))?.str("bridge");
                    Some((bridge.to_string(), ip6_config(p)?))
                })
                .collect();
            (specs, bonds, keep, (addresses, addresses6))
        });
        if let Err(e) = driver.network_prune(&keep).await {
            tracing::warn!(error = %e, "cannot remove stale network devices");
        }
        for bond in bonds.values() {
            if let Err(e) = driver.bond_create(bond).await {
                tracing::info!(bond = %bond.name, error = %e, "bond not made again");
            }
        }
        for spec in &specs {
            if let Err(e) = driver.network_ensure(spec).await {
                tracing::warn!(bridge = %spec.bridge, error = %e, "the host refuses a network");
            }
        }
        for (bridge, config) in &addresses {
            if let Err(e) = driver.pif_configure_ip(bridge, config).await {
                tracing::warn!(bridge, error = %e, "cannot give a bridge its address again");
            }
        }
        for (bridge, config) in &addresses6 {
            if let Err(e) = driver.pif_configure_ipv6(bridge, config).await {
                tracing::warn!(bridge, error = %e, "cannot give a bridge its IPv6 address again");
            }
        }
        let flag = |b: bool| if b { "true" } else { "false" };
        self.write(|t| {
            t.update("host", host, "other_config", |m| {
                for (key, has) in [
                    ("net_bridge", caps.bridge),
                    ("net_vlan_8021q", caps.vlan_8021q),
                    ("net_vlan_filtering", caps.vlan_filtering),
                    ("net_bonding", caps.bonding),
                    ("net_vxlan", caps.vxlan),
                ] {
                    m.map_insert(Value::str(key), Value::str(flag(has)));
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(bridge: &str, uplink: Option<Uplink>) -> NetworkSpec {
        NetworkSpec {
            bridge: bridge.into(),
            mtu: 1500,
            uplink,
            dhcp: None,
        }
    }

    fn bond(name: &str) -> BondSpec {
        BondSpec {
            name: name.into(),
            members: vec!["eth1".into(), "eth2".into()],
            mode: drover_host::BondMode::ActiveBackup,
            mac: String::new(),
            mtu: 1500,
            options: Default::default(),
        }
    }

    fn kinds(steps: &[(Step, Step)]) -> Vec<String> {
        steps
            .iter()
            .map(|(s, _)| match s {
                Step::Ensure(n) => format!("ensure {} {:?}", n.bridge, n.uplink.is_some()),
                Step::Remove(b) => format!("remove {b}"),
                Step::BondCreate(b) => format!("bond+ {}", b.name),
                Step::BondDestroy(b) => format!("bond- {b}"),
                Step::MoveNic { device, bridge, .. } => format!("move {device} {bridge}"),
            })
            .collect()
    }

    #[test]
    fn plans_free_devices_before_taking_them() {
        let eth1 = Some(Uplink::Device("eth1".into()));
        let bond0 = Some(Uplink::Device("bond0".into()));
        let before = Desired {
            networks: vec![Some(spec("xenbr1", eth1)), Some(spec("b", None)), None],
            bonds: BTreeMap::new(),
        };
        let after = Desired {
            networks: vec![Some(spec("xenbr1", None)), Some(spec("b", bond0)), None],
            bonds: [("bond0".to_string(), bond("bond0"))].into(),
        };
        assert_eq!(
            kinds(&plan(&before, &after)),
            [
                "ensure xenbr1 false",
                "ensure b false",
                "bond+ bond0",
                "ensure b true"
            ]
        );
        assert_eq!(
            kinds(&plan(&after, &before)),
            [
                "ensure xenbr1 false",
                "ensure b false",
                "bond- bond0",
                "ensure xenbr1 true"
            ]
        );
        let unchanged = plan(&after, &after);
        assert!(unchanged.is_empty(), "{:?}", kinds(&unchanged));
    }

    #[test]
    fn a_remade_bond_takes_its_bridge_port_again() {
        let bond0 = Some(Uplink::Device("bond0".into()));
        let before = Desired {
            networks: vec![Some(spec("b", bond0.clone()))],
            bonds: [("bond0".to_string(), bond("bond0"))].into(),
        };
        let mut changed = bond("bond0");
        changed.mode = drover_host::BondMode::Lacp;
        let after = Desired {
            networks: vec![Some(spec("b", bond0))],
            bonds: [("bond0".to_string(), changed)].into(),
        };
        assert_eq!(
            kinds(&plan(&before, &after)),
            [
                "ensure b false",
                "bond- bond0",
                "bond+ bond0",
                "ensure b true"
            ]
        );
    }

    #[test]
    fn new_and_removed_networks() {
        let before = Desired {
            networks: vec![None, Some(spec("gone", None))],
            bonds: BTreeMap::new(),
        };
        let after = Desired {
            networks: vec![Some(spec("new", None)), None],
            bonds: BTreeMap::new(),
        };
        let steps = plan(&before, &after);
        assert_eq!(kinds(&steps), ["ensure new false", "remove gone"]);
        assert!(matches!(&steps[0].1, Step::Remove(b) if b == "new"));
        assert!(matches!(&steps[1].1, Step::Ensure(s) if s.bridge == "gone"));
    }
}
