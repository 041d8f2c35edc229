//! Networks: XenAPI networks as bridges on the hosts, VIFs as guest NICs on them, PIFs as the
//! hosts' interfaces, VLANs and bonds. Every change that touches a host's network devices goes
//! through `Engine::net_change` (`reconcile.rs`), which makes the host's part before the
//! inventory's and undoes it if either fails.

mod bond;
pub(crate) mod dhcp;
mod networks;
pub(crate) mod pif;
mod reconcile;
mod spec;
pub(crate) mod vif;
mod vlan;

use crate::db::Ref;
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::ops::Reply;

/// A network, VIF, PIF, VLAN or bond operation (constructors and destructors of networks and
/// VIFs, and the bond's mode, go through the generic object operations).
#[derive(Debug, Clone)]
pub enum NetOp {
    /// Hot-plugs a VIF into its running or paused VM.
    VifPlug {
        /// The VIF.
        vif: String,
    },
    /// Hot-unplugs a VIF.
    VifUnplug {
        /// The VIF.
        vif: String,
        /// `unplug_force` (the same for Drover's hosts).
        force: bool,
    },
    /// Moves a VIF to another network, live if its guest runs.
    VifMove {
        /// The VIF.
        vif: String,
        /// The new network.
        network: String,
    },
    /// Records the static IP configuration a VIF's guest should use (`configure_ipv4` or
    /// `configure_ipv6`).
    VifConfigureIp {
        /// The VIF.
        vif: String,
        /// IPv6 rather than IPv4.
        ipv6: bool,
        /// `None`, `Static`, or the family's other mode (`DHCP`, `Autoconf`).
        mode: String,
        /// Address with prefix length (Static).
        address: String,
        /// Gateway (Static, may be empty).
        gateway: String,
    },
    /// Makes a PIF its network's uplink.
    PifPlug {
        /// The PIF.
        pif: String,
    },
    /// Takes a PIF out of its network.
    PifUnplug {
        /// The PIF.
        pif: String,
    },
    /// Forgets a physical PIF.
    PifForget {
        /// The PIF.
        pif: String,
    },
    /// Records the host's interfaces that have no PIF yet.
    PifScan {
        /// The host.
        host: String,
    },
    /// Sets the IPv4 configuration of a PIF's network bridge.
    PifReconfigureIp {
        /// The PIF.
        pif: String,
        /// `None`, `DHCP` or `Static`.
        mode: String,
        /// Address (Static).
        ip: String,
        /// Netmask (Static).
        netmask: String,
        /// Gateway (recorded only: Drover never changes the host's routes).
        gateway: String,
        /// DNS servers, comma-separated (recorded only).
        dns: String,
    },
    /// `PIF.introduce`: a PIF for an interface the host has.
    PifIntroduce {
        /// The host.
        host: String,
        /// The interface's MAC (empty: whatever it has).
        mac: String,
        /// The interface's name.
        device: String,
        /// Whether Drover manages it.
        managed: bool,
    },
    /// Sets the IPv6 configuration of a PIF's network bridge.
    PifReconfigureIpv6 {
        /// The PIF.
        pif: String,
        /// `None`, `Static`, `Autoconf` (or `DHCP`, refused).
        mode: String,
        /// `address/prefix` (Static).
        ipv6: String,
        /// Gateway (recorded only).
        gateway: String,
        /// DNS servers, comma-separated (recorded only).
        dns: String,
    },
    /// `PIF.set_property`.
    PifSetProperty {
        /// The PIF.
        pif: String,
        /// The property (`gro`).
        name: String,
        /// Its value.
        value: String,
    },
    /// `Bond.set_property`.
    BondSetProperty {
        /// The bond.
        bond: String,
        /// The property.
        name: String,
        /// Its value.
        value: String,
    },
    /// `VLAN.create`: a VLAN on a PIF, with its untagged PIF on a network.
    VlanCreate {
        /// The tagged PIF.
        pif: String,
        /// The tag.
        tag: i64,
        /// The network of the untagged PIF.
        network: String,
    },
    /// `PIF.create_VLAN`: a VLAN on the host's interface `device`; answers the untagged PIF.
    PifCreateVlan {
        /// The tagged interface's name.
        device: String,
        /// The network of the untagged PIF.
        network: String,
        /// The host.
        host: String,
        /// The tag.
        tag: i64,
    },
    /// `pool.create_VLAN`: a VLAN on interface `device` of every host; answers the untagged
    /// PIFs.
    PoolCreateVlan {
        /// The tagged interfaces' name.
        device: String,
        /// The network of the untagged PIFs.
        network: String,
        /// The tag.
        tag: i64,
    },
    /// `pool.create_VLAN_from_PIF`: like `VLAN.create`; answers the untagged PIFs.
    PoolCreateVlanFromPif {
        /// The tagged PIF.
        pif: String,
        /// The network of the untagged PIF.
        network: String,
        /// The tag.
        tag: i64,
    },
    /// `Bond.create`.
    BondCreate {
        /// The network of the bond's interface.
        network: String,
        /// The bonded PIFs.
        members: Vec<String>,
        /// The bond's MAC (empty: the first member's).
        mac: String,
        /// `balance-slb`, `active-backup` or `lacp`.
        mode: String,
        /// Mode properties.
        properties: Vec<(String, String)>,
    },
}

