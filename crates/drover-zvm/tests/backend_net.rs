//! NICs, vswitches, network interfaces and config drives through `Backend::call`, on an engine
//! over the simulated host.

use std::sync::Arc;

use drover_core::{Engine, EngineConfig, Obj, Op};
use drover_host::sim::{SimConfig, SimHost};
use drover_model::Value;
use drover_zvm::api::{Backend, ZvmConfig};
use drover_zvm::error::ZvmError;
use serde_json::{json, Map, Value as Json};

/// A backend over an engine on a simulated host, in a temporary directory.
struct World {
    b: Backend,
    engine: Arc<Engine>,
    dir: tempfile::TempDir,
}

/// A fresh world.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(SimHost::new(SimConfig::default()));
    let config = EngineConfig {
        data_dir: dir.path().join("db"),
        admin_password: Some("secret".into()),
        console_base: String::new(),
        tiny_guest: None,
        ..EngineConfig::default()
    };
    let engine = Engine::open(config, host).await.unwrap();
    let b = Backend::new(
        engine.clone(),
        ZvmConfig {
            work_dir: dir.path().join("work"),
            default_pool: None,
            zcc_userid: "ZCC".into(),
            max_concurrent_deploy_capture: 2,
        },
    )
    .unwrap();
    World { b, engine, dir }
}

/// `(overallRC, modID, rc, rs)` of an error.
fn codes(e: &ZvmError) -> (i64, i64, i64, i64) {
    let (o, m, rc, rs) = e.codes();
    (o, m.as_i64().unwrap_or(-1), rc, rs)
}

impl World {
    /// Runs a backend call with positional `args` (an array) and keyword `kwargs` (an object).
    async fn call(&self, api: &str, args: Json, kwargs: Json) -> Result<Json, ZvmError> {
        let args = args.as_array().cloned().unwrap_or_default();
        let kwargs: Map<String, Json> = kwargs.as_object().cloned().unwrap_or_default();
        self.b.call(api, args, kwargs).await
    }

    /// A call that must succeed.
    async fn ok(&self, api: &str, args: Json, kwargs: Json) -> Json {
        match self.call(api, args, kwargs).await {
            Ok(v) => v,
            Err(e) => panic!("{api}: {e} {:?}", e.codes()),
        }
    }

    /// A call that must fail.
    async fn err(&self, api: &str, args: Json, kwargs: Json) -> ZvmError {
        match self.call(api, args, kwargs).await {
            Ok(v) => panic!("{api} succeeded with {v}"),
            Err(e) => e,
        }
    }

    /// Creates a guest with a 1 GiB root minidisk.
    async fn guest(&self, userid: &str) {
        let disks = json!([{"size": "1g", "is_boot_disk": true}]);
        self.ok("guest_create", json!([userid, 1, 512, disks]), json!({}))
            .await;
    }

    /// Starts a guest.
    async fn start(&self, userid: &str) {
        self.ok("guest_start", json!([userid]), json!({})).await;
    }

    /// The VM of a guest.
    fn vm(&self, userid: &str) -> Arc<Obj> {
        self.all("VM")
            .into_iter()
            .find(|v| v.str("name_label") == userid)
            .unwrap()
    }

    /// Every object of a class.
    fn all(&self, class: &str) -> Vec<Arc<Obj>> {
        self.engine.read(|db| db.all(class).cloned().collect())
    }

    /// An object that must exist.
    fn get(&self, class: &str, r: &str) -> Arc<Obj> {
        self.engine.get(class, r).unwrap()
    }

    /// The VIF of a guest's NIC `vdev`.
    fn vif(&self, userid: &str, vdev: &str) -> Arc<Obj> {
        let vm = self.vm(userid);
        vm.refs("VIFs")
            .iter()
            .map(|r| self.get("VIF", r))
            .find(|v| other(v, "zvm_vdev") == Some(vdev))
            .unwrap_or_else(|| panic!("no NIC {vdev} of {userid}"))
    }

