//! The agent's networks against the real kernel, through the host-driver interface. Each test
//! builds its world in a network namespace of its own (deleted afterwards, also when it fails)
//! and sends no traffic anywhere. They need root and iproute2, and fail loudly without them.

use drover_agent::{Accel, AccelChoice, AgentConfig, QemuHost};
use drover_host::{
    BondMode, BondSpec, DhcpSpec, HostDriver, HostError, IpConfig, NetworkSpec, Uplink,
};
use serde_json::Value;
use std::net::Ipv4Addr;

mod common;

use common::{run, Netns};

impl Netns {
    /// The link `name` as `ip -j -d addr` shows it, if it exists.
    fn link(&self, name: &str) -> Option<Value> {
        self.links()
            .into_iter()
            .find(|l| l["ifname"].as_str() == Some(name))
    }

    /// Every link.
    fn links(&self) -> Vec<Value> {
        serde_json::from_str(&self.ip(&["-j", "-d", "addr", "show"])).unwrap()
    }

    /// An agent whose networks live in this namespace, with its state in `dir`.
    async fn host(&self, dir: &std::path::Path) -> QemuHost {
        let mut config = AgentConfig::new(dir);
        config.accel = AccelChoice::Fixed(Accel::Tcg);
        config.netns = Some(self.0.clone());
        QemuHost::open(config).await.expect("agent opens")
    }
}

fn kind(link: &Value) -> &str {
    link["linkinfo"]["info_kind"].as_str().unwrap_or("")
}

fn is_up(link: &Value) -> bool {
    link["flags"].as_array().unwrap().iter().any(|f| f == "UP")
}

fn bridge(name: &str, mtu: u32, uplink: Option<Uplink>) -> NetworkSpec {
    NetworkSpec {
        bridge: name.into(),
        mtu,
        uplink,
        dhcp: None,
    }
}

#[tokio::test]
async fn a_bridge_is_made_marked_and_made_again_idempotently() {
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let host = ns.host(tmp.path()).await;
    assert!(host.net_capabilities().await.bridge);
    let spec = bridge("dnet0", 1400, None);
    host.network_ensure(&spec).await.unwrap();
    let br = ns.link("dnet0").expect("bridge made");
    assert_eq!(kind(&br), "bridge");
    assert_eq!(br["mtu"], 1400);
    assert!(is_up(&br));
    let alias = br["ifalias"].as_str().unwrap().to_string();
    assert!(alias.starts_with("drover:"), "{alias}");

    host.network_ensure(&spec).await.unwrap();
    let again = ns.link("dnet0").unwrap();
    assert_eq!(again["ifindex"], br["ifindex"], "the same bridge");
    host.network_ensure(&bridge("dnet0", 9000, None))
        .await
        .unwrap();
    assert_eq!(ns.link("dnet0").unwrap()["mtu"], 9000);
    assert!(host
        .pif_scan()
        .await
        .unwrap()
        .iter()
        .all(|p| p.device != "dnet0"));

    host.network_remove("dnet0").await.unwrap();
    assert!(ns.link("dnet0").is_none());
    host.network_remove("dnet0").await.unwrap();
}

#[tokio::test]
async fn a_bridge_drover_did_not_make_is_left_exactly_as_it_was() {
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let host = ns.host(tmp.path()).await;
    ns.ip(&[
        "link", "add", "name", "mine0", "mtu", "1300", "type", "bridge",
    ]);
    let before = ns.link("mine0").unwrap();
    let e = host
        .network_ensure(&bridge("mine0", 1500, None))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, HostError::DeviceTaken(d) if d == "mine0"),
        "{e}"
    );
    let e = host.network_remove("mine0").await.unwrap_err();
    assert!(
        matches!(&e, HostError::DeviceTaken(d) if d == "mine0"),
        "{e}"
    );
    let e = host
        .pif_configure_ip("mine0", &IpConfig::None)
        .await
        .unwrap_err();
    assert!(matches!(&e, HostError::DeviceTaken(_)), "{e}");
    host.network_prune(&[]).await.unwrap();
    assert_eq!(ns.link("mine0").unwrap(), before);
}

