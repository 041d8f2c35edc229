//! What a host should have for the inventory: each network as a bridge with its MTU, uplink
//! and DHCP service, and each bond of the host's interfaces.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use drover_host::{
    BondHashing, BondMode, BondOptions, BondSpec, DhcpSpec, NetCapabilities, NetworkSpec,
    Reservation, Uplink,
};

use super::dhcp;
use crate::db::{Obj, View};
use crate::error::{CoreError, Result};

/// Bytes VXLAN over IPv4 adds to each frame.
const VXLAN_OVERHEAD: i64 = 50;

/// MTUs a network may have.
const MTU_RANGE: RangeInclusive<i64> = 68..=65535;

/// The network `other_config` key that declares an overlay (`overlay=vxlan`): its VLANs always
/// cross hosts through VXLAN.
const OVERLAY: &str = "overlay";

/// Checks what a network's record says about its devices: MTU, address range, overlay.
pub(crate) fn check_network(net: &Obj) -> Result<()> {
    let mtu = net.int("MTU");
    if !MTU_RANGE.contains(&mtu) {
        return Err(CoreError::InvalidValue {
            field: "MTU".into(),
            value: mtu.to_string(),
        });
    }
    dhcp::range(net.get("other_config"))?;
    match net
        .get("other_config")
        .map_get(OVERLAY)
        .and_then(|v| v.as_str())
    {
        None | Some("vxlan") => Ok(()),
        Some(other) => Err(CoreError::InvalidValue {
            field: OVERLAY.into(),
            value: other.into(),
        }),
    }
}

fn is_overlay(net: &Obj) -> bool {
    net.get("other_config").map_get(OVERLAY).is_some()
}

/// The PIF that connects a network on a host, if any.
pub(crate) fn pif_on<'v>(v: &'v impl View, net: &Obj, host: &str) -> Option<&'v Obj> {
    v.members(net, "PIFs", "PIF")
        .into_iter()
        .find(|p| p.str("host") == host)
}

/// The network as `host` should have it.
pub(crate) fn network_spec(
    v: &impl View,
    net: &Obj,
    host: &str,
    caps: &NetCapabilities,
) -> Result<NetworkSpec> {
    check_network(net)?;
    let dhcp = dhcp::range(net.get("other_config"))?.map(|r| DhcpSpec {
        host_address: r.host,
        netmask: r.netmask,
        range_start: r.first,
        range_end: r.last,
        reservations: v
            .members(net, "VIFs", "VIF")
            .into_iter()
            .filter_map(|vif| {
                Some(Reservation {
                    mac: vif.str("MAC").to_ascii_lowercase(),
                    ip: dhcp::reserved(vif)?,
                })
            })
            .collect(),
    });
    let uplink = match pif_on(v, net, host) {
        Some(pif) => uplink(v, net, pif, caps)?,
        None => None,
    };
    Ok(NetworkSpec {
        bridge: net.str("bridge").into(),
        mtu: net.int("MTU") as u32,
        uplink,
        dhcp,
    })
}

/// How a plugged PIF joins its network's bridge to the world: the interface itself (a physical
/// interface or a bond), or for a VLAN an 802.1Q sub-interface where the kernel has them and
/// the network is no overlay, else VXLAN. The management interface is never a port.
fn uplink(v: &impl View, net: &Obj, pif: &Obj, caps: &NetCapabilities) -> Result<Option<Uplink>> {
    if !pif.bool("currently_attached") || pif.bool("management") {
        return Ok(None);
    }
    let Some(vlan) = v.obj("VLAN", pif.str("VLAN_master_of")) else {
        return Ok(Some(Uplink::Device(pif.str("device").into())));
    };
    let tagged = v
        .obj("PIF", vlan.str("tagged_PIF"))
        .ok_or_else(|| CoreError::handle("PIF", vlan.str("tagged_PIF")))?;
    let device = carrier(v, tagged);
    let tag = vlan.int("tag");
    let overlay = is_overlay(net);
    if caps.vlan_8021q && !overlay {
        return Ok(Some(Uplink::Vlan {
            device,
            tag: tag as u16,
        }));
    }
    if caps.vxlan {
        let most = tagged.int("MTU") - VXLAN_OVERHEAD;
        if net.int("MTU") > most {
            return Err(CoreError::PifConfigurationError {
                pif: tagged.r.to_string(),
                msg: format!(
                    "VXLAN over {} (MTU {}) carries frames of at most {most} bytes; \
                     set the network's MTU to {most} or less",
                    tagged.str("device"),
                    tagged.int("MTU")
                ),
            });
        }
        return Ok(Some(Uplink::Vxlan {
            device,
            vni: tag as u32,
            peers: peers(v, net, pif),
        }));
    }
    let msg = if overlay {
        "the network is an overlay and this host's kernel has no VXLAN"
    } else {
        "this host's kernel has neither 802.1Q VLANs nor VXLAN"
    };
    Err(CoreError::PifConfigurationError {
        pif: tagged.r.to_string(),
        msg: msg.into(),
    })
}