    /// The network named `name`.
    fn network(&self, name: &str) -> Arc<Obj> {
        self.all("network")
            .into_iter()
            .find(|n| n.str("name_label") == name)
            .unwrap_or_else(|| panic!("no network {name}"))
    }

    /// The config drive CD drives of a guest.
    fn drives(&self, userid: &str) -> Vec<Arc<Obj>> {
        self.vm(userid)
            .refs("VBDs")
            .iter()
            .map(|r| self.get("VBD", r))
            .filter(|b| other(b, "zvm_config_drive") == Some("true"))
            .collect()
    }

    /// Sets (or with `None` removes) a key of a VM's `other_config`, as a XenAPI client does.
    async fn set_vm_other(&self, userid: &str, key: &str, value: Option<&str>) {
        let caller = self.engine.service_session("test").unwrap();
        let (class, r, field) = (
            "VM".to_string(),
            self.vm(userid).r.to_string(),
            "other_config".to_string(),
        );
        let op = match value {
            Some(v) => Op::MapAdd {
                class,
                r,
                field,
                key: Value::str(key),
                value: Value::str(v),
            },
            None => Op::MapRemove {
                class,
                r,
                field,
                key: Value::str(key),
            },
        };
        self.engine.call(&caller, op).await.unwrap();
    }
}

/// A value of an object's `other_config`.
fn other<'a>(o: &'a Obj, key: &str) -> Option<&'a str> {
    o.get("other_config").map_get(key).and_then(|v| v.as_str())
}

#[tokio::test]
async fn nics_get_vdevs_three_apart_and_refuse_overlaps() {
    let w = world().await;
    w.guest("user1").await;
    let first = w.ok("guest_create_nic", json!(["USER1"]), json!({})).await;
    assert_eq!(first, json!("1000"));
    let second = w.ok("guest_create_nic", json!(["user1"]), json!({})).await;
    assert_eq!(second, json!("1003"));
    let e = w
        .err(
            "guest_create_nic",
            json!(["USER1"]),
            json!({"vdev": "1004"}),
        )
        .await;
    assert_eq!(codes(&e), (409, 20, 409, 6));
    assert_eq!(
        e.message(),
        "Failed to create nic 1004 for guest USER1, error: The specified virtual device \
         number 1004 has already been used."
    );
    let given = w
        .ok(
            "guest_create_nic",
            json!(["USER1"]),
            json!({"vdev": "2000", "nic_id": "port-1", "mac_addr": "02:00:00:12:34:56"}),
        )
        .await;
    assert_eq!(given, json!("2000"));
    let vif = w.vif("USER1", "2000");
    assert_eq!(vif.str("MAC"), "02:00:00:12:34:56");
    assert_eq!(other(&vif, "zvm_nic_id"), Some("port-1"));
    assert!(!vif.bool("currently_attached"));
    let uncoupled = w.network("zvm-uncoupled");
    assert_eq!(other(&uncoupled, "zvm_internal"), Some("true"));
    assert_eq!(vif.str("network"), &*uncoupled.r);
    assert_eq!(
        w.all("network")
            .iter()
            .filter(|n| n.str("name_label") == "zvm-uncoupled")
            .count(),
        1
    );

    let e = w
        .err(
            "guest_create_nic",
            json!(["USER1"]),
            json!({"mac_addr": "02-00"}),
        )
        .await;
    assert_eq!(codes(&e), (100, 400, 100, 3));
    let e = w
        .err("guest_create_nic", json!(["NOSUCH"]), json!({}))
        .await;
    assert_eq!(codes(&e), (404, 10, 404, 1));

    w.ok("guest_delete_nic", json!(["USER1", "1003"]), json!({}))
        .await;
    w.ok("guest_delete_nic", json!(["USER1", "1009"]), json!({}))
        .await;
    let next = w.ok("guest_create_nic", json!(["USER1"]), json!({})).await;
    assert_eq!(next, json!("2003"), "three above the highest");
    let direct = w
        .ok("guest_get_definition_info", json!(["USER1"]), json!({}))
        .await;
    let nicdefs: Vec<&str> = direct["user_direct"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| l.starts_with("NICDEF"))
        .collect();
    assert_eq!(nicdefs.len(), 3, "{nicdefs:?}");
    assert!(nicdefs[0].starts_with("NICDEF 1000 TYPE QDIO"));

    // Seven NICs are the most a guest has.
    for _ in 0..4 {
        w.ok("guest_create_nic", json!(["USER1"]), json!({})).await;
    }
    let e = w.err("guest_create_nic", json!(["USER1"]), json!({})).await;
    assert_eq!(codes(&e), (409, 20, 409, 6));

    // An active create needs a running guest and plugs the NIC into it.
    w.guest("user2").await;
    let e = w
        .err(
            "guest_create_nic",
            json!(["USER2"]),
            json!({"active": true}),
        )
        .await;
    assert_eq!(codes(&e), (409, 20, 409, 1));
    assert_eq!(e.message(), "Guest 'USER2' is not in active status.");
    w.start("USER2").await;
    w.ok(
        "guest_create_nic",
        json!(["USER2"]),
        json!({"active": true}),
    )
    .await;
    assert!(w.vif("USER2", "1000").bool("currently_attached"));
    let later = w.ok("guest_create_nic", json!(["USER2"]), json!({})).await;
    assert_eq!(later, json!("1003"));
    assert!(!w.vif("USER2", "1003").bool("currently_attached"));
    w.ok(
        "guest_delete_nic",
        json!(["USER2", "1000"]),
        json!({"active": true}),
    )
    .await;
    assert_eq!(w.vm("USER2").refs("VIFs").len(), 1);
}

