//! Pruning: removing every network, port, bond and helper process of Drover's that no network
//! or bond wants any more.

use std::path::Path;

use drover_host::HostError;

use super::bridge::{delete_ours, teardown};
use super::{bond, client, dhcp, proc, Net};

/// Removes every network, port and bond of Drover's not named in `keep`, and their services.
pub(crate) async fn prune(net: &Net, keep: &[String]) -> Result<(), HostError> {
    let kept = |name: &str| keep.iter().any(|k| k == name);
    for name in entries(&net.dir.join("networks")) {
        if kept(&name) {
            continue;
        }
        match net.ip.link(&name).await? {
            Some(b) if !b.ours(&net.owner) || b.kind() != "bridge" => {
                let dir = net.network_dir(&name);
                client::stop(&dir).await;
                dhcp::stop(&dir).await;
                let _ = std::fs::remove_dir_all(dir);
            }
            _ => teardown(net, &name).await?,
        }
    }
    for file in entries(&net.dir.join("bonds")) {
        if let Some(name) = file.strip_suffix(".json").filter(|n| !kept(n)) {
            bond::teardown(net, name).await?;
        }
    }
    for l in net.ip.links().await? {
        if !l.ours(&net.owner) || l.kind() == "tun" || kept(&l.ifname) {
            continue;
        }
        match l.kind() {
            "bridge" => teardown(net, &l.ifname).await?,
            "bond" => bond::teardown(net, &l.ifname).await?,
            _ if l.master.as_deref().is_some_and(kept) => {}
            _ => delete_ours(net, &l.ifname).await?,
        }
    }
    let networks = format!("{}/", net.dir.join("networks").display());
    for (pid, args) in proc::find(&networks) {
        let helper = args
            .first()
            .is_some_and(|a| a.ends_with("dnsmasq") || a.ends_with("busybox"));
        let of = args
            .iter()
            .find_map(|a| a.split_once(&networks))
            .and_then(|(_, rest)| rest.split('/').next().map(String::from));
        if helper && of.is_some_and(|b| !kept(&b)) {
            proc::stop(pid).await;
        }
    }
    Ok(())
}

/// The names in directory `dir`.
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::fake::Fake;
    use drover_host::{NetCapabilities, NetworkSpec, Uplink};

    #[tokio::test]
    async fn prune_keeps_what_is_wanted_and_what_is_not_ours() {
        let (fake, net) = Fake::net(NetCapabilities {
            bridge: true,
            ..NetCapabilities::default()
        });
        fake.add("eth1", "", None);
        fake.add("theirs0", "", None);
        let mut s = NetworkSpec {
            bridge: "br0".into(),
            mtu: 1500,
            uplink: Some(Uplink::Device("eth1".into())),
            dhcp: None,
        };
        net.ensure(&s).await.unwrap();
        s.bridge = "br1".into();
        s.uplink = None;
        net.ensure(&s).await.unwrap();
        net.prune(&["br1".into()]).await.unwrap();
        let links = fake.snapshot();
        assert!(links.contains_key("br1") && !links.contains_key("br0"));
        assert!(links.contains_key("theirs0"));
        assert_eq!(fake.master("eth1"), None);
        net.prune(&[]).await.unwrap();
        assert_eq!(
            fake.snapshot().keys().collect::<Vec<_>>(),
            ["eth1", "theirs0"]
        );
    }
}
