//! Networks, VIFs, PIFs, VLANs and bonds through the engine's one entry path, on a simulated
//! host whose network devices the tests inspect.

use std::net::Ipv4Addr;
use std::sync::Arc;

use drover_core::{Caller, CoreError, Engine, EngineConfig, NetOp, Obj, Op, Reply, VmAction};
use drover_host::sim::{SimConfig, SimHost};
use drover_host::{HostDriver, IpConfig, NetCapabilities, NetworkSpec, PifInfo, Uplink};
use drover_model::{Value, NULL_REF};

struct World {
    engine: Arc<Engine>,
    host: Arc<SimHost>,
    caller: Caller,
    dir: tempfile::TempDir,
}

fn interface(device: &str, n: u8, ipv4: Option<&str>, default_route: bool) -> PifInfo {
    PifInfo {
        device: device.into(),
        mac: format!("02:00:00:00:01:{n:02x}"),
        mtu: 1500,
        carrier: true,
        speed: 10000,
        duplex: true,
        driver: "virtio_net".into(),
        pci_bus_path: format!("0000:00:0{n}.0"),
        ipv4: ipv4.map(|a| vec![a.to_string()]).unwrap_or_default(),
        default_route,
        gateway: if default_route {
            "10.0.0.1".into()
        } else {
            String::new()
        },
    }
}

/// A host with `eth0` (management: address and default route), `eth1`, `eth2` (free) and
/// `eth3` (an address of the host's own), and a foreign device `docker0`.
fn config() -> SimConfig {
    SimConfig {
        pifs: vec![
            interface("eth0", 0, Some("10.0.0.2/24"), true),
            interface("eth1", 1, None, false),
            interface("eth2", 2, None, false),
            interface("eth3", 3, Some("192.168.5.5/24"), false),
        ],
        foreign_devices: vec!["docker0".into()],
        ..SimConfig::default()
    }
}

fn caps(vlan_8021q: bool, vxlan: bool, bonding: bool) -> NetCapabilities {
    NetCapabilities {
        bridge: true,
        vlan_8021q,
        vlan_filtering: vlan_8021q,
        bonding,
        vxlan,
    }
}

async fn open(dir: &std::path::Path, host: Arc<SimHost>) -> (Arc<Engine>, Caller) {
    let config = EngineConfig {
        data_dir: dir.to_path_buf(),
        admin_password: Some("secret".into()),
        console_base: String::new(),
        tiny_guest: None,
        ..EngineConfig::default()
    };
    let engine = Engine::open(config, host).await.unwrap();
    let session = engine.login("admin", "secret", "test").await.unwrap();
    let caller = engine.authenticate(&session).unwrap();
    (engine, caller)
}

async fn world(config: SimConfig) -> World {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(SimHost::new(config));
    let (engine, caller) = open(dir.path(), host.clone()).await;
    World {
        engine,
        host,
        caller,
        dir,
    }
}

fn r(reply: Reply) -> String {
    match reply {
        Reply::Ref(r) => r.to_string(),
        other => panic!("expected a ref, got {other:?}"),
    }
}

fn strs(pairs: &[(&str, &str)]) -> Value {
    Value::string_map(pairs.iter().copied())
}

const DHCP: &[(&str, &str)] = &[
    ("ip_begin", "10.9.0.1"),
    ("ip_end", "10.9.0.4"),
    ("netmask", "255.255.255.0"),
];

impl World {
    async fn call(&self, op: Op) -> Result<Reply, CoreError> {
        self.engine.call(&self.caller, op).await
    }

    async fn net(&self, op: NetOp) -> Result<Reply, CoreError> {
        self.call(Op::Net(op)).await
    }

    fn get(&self, class: &str, r: &str) -> Arc<Obj> {
        self.engine.get(class, r).unwrap()
    }

    fn exists(&self, class: &str, r: &str) -> bool {
        self.engine.get(class, r).is_ok()
    }

    fn count(&self, class: &str) -> usize {
        self.engine.read(|db| db.all(class).count())
    }

    async fn create(&self, class: &str, fields: &[(&str, Value)]) -> Result<String, CoreError> {
        let fields = fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        self.call(Op::Create {
            class: class.into(),
            fields,
        })
        .await
        .map(r)
    }

    async fn destroy(&self, class: &str, r: &str) -> Result<Reply, CoreError> {
        self.call(Op::Destroy {
            class: class.into(),
            r: r.into(),
        })
        .await
    }

    async fn set(&self, class: &str, r: &str, field: &str, value: Value) -> Result<(), CoreError> {
        self.call(Op::SetField {
            class: class.into(),
            r: r.into(),
            field: field.into(),
            value,
        })
        .await
        .map(|_| ())
    }

    async fn network(&self, other_config: &[(&str, &str)]) -> Result<String, CoreError> {
        self.create(
            "network",
            &[
                ("name_label", Value::str("test")),
                ("other_config", strs(other_config)),
            ],
        )
        .await
    }

    async fn named(&self, bridge: &str, mtu: i64) -> Result<String, CoreError> {
        let fields = [
            ("bridge", Value::str(bridge)),
            ("MTU", Value::Int(mtu)),
            ("other_config", Value::empty_map()),
        ];
        self.create("network", &fields).await
    }

    async fn vm(&self, name: &str) -> String {
        self.create(
            "VM",
            &[
                ("name_label", Value::str(name)),
                ("memory_static_max", Value::Int(64 << 20)),
                ("memory_dynamic_max", Value::Int(64 << 20)),
                ("memory_dynamic_min", Value::Int(64 << 20)),
                ("memory_static_min", Value::Int(64 << 20)),
                ("VCPUs_max", Value::Int(1)),
                ("VCPUs_at_startup", Value::Int(1)),
            ],
        )
        .await
        .unwrap()
    }

    async fn vif(&self, vm: &str, net: &str, device: &str, mac: &str) -> Result<String, CoreError> {
        self.create(
            "VIF",
            &[
                ("VM", Value::str(vm)),
                ("network", Value::str(net)),
                ("device", Value::str(device)),
                ("MAC", Value::str(mac)),
                ("other_config", Value::empty_map()),
            ],
        )
        .await
    }

    async fn vm_op(&self, vm: &str, action: VmAction) -> Result<Reply, CoreError> {
        self.call(Op::Vm {
            vm: vm.into(),
            action,
        })
        .await
    }

    async fn start(&self, vm: &str) {
        let start = VmAction::Start {
            paused: false,
            force: false,
        };
        self.vm_op(vm, start).await.unwrap();
    }

    fn pif(&self, device: &str) -> String {
        self.engine.read(|db| {
            db.all("PIF")
                .find(|p| p.str("device") == device && p.bool("physical"))
                .unwrap()
                .r
                .to_string()
        })
    }

    fn bridge(&self, net: &str) -> String {
        self.get("network", net).str("bridge").to_string()
    }

    /// The network as the simulated host has it.
    fn on_host(&self, net: &str) -> Option<NetworkSpec> {
        self.host.networks().get(&self.bridge(net)).cloned()
    }

    fn uplink(&self, net: &str) -> Option<Uplink> {
        self.on_host(net).unwrap().uplink
    }

    fn reserved(&self, vif: &str) -> Option<String> {
        self.get("VIF", vif)
            .get("other_config")
            .map_get("dhcp_reserved_ip")
            .and_then(|v| v.as_str())
            .map(String::from)
    }

