//! A network's bridge, its uplink port and its DHCP service: made, brought in line with the spec,
//! removed; and guest ports joining it.

use std::path::Path;

use drover_host::{check_device_name, DhcpSpec, HostError, NetCapabilities, NetworkSpec, Uplink};
use serde::{Deserialize, Serialize};

use super::state::{self, restore, Prior, Undo};
use super::uplink::{flood_to, want, Want};
use super::{client, dhcp, Net};

/// What a network made and took, kept in `state.json` of its state directory.
#[derive(Debug, Default, Serialize, Deserialize)]
struct NetState {
    /// The uplink port Drover made (an 802.1Q or VXLAN device).
    port: Option<String>,
    /// The host interface handed over as the uplink, as it was before.
    device: Option<Prior>,
    /// The DHCP service as last set up.
    dhcp: Option<DhcpSpec>,
}

/// Checks `spec` and that this host can make it, before anything is touched.
pub(crate) fn validate(spec: &NetworkSpec, caps: NetCapabilities) -> Result<(), HostError> {
    check_device_name(&spec.bridge)?;
    let bad = |reason: String| HostError::NetConfig {
        device: spec.bridge.clone(),
        reason,
    };
    if !(68..=65535).contains(&spec.mtu) {
        return Err(bad(format!("MTU {} is not within 68-65535", spec.mtu)));
    }
    if !caps.bridge {
        return Err(HostError::Unsupported(
            "this host's kernel has no Linux bridges (module bridge)".into(),
        ));
    }
    match &spec.uplink {
        None => {}
        Some(Uplink::Device(dev)) => {
            check_device_name(dev)?;
            if *dev == spec.bridge {
                return Err(bad("a bridge cannot be its own uplink".into()));
            }
        }
        Some(Uplink::Vlan { device, tag }) => {
            check_device_name(device)?;
            if !(1..=4094).contains(tag) {
                return Err(bad(format!("VLAN tag {tag} is not within 1-4094")));
            }
            if !caps.vlan_8021q {
                return Err(HostError::Unsupported(
                    "this host's kernel has no 802.1Q VLAN devices (module 8021q); use a VXLAN overlay"
                        .into(),
                ));
            }
        }
        Some(Uplink::Vxlan { device, vni, .. }) => {
            check_device_name(device)?;
            if !(1..=0xff_ffff).contains(vni) {
                return Err(bad(format!("VXLAN id {vni} is not within 1-16777215")));
            }
            if !caps.vxlan {
                return Err(HostError::Unsupported(
                    "this host's kernel has no VXLAN devices (module vxlan)".into(),
                ));
            }
        }
    }
    if let Some(d) = &spec.dhcp {
        dhcp::validate(&spec.bridge, d)?;
        dhcp::check_installed(&spec.bridge)?;
    }
    Ok(())
}

/// Bytes VXLAN over IPv4 adds to each frame (outer Ethernet, IPv4, UDP and VXLAN headers).
const VXLAN_OVERHEAD: u32 = 50;

/// `spec` with its MTU lowered to what its uplink can carry: a bridge over VXLAN carries at most
/// the carrying interface's MTU less the encapsulation.
async fn fitted(net: &Net, spec: &NetworkSpec) -> Result<NetworkSpec, HostError> {
    let mut spec = spec.clone();
    if let Some(Uplink::Vxlan { device, .. }) = &spec.uplink {
        if let Some(dev) = net.ip.link(device).await? {
            let most = dev.mtu.saturating_sub(VXLAN_OVERHEAD);
            if spec.mtu > most {
                tracing::info!(
                    bridge = spec.bridge,
                    device,
                    mtu = most,
                    "VXLAN over this interface carries a smaller MTU than the network's"
                );
                spec.mtu = most;
            }
        }
    }
    Ok(spec)
}

