//! What the kernel can do for networks, found by trying each kind of device in a throwaway
//! network namespace.

use drover_host::NetCapabilities;

use super::run::{Runner, System};

/// What the kernel can do, probed once per process. A host where the probe cannot run (no `ip`,
/// no privileges) can do nothing.
pub(crate) async fn probe() -> NetCapabilities {
    static CAPS: tokio::sync::OnceCell<NetCapabilities> = tokio::sync::OnceCell::const_new();
    *CAPS.get_or_init(probe_now).await
}

/// Tries each kind of device in a namespace of its own (`drover-probe-<pid>`), deleted
/// afterwards.
async fn probe_now() -> NetCapabilities {
    let name = format!("drover-probe-{}", std::process::id());
    let root = System { netns: None };
    let _ = root.run("ip", &["netns", "del", &name]).await;
    if let Err(e) = root.run("ip", &["netns", "add", &name]).await {
        tracing::warn!(error = %e, "cannot probe network capabilities; networks are unavailable");
        return NetCapabilities::default();
    }
    let ns = System {
        netns: Some(name.clone()),
    };
    let works = |args: &'static [&'static str]| {
        let ns = &ns;
        async move { ns.run("ip", args).await.is_ok() }
    };
    let bridge = works(&["link", "add", "pb", "type", "bridge"]).await;
    let veth = works(&["link", "add", "pv0", "type", "veth", "peer", "name", "pv1"]).await;
    let caps = NetCapabilities {
        bridge,
        vlan_8021q: veth
            && works(&[
                "link", "add", "link", "pv0", "name", "pv0.7", "type", "vlan", "id", "7",
            ])
            .await,
        vlan_filtering: bridge
            && works(&["link", "set", "pb", "type", "bridge", "vlan_filtering", "1"]).await,
        bonding: works(&["link", "add", "pbond", "type", "bond"]).await,
        vxlan: veth
            && works(&[
                "link", "add", "pvx", "type", "vxlan", "id", "7", "dstport", "4789", "dev", "pv0",
            ])
            .await,
    };
    if let Err(e) = root.run("ip", &["netns", "del", &name]).await {
        tracing::warn!(netns = %name, error = %e, "cannot delete the probe namespace");
    }
    tracing::info!(?caps, "network capabilities probed");
    caps
}