#[tokio::test]
async fn couples_move_nics_and_active_ones_need_grants() {
    let w = world().await;
    w.guest("USER1").await;
    w.ok("vswitch_create", json!(["VSW1"]), json!({})).await;
    let vsw = w.network("VSW1");
    w.ok("guest_create_nic", json!(["USER1"]), json!({})).await;

    // The documented flow: couple a guest that is off, then grant.
    w.ok(
        "guest_nic_couple_to_vswitch",
        json!(["USER1", "1000", "vsw1"]),
        json!({}),
    )
    .await;
    let vif = w.vif("USER1", "1000");
    assert_eq!(vif.str("network"), &*vsw.r);
    assert_eq!(other(&vif, "zvm_vswitch"), Some("VSW1"));
    assert_eq!(other(&vif, "zvm_vlan"), None);
    let info = w.ok("guests_get_nic_info", json!([]), json!({})).await;
    assert_eq!(
        info,
        json!([{"userid": "USER1", "interface": "1000", "switch": "VSW1", "port": null, "comments": null}])
    );
    w.ok(
        "guest_nic_uncouple_from_vswitch",
        json!(["USER1", "1000"]),
        json!({}),
    )
    .await;
    let vif = w.vif("USER1", "1000");
    assert_eq!(vif.str("network"), &*w.network("zvm-uncoupled").r);
    assert_eq!(other(&vif, "zvm_vswitch"), None);

    let e = w
        .err(
            "guest_nic_couple_to_vswitch",
            json!(["USER1", "1000", "VSW1"]),
            json!({"active": true}),
        )
        .await;
    assert_eq!(codes(&e), (409, 20, 409, 1));
    w.start("USER1").await;
    assert!(w.vif("USER1", "1000").bool("currently_attached"));
    let e = w
        .err(
            "guest_nic_couple_to_vswitch",
            json!(["USER1", "1000", "VSW1"]),
            json!({"active": true}),
        )
        .await;
    assert_eq!(codes(&e), (409, 20, 409, 10));
    assert!(e
        .message()
        .starts_with("Failed to couple nic 1000 of guest USER1 with vswitch VSW1, error: "));
    assert_eq!(
        w.vif("USER1", "1000").str("network"),
        &*w.network("zvm-uncoupled").r
    );

    w.ok("vswitch_grant_user", json!(["VSW1", "USER1"]), json!({}))
        .await;
    w.ok(
        "guest_nic_couple_to_vswitch",
        json!(["USER1", "1000", "VSW1"]),
        json!({"active": true, "vlan_id": 100}),
    )
    .await;
    let vif = w.vif("USER1", "1000");
    assert_eq!(vif.str("network"), &*vsw.r, "moved live");
    assert!(vif.bool("currently_attached"));
    assert_eq!(other(&vif, "zvm_vlan"), Some("100"));

    // An active couple plugs a NIC the running guest did not have.
    w.ok("guest_create_nic", json!(["USER1"]), json!({})).await;
    w.ok(
        "guest_nic_couple_to_vswitch",
        json!(["USER1", "1003", "VSW1"]),
        json!({"active": true}),
    )
    .await;
    assert!(w.vif("USER1", "1003").bool("currently_attached"));
    w.ok(
        "guest_nic_uncouple_from_vswitch",
        json!(["USER1", "1003"]),
        json!({"active": true}),
    )
    .await;
    assert!(
        w.vif("USER1", "1003").bool("currently_attached"),
        "still plugged, coupled to nothing"
    );

    let e = w
        .err(
            "guest_nic_couple_to_vswitch",
            json!(["USER1", "1000", "NOPE"]),
            json!({}),
        )
        .await;
    assert_eq!(
        (codes(&e), e.message()),
        ((404, 20, 404, 1), "Vswitch NOPE does not exist.".into())
    );
    let e = w
        .err(
            "guest_nic_couple_to_vswitch",
            json!(["USER1", "2000", "VSW1"]),
            json!({}),
        )
        .await;
    assert_eq!(codes(&e), (404, 20, 404, 1));
    let e = w
        .err(
            "guest_nic_uncouple_from_vswitch",
            json!(["USER1", "2000"]),
            json!({}),
        )
        .await;
    assert_eq!(codes(&e), (404, 20, 404, 1));
    let adapters = w
        .ok("guest_get_adapters_info", json!(["USER1"]), json!({}))
        .await;
    assert_eq!(adapters["adapters"][0]["lan_name"], "VSW1");
}

