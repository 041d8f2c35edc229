//! The host and volume calls of the z/VM backend on an engine over the simulated host: host
//! figures against the inventory, disk pools and their volumes, SSI, FCP Multipath Templates,
//! FCP reservations, and attaching and detaching volumes.

use std::sync::Arc;

use drover_core::{Caller, Engine, EngineConfig, Obj, Op, Reply};
use drover_host::sim::{SimConfig, SimHost};
use drover_model::Value;
use drover_zvm::api::{Backend, ZvmConfig};
use drover_zvm::error::ZvmResult;
use serde_json::{json, Value as Json};

/// Bytes of a 3390 cylinder.
const CYLINDER: i64 = 737_280;
/// The LUN the tests tag a VDI with.
const LUN: &str = "0x4020400100000000";

/// An engine over the simulated host, the backend on it and a caller of the engine.
struct World {
    backend: Backend,
    engine: Arc<Engine>,
    caller: Caller,
    _dir: tempfile::TempDir,
}

/// A fresh world in a temporary directory.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(SimHost::new(SimConfig::default()));
    let engine = Engine::open(
        EngineConfig {
            data_dir: dir.path().join("engine"),
            admin_password: Some("secret".into()),
            console_base: String::new(),
            tiny_guest: None,
            ..EngineConfig::default()
        },
        host,
    )
    .await
    .unwrap();
    let session = engine.login("admin", "secret", "test").await.unwrap();
    let caller = engine.authenticate(&session).unwrap();
    let backend = Backend::new(
        engine.clone(),
        ZvmConfig {
            work_dir: dir.path().join("zvm"),
            default_pool: None,
            zcc_userid: "ZCCUSER".into(),
            max_concurrent_deploy_capture: 20,
        },
    )
    .unwrap();
    World {
        backend,
        engine,
        caller,
        _dir: dir,
    }
}

impl World {
    /// Runs a backend call with positional and keyword arguments.
    async fn call(&self, api: &str, args: Json, kwargs: Json) -> ZvmResult {
        let args = args.as_array().cloned().unwrap_or_default();
        let kwargs = kwargs.as_object().cloned().unwrap_or_default();
        self.backend.call(api, args, kwargs).await
    }

    /// Runs a call that must succeed.
    async fn ok(&self, api: &str, args: Json, kwargs: Json) -> Json {
        match self.call(api, args, kwargs).await {
            Ok(v) => v,
            Err(e) => panic!("{api} failed: {:?} {}", e.codes(), e.message()),
        }
    }

    /// The codes of a call that must fail.
    async fn fails(&self, api: &str, args: Json, kwargs: Json) -> (i64, Json, i64, i64) {
        match self.call(api, args, kwargs).await {
            Ok(v) => panic!("{api} succeeded with {v}"),
            Err(e) => e.codes(),
        }
    }

    /// Runs an operation of the core, which must succeed.
    async fn op(&self, op: Op) -> Reply {
        self.engine.call(&self.caller, op).await.unwrap()
    }

    /// The pool's default SR.
    fn default_sr(&self) -> Arc<Obj> {
        self.engine.read(|db| {
            let pool = db.all("pool").next().unwrap();
            db.get("SR", pool.str("default_SR")).unwrap().clone()
        })
    }

    /// The VM of a guest.
    fn vm(&self, userid: &str) -> Arc<Obj> {
        self.engine.read(|db| {
            db.all("VM")
                .find(|v| v.str("name_label") == userid)
                .unwrap()
                .clone()
        })
    }

    /// Creates guest `userid` with one 1 GiB minidisk.
    async fn guest(&self, userid: &str, vcpus: i64, memory_mb: i64) {
        self.ok(
            "guest_create",
            json!([userid, vcpus, memory_mb]),
            json!({"disk_list": [{"size": "1g", "is_boot_disk": true}]}),
        )
        .await;
    }