/// Makes the network of `spec` or brings it in line; on failure takes back what it did.
pub(crate) async fn ensure(net: &Net, spec: &NetworkSpec) -> Result<(), HostError> {
    let spec = &fitted(net, spec).await?;
    let dir = net.network_dir(&spec.bridge);
    let old: NetState = state::load(&dir.join("state.json"))?.unwrap_or_default();
    let bridge = net.ip.link(&spec.bridge).await?;
    if let Some(b) = &bridge {
        if !b.ours(&net.owner) || b.kind() != "bridge" {
            return Err(HostError::DeviceTaken(spec.bridge.clone()));
        }
    }
    let want = want(net, spec, old.device.as_ref()).await?;
    let fresh = !dir.exists();
    let mut undo = Undo::default();
    match apply(net, spec, &old, bridge.map(|b| b.mtu), want, &mut undo).await {
        Ok(new) => state::save(&dir.join("state.json"), &new),
        Err(e) => {
            undo.rollback(&net.ip).await;
            if old.dhcp.is_none() {
                dhcp::stop(&dir).await;
            }
            if fresh {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Err(e)
        }
    }
}

/// Makes the changes, recording in `undo` how to take them back. Returns the new state.
async fn apply(
    net: &Net,
    spec: &NetworkSpec,
    old: &NetState,
    bridge_mtu: Option<u32>,
    want: Want,
    undo: &mut Undo,
) -> Result<NetState, HostError> {
    let ip = &net.ip;
    let br = spec.bridge.as_str();
    let mtu = spec.mtu.to_string();
    match bridge_mtu {
        None => {
            ip.cmd(br, &["link", "add", "name", br, "type", "bridge"])
                .await?;
            undo.made(br);
            ip.set(br, &["alias", &net.owner]).await?;
            ip.set(br, &["mtu", &mtu]).await?;
        }
        Some(m) if m != spec.mtu => {
            ip.set(br, &["mtu", &mtu]).await?;
            undo.run("ip", &["link", "set", "dev", br, "mtu", &m.to_string()]);
        }
        Some(_) => {}
    }
    ip.set(br, &["up"]).await?;
    let mut new = NetState::default();
    match want {
        Want::Nothing => {}
        Want::Kept(dev) => {
            ip.set(&dev, &["mtu", &mtu, "up"]).await?;
            new.device = old.device.clone();
        }
        Want::Take(prior) => {
            let dev = prior.device.clone();
            undo.took(prior.clone());
            ip.set(&dev, &["master", br]).await?;
            ip.set(&dev, &["mtu", &mtu, "up"]).await?;
            new.device = Some(prior);
        }
        Want::Port {
            name,
            exists,
            add,
            peers,
        } => {
            if !exists {
                let add: Vec<&str> = add.iter().map(String::as_str).collect();
                ip.cmd(&name, &add).await?;
                undo.made(&name);
                ip.set(&name, &["alias", &net.owner]).await?;
            }
            ip.set(&name, &["mtu", &mtu, "master", br, "up"]).await?;
            if let Some(peers) = peers {
                flood_to(net, &name, &peers, undo).await?;
            }
            new.port = Some(name);
        }
    }
    let dir = net.network_dir(br);
    match (&spec.dhcp, &old.dhcp) {
        (Some(d), old_d) => {
            serve(net, br, &dir, d, old_d.as_ref(), undo).await?;
            new.dhcp = Some(d.clone());
        }
        (None, Some(o)) => {
            dhcp::stop(&dir).await;
            drop_address(net, br, o).await;
        }
        (None, None) => {}
    }
    if let Some(p) = &old.device {
        if new.device.as_ref().map(|n| &n.device) != Some(&p.device) {
            restore(ip, p).await?;
        }
    }
    if let Some(p) = &old.port {
        if new.port.as_ref() != Some(p) {
            delete_ours(net, p).await?;
        }
    }
    Ok(new)
}

/// Sets up the bridge's address and its DHCP service.
async fn serve(
    net: &Net,
    br: &str,
    dir: &Path,
    spec: &DhcpSpec,
    old: Option<&DhcpSpec>,
    undo: &mut Undo,
) -> Result<(), HostError> {
    let address = cidr(spec);
    let has = net
        .ip
        .existing(br)
        .await?
        .ipv4()
        .iter()
        .any(|(a, p)| format!("{a}/{p}") == address);
    if !has {
        net.ip
            .cmd(br, &["addr", "add", &address, "dev", br])
            .await?;
        undo.run("ip", &["addr", "del", &address, "dev", br]);
    }
    net.ip
        .tool(
            br,
            "sysctl",
            &["-q", "-w", &format!("net/ipv4/conf/{br}/forwarding=0")],
        )
        .await?;
    let moved = old.is_some_and(|o| cidr(o) != address);
    dhcp::ensure(net.netns.as_deref(), br, dir, spec, moved || !has).await?;
    if let Some(o) = old.filter(|_| moved) {
        drop_address(net, br, o).await;
    }
    Ok(())
}

/// The bridge's address of a DHCP service, `a.b.c.d/p`.
fn cidr(spec: &DhcpSpec) -> String {
    let prefix = dhcp::prefix(spec.netmask).unwrap_or(32);
    format!("{}/{prefix}", spec.host_address)
}

/// Removes the bridge address of an old DHCP service, if it is still there.
async fn drop_address(net: &Net, br: &str, old: &DhcpSpec) {
    let _ = net
        .ip
        .cmd(br, &["addr", "del", &cidr(old), "dev", br])
        .await;
}

/// Deletes `name` if it exists and is Drover's.
pub(crate) async fn delete_ours(net: &Net, name: &str) -> Result<(), HostError> {
    match net.ip.link(name).await? {
        Some(l) if l.ours(&net.owner) => net.ip.cmd(name, &["link", "del", "dev", name]).await,
        _ => Ok(()),
    }
}

/// Removes the network of `bridge`: a missing one is fine, one Drover did not make is refused.
pub(crate) async fn remove(net: &Net, bridge: &str) -> Result<(), HostError> {
    if let Some(b) = net.ip.link(bridge).await? {
        if !b.ours(&net.owner) || b.kind() != "bridge" {
            return Err(HostError::DeviceTaken(bridge.into()));
        }
    }
    teardown(net, bridge).await
}

/// Stops the services of `bridge`, gives its uplink back, deletes its ports, the bridge (if it
/// exists, it is Drover's) and its state.
pub(crate) async fn teardown(net: &Net, bridge: &str) -> Result<(), HostError> {
    let dir = net.network_dir(bridge);
    let st: NetState = state::load(&dir.join("state.json"))?.unwrap_or_default();
    client::stop(&dir).await;
    dhcp::stop(&dir).await;
    if let Some(p) = &st.device {
        restore(&net.ip, p).await?;
    }
    if let Some(p) = &st.port {
        delete_ours(net, p).await?;
    }
    for l in net.ip.links().await? {
        if l.master.as_deref() == Some(bridge) && l.ours(&net.owner) && l.kind() != "tun" {
            net.ip
                .cmd(&l.ifname, &["link", "del", "dev", &l.ifname])
                .await?;
        }
    }
    delete_ours(net, bridge).await?;
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(HostError::Failed(format!("{}: {e}", dir.display())))
        }
        _ => Ok(()),
    }
}