#[tokio::test]
async fn vswitches_are_networks_with_settings() {
    let w = world().await;
    w.guest("USER1").await;
    w.ok("vswitch_create", json!(["vsw1"]), json!({})).await;
    let net = w.network("VSW1");
    assert_eq!(net.str("bridge"), "zvsw-vsw1");
    assert_eq!(other(&net, "zvm_vswitch"), Some("true"));
    assert_eq!(other(&net, "zvm_vlan_awareness"), Some("UNAWARE"));
    assert_eq!(other(&net, "ip_begin"), None, "no address range");
    let e = w.err("vswitch_create", json!(["VSW1"]), json!({})).await;
    assert_eq!(codes(&e), (8, 1, 212, 36));
    let e = w
        .err("vswitch_create", json!(["VSW9"]), json!({"queue_mem": 9}))
        .await;
    assert_eq!(codes(&e), (100, 400, 100, 3));
    w.ok(
        "vswitch_create",
        json!(["VSW2"]),
        json!({"rdev": "1000", "vid": 100, "port_type": "TRUNK", "queue_mem": 4}),
    )
    .await;

    // A network made through XenAPI whose name can be a vswitch's is one.
    let caller = w.engine.service_session("test").unwrap();
    w.engine
        .call(
            &caller,
            Op::Create {
                class: "network".into(),
                fields: vec![
                    ("name_label".into(), Value::str("net5")),
                    ("other_config".into(), Value::empty_map()),
                ],
            },
        )
        .await
        .unwrap();
    let list = w.ok("vswitch_get_list", json!([]), json!({})).await;
    assert_eq!(list, json!(["NET5", "VSW1", "VSW2"]));

    let q = w.ok("vswitch_query", json!(["vsw1"]), json!({})).await;
    assert_eq!(q["switch_name"], "VSW1");
    assert_eq!(q["vlan_awareness"], "UNAWARE");
    assert_eq!(q["queue_memory_limit"], "8");
    assert_eq!(q["authorized_users"], json!({}));
    let e = w.err("vswitch_query", json!(["NOPE"]), json!({})).await;
    assert_eq!(
        (codes(&e), e.message()),
        ((404, 20, 404, 1), "Vswitch NOPE does not exist.".into())
    );

    let e = w
        .err("vswitch_grant_user", json!(["VSW1", "USER9"]), json!({}))
        .await;
    assert_eq!(codes(&e), (404, 10, 404, 1));
    let e = w
        .err("vswitch_grant_user", json!(["NOPE", "USER1"]), json!({}))
        .await;
    assert_eq!(codes(&e), (404, 20, 404, 1));
    w.ok("vswitch_grant_user", json!(["VSW1", "user1"]), json!({}))
        .await;
    w.ok("vswitch_grant_user", json!(["VSW1", "USER1"]), json!({}))
        .await;
    assert_eq!(other(&w.network("VSW1"), "zvm_grants"), Some("USER1"));
    let q = w.ok("vswitch_query", json!(["VSW1"]), json!({})).await;
    assert_eq!(q["authorized_users"]["USER1"]["vlan_count"], 0);
    assert_eq!(q["authorized_users"]["USER1"]["vlan_ids"], json!([]));

    let e = w
        .err(
            "vswitch_set_vlan_id_for_user",
            json!(["VSW1", "USER1", 10]),
            json!({}),
        )
        .await;
    assert_eq!(codes(&e), (409, 20, 409, 5));
    assert_eq!(
        e.message(),
        "Failed to set vswitch VSW1, error: Operation is not allowed for a VLAN UNAWARE vswitch"
    );
    w.ok(
        "vswitch_set_vlan_id_for_user",
        json!(["VSW2", "USER1", 200]),
        json!({}),
    )
    .await;
    let q = w.ok("vswitch_query", json!(["VSW2"]), json!({})).await;
    assert_eq!(q["vlan_awareness"], "AWARE");
    assert_eq!(q["vlan_id"], "0100");
    assert_eq!(q["port_type"], "TRUNK");
    assert_eq!(q["authorized_users"]["USER1"]["vlan_ids"], json!(["200"]));
    assert_eq!(q["authorized_users"]["USER1"]["vlan_count"], "1");
    assert!(q["real_devices"].get("1000").is_some());

    w.ok("vswitch_revoke_user", json!(["VSW2", "USER1"]), json!({}))
        .await;
    w.ok("vswitch_revoke_user", json!(["NOPE", "USER1"]), json!({}))
        .await;
    let net2 = w.network("VSW2");
    assert_eq!(
        (other(&net2, "zvm_grants"), other(&net2, "zvm_user_vlans")),
        (None, None)
    );

    // Deleting a vswitch uncouples its NICs.
    w.ok("guest_create_nic", json!(["USER1"]), json!({})).await;
    w.ok(
        "guest_nic_couple_to_vswitch",
        json!(["USER1", "1000", "VSW1"]),
        json!({}),
    )
    .await;
    let q = w.ok("vswitch_query", json!(["VSW1"]), json!({})).await;
    assert_eq!(q["adapters"]["USER1_1000"]["type"], "QDIO");
    w.ok("vswitch_delete", json!(["VSW1"]), json!({})).await;
    w.ok("vswitch_delete", json!(["VSW1"]), json!({})).await;
    let list = w.ok("vswitch_get_list", json!([]), json!({})).await;
    assert_eq!(list, json!(["NET5", "VSW2"]));
    let vif = w.vif("USER1", "1000");
    assert_eq!(vif.str("network"), &*w.network("zvm-uncoupled").r);
    assert_eq!(other(&vif, "zvm_vswitch"), None);
    let info = w
        .ok("guests_get_nic_info", json!([]), json!({"userid": "USER1"}))
        .await;
    assert_eq!(info[0]["switch"], Json::Null);
}