impl NetOp {
    /// The datamodel class and message.
    pub fn message(&self) -> (&'static str, &'static str) {
        match self {
            NetOp::VifPlug { .. } => ("VIF", "plug"),
            NetOp::VifUnplug { force: false, .. } => ("VIF", "unplug"),
            NetOp::VifUnplug { force: true, .. } => ("VIF", "unplug_force"),
            NetOp::VifMove { .. } => ("VIF", "move"),
            NetOp::VifConfigureIp { ipv6: false, .. } => ("VIF", "configure_ipv4"),
            NetOp::VifConfigureIp { ipv6: true, .. } => ("VIF", "configure_ipv6"),
            NetOp::PifPlug { .. } => ("PIF", "plug"),
            NetOp::PifUnplug { .. } => ("PIF", "unplug"),
            NetOp::PifForget { .. } => ("PIF", "forget"),
            NetOp::PifScan { .. } => ("PIF", "scan"),
            NetOp::PifReconfigureIp { .. } => ("PIF", "reconfigure_ip"),
            NetOp::PifIntroduce { .. } => ("PIF", "introduce"),
            NetOp::PifReconfigureIpv6 { .. } => ("PIF", "reconfigure_ipv6"),
            NetOp::PifSetProperty { .. } => ("PIF", "set_property"),
            NetOp::BondSetProperty { .. } => ("Bond", "set_property"),
            NetOp::VlanCreate { .. } => ("VLAN", "create"),
            NetOp::PifCreateVlan { .. } => ("PIF", "create_VLAN"),
            NetOp::PoolCreateVlan { .. } => ("pool", "create_VLAN"),
            NetOp::PoolCreateVlanFromPif { .. } => ("pool", "create_VLAN_from_PIF"),
            NetOp::BondCreate { .. } => ("Bond", "create"),
        }
    }
}

impl Engine {
    pub(crate) async fn net_op(&self, op: NetOp) -> Result<Reply> {
        let void = |r: Result<()>| r.map(|_| Reply::Void);
        match op {
            NetOp::VifPlug { vif } => void(self.vif_plug(&vif).await),
            NetOp::VifUnplug { vif, .. } => void(self.vif_unplug(&vif).await),
            NetOp::VifMove { vif, network } => void(self.vif_move(&vif, &network).await),
            NetOp::VifConfigureIp {
                vif,
                ipv6,
                mode,
                address,
                gateway,
            } => void(self.vif_configure_ip(&vif, ipv6, &mode, &address, &gateway)),
            NetOp::PifPlug { pif } => void(self.pif_plug(&pif).await),
            NetOp::PifUnplug { pif } => void(self.pif_unplug(&pif).await),
            NetOp::PifForget { pif } => void(self.pif_forget(&pif).await),
            NetOp::PifScan { host } => void(self.pif_scan(&host).await),
            NetOp::PifReconfigureIp {
                pif,
                mode,
                ip,
                netmask,
                gateway,
                dns,
            } => void(
                self.pif_reconfigure_ip(&pif, &mode, &ip, &netmask, &gateway, &dns)
                    .await,
            ),
            NetOp::PifIntroduce {
                host,
                mac,
                device,
                managed,
            } => self
                .pif_introduce(&host, &mac, &device, managed)
                .await
                .map(Reply::Ref),
            NetOp::PifReconfigureIpv6 {
                pif,
                mode,
                ipv6,
                gateway,
                dns,
            } => void(
                self.pif_reconfigure_ipv6(&pif, &mode, &ipv6, &gateway, &dns)
                    .await,
            ),
            NetOp::PifSetProperty { pif, name, value } => {
                void(self.pif_set_property(&pif, &name, &value).await)
            }
            NetOp::BondSetProperty { bond, name, value } => {
                void(self.bond_set_property(&bond, &name, &value).await)
            }
            NetOp::VlanCreate { pif, tag, network } => self
                .vlan_create(&pif, tag, &network)
                .await
                .map(|(vlan, _)| Reply::Ref(vlan)),
            NetOp::PifCreateVlan {
                device,
                network,
                host,
                tag,
            } => {
                let pif = self.tagged_pif(&host, &device)?;
                let (_, untagged) = self.vlan_create(&pif, tag, &network).await?;
                Ok(Reply::Ref(untagged))
            }
            NetOp::PoolCreateVlan {
                device,
                network,
                tag,
            } => self.pool_vlan(&device, tag, &network).await,
            NetOp::PoolCreateVlanFromPif { pif, network, tag } => {
                let device = self.get("PIF", &pif)?.str("device").to_string();
                self.pool_vlan(&device, tag, &network).await
            }
            NetOp::BondCreate {
                network,
                members,
                mac,
                mode,
                properties,
            } => self
                .bond_create(&network, &members, &mac, &mode, &properties)
                .await
                .map(Reply::Ref),
        }
    }
}

/// Networks a set of objects are on, without repeats.
pub(crate) fn distinct(nets: impl IntoIterator<Item = Ref>) -> Vec<Ref> {
    let mut out: Vec<Ref> = Vec::new();
    for n in nets {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

impl Engine {
    /// `pool.create_VLAN`: the VLAN on interface `device` of every host that has one, the
    /// master first.
    async fn pool_vlan(&self, device: &str, tag: i64, network: &str) -> Result<Reply> {
        let master = self.this_host();
        let mut hosts: Vec<Ref> = self.read(|db| db.all("host").map(|h| h.r.clone()).collect());
        hosts.sort_by_key(|h| **h != *master);
        let mut made = Vec::new();
        for host in hosts {
            let Ok(pif) = self.tagged_pif(&host, device) else {
                continue;
            };
            let (_, untagged) = self.vlan_create(&pif, tag, network).await?;
            made.push(untagged);
        }
        if made.is_empty() {
            return Err(CoreError::PifDeviceNotFound(device.into()));
        }
        Ok(Reply::Refs(made))
    }
}