/// Makes the tap `port` a port of Drover's bridge `bridge` with `mtu`, marked as Drover's, up.
pub(crate) async fn attach_port(
    net: &Net,
    port: &str,
    bridge: &str,
    mtu: u32,
) -> Result<(), HostError> {
    check_device_name(port)?;
    check_device_name(bridge)?;
    let b = net.ip.existing(bridge).await?;
    if !b.ours(&net.owner) || b.kind() != "bridge" {
        return Err(HostError::DeviceTaken(bridge.into()));
    }
    let p = net.ip.existing(port).await?;
    if p.kind() != "tun" || p.ifalias.as_ref().is_some_and(|a| *a != net.owner) {
        return Err(HostError::DeviceTaken(port.into()));
    }
    let mtu = if b.mtu > 0 { mtu.min(b.mtu) } else { mtu };
    net.ip
        .set(
            port,
            &[
                "alias",
                &net.owner,
                "mtu",
                &mtu.to_string(),
                "master",
                bridge,
                "up",
            ],
        )
        .await
}

/// The bridge address of the DHCP service of `bridge` (`a.b.c.d/p`), if it has one.
pub(crate) fn service_address(net: &Net, bridge: &str) -> Result<Option<String>, HostError> {
    let st: Option<NetState> = state::load(&net.network_dir(bridge).join("state.json"))?;
    Ok(st.and_then(|s| s.dhcp).map(|d| cidr(&d)))
}

#[cfg(test)]
mod tests {
    use super::super::fake::Fake;
    use super::*;