#[tokio::test]
async fn network_interfaces_go_to_the_config_drive() {
    let w = world().await;
    w.guest("USER1").await;
    let networks = json!([{
        "ip_addr": "192.168.95.10",
        "dns_addr": ["9.0.2.1"],
        "gateway_addr": "192.168.95.1",
        "cidr": "192.168.95.0/24",
        "nic_vdev": "1000",
        "mac_addr": "02:00:00:12:34:56",
        "hostname": "instance-1",
    }]);
    let out = w
        .ok(
            "guest_create_network_interface",
            json!(["USER1", "rhel8", networks]),
            json!({}),
        )
        .await;
    assert_eq!(out[0]["nic_vdev"], "1000");
    let vif = w.vif("USER1", "1000");
    assert_eq!(vif.str("MAC"), "02:00:00:12:34:56");
    assert_eq!(other(&vif, "zvm_ip"), Some("192.168.95.10"));
    assert_eq!(other(&vif, "zvm_cidr"), Some("192.168.95.0/24"));
    assert_eq!(other(&vif, "zvm_gateway"), Some("192.168.95.1"));
    assert_eq!(other(&vif, "zvm_dns"), Some("9.0.2.1"));
    assert_eq!(vif.str("ipv4_configuration_mode"), "Static");
    assert_eq!(
        vif.get("ipv4_addresses"),
        &Value::Set(vec![Value::str("192.168.95.10/24")])
    );
    let vm = w.vm("USER1");
    assert_eq!(other(&vm, "zvm_os_version"), Some("rhel8"));
    assert_eq!(other(&vm, "zvm_hostname"), Some("instance-1"));

    let drives = w.drives("USER1");
    assert_eq!(drives.len(), 1);
    let cd = &drives[0];
    assert_eq!((cd.str("type"), cd.str("mode")), ("CD", "RO"));
    assert!(cd.str("userdevice").parse::<u32>().unwrap() >= 3);
    let vdi = w.get("VDI", cd.str("VDI"));
    assert!(vdi.bool("read_only"));
    assert_eq!(vdi.str("type"), "user");
    assert_eq!(other(&vdi, "config_drive"), Some("true"));
    assert!(vdi.int("virtual_size") > 0);
    let adapters = w
        .ok("guest_get_adapters_info", json!(["USER1"]), json!({}))
        .await;
    assert_eq!(adapters["adapters"][0]["mac_ip_address"], "192.168.95.10");

    // The same vdev again configures the NIC the guest has; the drive is rebuilt in place.
    let again =
        json!([{"ip_addr": "192.168.95.11", "cidr": "192.168.95.0/24", "nic_vdev": "1000"}]);
    w.ok(
        "guest_create_network_interface",
        json!(["USER1", "sles15"]),
        json!({"guest_networks": again}),
    )
    .await;
    assert_eq!(w.vm("USER1").refs("VIFs").len(), 1);
    assert_eq!(
        other(&w.vif("USER1", "1000"), "zvm_ip"),
        Some("192.168.95.11")
    );
    assert_eq!(other(&w.vif("USER1", "1000"), "zvm_gateway"), None);
    let drives = w.drives("USER1");
    assert_eq!(drives.len(), 1);
    assert_eq!(drives[0].str("VDI"), &*vdi.r, "the same VDI, new contents");

    // Minidisks to mount go to the drive as well.
    w.ok(
        "guest_config_minidisks",
        json!(["USER1", [{"vdev": "0100", "format": "ext3", "mntdir": "/mnt/0100"}]]),
        json!({}),
    )
    .await;
    assert_eq!(w.drives("USER1")[0].str("VDI"), &*vdi.r);

    let e = w
        .err(
            "guest_create_network_interface",
            json!(["USER1", "rhel5", again]),
            json!({}),
        )
        .await;
    assert_eq!(codes(&e), (500, 400, 500, 1));
    let e = w
        .err(
            "guest_create_network_interface",
            json!(["USER1", "rhel8", []]),
            json!({}),
        )
        .await;
    assert_eq!(codes(&e), (100, 400, 100, 3));
    let bad = json!([{"ip_addr": "192.168.95.300"}]);
    let e = w
        .err(
            "guest_create_network_interface",
            json!(["USER1", "rhel8", bad]),
            json!({}),
        )
        .await;
    assert_eq!(codes(&e), (100, 400, 100, 3));
    let osa = json!([{"osa_device": "0100"}]);
    let e = w
        .err(
            "guest_create_network_interface",
            json!(["USER1", "rhel8", osa]),
            json!({}),
        )
        .await;
    assert_eq!(codes(&e), (409, 20, 409, 14));

    // A transport file is copied onto the drive; a missing one fails the rebuild.
    let file = w.dir.path().join("cfgdrive.tgz");
    std::fs::write(&file, [7u8; 3000]).unwrap();
    let before = w.get("VDI", &vdi.r).int("virtual_size");
    w.set_vm_other("USER1", "zvm_transportfiles", Some(&file.to_string_lossy()))
        .await;
    w.ok(
        "guest_create_network_interface",
        json!(["USER1", "rhel8", again]),
        json!({}),
    )
    .await;
    // The simulated host sizes an ISO image by its files' 2 KiB sectors.
    assert_eq!(w.get("VDI", &vdi.r).int("virtual_size"), before + 4096);
    std::fs::remove_file(&file).unwrap();
    let e = w
        .err(
            "guest_create_network_interface",
            json!(["USER1", "rhel8", again]),
            json!({}),
        )
        .await;
    assert_eq!(codes(&e), (300, 10, 300, 4));
    assert!(e
        .message()
        .starts_with("Failed to deploy image to userid: 'USER1', copy configure drive failed: "));
    w.set_vm_other("USER1", "zvm_transportfiles", None).await;

    // A running guest gets its new medium by eject and insert.
    w.start("USER1").await;
    let cd = &w.drives("USER1")[0];
    assert!(cd.bool("currently_attached"));
    let more = json!([{"ip_addr": "10.1.0.5", "cidr": "10.1.0.0/16"}]);
    let out = w
        .ok(
            "guest_create_network_interface",
            json!(["USER1", "rhel8", more]),
            json!({"active": true}),
        )
        .await;
    assert_eq!(out[0]["nic_vdev"], "1003");
    assert!(w.vif("USER1", "1003").bool("currently_attached"));
    let cd = &w.drives("USER1")[0];
    assert!(!cd.bool("empty"));
    assert_eq!(cd.str("VDI"), &*vdi.r);

    w.ok(
        "guest_delete_network_interface",
        json!(["USER1", "rhel8", "1003"]),
        json!({"active": true}),
    )
    .await;
    assert_eq!(w.vm("USER1").refs("VIFs").len(), 1);
    assert_eq!(w.drives("USER1").len(), 1);

    // Deleting the guest takes its drive along.
    w.ok("guest_delete", json!(["USER1"]), json!({})).await;
    assert!(w.engine.get("VDI", &vdi.r).is_err());
}