#[tokio::test]
async fn an_uplink_device_is_refused_while_in_use_and_given_back_as_it_was() {
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let host = ns.host(tmp.path()).await;
    ns.ip(&[
        "link", "add", "up0", "mtu", "1500", "type", "veth", "peer", "name", "up1",
    ]);
    ns.ip(&["addr", "add", "10.88.0.1/24", "dev", "up0"]);
    let spec = bridge("dnet1", 1450, Some(Uplink::Device("up0".into())));
    let e = host.network_ensure(&spec).await.unwrap_err();
    assert!(matches!(&e, HostError::DeviceInUse(d) if d == "up0"), "{e}");
    assert!(ns.link("dnet1").is_none(), "nothing made");

    ns.ip(&["addr", "flush", "dev", "up0"]);
    let before = ns.link("up0").unwrap();
    host.network_ensure(&spec).await.unwrap();
    let up0 = ns.link("up0").unwrap();
    assert_eq!(up0["master"], "dnet1");
    assert_eq!(up0["mtu"], 1450);
    assert!(up0["ifalias"].is_null(), "the host's device is not marked");
    let pifs = host.pif_scan().await.unwrap();
    let pif = pifs
        .iter()
        .find(|p| p.device == "up0")
        .expect("up0 scanned");
    assert_eq!(pif.driver, "veth");
    assert_eq!(pif.mac, before["address"].as_str().unwrap());
    let e = host
        .network_ensure(&bridge("dnet2", 1500, Some(Uplink::Device("up0".into()))))
        .await
        .unwrap_err();
    assert!(matches!(&e, HostError::DeviceInUse(_)), "{e}");
    assert!(ns.link("dnet2").is_none());

    host.network_remove("dnet1").await.unwrap();
    let after = ns.link("up0").unwrap();
    assert!(ns.link("dnet1").is_none());
    assert!(after["master"].is_null());
    assert_eq!(after["mtu"], before["mtu"]);
    assert_eq!(is_up(&after), is_up(&before));
    assert_eq!(after["address"], before["address"]);

    let e = host
        .network_ensure(&bridge("dnet3", 1500, Some(Uplink::Device("nope0".into()))))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, HostError::NoSuchDevice(d) if d == "nope0"),
        "{e}"
    );
    assert!(ns.link("dnet3").is_none());
}

/// The flooding destinations of the VXLAN device `dev`.
fn flood(ns: &Netns, dev: &str) -> Vec<String> {
    let out = run(&["bridge", "-n", &ns.0, "-j", "fdb", "show", "dev", dev]);
    let entries: Vec<Value> = serde_json::from_str(&out).unwrap();
    let mut dsts: Vec<String> = entries
        .iter()
        .filter(|e| e["mac"] == "00:00:00:00:00:00")
        .filter_map(|e| e["dst"].as_str().map(String::from))
        .collect();
    dsts.sort();
    dsts
}