/// The device that carries a VLAN's traffic: a tagged PIF that is its own network's uplink is a
/// port of that network's bridge, so the bridge carries it; otherwise the interface itself.
fn carrier(v: &impl View, tagged: &Obj) -> String {
    if tagged.bool("currently_attached") && !tagged.bool("management") {
        if let Some(n) = v.obj("network", tagged.str("network")) {
            return n.str("bridge").into();
        }
    }
    tagged.str("device").into()
}

/// Addresses of the other hosts on a VLAN network: their tagged PIFs' IPs.
fn peers(v: &impl View, net: &Obj, pif: &Obj) -> Vec<Ipv4Addr> {
    v.members(net, "PIFs", "PIF")
        .into_iter()
        .filter(|p| p.str("host") != pif.str("host"))
        .filter_map(|p| v.obj("VLAN", p.str("VLAN_master_of")))
        .filter_map(|vlan| v.obj("PIF", vlan.str("tagged_PIF")))
        .filter_map(|t| t.str("IP").parse().ok())
        .collect()
}

/// A XenAPI bond mode.
pub(crate) fn bond_mode(mode: &str) -> Option<BondMode> {
    match mode {
        "balance-slb" => Some(BondMode::BalanceSlb),
        "active-backup" => Some(BondMode::ActiveBackup),
        "lacp" => Some(BondMode::Lacp),
        _ => None,
    }
}

/// The bonds `host` should have, by device name.
pub(crate) fn bond_specs(v: &impl View, host: &str) -> BTreeMap<String, BondSpec> {
    let Some(host) = v.obj("host", host) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for master in v.members(host, "PIFs", "PIF") {
        for bond in v.members(master, "bond_master_of", "Bond") {
            let mtu = v
                .obj("network", master.str("network"))
                .map_or(master.int("MTU"), |n| n.int("MTU"));
            out.insert(
                master.str("device").to_string(),
                BondSpec {
                    name: master.str("device").into(),
                    members: v
                        .members(bond, "slaves", "PIF")
                        .iter()
                        .map(|p| p.str("device").to_string())
                        .collect(),
                    mode: bond_mode(bond.str("mode")).unwrap_or(BondMode::BalanceSlb),
                    mac: master.str("MAC").into(),
                    mtu: mtu.max(0) as u32,
                    options: bond_options(bond, master),
                },
            );
        }
    }
    out
}

/// The options of a bond on the host: its `properties` (the LACP ones for an LACP bond only)
/// and its interface's `gro` property.
fn bond_options(bond: &Obj, master: &Obj) -> BondOptions {
    let prop = |o: &Obj, key: &str| -> Option<String> {
        o.get("properties")
            .map_get(key)
            .and_then(|v| v.as_str())
            .map(String::from)
    };
    let lacp = |key: &str| prop(bond, key).filter(|_| bond.str("mode") == "lacp");
    BondOptions {
        updelay: prop(bond, "updelay").and_then(|v| v.parse().ok()),
        downdelay: prop(bond, "downdelay").and_then(|v| v.parse().ok()),
        hashing: lacp("hashing_algorithm").and_then(|v| match v.as_str() {
            "src_mac" => Some(BondHashing::SrcMac),
            "tcpudp_ports" => Some(BondHashing::TcpudpPorts),
            _ => None,
        }),
        lacp_fast: lacp("lacp-time").map(|v| v == "fast"),
        lacp_key: lacp("lacp-aggregation-key").and_then(|v| v.parse().ok()),
        gro: prop(master, "gro").map(|v| v == "on"),
    }
}