    fn caps() -> NetCapabilities {
        NetCapabilities {
            bridge: true,
            vxlan: true,
            ..NetCapabilities::default()
        }
    }

    fn spec(uplink: Option<Uplink>) -> NetworkSpec {
        NetworkSpec {
            bridge: "br0".into(),
            mtu: 9000,
            uplink,
            dhcp: None,
        }
    }

    #[tokio::test]
    async fn an_uplink_device_is_taken_and_given_back() {
        let (fake, net) = Fake::net(caps());
        fake.add("eth1", "", None);
        let before = fake.snapshot();
        let s = spec(Some(Uplink::Device("eth1".into())));
        net.ensure(&s).await.unwrap();
        assert_eq!(fake.master("eth1").as_deref(), Some("br0"));
        assert_eq!(
            fake.changes(),
            [
                "ip link add name br0 type bridge",
                "ip link set dev br0 alias drover:test",
                "ip link set dev br0 mtu 9000",
                "ip link set dev br0 up",
                "ip link set dev eth1 master br0",
                "ip link set dev eth1 mtu 9000 up",
            ]
        );
        fake.clear();
        net.ensure(&s).await.unwrap();
        assert_eq!(
            fake.changes(),
            ["ip link set dev br0 up", "ip link set dev eth1 mtu 9000 up"]
        );
        net.ensure(&spec(None)).await.unwrap();
        assert_eq!(
            fake.master("eth1"),
            None,
            "a changed uplink gives the old one back"
        );
        net.ensure(&s).await.unwrap();
        net.remove("br0").await.unwrap();
        assert_eq!(fake.snapshot(), before);
        assert!(!net.network_dir("br0").exists());
    }

    #[tokio::test]
    async fn a_failing_step_leaves_nothing_behind() {
        let steps = [
            "ip link set dev br0 alias drover:test",
            "ip link set dev br0 up",
            "ip link set dev eth1 master br0",
            "ip link set dev eth1 mtu 9000 up",
        ];
        for step in steps {
            let (fake, net) = Fake::net(caps());
            fake.add("eth1", "", None);
            let before = fake.snapshot();
            fake.fail_on(step);
            let s = spec(Some(Uplink::Device("eth1".into())));
            assert!(net.ensure(&s).await.is_err(), "{step}");
            assert_eq!(fake.snapshot(), before, "{step} left the host changed");
            assert!(!net.network_dir("br0").exists(), "{step}");
        }
    }

    #[tokio::test]
    async fn refusals_change_nothing() {
        let (fake, net) = Fake::net(caps());
        fake.add("eth1", "10.0.0.2/24", None);
        fake.add("eth2", "", Some("other0"));
        fake.add("br0", "", None);
        let e = net.ensure(&spec(None)).await.unwrap_err();
        assert!(matches!(&e, HostError::DeviceTaken(d) if d == "br0"), "{e}");
        let mut s = spec(Some(Uplink::Device("eth1".into())));
        s.bridge = "br1".into();
        let e = net.ensure(&s).await.unwrap_err();
        assert!(
            matches!(&e, HostError::DeviceInUse(d) if d == "eth1"),
            "{e}"
        );
        s.uplink = Some(Uplink::Device("eth2".into()));
        let e = net.ensure(&s).await.unwrap_err();
        assert!(
            matches!(&e, HostError::DeviceInUse(d) if d == "eth2"),
            "{e}"
        );
        s.uplink = Some(Uplink::Device("eth9".into()));
        let e = net.ensure(&s).await.unwrap_err();
        assert!(
            matches!(&e, HostError::NoSuchDevice(d) if d == "eth9"),
            "{e}"
        );
        s.uplink = Some(Uplink::Vlan {
            device: "eth2".into(),
            tag: 5,
        });
        let e = net.ensure(&s).await.unwrap_err();
        assert!(
            matches!(&e, HostError::Unsupported(m) if m.contains("802.1Q")),
            "{e}"
        );
        let e = net.remove("br0").await.unwrap_err();
        assert!(matches!(&e, HostError::DeviceTaken(d) if d == "br0"), "{e}");
        assert!(fake.changes().is_empty(), "{:?}", fake.changes());
    }
}