#[tokio::test]
async fn a_vxlan_uplink_floods_to_its_peers() {
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let host = ns.host(tmp.path()).await;
    ns.ip(&["link", "add", "ov0", "type", "veth", "peer", "name", "ov1"]);
    ns.ip(&["addr", "add", "10.89.0.1/24", "dev", "ov0"]);
    let peer = |last| Ipv4Addr::new(10, 89, 0, last);
    let mut spec = bridge(
        "dnet4",
        1400,
        Some(Uplink::Vxlan {
            device: "ov0".into(),
            vni: 4242,
            peers: vec![peer(2), peer(3)],
        }),
    );
    if !host.net_capabilities().await.vxlan {
        let e = host.network_ensure(&spec).await.unwrap_err();
        assert!(
            matches!(&e, HostError::Unsupported(m) if m.contains("VXLAN")),
            "{e}"
        );
        return;
    }
    host.network_ensure(&spec).await.unwrap();
    let vx = ns
        .links()
        .into_iter()
        .find(|l| kind(l) == "vxlan")
        .expect("a VXLAN port");
    let name = vx["ifname"].as_str().unwrap().to_string();
    assert!(name.len() <= 15);
    assert_eq!(vx["master"], "dnet4");
    assert_eq!(vx["mtu"], 1400);
    assert_eq!(vx["linkinfo"]["info_data"]["id"], 4242);
    assert_eq!(vx["linkinfo"]["info_data"]["port"], 4789);
    assert_eq!(vx["linkinfo"]["info_data"]["local"], "10.89.0.1");
    assert_eq!(vx["linkinfo"]["info_data"]["learning"], false);
    assert_eq!(flood(&ns, &name), ["10.89.0.2", "10.89.0.3"]);

    if let Some(Uplink::Vxlan { peers, .. }) = &mut spec.uplink {
        *peers = vec![peer(3), peer(4)];
    }
    host.network_ensure(&spec).await.unwrap();
    assert_eq!(flood(&ns, &name), ["10.89.0.3", "10.89.0.4"]);
    assert!(
        host.pif_scan()
            .await
            .unwrap()
            .iter()
            .all(|p| p.device != name),
        "Drover's own ports are not host interfaces"
    );

    host.network_remove("dnet4").await.unwrap();
    assert!(ns.link(&name).is_none() && ns.link("dnet4").is_none());
    assert!(ns.link("ov0").unwrap()["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["local"] == "10.89.0.1"));
}

#[tokio::test]
async fn a_vlan_uplink_needs_8021q() {
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let host = ns.host(tmp.path()).await;
    ns.ip(&["link", "add", "tr0", "type", "veth", "peer", "name", "tr1"]);
    let spec = bridge(
        "dnet5",
        1500,
        Some(Uplink::Vlan {
            device: "tr0".into(),
            tag: 7,
        }),
    );
    let links = ns.links().len();
    if host.net_capabilities().await.vlan_8021q {
        host.network_ensure(&spec).await.unwrap();
        let vlan = ns.link("tr0.7").expect("the 802.1Q port");
        assert_eq!(vlan["master"], "dnet5");
        host.network_remove("dnet5").await.unwrap();
        assert!(ns.link("tr0.7").is_none());
    } else {
        let e = host.network_ensure(&spec).await.unwrap_err();
        assert!(
            matches!(&e, HostError::Unsupported(m) if m.contains("802.1Q")),
            "{e}"
        );
    }
    assert_eq!(ns.links().len(), links, "nothing left");
    let mut bad = spec.clone();
    bad.uplink = Some(Uplink::Vlan {
        device: "tr0".into(),
        tag: 4095,
    });
    assert!(host.network_ensure(&bad).await.is_err());
    assert!(ns.link("dnet5").is_none());
}

#[tokio::test]
async fn bonds_need_bonding() {
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let host = ns.host(tmp.path()).await;
    ns.ip(&["link", "add", "bm0", "type", "veth", "peer", "name", "bm1"]);
    ns.ip(&["link", "add", "bm2", "type", "veth", "peer", "name", "bm3"]);
    let before = ns.links();
    let spec = BondSpec {
        name: "dbond0".into(),
        members: vec!["bm0".into(), "bm2".into()],
        mode: BondMode::ActiveBackup,
        mac: String::new(),
        mtu: 1500,
        options: drover_host::BondOptions {
            updelay: Some(200),
            ..Default::default()
        },
    };
    if host.net_capabilities().await.bonding {
        host.bond_create(&spec).await.unwrap();
        assert_eq!(ns.link("bm0").unwrap()["master"], "dbond0");
        host.bond_destroy("dbond0").await.unwrap();
    } else {
        let e = host.bond_create(&spec).await.unwrap_err();
        assert!(
            matches!(&e, HostError::Unsupported(m) if m.contains("bonding")),
            "{e}"
        );
        let e = host.bond_destroy("dbond0").await.unwrap_err();
        assert!(matches!(&e, HostError::Unsupported(_)), "{e}");
    }
    let strip = |links: Vec<Value>| -> Vec<(Value, Value, Value)> {
        links
            .into_iter()
            .map(|l| (l["ifname"].clone(), l["master"].clone(), l["mtu"].clone()))
            .collect()
    };
    assert_eq!(strip(ns.links()), strip(before));
}

#[tokio::test]
async fn dhcp_service_lives_and_dies_with_its_network() {
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let host = ns.host(tmp.path()).await;
    let mut spec = bridge("dnet6", 1500, None);
    spec.dhcp = Some(DhcpSpec {
        host_address: Ipv4Addr::new(10, 90, 0, 1),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        range_start: Ipv4Addr::new(10, 90, 0, 10),
        range_end: Ipv4Addr::new(10, 90, 0, 20),
        reservations: Vec::new(),
    });
    host.network_ensure(&spec).await.unwrap();
    let dir = tmp.path().join("net");
    let dnsmasq = || -> Vec<String> {
        run(&["ip", "netns", "pids", &ns.0])
            .split_whitespace()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("dnsmasq"))
            })
            .map(String::from)
            .collect()
    };
    assert_eq!(dnsmasq().len(), 1);
    host.network_prune(&["dnet6".into()]).await.unwrap();
    assert_eq!(dnsmasq().len(), 1, "a kept network keeps its service");
    host.network_remove("dnet6").await.unwrap();
    assert!(dnsmasq().is_empty());
    assert!(ns.link("dnet6").is_none());
    assert!(!dir.join("networks/dnet6").exists());
}