    fn uuid(&self, vm: &str) -> String {
        self.get("VM", vm).uuid().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_records_the_hosts_interfaces_each_with_a_network() {
    let w = world(config()).await;
    assert_eq!(w.count("PIF"), 4);
    assert_eq!(w.count("network"), 4);
    let eth0 = w.get("PIF", &w.pif("eth0"));
    assert!(eth0.bool("management") && eth0.bool("currently_attached") && eth0.bool("physical"));
    assert_eq!(eth0.str("ip_configuration_mode"), "Static");
    assert_eq!(
        (eth0.str("IP"), eth0.str("netmask"), eth0.str("gateway")),
        ("10.0.0.2", "255.255.255.0", "10.0.0.1")
    );
    assert_eq!(eth0.str("MAC"), "02:00:00:00:01:00");
    assert_eq!(eth0.int("VLAN"), -1);
    let net = w.get("network", eth0.str("network"));
    assert_eq!(
        net.str("name_label"),
        "Pool-wide network associated with eth0"
    );
    let metrics = w.get("PIF_metrics", eth0.str("metrics"));
    assert_eq!(metrics.int("speed"), 10000);
    assert_eq!(metrics.str("device_name"), "virtio_net");
    assert_eq!(metrics.str("pci_bus_path"), "0000:00:00.0");
    let eth1 = w.get("PIF", &w.pif("eth1"));
    assert!(!eth1.bool("management") && !eth1.bool("currently_attached"));
    assert_eq!(eth1.str("ip_configuration_mode"), "None");
    let mut bridges: Vec<String> = w.host.networks().into_keys().collect();
    bridges.sort();
    assert_eq!(bridges, ["xenbr0", "xenbr1", "xenbr2", "xenbr3"]);
    assert!(w.host.networks().values().all(|n| n.uplink.is_none()));
    let host = w.engine.this_host();
    let other_config = w.get("host", &host).get("other_config").clone();
    for key in [
        "net_bridge",
        "net_vlan_8021q",
        "net_vlan_filtering",
        "net_bonding",
        "net_vxlan",
    ] {
        assert_eq!(
            other_config.map_get(key).and_then(|v| v.as_str()),
            Some("true"),
            "{key}"
        );
    }
    let management = w
        .call(Op::Host {
            host: host.to_string(),
            action: drover_core::HostAction::GetManagementInterface,
        })
        .await
        .unwrap();
    assert_eq!(r(management), w.pif("eth0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_default_route_the_first_interface_is_the_management_one() {
    let w = world(SimConfig {
        pifs: vec![
            interface("ens4", 4, None, false),
            interface("ens5", 5, None, false),
        ],
        net: caps(false, true, false),
        ..SimConfig::default()
    })
    .await;
    assert!(w.get("PIF", &w.pif("ens4")).bool("management"));
    assert!(!w.get("PIF", &w.pif("ens5")).bool("management"));
    let other_config = w
        .get("host", &w.engine.this_host())
        .get("other_config")
        .clone();
    assert_eq!(
        other_config.map_get("net_vlan_8021q"),
        Some(&Value::str("false"))
    );
    assert_eq!(other_config.map_get("net_vxlan"), Some(&Value::str("true")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_removes_stale_devices_and_makes_every_network_again() {
    let w = world(config()).await;
    let net = w.network(DHCP).await.unwrap();
    let bridge = w.bridge(&net);
    w.host
        .network_ensure(&NetworkSpec {
            bridge: "stale7".into(),
            mtu: 1500,
            uplink: None,
            dhcp: None,
        })
        .await
        .unwrap();
    w.host.network_remove(&bridge).await.unwrap();
    let World {
        engine,
        host,
        caller,
        dir,
    } = w;
    drop(caller);
    drop(engine);
    let (engine, _) = open(dir.path(), host.clone()).await;
    let networks = host.networks();
    assert!(!networks.contains_key("stale7"), "stale bridge pruned");
    assert!(
        networks[&bridge].dhcp.is_some(),
        "the network is made again with its DHCP service"
    );
    assert_eq!(networks.len(), engine.read(|db| db.all("network").count()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_create_checks_its_bridge_mtu_and_address_range() {
    let w = world(config()).await;
    let a = w.network(&[]).await.unwrap();
    let b = w.network(&[]).await.unwrap();
    assert_eq!(
        (w.bridge(&a), w.bridge(&b)),
        ("xapi0".into(), "xapi1".into())
    );
    assert_eq!(w.on_host(&a).unwrap().mtu, 1500);
    let jumbo = w.named("br-jumbo", 9000).await.unwrap();
    assert_eq!(w.on_host(&jumbo).unwrap().mtu, 9000);
    let before = (w.count("network"), w.host.networks());
    assert!(matches!(
        w.named("br-jumbo", 1500).await,
        Err(CoreError::BridgeNameExists(b)) if b == "br-jumbo"
    ));
    assert!(matches!(
        w.named("docker0", 1500).await,
        Err(CoreError::BridgeNameExists(b)) if b == "docker0"
    ));
    assert!(matches!(
        w.named("eth1", 1500).await,
        Err(CoreError::BridgeNameExists(b)) if b == "eth1"
    ));
    assert!(matches!(
        w.named("a-much-too-long-bridge-name", 1500).await,
        Err(CoreError::InvalidValue { field, .. }) if field == "bridge"
    ));
    assert!(matches!(
        w.named("br-tiny", 20).await,
        Err(CoreError::InvalidValue { field, value }) if field == "MTU" && value == "20"
    ));
    assert!(matches!(
        w.network(&[("ip_begin", "10.1.0.1"), ("netmask", "255.255.255.0")]).await,
        Err(CoreError::InvalidValue { field, .. }) if field == "ip_end"
    ));
    assert!(matches!(
        w.network(&[("overlay", "gre")]).await,
        Err(CoreError::InvalidValue { field, .. }) if field == "overlay"
    ));
    assert_eq!(
        (w.count("network"), w.host.networks()),
        before,
        "nothing made"
    );
    let dhcp = w.network(DHCP).await.unwrap();
    let spec = w.on_host(&dhcp).unwrap().dhcp.unwrap();
    assert_eq!(spec.host_address, Ipv4Addr::new(10, 9, 0, 1));
    assert_eq!(
        (spec.range_start, spec.range_end),
        (Ipv4Addr::new(10, 9, 0, 2), Ipv4Addr::new(10, 9, 0, 4))
    );
    assert_eq!(spec.netmask, Ipv4Addr::new(255, 255, 255, 0));
    w.destroy("network", &dhcp).await.unwrap();
    assert!(w.on_host(&jumbo).is_some() && !w.host.networks().contains_key("xapi2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_networks_mtu_or_range_changes_the_host_or_nothing() {
    let w = world(config()).await;
    let net = w.network(&[]).await.unwrap();
    let vm = w.vm("v").await;
    let vif = w.vif(&vm, &net, "0", "").await.unwrap();
    assert_eq!(w.reserved(&vif), None);
    w.set("network", &net, "MTU", Value::Int(4000))
        .await
        .unwrap();
    assert_eq!(w.on_host(&net).unwrap().mtu, 4000);
    assert!(matches!(
        w.set("network", &net, "MTU", Value::Int(70000)).await,
        Err(CoreError::InvalidValue { field, .. }) if field == "MTU"
    ));
    assert_eq!(w.get("network", &net).int("MTU"), 4000);
    assert_eq!(w.on_host(&net).unwrap().mtu, 4000);
    let add = |key: &str, value: &str| Op::MapAdd {
        class: "network".into(),
        r: net.clone(),
        field: "other_config".into(),
        key: Value::str(key),
        value: Value::str(value),
    };
    assert!(matches!(
        w.call(add("ip_begin", "10.9.0.1")).await,
        Err(CoreError::InvalidValue { .. })
    ));
    assert!(w
        .get("network", &net)
        .get("other_config")
        .map_get("ip_begin")
        .is_none());
    w.set("network", &net, "other_config", strs(DHCP))
        .await
        .unwrap();
    assert_eq!(w.reserved(&vif).as_deref(), Some("10.9.0.2"));
    let spec = w.on_host(&net).unwrap().dhcp.unwrap();
    assert_eq!(spec.reservations.len(), 1);
    assert_eq!(
        spec.reservations[0].mac,
        w.get("VIF", &vif).str("MAC").to_ascii_lowercase()
    );
    let assigned = w.get("network", &net).get("assigned_ips").clone();
    assert_eq!(assigned.map_get(&vif), Some(&Value::str("10.9.0.2")));
    w.call(Op::MapRemove {
        class: "network".into(),
        r: net.clone(),
        field: "other_config".into(),
        key: Value::str("netmask"),
    })
    .await
    .unwrap_err();
    assert!(w.on_host(&net).unwrap().dhcp.is_some());
    w.set("network", &net, "other_config", Value::empty_map())
        .await
        .unwrap();
    assert!(w.on_host(&net).unwrap().dhcp.is_none());
    assert_eq!(w.reserved(&vif), None);
    assert_eq!(
        w.get("network", &net).get("assigned_ips"),
        &Value::empty_map()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vif_macs_and_positions_are_checked() {
    let w = world(config()).await;
    let net = w.network(&[]).await.unwrap();
    let vm = w.vm("v").await;
    let auto = w.vif(&vm, &net, "0", "").await.unwrap();
    let rec = w.get("VIF", &auto);
    assert!(rec.bool("MAC_autogenerated"));
    assert!(drover_core::valid_mac(rec.str("MAC")));
    let first = u8::from_str_radix(&rec.str("MAC")[..2], 16).unwrap();
    assert_eq!(first & 0x03, 0x02, "locally administered unicast");
    assert_eq!(rec.int("MTU"), 1500);
    assert!(!rec.bool("currently_attached"));
    let given = w.vif(&vm, &net, "1", "AA:00:00:00:00:01").await.unwrap();
    assert!(!w.get("VIF", &given).bool("MAC_autogenerated"));
    let vifs = w.count("VIF");
    for (device, mac, expect) in [
        ("2", "aa:00:00:00:00:01", "MAC_STILL_EXISTS"),
        ("2", rec.str("MAC"), "MAC_STILL_EXISTS"),
        ("2", "aa:00:00:00:00", "MAC_INVALID"),
        ("2", "01:00:5e:00:00:01", "MAC_INVALID"),
        ("1", "", "DEVICE_ALREADY_EXISTS"),
        ("7", "", "INVALID_VALUE"),
        ("x", "", "INVALID_VALUE"),
    ] {
        let e = w.vif(&vm, &net, device, mac).await.unwrap_err();
        let code = match &e {
            CoreError::MacStillExists(m) if m == mac => "MAC_STILL_EXISTS",
            CoreError::MacInvalid(m) if m == mac => "MAC_INVALID",
            CoreError::DeviceAlreadyExists(d) if d == device => "DEVICE_ALREADY_EXISTS",
            CoreError::InvalidValue { field, .. } if field == "device" => "INVALID_VALUE",
            _ => "other",
        };
        assert_eq!(code, expect, "{device} {mac}: {e:?}");
    }
    assert_eq!(w.count("VIF"), vifs, "nothing made");
    let free = w.vm_op(&vm, VmAction::GetAllowedVifDevices).await.unwrap();
    let Reply::Value(Value::Set(free)) = free else {
        panic!("a set")
    };
    assert_eq!(free.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_reserved_per_vif_kept_and_given_back() {
    let w = world(config()).await;
    let net = w.network(DHCP).await.unwrap();
    let vm = w.vm("v").await;
    let a = w.vif(&vm, &net, "0", "").await.unwrap();
    let b = w.vif(&vm, &net, "1", "").await.unwrap();
    assert_eq!(w.reserved(&a).as_deref(), Some("10.9.0.2"));
    assert_eq!(w.reserved(&b).as_deref(), Some("10.9.0.3"));
    w.start(&vm).await;
    assert_eq!(w.host.guest_nics(&w.uuid(&vm)).len(), 2);
    w.net(NetOp::VifUnplug {
        vif: a.clone(),
        force: false,
    })
    .await
    .unwrap();
    w.net(NetOp::VifPlug { vif: a.clone() }).await.unwrap();
    w.vm_op(&vm, VmAction::HardShutdown).await.unwrap();
    w.start(&vm).await;
    assert_eq!(w.reserved(&a).as_deref(), Some("10.9.0.2"), "kept");
    w.call(Op::MapRemove {
        class: "VIF".into(),
        r: a.clone(),
        field: "other_config".into(),
        key: Value::str("dhcp_reserved_ip"),
    })
    .await
    .unwrap();
    w.set("VIF", &a, "other_config", strs(&[("k", "v")]))
        .await
        .unwrap();
    assert_eq!(w.reserved(&a).as_deref(), Some("10.9.0.2"), "engine-owned");
    assert_eq!(
        w.get("VIF", &a).get("other_config").map_get("k"),
        Some(&Value::str("v"))
    );
    w.vm_op(&vm, VmAction::HardShutdown).await.unwrap();
    w.destroy("VIF", &a).await.unwrap();
    let spec = w.on_host(&net).unwrap().dhcp.unwrap();
    assert_eq!(spec.reservations.len(), 1, "released on the host");
    let c = w.vif(&vm, &net, "2", "").await.unwrap();
    assert_eq!(w.reserved(&c).as_deref(), Some("10.9.0.2"), "first free");
    let d = w.vif(&vm, &net, "3", "").await.unwrap();
    assert_eq!(w.reserved(&d).as_deref(), Some("10.9.0.4"));
    let before = (w.count("VIF"), w.on_host(&net));
    assert!(matches!(
        w.vif(&vm, &net, "4", "").await,
        Err(CoreError::NetworkAddressesExhausted(n)) if n == net
    ));
    assert_eq!((w.count("VIF"), w.on_host(&net)), before, "nothing made");
    let vms = w.count("VM");
    assert!(matches!(
        w.vm_op(&vm, VmAction::Clone { name: "c".into() }).await,
        Err(CoreError::NetworkAddressesExhausted(_))
    ));
    assert_eq!(w.count("VM"), vms, "no clone");
    w.destroy("VM", &vm).await.unwrap();
    let spec = w.on_host(&net).unwrap().dhcp.unwrap();
    assert!(
        spec.reservations.is_empty(),
        "the VM's addresses go with it"
    );
    assert_eq!(
        w.get("network", &net).get("assigned_ips"),
        &Value::empty_map()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_get_their_own_macs_and_addresses_snapshots_none() {
    let w = world(config()).await;
    let net = w.network(DHCP).await.unwrap();
    let vm = w.vm("v").await;
    let vif = w.vif(&vm, &net, "0", "").await.unwrap();
    let clone = r(w
        .vm_op(&vm, VmAction::Clone { name: "c".into() })
        .await
        .unwrap());
    let copy = w.get("VM", &clone).refs("VIFs")[0].to_string();
    assert_ne!(
        w.get("VIF", &copy).str("MAC"),
        w.get("VIF", &vif).str("MAC")
    );
    assert_eq!(w.reserved(&copy).as_deref(), Some("10.9.0.3"));
    let snapshot = r(w
        .vm_op(&vm, VmAction::Snapshot { name: "s".into() })
        .await
        .unwrap());
    let snap_vif = w.get("VM", &snapshot).refs("VIFs")[0].to_string();
    assert_eq!(w.reserved(&snap_vif), None);
    let spec = w.on_host(&net).unwrap().dhcp.unwrap();
    let mut leased: Vec<String> = spec.reservations.iter().map(|r| r.ip.to_string()).collect();
    leased.sort();
    assert_eq!(leased, ["10.9.0.2", "10.9.0.3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vifs_plug_into_running_and_paused_guests_only() {
    let w = world(config()).await;
    let net = w.network(&[]).await.unwrap();
    w.set("network", &net, "MTU", Value::Int(9000))
        .await
        .unwrap();
    let vm = w.vm("v").await;
    let first = w.vif(&vm, &net, "0", "").await.unwrap();
    let plug = |vif: &str| NetOp::VifPlug { vif: vif.into() };
    let unplug = |vif: &str| NetOp::VifUnplug {
        vif: vif.into(),
        force: true,
    };
    assert!(matches!(
        w.net(plug(&first)).await,
        Err(CoreError::VmBadPowerState { actual, .. }) if actual == "halted"
    ));
    assert_eq!(
        w.get("VIF", &first).get("allowed_operations"),
        &Value::empty_set()
    );
    w.start(&vm).await;
    let nics = w.host.guest_nics(&w.uuid(&vm));
    assert_eq!(nics.len(), 1);
    assert_eq!(
        (nics[0].device.as_str(), nics[0].bridge.clone(), nics[0].mtu),
        ("0", w.bridge(&net), 9000)
    );
    assert_eq!(nics[0].mac, w.get("VIF", &first).str("MAC"));
    assert!(w.get("VIF", &first).bool("currently_attached"));
    assert_eq!(
        w.get("VIF", &first).get("allowed_operations"),
        &Value::Set(vec![Value::str("unplug")])
    );
    let second = w.vif(&vm, &net, "1", "").await.unwrap();
    assert!(!w.get("VIF", &second).bool("currently_attached"));
    assert_eq!(
        w.get("VIF", &second).get("allowed_operations"),
        &Value::Set(vec![Value::str("plug")])
    );
    assert!(matches!(
        w.net(unplug(&second)).await,
        Err(CoreError::DeviceAlreadyDetached(v)) if v == second
    ));
    w.vm_op(&vm, VmAction::Pause).await.unwrap();
    w.net(plug(&second)).await.unwrap();
    assert_eq!(w.host.guest_nics(&w.uuid(&vm)).len(), 2);
    assert!(matches!(
        w.net(plug(&second)).await,
        Err(CoreError::DeviceAlreadyAttached(v)) if v == second
    ));
    assert!(matches!(
        w.destroy("VIF", &second).await,
        Err(CoreError::OperationNotAllowed(_))
    ));
    assert!(matches!(
        w.destroy("network", &net).await,
        Err(CoreError::NetworkContainsVif(v)) if v.len() == 2
    ));
    w.vm_op(&vm, VmAction::Unpause).await.unwrap();
    w.net(unplug(&first)).await.unwrap();
    assert_eq!(w.host.guest_nics(&w.uuid(&vm))[0].device, "1");
    assert!(!w.get("VIF", &first).bool("currently_attached"));

    // A suspended guest comes back with the NICs it had.
    w.vm_op(&vm, VmAction::Suspend).await.unwrap();
    assert!(w.get("VIF", &second).bool("currently_attached"));
    assert!(!w.get("VIF", &first).bool("currently_attached"));
    w.vm_op(
        &vm,
        VmAction::Resume {
            paused: false,
            force: false,
        },
    )
    .await
    .unwrap();
    let nics = w.host.guest_nics(&w.uuid(&vm));
    assert_eq!(nics.len(), 1);
    assert_eq!(nics[0].device, "1");
    w.vm_op(&vm, VmAction::HardShutdown).await.unwrap();
    assert!(!w.get("VIF", &second).bool("currently_attached"));
    w.destroy("VIF", &second).await.unwrap();
    assert!(!w.exists("VIF", &second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_shows_its_leased_address_without_an_agent() {
    let w = world(config()).await;
    let net = w.network(DHCP).await.unwrap();
    let vm = w.vm("v").await;
    let vif = w.vif(&vm, &net, "0", "").await.unwrap();
    w.start(&vm).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let guest = w.get("VM", &vm).str("guest_metrics").to_string();
        if let Ok(g) = w.engine.get("VM_guest_metrics", &guest) {
            assert_eq!(
                g.get("networks").map_get("0/ip"),
                Some(&Value::str("10.9.0.2"))
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no guest metrics");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        w.get("VIF", &vif).get("ipv4_addresses"),
        &Value::Set(vec![Value::str("10.9.0.2/24")])
    );
    let metrics = w.get("VIF", &vif).str("metrics").to_string();
    assert!(w.get("VIF_metrics", &metrics).get("last_updated") != &Value::DateTime(0));

    // A static configuration is the administrator's: later reports leave it alone.
    w.net(NetOp::VifConfigureIp {
        vif: vif.clone(),
        ipv6: false,
        mode: "Static".into(),
        address: "10.9.0.77/24".into(),
        gateway: String::new(),
    })
    .await
    .unwrap();
    let updated = w.get("VIF_metrics", &metrics).get("last_updated").clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while w.get("VIF_metrics", &metrics).get("last_updated") == &updated {
        assert!(std::time::Instant::now() < deadline, "no new metrics");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        w.get("VIF", &vif).get("ipv4_addresses"),
        &Value::Set(vec![Value::str("10.9.0.77/24")])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_go_only_when_nothing_uses_them() {
    let w = world(config()).await;
    let net = w.network(DHCP).await.unwrap();
    let bridge = w.bridge(&net);
    let vm = w.vm("v").await;
    let vif = w.vif(&vm, &net, "0", "").await.unwrap();
    w.start(&vm).await;
    assert!(matches!(
        w.destroy("network", &net).await,
        Err(CoreError::NetworkContainsVif(v)) if v == [vif.clone()]
    ));
    assert!(w.host.networks().contains_key(&bridge));
    w.vm_op(&vm, VmAction::HardShutdown).await.unwrap();
    let vlan_net = w.network(&[]).await.unwrap();
    let vlan = r(w
        .net(NetOp::VlanCreate {
            pif: w.pif("eth1"),
            tag: 5,
            network: vlan_net.clone(),
        })
        .await
        .unwrap());
    let untagged = w.get("VLAN", &vlan).str("untagged_PIF").to_string();
    assert!(matches!(
        w.destroy("network", &vlan_net).await,
        Err(CoreError::NetworkContainsPif(p)) if p == [untagged.clone()]
    ));
    let management = w.get("PIF", &w.pif("eth0")).str("network").to_string();
    assert!(matches!(
        w.destroy("network", &management).await,
        Err(CoreError::NetworkContainsPif(_))
    ));
    w.destroy("network", &net).await.unwrap();
    assert!(!w.host.networks().contains_key(&bridge), "bridge removed");
    let dangling = w.get("VIF", &vif);
    assert_eq!(dangling.str("network"), NULL_REF);
    assert_eq!(w.reserved(&vif), None);
    let start = VmAction::Start {
        paused: false,
        force: false,
    };
    assert!(matches!(
        w.vm_op(&vm, start).await,
        Err(CoreError::VmRequiresNetwork { network, .. }) if network == NULL_REF
    ));
    assert_eq!(w.get("VM", &vm).str("power_state"), "Halted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_whose_bridge_is_gone_from_the_host_does_not_start() {
    let w = world(config()).await;
    let net = w.network(&[]).await.unwrap();
    let vm = w.vm("v").await;
    w.vif(&vm, &net, "0", "").await.unwrap();
    w.host.network_remove(&w.bridge(&net)).await.unwrap();
    let start = VmAction::Start {
        paused: false,
        force: false,
    };
    assert!(matches!(
        w.vm_op(&vm, start).await,
        Err(CoreError::BridgeNotAvailable(b)) if b == w.bridge(&net)
    ));
    assert_eq!(w.get("VM", &vm).str("power_state"), "Halted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlans_use_8021q_where_the_kernel_has_it() {
    let w = world(config()).await;
    let eth1 = w.pif("eth1");
    let a = w.network(&[]).await.unwrap();
    let b = w.network(&[]).await.unwrap();
    let vlan = |pif: &str, tag: i64, network: &str| NetOp::VlanCreate {
        pif: pif.into(),
        tag,
        network: network.into(),
    };
    for tag in [0, 4095, -1] {
        assert!(matches!(
            w.net(vlan(&eth1, tag, &a)).await,
            Err(CoreError::VlanTagInvalid(t)) if t == tag.to_string()
        ));
    }
    let v = r(w.net(vlan(&eth1, 10, &a)).await.unwrap());
    assert_eq!(
        w.uplink(&a),
        Some(Uplink::Vlan {
            device: "eth1".into(),
            tag: 10
        })
    );
    let untagged = w.get("VLAN", &v).str("untagged_PIF").to_string();
    let u = w.get("PIF", &untagged);
    assert!(u.bool("currently_attached") && !u.bool("physical"));
    assert_eq!((u.int("VLAN"), u.str("VLAN_master_of")), (10, v.as_str()));
    assert!(w
        .get("PIF", &eth1)
        .refs("VLAN_slave_of")
        .iter()
        .any(|x| **x == *v));
    let records = (w.count("VLAN"), w.count("PIF"), w.host.networks());
    assert!(matches!(
        w.net(vlan(&eth1, 10, &b)).await,
        Err(CoreError::PifVlanExists(p)) if p == eth1
    ));
    assert!(matches!(
        w.net(vlan(&untagged, 11, &b)).await,
        Err(CoreError::PifIsVlan(p)) if p == untagged
    ));
    assert!(matches!(
        w.net(vlan(&eth1, 11, &a)).await,
        Err(CoreError::NetworkAlreadyConnected { network, pif }) if network == a && pif == untagged
    ));
    assert_eq!(
        (w.count("VLAN"), w.count("PIF"), w.host.networks()),
        records,
        "nothing made"
    );

    let vm = w.vm("v").await;
    w.vif(&vm, &a, "0", "").await.unwrap();
    w.start(&vm).await;
    assert!(matches!(
        w.destroy("VLAN", &v).await,
        Err(CoreError::VlanInUse { device, tag }) if device == "eth1" && tag == "10"
    ));
    w.vm_op(&vm, VmAction::HardShutdown).await.unwrap();
    w.destroy("VLAN", &v).await.unwrap();
    assert_eq!(w.uplink(&a), None);
    assert!(!w.exists("VLAN", &v) && !w.exists("PIF", &untagged));

    // The older forms answer the untagged PIF(s).
    let pif = r(w
        .net(NetOp::PifCreateVlan {
            device: "eth1".into(),
            network: b.clone(),
            host: w.engine.this_host().to_string(),
            tag: 12,
        })
        .await
        .unwrap());
    assert_eq!(w.get("PIF", &pif).int("VLAN"), 12);
    w.destroy("PIF", &pif).await.unwrap();
    let Reply::Refs(pifs) = w
        .net(NetOp::PoolCreateVlan {
            device: "eth2".into(),
            network: b.clone(),
            tag: 12,
        })
        .await
        .unwrap()
    else {
        panic!("refs")
    };
    assert_eq!(w.get("PIF", &pifs[0]).str("network"), b);
    assert!(matches!(
        w.net(NetOp::PoolCreateVlan {
            device: "eth9".into(),
            network: a.clone(),
            tag: 12,
        })
        .await,
        Err(CoreError::PifDeviceNotFound(d)) if d == "eth9"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlans_use_vxlan_where_the_kernel_lacks_8021q_or_the_network_is_an_overlay() {
    let w = world(SimConfig {
        net: caps(false, true, false),
        ..config()
    })
    .await;
    let full = w.network(&[]).await.unwrap();
    let before = (w.count("VLAN"), w.count("PIF"), w.host.networks());
    assert!(matches!(
        w.net(NetOp::VlanCreate {
            pif: w.pif("eth1"),
            tag: 20,
            network: full,
        })
        .await,
        Err(CoreError::PifConfigurationError { msg, .. }) if msg.contains("MTU to 1450")
    ));
    assert_eq!((w.count("VLAN"), w.count("PIF"), w.host.networks()), before);
    let net = w.named("br-vx", 1450).await.unwrap();
    w.net(NetOp::VlanCreate {
        pif: w.pif("eth1"),
        tag: 20,
        network: net.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        w.uplink(&net),
        Some(Uplink::Vxlan {
            device: "eth1".into(),
            vni: 20,
            peers: vec![]
        })
    );

    let w = world(config()).await;
    let overlay = w
        .create(
            "network",
            &[
                ("MTU", Value::Int(1400)),
                ("other_config", strs(&[("overlay", "vxlan")])),
            ],
        )
        .await
        .unwrap();
    w.net(NetOp::PifPlug { pif: w.pif("eth2") }).await.unwrap();
    w.net(NetOp::VlanCreate {
        pif: w.pif("eth2"),
        tag: 21,
        network: overlay.clone(),
    })
    .await
    .unwrap();
    let eth2_bridge = w.bridge(w.get("PIF", &w.pif("eth2")).str("network"));
    assert_eq!(
        w.uplink(&overlay),
        Some(Uplink::Vxlan {
            device: eth2_bridge,
            vni: 21,
            peers: vec![]
        }),
        "a plugged interface's traffic goes through its bridge"
    );

    let w = world(SimConfig {
        net: caps(false, false, false),
        ..config()
    })
    .await;
    let net = w.network(&[]).await.unwrap();
    let before = (w.count("VLAN"), w.count("PIF"), w.host.networks());
    let eth1 = w.pif("eth1");
    assert!(matches!(
        w.net(NetOp::VlanCreate {
            pif: eth1.clone(),
            tag: 22,
            network: net.clone(),
        })
        .await,
        Err(CoreError::PifConfigurationError { pif, msg }) if pif == eth1 && msg.contains("neither")
    ));
    assert_eq!((w.count("VLAN"), w.count("PIF"), w.host.networks()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pifs_plug_unplug_and_reconfigure_their_bridge() {
    let w = world(config()).await;
    let (eth0, eth1, eth3) = (w.pif("eth0"), w.pif("eth1"), w.pif("eth3"));
    let net1 = w.get("PIF", &eth1).str("network").to_string();
    w.net(NetOp::PifPlug { pif: eth1.clone() }).await.unwrap();
    assert!(w.get("PIF", &eth1).bool("currently_attached"));
    assert_eq!(w.uplink(&net1), Some(Uplink::Device("eth1".into())));
    w.net(NetOp::PifUnplug { pif: eth1.clone() }).await.unwrap();
    assert_eq!(w.uplink(&net1), None);
    assert!(matches!(
        w.net(NetOp::PifUnplug { pif: eth0.clone() }).await,
        Err(CoreError::PifIsManagementInterface(p)) if p == eth0
    ));
    let net3 = w.get("PIF", &eth3).str("network").to_string();
    assert!(matches!(
        w.net(NetOp::PifPlug { pif: eth3.clone() }).await,
        Err(CoreError::PifConfigurationError { pif, .. }) if pif == eth3
    ));
    assert!(!w.get("PIF", &eth3).bool("currently_attached"));
    assert_eq!(w.uplink(&net3), None, "the host is as it was");

    let reconfigure = |pif: &str, mode: &str, ip: &str, netmask: &str| NetOp::PifReconfigureIp {
        pif: pif.into(),
        mode: mode.into(),
        ip: ip.into(),
        netmask: netmask.into(),
        gateway: String::new(),
        dns: "10.0.0.53".into(),
    };
    assert!(matches!(
        w.net(reconfigure(&eth0, "Static", "10.0.0.9", "255.255.255.0"))
            .await,
        Err(CoreError::PifIsManagementInterface(_))
    ));
    for (ip, netmask, param) in [
        ("10.5.0.300", "255.255.255.0", "IP"),
        ("10.5.0.3", "255.0.255.0", "netmask"),
        ("", "255.255.255.0", "IP"),
    ] {
        assert!(matches!(
            w.net(reconfigure(&eth1, "Static", ip, netmask)).await,
            Err(CoreError::InvalidIpAddress(p)) if p == param
        ));
    }
    assert!(matches!(
        w.net(reconfigure(&eth1, "Manual", "", "")).await,
        Err(CoreError::InvalidValue { field, .. }) if field == "mode"
    ));
    let bridge = w.bridge(&net1);
    assert_eq!(w.host.bridge_address(&bridge), None, "nothing applied");
    w.net(reconfigure(&eth1, "Static", "10.5.0.3", "255.255.0.0"))
        .await
        .unwrap();
    assert_eq!(
        w.host.bridge_address(&bridge),
        Some(IpConfig::Static {
            address: Ipv4Addr::new(10, 5, 0, 3),
            prefix: 16
        })
    );
    let p = w.get("PIF", &eth1);
    assert_eq!(
        (
            p.str("ip_configuration_mode"),
            p.str("IP"),
            p.str("netmask"),
            p.str("DNS")
        ),
        ("Static", "10.5.0.3", "255.255.0.0", "10.0.0.53")
    );
    w.net(reconfigure(&eth1, "None", "", "")).await.unwrap();
    assert_eq!(w.host.bridge_address(&bridge), Some(IpConfig::None));
    assert_eq!(w.get("PIF", &eth1).str("IP"), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pifs_are_scanned_forgotten_and_never_destroyed() {
    let w = world(config()).await;
    let (eth0, eth2) = (w.pif("eth0"), w.pif("eth2"));
    assert!(matches!(
        w.destroy("PIF", &eth2).await,
        Err(CoreError::PifIsPhysical(p)) if p == eth2
    ));
    assert!(matches!(
        w.net(NetOp::PifForget { pif: eth0.clone() }).await,
        Err(CoreError::PifIsManagementInterface(_))
    ));
    let metrics = w.get("PIF", &eth2).str("metrics").to_string();
    w.net(NetOp::PifForget { pif: eth2.clone() }).await.unwrap();
    assert!(!w.exists("PIF", &eth2) && !w.exists("PIF_metrics", &metrics));
    w.host.add_interface(interface("eth4", 4, None, false));
    let host = w.engine.this_host().to_string();
    w.net(NetOp::PifScan { host: host.clone() }).await.unwrap();
    w.net(NetOp::PifScan { host }).await.unwrap();
    assert_eq!(w.count("PIF"), 5, "eth2 again and eth4, once each");
    let eth4 = w.get("PIF", &w.pif("eth4"));
    assert!(!eth4.bool("management"));
    let net = w.get("network", eth4.str("network"));
    assert_eq!(
        net.str("name_label"),
        "Pool-wide network associated with eth4"
    );
    assert!(w.host.networks().contains_key(net.str("bridge")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bonds_join_physical_interfaces_of_one_host() {
    let w = world(config()).await;
    let (eth0, eth1, eth2) = (w.pif("eth0"), w.pif("eth1"), w.pif("eth2"));
    let net1 = w.get("PIF", &eth1).str("network").to_string();
    w.net(NetOp::PifPlug { pif: eth1.clone() }).await.unwrap();
    let net = w.network(&[]).await.unwrap();
    let bond = |members: &[&String], mode: &str| NetOp::BondCreate {
        network: net.clone(),
        members: members.iter().map(|m| m.to_string()).collect(),
        mac: String::new(),
        mode: mode.into(),
        properties: Vec::new(),
    };
    assert!(matches!(
        w.net(bond(&[&eth1, &eth1], "lacp")).await,
        Err(CoreError::PifBondNeedsMoreMembers)
    ));
    assert!(matches!(
        w.net(bond(&[&eth0, &eth1], "lacp")).await,
        Err(CoreError::PifIsManagementInterface(p)) if p == eth0
    ));
    assert!(matches!(
        w.net(bond(&[&eth1, &eth2], "round-robin")).await,
        Err(CoreError::InvalidValue { field, .. }) if field == "mode"
    ));
    let b = r(w.net(bond(&[&eth1, &eth2], "active-backup")).await.unwrap());
    let made = &w.host.bonds()["bond0"];
    assert_eq!(made.members, ["eth1", "eth2"]);
    assert_eq!(made.mode, drover_host::BondMode::ActiveBackup);
    assert_eq!(made.mac, w.get("PIF", &eth1).str("MAC"));
    assert_eq!(w.uplink(&net), Some(Uplink::Device("bond0".into())));
    assert_eq!(w.uplink(&net1), None, "the member left its own network");
    let master = w.get("Bond", &b).str("master").to_string();
    let m = w.get("PIF", &master);
    assert!(!m.bool("physical") && m.bool("currently_attached"));
    assert_eq!(m.str("device"), "bond0");
    assert_eq!(m.refs("bond_master_of"), [Arc::from(b.as_str())]);
    for p in [&eth1, &eth2] {
        let p = w.get("PIF", p);
        assert_eq!(p.str("bond_slave_of"), b);
        assert!(!p.bool("currently_attached"));
    }
    assert!(matches!(
        w.net(NetOp::PifPlug { pif: eth1.clone() }).await,
        Err(CoreError::CannotPlugBondSlave(_))
    ));
    let other = w.network(&[]).await.unwrap();
    assert!(matches!(
        w.net(NetOp::BondCreate {
            network: other,
            members: vec![eth2.clone(), w.pif("eth3")],
            mac: String::new(),
            mode: "lacp".into(),
            properties: Vec::new(),
        })
        .await,
        Err(CoreError::PifAlreadyBonded(p)) if p == eth2
    ));
    w.set("Bond", &b, "mode", Value::str("lacp")).await.unwrap();
    assert_eq!(w.host.bonds()["bond0"].mode, drover_host::BondMode::Lacp);
    assert_eq!(w.uplink(&net), Some(Uplink::Device("bond0".into())));
    w.destroy("Bond", &b).await.unwrap();
    assert!(w.host.bonds().is_empty());
    assert_eq!(w.uplink(&net), None);
    assert!(!w.exists("Bond", &b) && !w.exists("PIF", &master));
    assert_eq!(w.get("PIF", &eth1).str("bond_slave_of"), NULL_REF);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bond_the_host_refuses_leaves_everything_as_it_was() {
    let w = world(SimConfig {
        foreign_devices: vec!["bond0".into()],
        ..config()
    })
    .await;
    let (eth1, eth2) = (w.pif("eth1"), w.pif("eth2"));
    w.net(NetOp::PifPlug { pif: eth1.clone() }).await.unwrap();
    let net = w.network(&[]).await.unwrap();
    let before = (w.count("PIF"), w.count("Bond"), w.host.networks());
    let refused = w
        .net(NetOp::BondCreate {
            network: net.clone(),
            members: vec![eth1.clone(), eth2.clone()],
            mac: String::new(),
            mode: "lacp".into(),
            properties: Vec::new(),
        })
        .await;
    assert!(
        matches!(refused, Err(CoreError::PifConfigurationError { .. })),
        "{refused:?}"
    );
    assert_eq!(
        (w.count("PIF"), w.count("Bond"), w.host.networks()),
        before,
        "eth1 is its network's uplink again"
    );
    assert!(w.get("PIF", &eth1).bool("currently_attached"));

    let w = world(SimConfig {
        net: caps(true, true, false),
        ..config()
    })
    .await;
    let net = w.network(&[]).await.unwrap();
    let before = (w.count("PIF"), w.host.networks());
    assert!(matches!(
        w.net(NetOp::BondCreate {
            network: net,
            members: vec![w.pif("eth1"), w.pif("eth2")],
            mac: String::new(),
            mode: "lacp".into(),
            properties: Vec::new(),
        })
        .await,
        Err(CoreError::OperationNotAllowed(m)) if m.contains("bonding")
    ));
    assert_eq!((w.count("PIF"), w.host.networks()), before);
}

fn reservations(w: &World, net: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = w
        .on_host(net)
        .unwrap()
        .dhcp
        .map(|d| {
            d.reservations
                .iter()
                .map(|r| (r.mac.clone(), r.ip.to_string()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halted_vms_vif_moves_with_its_address_reservation() {
    let w = world(config()).await;
    let a = w.network(DHCP).await.unwrap();
    let b = w
        .network(&[
            ("ip_begin", "10.8.0.1"),
            ("ip_end", "10.8.0.9"),
            ("netmask", "255.255.255.0"),
        ])
        .await
        .unwrap();
    let plain = w.network(&[]).await.unwrap();
    let vm = w.vm("v").await;
    let vif = w.vif(&vm, &a, "0", "").await.unwrap();
    let other = w.vif(&vm, &b, "1", "").await.unwrap();
    let mac = w.get("VIF", &vif).str("MAC").to_string();
    assert_eq!(w.reserved(&vif).as_deref(), Some("10.9.0.2"));
    assert_eq!(w.reserved(&other).as_deref(), Some("10.8.0.2"));
    let mv = |network: &str| NetOp::VifMove {
        vif: vif.clone(),
        network: network.into(),
    };

    w.net(mv(&b)).await.unwrap();
    assert_eq!(w.get("VIF", &vif).str("network"), b);
    assert!(w
        .get("network", &b)
        .refs("VIFs")
        .iter()
        .any(|v| **v == *vif));
    assert!(w.get("network", &a).refs("VIFs").is_empty());
    assert_eq!(w.reserved(&vif).as_deref(), Some("10.8.0.3"));
    assert!(
        reservations(&w, &a).is_empty(),
        "released on the old network"
    );
    assert!(reservations(&w, &b).contains(&(mac.clone(), "10.8.0.3".into())));
    assert_eq!(
        w.get("network", &a).get("assigned_ips"),
        &Value::empty_map()
    );
    assert_eq!(
        w.get("network", &b)
            .get("assigned_ips")
            .map_get(&vif)
            .and_then(|v| v.as_str()),
        Some("10.8.0.3")
    );

    // A network that hands out no addresses: no reservation anywhere.
    w.net(mv(&plain)).await.unwrap();
    assert_eq!(w.reserved(&vif), None);
    assert_eq!(reservations(&w, &b).len(), 1);
    assert_eq!(w.get("VIF", &vif).str("network"), plain);

    // The same network is a no-op; unknown handles are refused.
    w.net(mv(&plain)).await.unwrap();
    assert_eq!(w.get("VIF", &vif).str("network"), plain);
    assert!(matches!(
        w.net(mv("OpaqueRef:nonsense")).await,
        Err(CoreError::HandleInvalid { class, .. }) if class == "network"
    ));
    assert!(matches!(
        w.net(NetOp::VifMove {
            vif: "OpaqueRef:nonsense".into(),
            network: a.clone(),
        })
        .await,
        Err(CoreError::HandleInvalid { class, .. }) if class == "VIF"
    ));

    // A network with no address left: nothing changes.
    let full = w
        .network(&[
            ("ip_begin", "10.7.0.1"),
            ("ip_end", "10.7.0.2"),
            ("netmask", "255.255.255.0"),
        ])
        .await
        .unwrap();
    let taker = w.vif(&vm, &full, "2", "").await.unwrap();
    assert_eq!(w.reserved(&taker).as_deref(), Some("10.7.0.2"));
    let record = |w: &World| {
        let o = w.get("VIF", &vif);
        (o.str("network").to_string(), o.get("other_config").clone())
    };
    let before = (w.on_host(&full), record(&w));
    assert!(matches!(
        w.net(mv(&full)).await,
        Err(CoreError::NetworkAddressesExhausted(n)) if n == full
    ));
    assert_eq!((w.on_host(&full), record(&w)), before);

    // Back to the first network: the lowest free address again.
    w.net(mv(&a)).await.unwrap();
    assert_eq!(w.reserved(&vif).as_deref(), Some("10.9.0.2"));
    assert_eq!(reservations(&w, &a), [(mac, "10.9.0.2".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_guests_nic_moves_live_or_not_at_all() {
    let w = world(config()).await;
    let a = w.network(DHCP).await.unwrap();
    let b = w.network(&[]).await.unwrap();
    w.set("network", &b, "MTU", Value::Int(9000)).await.unwrap();
    let c = w.network(&[]).await.unwrap();
    let vm = w.vm("v").await;
    let vif = w.vif(&vm, &a, "0", "").await.unwrap();
    let mac = w.get("VIF", &vif).str("MAC").to_string();
    w.start(&vm).await;
    let uuid = w.uuid(&vm);
    let mv = |network: &str| NetOp::VifMove {
        vif: vif.clone(),
        network: network.into(),
    };
    let nic = |w: &World| {
        let nics = w.host.guest_nics(&uuid);
        assert_eq!(nics.len(), 1, "{nics:?}");
        (nics[0].bridge.clone(), nics[0].mtu)
    };
    assert_eq!(nic(&w), (w.bridge(&a), 1500));

    w.net(mv(&b)).await.unwrap();
    assert_eq!(nic(&w), (w.bridge(&b), 9000), "moved on the host");
    assert_eq!(w.get("VIF", &vif).str("network"), b);
    assert!(
        w.get("VIF", &vif).bool("currently_attached"),
        "never unplugged"
    );
    assert_eq!(w.reserved(&vif), None);
    assert!(reservations(&w, &a).is_empty());

    // Paused guests move too, and get their reservation back on the way.
    w.vm_op(&vm, VmAction::Pause).await.unwrap();
    w.net(mv(&a)).await.unwrap();
    assert_eq!(nic(&w), (w.bridge(&a), 1500));
    assert_eq!(reservations(&w, &a), [(mac.clone(), "10.9.0.2".into())]);
    w.vm_op(&vm, VmAction::Unpause).await.unwrap();

    // The host refuses (the new bridge is gone): the host and the record stay as they were.
    let gone = w.bridge(&b);
    w.host.network_remove(&gone).await.unwrap();
    assert!(matches!(
        w.net(mv(&b)).await,
        Err(CoreError::BridgeNotAvailable(br)) if br == gone
    ));
    assert_eq!(nic(&w), (w.bridge(&a), 1500));
    assert_eq!(w.get("VIF", &vif).str("network"), a);
    assert_eq!(w.reserved(&vif).as_deref(), Some("10.9.0.2"));
    assert_eq!(reservations(&w, &a), [(mac.clone(), "10.9.0.2".into())]);

    // A suspended guest's VIF moves in the record; it resumes on the new network.
    w.vm_op(&vm, VmAction::Suspend).await.unwrap();
    w.net(mv(&c)).await.unwrap();
    assert!(reservations(&w, &a).is_empty());
    w.vm_op(
        &vm,
        VmAction::Resume {
            paused: false,
            force: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(nic(&w), (w.bridge(&c), 1500));

    // An unplugged VIF of a running guest: only the record; plugging it uses the new network.
    w.net(NetOp::VifUnplug {
        vif: vif.clone(),
        force: false,
    })
    .await
    .unwrap();
    w.net(mv(&a)).await.unwrap();
    assert!(w.host.guest_nics(&uuid).is_empty());
    w.net(NetOp::VifPlug { vif: vif.clone() }).await.unwrap();
    assert_eq!(nic(&w), (w.bridge(&a), 1500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vif_ip_configuration_is_checked_and_recorded() {
    let w = world(config()).await;
    let net = w.network(&[]).await.unwrap();
    let vm = w.vm("v").await;
    let vif = w.vif(&vm, &net, "0", "").await.unwrap();
    let configure = |ipv6: bool, mode: &str, address: &str, gateway: &str| NetOp::VifConfigureIp {
        vif: vif.clone(),
        ipv6,
        mode: mode.into(),
        address: address.into(),
        gateway: gateway.into(),
    };
    let fields = |w: &World, family: &str| {
        let o = w.get("VIF", &vif);
        (
            o.str(&format!("{family}_configuration_mode")).to_string(),
            o.get(&format!("{family}_addresses")).clone(),
            o.str(&format!("{family}_gateway")).to_string(),
        )
    };
    let set = |addresses: &[&str]| Value::Set(addresses.iter().map(|a| Value::str(*a)).collect());
    assert_eq!(fields(&w, "ipv4"), ("None".into(), set(&[]), String::new()));

    w.net(configure(false, "Static", "10.1.2.3/24", "10.1.2.1"))
        .await
        .unwrap();
    let static4 = (
        "Static".to_string(),
        set(&["10.1.2.3/24"]),
        "10.1.2.1".to_string(),
    );
    assert_eq!(fields(&w, "ipv4"), static4);

    for (mode, address, gateway, code) in [
        ("Bogus", "", "", "mode"),
        ("DHCP", "", "", ""),
        ("Static", "10.1.2.3", "", "address"),
        ("Static", "10.1.2.3/33", "", "address"),
        ("Static", "", "", "address"),
        ("Static", "fd00::1/64", "", "address"),
        ("Static", "10.1.2.300/24", "", "address"),
        ("Static", "10.1.2.3/24", "10.1.2", "gateway"),
        ("Static", "10.1.2.3/24", "fd00::1", "gateway"),
    ] {
        let result = w.net(configure(false, mode, address, gateway)).await;
        match code {
            "" => {
                result.unwrap();
                w.net(configure(false, "Static", "10.1.2.3/24", "10.1.2.1"))
                    .await
                    .unwrap();
            }
            "mode" => assert!(
                matches!(&result, Err(CoreError::InvalidValue { field, value })
                    if field == "mode" && value == mode),
                "{mode}: {result:?}"
            ),
            "address" => assert!(
                matches!(&result, Err(CoreError::InvalidCidrAddress(p)) if p == "address"),
                "{address}: {result:?}"
            ),
            _ => assert!(
                matches!(&result, Err(CoreError::InvalidIpAddress(p)) if p == "gateway"),
                "{gateway}: {result:?}"
            ),
        }
        assert_eq!(fields(&w, "ipv4"), static4, "{mode} {address} {gateway}");
    }

    // The other modes take no address (an address given is recorded as it is).
    w.net(configure(false, "None", "", "")).await.unwrap();
    assert_eq!(fields(&w, "ipv4"), ("None".into(), set(&[]), String::new()));

    w.net(configure(true, "Static", "fd00::5/64", "fd00::1"))
        .await
        .unwrap();
    assert_eq!(
        fields(&w, "ipv6"),
        ("Static".into(), set(&["fd00::5/64"]), "fd00::1".into())
    );
    assert_eq!(fields(&w, "ipv4").0, "None", "the families are apart");
    for (mode, address, gateway) in [
        ("DHCP", "", ""),
        ("Static", "10.1.2.3/24", ""),
        ("Static", "fd00::5/129", ""),
        ("Static", "fd00::5/64", "10.0.0.1"),
    ] {
        assert!(w
            .net(configure(true, mode, address, gateway))
            .await
            .is_err());
    }
    w.net(configure(true, "Autoconf", "", "")).await.unwrap();
    assert_eq!(
        fields(&w, "ipv6"),
        ("Autoconf".into(), set(&[]), String::new())
    );
    assert!(matches!(
        w.net(NetOp::VifConfigureIp {
            vif: "OpaqueRef:nonsense".into(),
            ipv6: false,
            mode: "None".into(),
            address: String::new(),
            gateway: String::new(),
        })
        .await,
        Err(CoreError::HandleInvalid { class, .. }) if class == "VIF"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pifs_are_introduced_for_interfaces_the_host_has() {
    let w = world(config()).await;
    let host = w.engine.this_host().to_string();
    let introduce = |mac: &str, device: &str, managed: bool| NetOp::PifIntroduce {
        host: host.clone(),
        mac: mac.into(),
        device: device.into(),
        managed,
    };
    let eth2 = w.pif("eth2");
    let eth2_mac = w.get("PIF", &eth2).str("MAC").to_string();
    assert!(matches!(
        w.net(introduce(&eth2_mac, "eth2", true)).await,
        Err(CoreError::DuplicatePifDeviceName(d)) if d == "eth2"
    ));
    w.net(NetOp::PifForget { pif: eth2.clone() }).await.unwrap();
    let before = (w.count("PIF"), w.count("network"), w.host.networks());
    assert!(matches!(
        w.net(introduce("", "eth9", true)).await,
        Err(CoreError::PifDeviceNotFound(d)) if d == "eth9"
    ));
    assert!(matches!(
        w.net(introduce("02:00:00:00:01:01", "eth2", true)).await,
        Err(CoreError::NoInterfaceWithDeviceAndMac { device, mac })
            if device == "eth2" && mac == "02:00:00:00:01:01"
    ));
    assert!(matches!(
        w.net(introduce("02:00:00:00:01", "eth2", true)).await,
        Err(CoreError::MacInvalid(_))
    ));
    assert_eq!(
        (w.count("PIF"), w.count("network"), w.host.networks()),
        before,
        "refusals change nothing"
    );
    let pif = r(w
        .net(introduce(&eth2_mac.to_uppercase(), "eth2", true))
        .await
        .unwrap());
    let p = w.get("PIF", &pif);
    assert_eq!((p.str("device"), p.str("MAC")), ("eth2", eth2_mac.as_str()));
    assert!(p.bool("physical") && p.bool("managed") && !p.bool("currently_attached"));
    assert!(!p.bool("management"));
    let net = w.get("network", p.str("network"));
    assert_eq!(
        net.str("name_label"),
        "Pool-wide network associated with eth2"
    );
    assert!(w.host.networks().contains_key(net.str("bridge")));
    w.net(NetOp::PifPlug { pif: pif.clone() }).await.unwrap();

    w.host.add_interface(interface("eth4", 4, None, false));
    let eth4 = r(w.net(introduce("", "eth4", false)).await.unwrap());
    assert!(!w.get("PIF", &eth4).bool("managed"));
    assert!(matches!(
        w.net(NetOp::PifPlug { pif: eth4.clone() }).await,
        Err(CoreError::PifUnmanaged(p)) if p == eth4
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pifs_take_ipv6_on_their_bridge() {
    let w = world(config()).await;
    let (eth0, eth1) = (w.pif("eth0"), w.pif("eth1"));
    let bridge = w.bridge(w.get("PIF", &eth1).str("network"));
    let v6 = |pif: &str, mode: &str, ipv6: &str, gateway: &str| NetOp::PifReconfigureIpv6 {
        pif: pif.into(),
        mode: mode.into(),
        ipv6: ipv6.into(),
        gateway: gateway.into(),
        dns: "2001:db8::53,10.0.0.53".into(),
    };
    assert!(matches!(
        w.net(v6(&eth0, "Static", "2001:db8::9/64", "")).await,
        Err(CoreError::PifIsManagementInterface(_))
    ));
    for ipv6 in [
        "2001:db8::9",
        "2001:db8::9/129",
        "10.0.0.9/24",
        "ff02::1/64",
        "",
    ] {
        assert!(
            matches!(
                w.net(v6(&eth1, "Static", ipv6, "")).await,
                Err(CoreError::InvalidCidrAddress(p)) if p == "IPv6"
            ),
            "{ipv6}"
        );
    }
    assert!(matches!(
        w.net(v6(&eth1, "Static", "2001:db8::9/64", "10.0.0.1")).await,
        Err(CoreError::InvalidIpAddress(p)) if p == "gateway"
    ));
    assert!(matches!(
        w.net(v6(&eth1, "DHCP", "", "")).await,
        Err(CoreError::OperationNotAllowed(m)) if m.contains("DHCPv6")
    ));
    assert!(matches!(
        w.net(v6(&eth1, "Manual", "", "")).await,
        Err(CoreError::InvalidValue { field, .. }) if field == "mode"
    ));
    assert_eq!(w.host.bridge_address6(&bridge), None, "nothing applied");
    w.net(v6(&eth1, "Static", "2001:db8::9/64", "2001:db8::1"))
        .await
        .unwrap();
    assert_eq!(
        w.host.bridge_address6(&bridge),
        Some(drover_host::Ip6Config::Static {
            address: "2001:db8::9".parse().unwrap(),
            prefix: 64
        })
    );
    let p = w.get("PIF", &eth1);
    assert_eq!(p.str("ipv6_configuration_mode"), "Static");
    assert_eq!(
        p.get("IPv6").as_set().unwrap(),
        [Value::str("2001:db8::9/64")]
    );
    assert_eq!(p.str("ipv6_gateway"), "2001:db8::1");
    assert_eq!(p.str("DNS"), "2001:db8::53,10.0.0.53");
    assert_eq!(p.str("ip_configuration_mode"), "None", "IPv4 untouched");
    w.net(v6(&eth1, "Autoconf", "", "")).await.unwrap();
    assert_eq!(
        w.host.bridge_address6(&bridge),
        Some(drover_host::Ip6Config::Autoconf)
    );
    let p = w.get("PIF", &eth1);
    assert_eq!(p.str("ipv6_configuration_mode"), "Autoconf");
    assert!(p.get("IPv6").as_set().unwrap().is_empty());
    assert_eq!(p.str("ipv6_gateway"), "");
    w.net(v6(&eth1, "None", "", "")).await.unwrap();
    assert_eq!(
        w.host.bridge_address6(&bridge),
        Some(drover_host::Ip6Config::None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_of_bonds_and_their_interfaces() {
    let w = world(config()).await;
    let (eth0, eth1, eth2) = (w.pif("eth0"), w.pif("eth1"), w.pif("eth2"));
    let net = w.network(&[]).await.unwrap();
    let props = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let bond = |mode: &str, properties: Vec<(String, String)>| NetOp::BondCreate {
        network: net.clone(),
        members: vec![eth1.clone(), eth2.clone()],
        mac: String::new(),
        mode: mode.into(),
        properties,
    };
    for (mode, name, value) in [
        ("lacp", "hashing_algorithm", "round_robin"),
        ("lacp", "lacp-time", "sometimes"),
        ("lacp", "lacp-aggregation-key", "x"),
        ("lacp", "updelay", "-1"),
        ("lacp", "colour", "blue"),
        ("active-backup", "lacp-time", "fast"),
    ] {
        assert!(
            matches!(
                w.net(bond(mode, props(&[(name, value)]))).await,
                Err(CoreError::InvalidValue { field, value: v })
                    if field == format!("properties:{name}") && v == value
            ),
            "{mode} {name}={value}"
        );
    }
    assert!(matches!(
        w.net(bond("lacp", props(&[("lacp-fallback-ab", "false")]))).await,
        Err(CoreError::PifConfigurationError { msg, .. }) if msg.contains("lacp-fallback-ab")
    ));
    assert!(w.host.bonds().is_empty() && w.count("Bond") == 0);
    let b = r(w
        .net(bond(
            "lacp",
            props(&[("lacp-time", "fast"), ("updelay", "31000")]),
        ))
        .await
        .unwrap());
    let recorded = |w: &World| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = w
            .get("Bond", &b)
            .get("properties")
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        recorded(&w),
        props(&[
            ("hashing_algorithm", "tcpudp_ports"),
            ("lacp-fallback-ab", "true"),
            ("lacp-time", "fast"),
            ("updelay", "31000"),
        ])
    );
    let options = |w: &World| w.host.bonds()["bond0"].options.clone();
    assert_eq!(
        options(&w),
        drover_host::BondOptions {
            updelay: Some(31000),
            hashing: Some(drover_host::BondHashing::TcpudpPorts),
            lacp_fast: Some(true),
            ..Default::default()
        }
    );
    let set = |name: &str, value: &str| NetOp::BondSetProperty {
        bond: b.clone(),
        name: name.into(),
        value: value.into(),
    };
    w.net(set("hashing_algorithm", "src_mac")).await.unwrap();
    w.net(set("lacp-aggregation-key", "42")).await.unwrap();
    assert_eq!(options(&w).hashing, Some(drover_host::BondHashing::SrcMac));
    assert_eq!(options(&w).lacp_key, Some(42));
    assert!(matches!(
        w.net(set("lacp-aggregation-key", "4096")).await,
        Err(CoreError::InvalidValue { .. })
    ));
    assert_eq!(options(&w).lacp_key, Some(42), "the bond is as it was");
    let master = w.get("Bond", &b).str("master").to_string();
    assert_eq!(w.uplink(&net), Some(Uplink::Device("bond0".into())));

    let gro = |pif: &str, value: &str| NetOp::PifSetProperty {
        pif: pif.into(),
        name: "gro".into(),
        value: value.into(),
    };
    w.net(gro(&master, "off")).await.unwrap();
    assert_eq!(options(&w).gro, Some(false));
    assert_eq!(
        w.get("PIF", &master)
            .get("properties")
            .map_get("gro")
            .and_then(|v| v.as_str()),
        Some("off")
    );
    assert_eq!(w.uplink(&net), Some(Uplink::Device("bond0".into())));
    assert!(matches!(
        w.net(gro(&master, "maybe")).await,
        Err(CoreError::InvalidValue { .. })
    ));
    assert!(matches!(
        w.net(NetOp::PifSetProperty {
            pif: master.clone(),
            name: "mtu".into(),
            value: "9000".into(),
        })
        .await,
        Err(CoreError::InvalidValue { field, .. }) if field == "properties:mtu"
    ));
    assert!(matches!(
        w.net(gro(&eth1, "on")).await,
        Err(CoreError::CannotChangePifProperties(p)) if p == eth1
    ));
    for own in [&eth0, &w.pif("eth3")] {
        assert!(matches!(
            w.net(gro(own, "on")).await,
            Err(CoreError::PifConfigurationError { pif, msg })
                if &pif == own && msg.contains("did not make")
        ));
    }

    w.set("Bond", &b, "mode", Value::str("active-backup"))
        .await
        .unwrap();
    assert_eq!(recorded(&w), props(&[("updelay", "31000")]));
    assert_eq!(
        options(&w),
        drover_host::BondOptions {
            updelay: Some(31000),
            gro: Some(false),
            ..Default::default()
        }
    );
    assert!(matches!(
        w.net(set("lacp-time", "slow")).await,
        Err(CoreError::InvalidValue { .. })
    ));
    w.net(set("downdelay", "200")).await.unwrap();
    assert_eq!(options(&w).downdelay, Some(200));
}