    /// A VDI in the default SR tagged as the volume of `lun`.
    async fn volume(&self, lun: &str) -> String {
        let sr = self.default_sr();
        let vdi = match self
            .op(Op::Create {
                class: "VDI".into(),
                fields: vec![
                    ("name_label".into(), Value::str(format!("LUN {lun}"))),
                    ("SR".into(), Value::str(&*sr.r)),
                    ("virtual_size".into(), Value::Int(1 << 30)),
                    ("type".into(), Value::str("user")),
                    ("sharable".into(), Value::Bool(false)),
                    ("read_only".into(), Value::Bool(false)),
                ],
            })
            .await
        {
            Reply::Ref(r) => r.to_string(),
            other => panic!("VDI.create answered {other:?}"),
        };
        self.op(Op::MapAdd {
            class: "VDI".into(),
            r: vdi.clone(),
            field: "other_config".into(),
            key: Value::str("zvm_lun"),
            value: Value::str(lun),
        })
        .await;
        vdi
    }

    /// The VBDs of a guest that attach `vdi`.
    fn vbds_of(&self, userid: &str, vdi: &str) -> Vec<Arc<Obj>> {
        let vm = self.vm(userid);
        self.engine.read(|db| {
            vm.refs("VBDs")
                .iter()
                .filter_map(|r| db.get("VBD", r))
                .filter(|b| b.str("VDI") == vdi)
                .cloned()
                .collect()
        })
    }
}

/// An `other_config` value of an object.
fn other(obj: &Obj, key: &str) -> Option<String> {
    obj.get("other_config")
        .map_get(key)
        .and_then(|v| v.as_str())
        .map(String::from)
}

/// Bytes as whole GiB, rounded half up.
fn gib(bytes: i64) -> i64 {
    (bytes + (1 << 29)) >> 30
}

/// A connection_info for `userid` over devices `fcps`.
fn connection(userid: &str, fcps: &[&str], wwpn: &str, lun: &str) -> Json {
    json!({
        "assigner_id": userid,
        "zvm_fcp": fcps,
        "target_wwpn": [wwpn],
        "target_lun": lun,
        "os_version": "rhel7",
        "multipath": true,
        "mount_point": "/dev/sdz",
    })
}

/// Creates a template and answers its id.
async fn template(w: &World, name: &str, kwargs: Json) -> String {
    let t = w.ok("create_fcp_template", json!([name]), kwargs).await;
    t["fcp_template"]["id"].as_str().unwrap().to_string()
}

/// The names of the templates of a `get_fcp_templates` answer.
fn template_names(answer: &Json) -> Vec<String> {
    answer["fcp_templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn host_info_reports_the_host_and_its_default_pool() {
    let w = world().await;
    let info = w.ok("host_get_info", json!([]), json!({})).await;
    let keys: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "zcc_userid",
            "zvm_host",
            "vcpus",
            "vcpus_used",
            "cpu_info",
            "memory_mb",
            "memory_mb_used",
            "hypervisor_type",
            "hypervisor_version",
            "hypervisor_hostname",
            "ipl_time",
            "disk_total",
            "disk_used",
            "disk_available",
        ]
    );
    assert_eq!(info["zcc_userid"], "ZCCUSER");
    assert_eq!(info["zvm_host"], "SIM-HOST");
    assert_eq!(info["hypervisor_hostname"], "sim-host");
    assert_eq!(info["vcpus"], 8);
    assert_eq!(info["vcpus_used"], 0);
    assert_eq!(
        info["cpu_info"],
        json!({"architecture": std::env::consts::ARCH, "cec_model": "Drover simulated CPU"})
    );
    assert_eq!(info["memory_mb"], 256 * 1024);
    assert_eq!(info["hypervisor_type"], "zvm");
    let version: i64 = env!("CARGO_PKG_VERSION")
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    assert_eq!(info["hypervisor_version"], version);
    let ipl = info["ipl_time"].as_str().unwrap();
    assert!(ipl.starts_with("IPL at ") && ipl.ends_with(" UTC"), "{ipl}");
    assert_eq!(ipl.len(), "IPL at 11/23/26 10:01:02 UTC".len(), "{ipl}");
    let pool = w.ok("host_diskpool_get_info", json!([]), json!({})).await;
    for key in ["disk_total", "disk_used", "disk_available"] {
        assert_eq!(info[key], pool[key], "{key}");
    }

    w.guest("USER1", 2, 512).await;
    w.ok("guest_start", json!(["USER1"]), json!({})).await;
    w.guest("USER2", 3, 256).await;
    let info = w.ok("host_get_info", json!([]), json!({})).await;
    assert_eq!(info["vcpus_used"], 2, "only the running guest counts");
    assert!(info["memory_mb_used"].as_i64().unwrap() >= 512);

    let host = w
        .engine
        .read(|db| db.all("host").next().unwrap().r.to_string());
    w.op(Op::MapAdd {
        class: "host".into(),
        r: host,
        field: "other_config".into(),
        key: Value::str("boot_time"),
        value: Value::str("1795428062."),
    })
    .await;
    let info = w.ok("host_get_info", json!([]), json!({})).await;
    assert_eq!(info["ipl_time"], "IPL at 11/23/26 10:01:02 UTC");
    assert_eq!(
        w.fails("host_get_info", json!([1]), json!({})).await,
        (100, json!(400), 100, 1)
    );
}