#[tokio::test]
async fn prune_removes_what_no_network_wants_and_nothing_else() {
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let host = ns.host(tmp.path()).await;
    ns.ip(&["link", "add", "name", "keepme0", "type", "bridge"]);
    ns.ip(&["link", "add", "hw0", "type", "veth", "peer", "name", "hw1"]);
    ns.ip(&["tuntap", "add", "mode", "tap", "name", "gtap0"]);
    host.network_ensure(&bridge("dnet7", 1500, None))
        .await
        .unwrap();
    host.network_ensure(&bridge("dnet8", 1500, Some(Uplink::Device("hw0".into()))))
        .await
        .unwrap();
    host.network_prune(&["dnet7".into()]).await.unwrap();
    assert!(ns.link("dnet7").is_some());
    assert!(ns.link("dnet8").is_none());
    assert!(ns.link("hw0").unwrap()["master"].is_null());
    host.network_prune(&[]).await.unwrap();
    let mut names: Vec<String> = ns
        .links()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["gtap0", "hw0", "hw1", "keepme0", "lo"]);
}

#[tokio::test]
async fn host_interfaces_are_scanned_with_their_addresses_and_counters() {
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let host = ns.host(tmp.path()).await;
    ns.ip(&[
        "link", "add", "nic0", "mtu", "1480", "type", "veth", "peer", "name", "nic1",
    ]);
    ns.ip(&["addr", "add", "10.91.0.2/24", "dev", "nic0"]);
    ns.ip(&["link", "set", "nic0", "up"]);
    ns.ip(&["link", "set", "nic1", "up"]);
    ns.ip(&["route", "add", "default", "via", "10.91.0.1", "dev", "nic0"]);
    let pifs = host.pif_scan().await.unwrap();
    let mut names: Vec<&str> = pifs.iter().map(|p| p.device.as_str()).collect();
    names.sort();
    assert_eq!(names, ["nic0", "nic1"], "no loopback");
    let nic0 = pifs.iter().find(|p| p.device == "nic0").unwrap();
    assert_eq!(nic0.mtu, 1480);
    assert_eq!(nic0.ipv4, ["10.91.0.2/24"]);
    assert!(nic0.default_route && nic0.carrier);
    assert_eq!(nic0.gateway, "10.91.0.1");
    assert_eq!(nic0.driver, "veth");
    assert_eq!(nic0.mac.len(), 17);
    let nic1 = pifs.iter().find(|p| p.device == "nic1").unwrap();
    assert!(!nic1.default_route && nic1.ipv4.is_empty() && nic1.gateway.is_empty());

    let c = host.pif_counters("nic0").await.unwrap();
    assert!(c.carrier);
    let e = host.pif_counters("nope0").await.unwrap_err();
    assert!(
        matches!(&e, HostError::NoSuchDevice(d) if d == "nope0"),
        "{e}"
    );

    let e = host
        .network_ensure(&bridge("dnet9", 1500, Some(Uplink::Device("nic0".into()))))
        .await
        .unwrap_err();
    assert!(matches!(&e, HostError::DeviceInUse(_)), "{e}");
}

#[tokio::test]
async fn a_bridge_of_drovers_takes_a_static_address() {
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let host = ns.host(tmp.path()).await;
    host.network_ensure(&bridge("dnet10", 1500, None))
        .await
        .unwrap();
    let config = IpConfig::Static {
        address: Ipv4Addr::new(10, 92, 0, 5),
        prefix: 24,
    };
    host.pif_configure_ip("dnet10", &config).await.unwrap();
    let addrs = ns.link("dnet10").unwrap()["addr_info"].clone();
    assert!(addrs
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["local"] == "10.92.0.5" && a["prefixlen"] == 24));
    let e = host.pif_configure_ip("nope1", &config).await.unwrap_err();
    assert!(matches!(&e, HostError::NoSuchDevice(_)), "{e}");
    host.network_remove("dnet10").await.unwrap();
}
