//! A network's uplink port: which one a spec wants (checked against the host before anything
//! changes), the names of the ports Drover makes, and a VXLAN's flooding list.

use std::net::Ipv4Addr;

use drover_host::{HostError, NetworkSpec, Uplink};
use serde::Deserialize;

use super::run::parse;
use super::state::{check_free, Prior, Undo};
use super::Net;

/// VXLAN's IANA port.
const VXLAN_PORT: &str = "4789";

/// The all-zero MAC of a VXLAN's flooding entries.
const FLOOD_MAC: &str = "00:00:00:00:00:00";

/// The uplink a spec wants, after the checks.
pub(crate) enum Want {
    /// No uplink.
    Nothing,
    /// The host interface, already this bridge's port.
    Kept(String),
    /// The host interface, to be taken as it is now.
    Take(Prior),
    /// A port device of Drover's.
    Port {
        /// Its name.
        name: String,
        /// Whether it exists already.
        exists: bool,
        /// `ip link add` arguments making it.
        add: Vec<String>,
        /// For VXLAN, the peers to flood to.
        peers: Option<Vec<Ipv4Addr>>,
    },
}

/// A short stable hash of `text`, for device names.
fn short_hash(text: &str) -> u32 {
    let h = text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    (h ^ (h >> 32)) as u32
}

/// The 802.1Q sub-interface of `device` with `tag`: `<device>.<tag>`, or a hashed name.
pub(crate) fn vlan_name(device: &str, tag: u16) -> String {
    let name = format!("{device}.{tag}");
    if name.len() <= 15 {
        name
    } else {
        format!("vl{:08x}", short_hash(&name))
    }
}

/// The VXLAN device of `vni` over `device`: `vx<vni>-<device>`, or a hashed name.
pub(crate) fn vxlan_name(device: &str, vni: u32) -> String {
    let name = format!("vx{vni}-{device}");
    if name.len() <= 15 {
        name
    } else {
        format!("vx{:08x}", short_hash(&name))
    }
}

/// Checks the uplink of `spec` against the host, touching nothing.
pub(crate) async fn want(
    net: &Net,
    spec: &NetworkSpec,
    taken: Option<&Prior>,
) -> Result<Want, HostError> {
    let (name, add, peers) = match &spec.uplink {
        None => return Ok(Want::Nothing),
        Some(Uplink::Device(dev)) => {
            let link = net.ip.existing(dev).await?;
            let kept = taken.is_some_and(|p| p.device == *dev)
                && link.master.as_deref() == Some(spec.bridge.as_str());
            return Ok(if kept {
                Want::Kept(dev.clone())
            } else {
                Want::Take(Prior::of(&check_free(&net.ip, dev, &net.owner).await?))
            });
        }
        Some(Uplink::Vlan { device, tag }) => {
            net.ip.existing(device).await?;
            let name = vlan_name(device, *tag);
            let add = [
                "link", "add", "link", device, "name", &name, "type", "vlan", "id",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([tag.to_string()])
            .collect();
            (name, add, None)
        }
        Some(Uplink::Vxlan { device, vni, peers }) => {
            let name = vxlan_name(device, *vni);
            let mut add: Vec<String> = ["link", "add", "name", &name, "type", "vxlan", "id"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            add.push(vni.to_string());
            add.extend(["dstport", VXLAN_PORT, "dev", device].map(String::from));
            if let Some((local, _)) = net.ip.existing(device).await?.ipv4().first() {
                add.extend(["local".to_string(), local.to_string()]);
            }
            add.push("nolearning".into());
            (name, add, Some(peers.clone()))
        }
    };
    let exists = match net.ip.link(&name).await? {
        None => false,
        Some(l) if !l.ours(&net.owner) => return Err(HostError::DeviceTaken(name)),
        Some(l) => match l.master {
            Some(m) if m != spec.bridge => {
                return Err(HostError::NetConfig {
                    device: name,
                    reason: format!("already the uplink of {m}"),
                })
            }
            _ => true,
        },
    };
    Ok(Want::Port {
        name,
        exists,
        add,
        peers,
    })
}

/// Makes the VXLAN `dev` flood to exactly `peers`.
pub(crate) async fn flood_to(
    net: &Net,
    dev: &str,
    peers: &[Ipv4Addr],
    undo: &mut Undo,
) -> Result<(), HostError> {
    #[derive(Deserialize)]
    struct Fdb {
        mac: String,
        dst: Option<String>,
    }
    let out = net
        .ip
        .tool(dev, "bridge", &["-j", "fdb", "show", "dev", dev])
        .await?;
    let entries: Vec<Fdb> = parse(dev, &out)?;
    let now: Vec<String> = entries
        .into_iter()
        .filter(|e| e.mac == FLOOD_MAC)
        .filter_map(|e| e.dst)
        .collect();
    let wanted: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
    for (from, to, op, back) in [
        (&wanted, &now, "append", "del"),
        (&now, &wanted, "del", "append"),
    ] {
        for peer in from.iter().filter(|p| !to.contains(p)) {
            let args = |op| ["fdb", op, FLOOD_MAC, "dev", dev, "dst", peer.as_str()];
            net.ip.tool(dev, "bridge", &args(op)).await?;
            undo.run("bridge", &args(back));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_names_fit_and_stay_apart() {
        assert_eq!(vlan_name("eth0", 100), "eth0.100");
        assert_eq!(vxlan_name("eth0", 42), "vx42-eth0");
        let long = vlan_name("enp0s31f6abcd", 4094);
        assert!(long.len() <= 15 && long.starts_with("vl"), "{long}");
        assert_eq!(long, vlan_name("enp0s31f6abcd", 4094));
        assert_ne!(long, vlan_name("enp0s31f6abcd", 4093));
        let long = vxlan_name("enp0s31f6abcd", 16_000_000);
        assert!(long.len() <= 15 && long.starts_with("vx"), "{long}");
        assert_ne!(long, vxlan_name("enp0s31f6abce", 16_000_000));
    }
}