#[tokio::test]
async fn diskpool_figures_follow_the_sr() {
    let w = world().await;
    w.guest("USER1", 1, 512).await;
    let sr = w.default_sr();
    let size = sr.int("physical_size");
    let used = sr.int("physical_utilisation");
    assert!(size > 0);
    let expected = json!({
        "disk_total": gib(size),
        "disk_used": gib(used),
        "disk_available": gib(size - used),
    });
    assert_eq!(
        w.ok("host_diskpool_get_info", json!([]), json!({})).await,
        expected
    );
    for pool in ["ECKD:local_storage", "FBA:LOCAL_STORAGE"] {
        let got = w
            .ok(
                "host_diskpool_get_info",
                json!([]),
                json!({"disk_pool": pool}),
            )
            .await;
        assert_eq!(got, expected, "{pool}");
    }
    assert_eq!(
        w.fails("host_diskpool_get_info", json!(["ECKD:nope"]), json!({}))
            .await,
        (8, json!(1), 400, 4)
    );
    for bad in ["nocolon", "XYZ:pool"] {
        assert_eq!(
            w.fails("host_diskpool_get_info", json!([bad]), json!({}))
                .await,
            (100, json!(400), 100, 3),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn disk_pools_have_one_volume_each() {
    let w = world().await;
    let volumes = json!({"diskpool_volumes": "LOCALS"});
    assert_eq!(
        w.ok("host_get_diskpool_volumes", json!([]), json!({}))
            .await,
        volumes
    );
    assert_eq!(
        w.ok(
            "host_get_diskpool_volumes",
            json!([]),
            json!({"disk_pool": "ECKD:local_storage"})
        )
        .await,
        volumes
    );
    assert_eq!(
        w.fails("host_get_diskpool_volumes", json!(["ECKD:nope"]), json!({}))
            .await,
        (8, json!(1), 400, 4)
    );
    let cylinders = w.default_sr().int("physical_size") / CYLINDER;
    let info = w
        .ok(
            "host_get_volume_info",
            json!([]),
            json!({"volume": "locals"}),
        )
        .await;
    assert!(
        cylinders > 65_520,
        "the simulated SR is larger than a 3390-54"
    );
    assert_eq!(
        info,
        json!({"volume_type": "3390-A", "volume_size": cylinders.to_string()})
    );
    assert_eq!(
        w.fails(
            "host_get_volume_info",
            json!([]),
            json!({"volume": "IAS100"})
        )
        .await,
        (404, json!(400), 404, 1)
    );
    assert_eq!(
        w.fails("host_get_volume_info", json!([]), json!({})).await,
        (100, json!(400), 100, 3)
    );
}

#[tokio::test]
async fn guest_list_and_ssi_follow_the_pool_hosts() {
    let w = world().await;
    w.guest("USER2", 1, 256).await;
    w.guest("USER1", 1, 256).await;
    w.guest("USER3", 1, 256).await;
    assert_eq!(
        w.ok("host_get_guest_list", json!([]), json!({})).await,
        json!(["USER1", "USER2", "USER3"])
    );
    assert_eq!(
        w.ok("host_get_ssi_info", json!([]), json!({})).await,
        json!([])
    );

    // A second, disabled host joins the pool, and USER3 runs there.
    let user3 = w.vm("USER3").r.to_string();
    w.engine
        .write(|t| {
            let metrics = t.create(
                "host_metrics",
                vec![
                    ("memory_total", Value::Int(1 << 30)),
                    ("live", Value::Bool(true)),
                    ("last_updated", Value::DateTime(1_795_428_062)),
                ],
            )?;
            let other = t.create(
                "host",
                vec![
                    ("name_label", Value::str("aaa-host")),
                    ("hostname", Value::str("aaa-host")),
                    ("enabled", Value::Bool(false)),
                    ("metrics", Value::str(&*metrics)),
                ],
            )?;
            t.set("VM", &user3, "power_state", Value::str("Running"))?;
            t.set("VM", &user3, "resident_on", Value::str(&*other))
        })
        .unwrap();
    assert_eq!(
        w.ok("host_get_guest_list", json!([]), json!({})).await,
        json!(["USER1", "USER2"]),
        "a guest running on another member is not listed"
    );
    let lines: Vec<String> =
        serde_json::from_value(w.ok("host_get_ssi_info", json!([]), json!({})).await).unwrap();
    assert_eq!(lines.len(), 6 + 2 * 6, "{lines:?}");
    assert_eq!(lines[0], "ssi_name = DROVER");
    assert_eq!(lines[1], "ssi_mode = Stable");
    assert!(lines[2].starts_with("ssi_pdr = LOCALS_on_"), "{lines:?}");
    assert_eq!(lines[4], "output.ssiInfoCount = 2");
    assert_eq!(
        lines[6..12],
        [
            "member_slot = 1",
            "member_system_id = AAA-HOST",
            "member_state = Down",
            "member_pdr_heartbeat = 11/23/2026_10:01:02",
            "member_received_heartbeat = 11/23/2026_10:01:02",
            "",
        ]
    );
    assert_eq!(lines[13], "member_system_id = SIM-HOST");
    assert_eq!(lines[14], "member_state = Joined");
}

#[tokio::test]
async fn volumes_attach_and_detach_through_reserved_fcp_devices() {
    let w = world().await;
    let id = template(
        &w,
        "paths",
        json!({"fcp_devices": "1a00-1a01;1b00-1b01", "host_default": true}),
    )
    .await;
    w.guest("USER1", 1, 512).await;
    w.ok("guest_start", json!(["USER1"]), json!({})).await;
    let vdi = w.volume("4020400100000000").await;

    let conn = w
        .ok("get_volume_connector", json!(["user1", true]), json!({}))
        .await;
    assert_eq!(conn["zvm_fcp"], json!(["1a00", "1b00"]));
    assert_eq!(conn["host"], "SIM-HOST_USER1");
    assert_eq!(conn["fcp_paths"], 2);
    assert_eq!(conn["fcp_template_id"], json!(id));
    let wwpns: Vec<String> = serde_json::from_value(conn["wwpns"].clone()).unwrap();
    assert_eq!(wwpns.len(), 2);
    assert!(wwpns
        .iter()
        .all(|w| w.len() == 16 && w.starts_with("c05076")));
    let initiators = conn["phy_to_virt_initiators"].as_object().unwrap();
    assert!(wwpns.iter().all(|w| initiators.contains_key(w)));
    assert_eq!(
        w.ok("get_fcp_usage", json!(["1A00"]), json!({})).await,
        json!(["USER1", 1, 0, id])
    );
    assert_eq!(
        w.ok(
            "get_volume_connector",
            json!(["USER1", true, id]),
            json!({})
        )
        .await["zvm_fcp"],
        json!(["1a00", "1b00"]),
        "a guest keeps the devices it holds"
    );

    let info = connection("user1", &["1a00", "1b00"], "0x50050763050b073d", LUN);
    assert_eq!(
        w.ok("volume_attach", json!([info]), json!({})).await,
        Json::Null
    );
    let vbds = w.vbds_of("USER1", &vdi);
    assert_eq!(vbds.len(), 1);
    assert!(
        vbds[0].bool("currently_attached"),
        "plugged into the running guest"
    );
    assert_eq!(vbds[0].str("type"), "Disk");
    assert_eq!(
        other(&vbds[0], "zvm_volume").as_deref(),
        Some("4020400100000000")
    );
    assert_eq!(other(&vbds[0], "zvm_fcp").as_deref(), Some("1a00,1b00"));
    assert_eq!(
        other(&vbds[0], "zvm_mount_point").as_deref(),
        Some("/dev/sdz")
    );
    let vdi_obj = w.engine.get("VDI", &vdi).unwrap();
    assert_eq!(
        other(&vdi_obj, "zvm_volume").as_deref(),
        Some("4020400100000000")
    );
    assert_eq!(
        w.ok("get_fcp_usage", json!(["1b00"]), json!({})).await,
        json!(["USER1", 1, 1, id])
    );
    let user1 = w
        .ok(
            "get_fcp_templates",
            json!([]),
            json!({"assigner_id": "USER1"}),
        )
        .await;
    assert_eq!(template_names(&user1), ["paths"]);

    assert_eq!(
        w.fails("volume_attach", json!([info]), json!({})).await,
        (300, json!(30), 300, 3)
    );
    assert_eq!(
        w.fails("delete_fcp_template", json!([id]), json!({})).await,
        (409, json!(30), 409, 22)
    );

    assert_eq!(
        w.ok("volume_detach", json!([info]), json!({})).await,
        Json::Null
    );
    assert!(w.vbds_of("USER1", &vdi).is_empty());
    assert!(
        w.engine.get("VDI", &vdi).is_ok(),
        "the volume outlives its attachment"
    );
    assert_eq!(
        w.ok("get_fcp_usage", json!(["1a00"]), json!({})).await,
        json!(["USER1", 1, 0, id])
    );
    assert_eq!(
        w.fails("volume_detach", json!([info]), json!({})).await,
        (300, json!(30), 300, 4)
    );

    let released = w
        .ok(
            "get_volume_connector",
            json!(["USER1", false, id]),
            json!({}),
        )
        .await;
    assert_eq!(released["zvm_fcp"], json!(["1a00", "1b00"]));
    assert_eq!(
        w.ok("get_fcp_usage", json!(["1a00"]), json!({})).await,
        json!(["USER1", 0, 0, ""])
    );
    let user1 = w
        .ok(
            "get_fcp_templates",
            json!([]),
            json!({"assigner_id": "USER1"}),
        )
        .await;
    assert!(template_names(&user1).is_empty());
    let empty = w
        .ok(
            "get_volume_connector",
            json!(["USER1", false, id]),
            json!({}),
        )
        .await;
    assert_eq!(
        empty,
        json!({"zvm_fcp": [], "wwpns": [], "host": "", "phy_to_virt_initiators": {},
               "fcp_paths": 0, "fcp_template_id": id})
    );

    assert_eq!(
        w.ok("delete_fcp_template", json!([id]), json!({})).await,
        Json::Null
    );
    assert_eq!(
        w.fails("get_fcp_usage", json!(["1a00"]), json!({})).await,
        (404, json!(30), 404, 1),
        "devices no template names are forgotten"
    );
}

#[tokio::test]
async fn deleting_a_guest_keeps_its_volumes() {
    let w = world().await;
    template(
        &w,
        "t",
        json!({"fcp_devices": "1a00", "host_default": true}),
    )
    .await;
    w.guest("USER1", 1, 512).await;
    let vdi = w.volume("1").await;
    w.ok("get_volume_connector", json!(["USER1", true]), json!({}))
        .await;
    let info = connection("USER1", &["1a00"], "500507680b21ac1d", "0x0000000000000001");
    w.ok("volume_attach", json!([info]), json!({})).await;
    let vbds = w.vbds_of("USER1", &vdi);
    assert_eq!(vbds.len(), 1);
    assert!(
        !vbds[0].bool("currently_attached"),
        "a halted guest gets it at start"
    );
    w.ok("guest_delete", json!(["USER1"]), json!({})).await;
    assert!(w.engine.get("VDI", &vdi).is_ok());
    // Detaching from a guest that is gone only gives the connection back.
    w.ok("volume_detach", json!([info]), json!({})).await;
    assert_eq!(
        w.ok("get_fcp_usage", json!(["1a00"]), json!({})).await[2],
        json!(0)
    );
}

#[tokio::test]
async fn attach_refuses_what_does_not_fit() {
    let w = world().await;
    template(
        &w,
        "t",
        json!({"fcp_devices": "1a00-1a01;1b00-1b01", "host_default": true}),
    )
    .await;
    w.guest("USER1", 1, 512).await;
    let vdi = w.volume(LUN).await;
    let target = "0x500507680b21ac1d";
    let info = connection("USER1", &["1a00", "1b00"], target, LUN);

    // The devices must be reserved for the guest.
    assert_eq!(
        w.fails("volume_attach", json!([info]), json!({})).await,
        (404, json!(30), 404, 1)
    );
    w.ok("get_volume_connector", json!(["USER1", true]), json!({}))
        .await;
    let user9 = w
        .ok(
            "get_volume_connector",
            json!(["USER9"]),
            json!({"reserve": true}),
        )
        .await;
    assert_eq!(user9["zvm_fcp"], json!(["1a01", "1b01"]));
    let err = w
        .call(
            "volume_attach",
            json!([connection("USER9", &["1a01"], target, LUN)]),
            json!({}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.codes(), (404, json!(30), 404, 1));
    assert_eq!(err.message(), "Guest 'USER9' does not exist.");
    assert_eq!(
        w.fails(
            "volume_attach",
            json!([connection("USER1", &["1a00", "1b00"], target, "0x99")]),
            json!({})
        )
        .await,
        (300, json!(30), 300, 8),
        "no volume has that LUN"
    );

    // The SR answers only on its own ports.
    let sr = w.default_sr().r.to_string();
    w.op(Op::MapAdd {
        class: "SR".into(),
        r: sr,
        field: "other_config".into(),
        key: Value::str("zvm_wwpn"),
        value: Value::str("500507680b21ac1d, 0x500507680b22ac1d"),
    })
    .await;
    assert_eq!(
        w.fails(
            "volume_attach",
            json!([connection(
                "USER1",
                &["1a00", "1b00"],
                "0x50050763050b073d",
                LUN
            )]),
            json!({})
        )
        .await,
        (300, json!(30), 300, 8)
    );
    w.ok("volume_attach", json!([info]), json!({})).await;
    let vbds = w.vbds_of("USER1", &vdi);
    assert_eq!(
        other(&vbds[0], "zvm_wwpn").as_deref(),
        Some("500507680b21ac1d")
    );

    assert_eq!(
        w.fails("volume_attach", json!(["not a dict"]), json!({}))
            .await,
        (100, json!(400), 100, 2)
    );
    let mut missing = info.clone();
    missing.as_object_mut().unwrap().remove("target_lun");
    assert_eq!(
        w.fails("volume_attach", json!([missing]), json!({})).await,
        (100, json!(400), 100, 3)
    );
    assert_eq!(
        w.fails("volume_attach", json!([]), json!({})).await,
        (100, json!(400), 100, 1)
    );
    assert_eq!(
        w.fails(
            "get_volume_connector",
            json!(["USER1", true, "nope"]),
            json!({})
        )
        .await,
        (300, json!(30), 300, 11)
    );
    assert_eq!(
        w.fails("get_volume_connector", json!(["USER1", false]), json!({}))
            .await,
        (300, json!(30), 300, 11),
        "releasing needs the template"
    );
}

#[tokio::test]
async fn fcp_templates_are_created_listed_edited_and_deleted() {
    let w = world().await;
    let t1 = template(
        &w,
        "t1",
        json!({"description": "d", "fcp_devices": "1a00-1a03;1b00-1b03",
               "default_sp_list": ["sp1"], "min_fcp_paths_count": 1}),
    )
    .await;
    let answer = w
        .ok(
            "create_fcp_template",
            json!(["t2"]),
            json!({"fcp_devices": "1c00", "host_default": true, "default_sp_list": ["sp1", "sp2"]}),
        )
        .await;
    let t2 = answer["fcp_template"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        answer,
        json!({"fcp_template": {"name": "t2", "id": t2, "description": "",
               "host_default": true, "storage_providers": ["sp1", "sp2"],
               "min_fcp_paths_count": 1}})
    );
    assert_eq!(
        w.fails(
            "create_fcp_template",
            json!(["t3"]),
            json!({"fcp_devices": "1d00;1e00", "min_fcp_paths_count": 3})
        )
        .await,
        (409, json!(30), 409, 23)
    );
    assert_eq!(
        w.fails(
            "create_fcp_template",
            json!(["t3"]),
            json!({"fcp_devices": "1d00-"})
        )
        .await,
        (100, json!(400), 100, 3)
    );

    let all = w.ok("get_fcp_templates", json!([]), json!({})).await;
    assert_eq!(template_names(&all), ["t1", "t2"]);
    assert_eq!(
        all["fcp_templates"][0],
        json!({"id": t1, "name": "t1", "description": "d", "host_default": false,
               "storage_providers": [], "min_fcp_paths_count": 1}),
        "sp1's default moved to t2"
    );
    let by_id = w.ok("get_fcp_templates", json!([[t2]]), json!({})).await;
    assert_eq!(template_names(&by_id), ["t2"]);
    let by_text = w
        .ok("get_fcp_templates", json!([format!("['{t1}']")]), json!({}))
        .await;
    assert_eq!(template_names(&by_text), ["t1"]);
    assert_eq!(
        w.fails("get_fcp_templates", json!([["nope"]]), json!({}))
            .await,
        (404, json!(400), 404, 1)
    );
    let host_default = w
        .ok(
            "get_fcp_templates",
            json!([]),
            json!({"host_default": "true"}),
        )
        .await;
    assert_eq!(template_names(&host_default), ["t2"]);
    let others = w
        .ok(
            "get_fcp_templates",
            json!([]),
            json!({"host_default": false}),
        )
        .await;
    assert_eq!(template_names(&others), ["t1"]);
    for sps in [json!(["sp2"]), json!(["all"])] {
        let got = w
            .ok(
                "get_fcp_templates",
                json!([]),
                json!({"default_sp_list": sps}),
            )
            .await;
        assert_eq!(template_names(&got), ["t2"]);
    }

    let edited = w
        .ok(
            "edit_fcp_template",
            json!([t1]),
            json!({"name": "t1b", "host_default": true, "fcp_devices": "1a00-1a01;1b00;1d00"}),
        )
        .await;
    assert_eq!(edited["fcp_template"]["name"], "t1b");
    assert_eq!(edited["fcp_template"]["min_fcp_paths_count"], 1);
    let host_default = w
        .ok(
            "get_fcp_templates",
            json!([]),
            json!({"host_default": true}),
        )
        .await;
    assert_eq!(template_names(&host_default), ["t1b"], "one host default");
    assert_eq!(
        w.fails(
            "edit_fcp_template",
            json!([t1]),
            json!({"min_fcp_paths_count": 4})
        )
        .await,
        (409, json!(30), 409, 23)
    );
    assert_eq!(
        w.fails("edit_fcp_template", json!(["nope"]), json!({"name": "x"}))
            .await,
        (404, json!(400), 404, 1)
    );
    assert_eq!(
        w.fails("get_fcp_usage", json!(["1a03"]), json!({})).await,
        (404, json!(30), 404, 1),
        "a device the edit dropped is forgotten"
    );

    w.ok(
        "get_volume_connector",
        json!(["USER1", true, t1]),
        json!({}),
    )
    .await;
    assert_eq!(
        w.fails(
            "edit_fcp_template",
            json!([t1]),
            json!({"fcp_devices": "1a00-1a01;1b00"})
        )
        .await,
        (409, json!(30), 409, 24),
        "paths cannot change while devices are allocated"
    );
    assert_eq!(
        w.fails(
            "edit_fcp_template",
            json!([t1]),
            json!({"fcp_devices": "1a01;1b00;1d00"})
        )
        .await,
        (409, json!(30), 409, 24),
        "an allocated device cannot leave"
    );

    let details = w
        .ok(
            "get_fcp_templates_details",
            json!([[t1]]),
            json!({"raw": true}),
        )
        .await;
    let t = &details["fcp_templates"][0];
    assert_eq!(t["name"], "t1b");
    let (_, uuid) = w.engine.read(|db| {
        let h = db.all("host").next().unwrap();
        (h.r.to_string(), h.uuid().to_string())
    });
    let machine: String = uuid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(4)
        .collect();
    assert_eq!(
        t["raw"]["0"][0],
        json!([
            "1a00",
            t1,
            "USER1",
            0,
            1,
            format!("c05076{machine}011a00"),
            format!("c05076{machine}001a00"),
            "1A",
            "free",
            "none",
            t1
        ])
    );
    assert_eq!(
        t["statistics"]["0"],
        json!({"total": "1A00 - 1A01", "total_count": 2, "single_fcp": "",
               "range_fcp": "1A00 - 1A01", "available": "1A01", "available_count": 1,
               "allocated": "", "reserve_only": "1A00", "connection_only": "",
               "unallocated_but_active": {}, "allocated_but_free": "", "notfound": "",
               "offline": "", "CHPIDs": {"1A": "1A00 - 1A01"}})
    );
    assert_eq!(t["statistics"]["2"]["single_fcp"], "1D00");
    let plain = w
        .ok("get_fcp_templates_details", json!([]), json!({}))
        .await;
    let list = plain["fcp_templates"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list
        .iter()
        .all(|t| t.get("raw").is_none() && t.get("statistics").is_some()));

    w.ok(
        "set_fcp_usage",
        json!(["1A01", "user2", 1, 2, t1]),
        json!({}),
    )
    .await;
    assert_eq!(
        w.ok("get_fcp_usage", json!(["1a01"]), json!({})).await,
        json!(["USER2", 1, 2, t1])
    );
    assert_eq!(
        w.fails(
            "set_fcp_usage",
            json!(["1a01", "USER2", -1, 0, ""]),
            json!({})
        )
        .await,
        (100, json!(400), 100, 3)
    );
    assert_eq!(
        w.fails(
            "set_fcp_usage",
            json!(["5d71", "USER2", 0, 0, ""]),
            json!({})
        )
        .await,
        (404, json!(30), 404, 1)
    );

    assert_eq!(
        w.ok("delete_fcp_template", json!([t2]), json!({})).await,
        Json::Null
    );
    assert_eq!(
        w.fails("get_fcp_usage", json!(["1c00"]), json!({})).await,
        (404, json!(30), 404, 1)
    );
    assert_eq!(
        w.fails("delete_fcp_template", json!([t2]), json!({})).await,
        (404, json!(400), 404, 1)
    );
    assert_eq!(
        template_names(&w.ok("get_fcp_templates", json!([]), json!({})).await),
        ["t1b"]
    );
}

#[tokio::test]
async fn refresh_bootmap_answers_the_paths_to_a_volume() {
    let w = world().await;
    let id = template(&w, "boot", json!({"fcp_devices": "1a00;1b00"})).await;
    w.volume("0").await;
    let paths = w
        .ok(
            "volume_refresh_bootmap",
            json!([
                ["1A00", "1b00"],
                ["5005076802100C1A"],
                "0000000000000000",
                "",
                "",
                [],
                null
            ]),
            json!({}),
        )
        .await;
    assert_eq!(
        paths,
        json!({"1a00": ["5005076802100c1a"], "1b00": ["5005076802100c1a"]})
    );
    let with_template = w
        .ok(
            "volume_refresh_bootmap",
            json!([["1a00", "1b00"], ["5005076802100c1a"], "0"]),
            json!({"fcp_template_id": id}),
        )
        .await;
    assert_eq!(with_template, paths);

    let refused = [
        (json!([["1a00"], ["5005076802100c1a"], "1"]), json!({}), 5),
        (json!([["5d71"], ["5005076802100c1a"], "0"]), json!({}), 5),
        (
            json!([["1a00"], ["5005076802100c1a"], "0"]),
            json!({"fcp_template_id": id}),
            5,
        ),
        (
            json!([["1a00"], ["5005076802100c1a"], "0"]),
            json!({"guest_networks": [{"ip_addr": "192.168.95.10"}]}),
            10,
        ),
    ];
    for (args, kwargs, rs) in refused {
        assert_eq!(
            w.fails("volume_refresh_bootmap", args.clone(), kwargs)
                .await,
            (300, json!(30), 300, rs),
            "{args}"
        );
    }
    assert_eq!(
        w.fails(
            "volume_refresh_bootmap",
            json!([["1a00"], ["5005076802100c1a"], "0"]),
            json!({"fcp_template_id": "nope"})
        )
        .await,
        (404, json!(400), 404, 1)
    );
    assert_eq!(
        w.fails(
            "volume_refresh_bootmap",
            json!([[], ["5005076802100c1a"], "0"]),
            json!({})
        )
        .await,
        (100, json!(400), 100, 3)
    );
}