#[tokio::test]
async fn a_drive_made_while_the_guest_runs_waits_for_its_next_start() {
    let w = world().await;
    w.guest("USER1").await;
    w.start("USER1").await;
    let nets = json!([{"ip_addr": "10.1.0.5", "cidr": "10.1.0.0/16"}]);
    w.ok(
        "guest_create_network_interface",
        json!(["USER1", "ubuntu22", nets]),
        json!({"active": true}),
    )
    .await;
    let drives = w.drives("USER1");
    assert_eq!(drives.len(), 1);
    assert!(!drives[0].bool("currently_attached"));
    let first = drives[0].str("VDI").to_string();
    w.ok(
        "guest_delete_network_interface",
        json!(["USER1", "ubuntu22", "1000"]),
        json!({}),
    )
    .await;
    let drives = w.drives("USER1");
    assert_eq!(drives.len(), 1);
    assert_eq!(drives[0].str("VDI"), first);
    w.ok("guest_stop", json!(["USER1"]), json!({})).await;
    w.start("USER1").await;
    assert!(w.drives("USER1")[0].bool("currently_attached"));
}

#[tokio::test]
async fn nic_info_filters_and_vnic_stats_cover_running_guests() {
    let w = world().await;
    w.guest("USER1").await;
    w.guest("USER2").await;
    w.ok("vswitch_create", json!(["VSW1"]), json!({})).await;
    w.ok(
        "guest_create_nic",
        json!(["USER1"]),
        json!({"nic_id": "port-1"}),
    )
    .await;
    w.ok("guest_create_nic", json!(["USER1"]), json!({})).await;
    w.ok(
        "guest_create_nic",
        json!(["USER2"]),
        json!({"vdev": "0a00"}),
    )
    .await;
    for (u, v) in [("USER1", "1000"), ("USER2", "0a00")] {
        w.ok(
            "guest_nic_couple_to_vswitch",
            json!([u, v, "VSW1"]),
            json!({}),
        )
        .await;
    }
    let all = w.ok("guests_get_nic_info", json!([]), json!({})).await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    let by_id = w
        .ok(
            "guests_get_nic_info",
            json!([]),
            json!({"nic_id": "PORT-1"}),
        )
        .await;
    assert_eq!(
        by_id,
        json!([{"userid": "USER1", "interface": "1000", "switch": "VSW1", "port": "port-1", "comments": null}])
    );
    let on_vsw = w
        .ok("guests_get_nic_info", json!([]), json!({"vswitch": "vsw1"}))
        .await;
    assert_eq!(on_vsw.as_array().unwrap().len(), 2);
    let user2 = w
        .ok(
            "guests_get_nic_info",
            json!([]),
            json!({"userid": "user2", "vswitch": "VSW1"}),
        )
        .await;
    assert_eq!(user2[0]["interface"], "0a00");

    w.start("USER1").await;
    let stats = w
        .ok(
            "guest_inspect_vnics",
            json!([["USER1", "USER2", "USER9"]]),
            json!({}),
        )
        .await;
    let stats = stats.as_object().unwrap();
    assert_eq!(
        stats.keys().collect::<Vec<_>>(),
        ["USER1"],
        "running guests only"
    );
    let nics = stats["USER1"].as_array().unwrap();
    assert_eq!(nics.len(), 1, "coupled NICs only");
    assert_eq!(nics[0]["vswitch_name"], "VSW1");
    assert_eq!(nics[0]["nic_vdev"], "1000");
    for key in [
        "nic_fr_rx",
        "nic_fr_tx",
        "nic_fr_rx_dsc",
        "nic_fr_tx_dsc",
        "nic_fr_rx_err",
        "nic_fr_tx_err",
        "nic_rx",
        "nic_tx",
    ] {
        assert!(nics[0][key].is_i64(), "{key}");
    }
    let one = w
        .ok("guest_inspect_vnics", json!(["USER1"]), json!({}))
        .await;
    assert_eq!(one.as_object().unwrap().len(), 1);
    // A running guest without a coupled NIC has no statistics.
    w.ok(
        "guest_nic_uncouple_from_vswitch",
        json!(["USER2", "0a00"]),
        json!({}),
    )
    .await;
    w.start("USER2").await;
    let both = w
        .ok("guest_inspect_vnics", json!(["USER1,USER2"]), json!({}))
        .await;
    assert_eq!(
        both.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["USER1"]
    );
}
