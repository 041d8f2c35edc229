//! The engine through its one entry path, on a simulated host and a real SQLite store.

use std::sync::Arc;

use drover_core::{
    Caller, CoreError, Engine, EngineConfig, HostAction, Op, PbdAction, Reply, SrAction, SrSpec,
    VbdAction, VdiAction, VmAction,
};
use drover_host::sim::{SimConfig, SimHost};
use drover_host::{ByteSource, HostDriver, ImageFormat};
use drover_model::Value;

async fn open(dir: &std::path::Path) -> Arc<Engine> {
    open_with_host(dir).await.0
}

async fn open_with_host(dir: &std::path::Path) -> (Arc<Engine>, Arc<SimHost>) {
    let host = Arc::new(SimHost::new(SimConfig {
        state_file: Some(dir.join("sim.json")),
        ..SimConfig::default()
    }));
    let config = EngineConfig {
        data_dir: dir.to_path_buf(),
        admin_password: Some("secret".into()),
        console_base: "http://drover.test:8080/".into(),
        tiny_guest: None,
        ..EngineConfig::default()
    };
    (Engine::open(config, host.clone()).await.unwrap(), host)
}

fn r(reply: Reply) -> String {
    match reply {
        Reply::Ref(r) => r.to_string(),
        other => panic!("expected a ref, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_survives_a_restart_and_keeps_bound_fields() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    assert!(matches!(
        engine.login("admin", "wrong", "").await,
        Err(CoreError::AuthenticationFailed)
    ));
    let session = engine.login("root", "secret", "test").await.unwrap();
    let caller = engine.authenticate(&session).unwrap();
    let template = engine.read(|db| {
        db.all("VM")
            .find(|v| v.str("name_label") == "Other install media")
            .unwrap()
            .r
            .clone()
    });
    let vm = r(engine
        .call(
            &caller,
            Op::Vm {
                vm: template.to_string(),
                action: VmAction::Clone { name: "a".into() },
            },
        )
        .await
        .unwrap());
    engine
        .call(
            &caller,
            Op::Vm {
                vm: vm.clone(),
                action: VmAction::Provision,
            },
        )
        .await
        .unwrap();
    engine
        .call(
            &caller,
            Op::SetField {
                class: "VM".into(),
                r: vm.clone(),
                field: "is_a_template".into(),
                value: Value::Bool(false),
            },
        )
        .await
        .unwrap();
    engine
        .call(
            &caller,
            Op::Vm {
                vm: vm.clone(),
                action: VmAction::Start {
                    paused: false,
                    force: false,
                },
            },
        )
        .await
        .unwrap();
    let err = engine
        .call(
            &caller,
            Op::Vm {
                vm: vm.clone(),
                action: VmAction::Start {
                    paused: false,
                    force: false,
                },
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoreError::VmBadPowerState { ref expected, ref actual, .. } if expected == "halted" && actual == "running")
    );
    let host = engine.this_host();
    assert!(engine
        .get("host", &host)
        .unwrap()
        .refs("resident_VMs")
        .iter()
        .any(|x| **x == *vm));
    let vbd = engine.get("VM", &vm).unwrap().refs("VBDs")[0].clone();
    let vdi = engine.get("VBD", &vbd).unwrap().str("VDI").to_string();
    assert!(matches!(
        engine
            .call(
                &caller,
                Op::Destroy {
                    class: "VDI".into(),
                    r: vdi.clone()
                }
            )
            .await,
        Err(CoreError::VdiInUse { .. })
    ));
    engine
        .call(
            &caller,
            Op::Vm {
                vm: vm.clone(),
                action: VmAction::HardShutdown,
            },
        )
        .await
        .unwrap();
    drop(caller);
    drop(engine);

    let engine = open(dir.path()).await;
    assert!(
        engine.authenticate(&session).is_err(),
        "sessions end with the process"
    );
    let obj = engine.get("VM", &vm).unwrap();
    assert_eq!(obj.str("power_state"), "Halted");
    assert_eq!(obj.refs("VBDs"), vec![vbd.clone()]);
    assert_eq!(engine.get("VDI", &vdi).unwrap().refs("VBDs"), vec![vbd]);
    let caller = engine
        .authenticate(&engine.login("admin", "secret", "").await.unwrap())
        .unwrap();
    engine
        .call(
            &caller,
            Op::Vm {
                vm: vm.clone(),
                action: VmAction::Start {
                    paused: true,
                    force: false,
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(engine.get("VM", &vm).unwrap().str("power_state"), "Paused");
}

async fn admin(engine: &Engine) -> Caller {
    let session = engine.login("admin", "secret", "test").await.unwrap();
    engine.authenticate(&session).unwrap()
}

async fn call(engine: &Arc<Engine>, caller: &Caller, op: Op) -> Result<Reply, CoreError> {
    engine.call(caller, op).await
}

async fn vm_op(engine: &Arc<Engine>, caller: &Caller, vm: &str, action: VmAction) {
    let vm = vm.to_string();
    call(engine, caller, Op::Vm { vm, action }).await.unwrap();
}

const START: VmAction = VmAction::Start {
    paused: false,
    force: false,
};

/// A halted VM with one provisioned disk, from the install template.
async fn new_vm(engine: &Arc<Engine>, caller: &Caller, name: &str) -> String {
    let template = engine.read(|db| {
        db.all("VM")
            .find(|v| v.str("name_label") == "Other install media")
            .unwrap()
            .r
            .to_string()
    });
    let vm = r(call(
        engine,
        caller,
        Op::Vm {
            vm: template,
            action: VmAction::Clone { name: name.into() },
        },
    )
    .await
    .unwrap());
    vm_op(engine, caller, &vm, VmAction::Provision).await;
    call(
        engine,
        caller,
        Op::SetField {
            class: "VM".into(),
            r: vm.clone(),
            field: "is_a_template".into(),
            value: Value::Bool(false),
        },
    )
    .await
    .unwrap();
    vm
}

fn disk_of(engine: &Engine, vm: &str) -> String {
    let vbd = engine.get("VM", vm).unwrap().refs("VBDs")[0].clone();
    engine.get("VBD", &vbd).unwrap().str("VDI").to_string()
}

async fn new_vbd(
    engine: &Arc<Engine>,
    caller: &Caller,
    vm: &str,
    vdi: &str,
    device: &str,
    mode: &str,
    kind: &str,
) -> String {
    let empty = vdi == drover_model::NULL_REF;
    r(call(
        engine,
        caller,
        Op::Create {
            class: "VBD".into(),
            fields: vec![
                ("VM".into(), Value::str(vm)),
                ("VDI".into(), Value::str(vdi)),
                ("userdevice".into(), Value::str(device)),
                ("mode".into(), Value::str(mode)),
                ("type".into(), Value::str(kind)),
                ("empty".into(), Value::Bool(empty)),
                ("bootable".into(), Value::Bool(false)),
            ],
        },
    )
    .await
    .unwrap())
}

async fn new_disk(engine: &Arc<Engine>, caller: &Caller, sr: &str, size: i64) -> String {
    r(call(
        engine,
        caller,
        Op::Create {
            class: "VDI".into(),
            fields: vec![
                ("SR".into(), Value::str(sr)),
                ("virtual_size".into(), Value::Int(size)),
                ("name_label".into(), Value::str("extra")),
                ("type".into(), Value::str("user")),
            ],
        },
    )
    .await
    .unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vdis_are_named_by_their_image_location() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let caller = admin(&engine).await;
    let vm = new_vm(&engine, &caller, "located").await;
    let vdi = engine.get("VDI", &disk_of(&engine, &vm)).unwrap();
    assert!(!vdi.str("location").is_empty());
    assert_eq!(
        vdi.str("location"),
        vdi.uuid(),
        "the sim names images after their VDI"
    );
    assert!(vdi.bool("managed"));
    let clone = r(call(
        &engine,
        &caller,
        Op::Vdi {
            vdi: vdi.r.to_string(),
            action: VdiAction::Clone,
        },
    )
    .await
    .unwrap());
    let clone = engine.get("VDI", &clone).unwrap();
    assert_eq!(clone.str("location"), clone.uuid());
    assert_ne!(clone.str("location"), vdi.str("location"));
    // The guest gets its disk by SR and location.
    vm_op(&engine, &caller, &vm, START).await;
    vm_op(&engine, &caller, &vm, VmAction::Suspend).await;
    let suspend = engine
        .get("VM", &vm)
        .unwrap()
        .str("suspend_VDI")
        .to_string();
    let image = engine.get("VDI", &suspend).unwrap();
    assert_eq!(image.str("type"), "suspend");
    assert_eq!(image.str("location"), image.uuid());
    vm_op(
        &engine,
        &caller,
        &vm,
        VmAction::Resume {
            paused: false,
            force: false,
        },
    )
    .await;
    assert!(
        engine.get("VDI", &suspend).is_err(),
        "resume drops the image"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_never_has_two_writers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let caller = admin(&engine).await;
    let a = new_vm(&engine, &caller, "a").await;
    let b = new_vm(&engine, &caller, "b").await;
    let disk = disk_of(&engine, &a);
    let shared = new_vbd(&engine, &caller, &b, &disk, "1", "RW", "Disk").await;
    vm_op(&engine, &caller, &a, START).await;
    let vbd_a = engine.get("VM", &a).unwrap().refs("VBDs")[0].clone();
    assert!(engine
        .get("VBD", &vbd_a)
        .unwrap()
        .bool("currently_attached"));
    let err = call(
        &engine,
        &caller,
        Op::Vm {
            vm: b.clone(),
            action: START,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, CoreError::VdiInUse { ref vdi, ref op } if *vdi == disk && op == "start"),
        "{err:?}"
    );
    let b_obj = engine.get("VM", &b).unwrap();
    assert_eq!(b_obj.str("power_state"), "Halted");
    assert!(
        b_obj
            .refs("VBDs")
            .iter()
            .all(|v| !engine.get("VBD", v).unwrap().bool("currently_attached")),
        "a refused start leaves no disk claimed"
    );
    // Read-only, the disk can be shared; started without it, b cannot plug it writable.
    call(
        &engine,
        &caller,
        Op::SetField {
            class: "VBD".into(),
            r: shared.clone(),
            field: "mode".into(),
            value: Value::str("RO"),
        },
    )
    .await
    .unwrap();
    vm_op(&engine, &caller, &b, START).await;
    vm_op(&engine, &caller, &b, VmAction::HardShutdown).await;
    call(
        &engine,
        &caller,
        Op::Destroy {
            class: "VBD".into(),
            r: shared,
        },
    )
    .await
    .unwrap();
    vm_op(&engine, &caller, &b, START).await;
    let late = new_vbd(&engine, &caller, &b, &disk, "2", "RW", "Disk").await;
    assert!(
        !engine.get("VBD", &late).unwrap().bool("currently_attached"),
        "VBD.create does not plug"
    );
    let err = call(
        &engine,
        &caller,
        Op::Vbd {
            vbd: late.clone(),
            action: VbdAction::Plug,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CoreError::VdiInUse { .. }), "{err:?}");
    // Once a halts, b may plug it, and unplug it again.
    vm_op(&engine, &caller, &a, VmAction::HardShutdown).await;
    assert!(!engine
        .get("VBD", &vbd_a)
        .unwrap()
        .bool("currently_attached"));
    for (action, attached) in [(VbdAction::Plug, true), (VbdAction::Unplug, false)] {
        call(
            &engine,
            &caller,
            Op::Vbd {
                vbd: late.clone(),
                action,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            engine.get("VBD", &late).unwrap().bool("currently_attached"),
            attached
        );
    }
    let err = call(
        &engine,
        &caller,
        Op::Vbd {
            vbd: late,
            action: VbdAction::Unplug,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, CoreError::DeviceAlreadyDetached(_)),
        "{err:?}"
    );
    // Nor twice in one VM.
    let c = new_vm(&engine, &caller, "c").await;
    let own = disk_of(&engine, &c);
    new_vbd(&engine, &caller, &c, &own, "1", "RW", "Disk").await;
    let err = call(
        &engine,
        &caller,
        Op::Vm {
            vm: c,
            action: START,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, CoreError::VdiInUse { ref vdi, .. } if *vdi == own),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_vms_have_consoles() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let caller = admin(&engine).await;
    let vm = new_vm(&engine, &caller, "consoles").await;
    assert!(engine.get("VM", &vm).unwrap().refs("consoles").is_empty());
    vm_op(&engine, &caller, &vm, START).await;
    let consoles = engine.get("VM", &vm).unwrap().refs("consoles");
    let mut protocols: Vec<String> = consoles
        .iter()
        .map(|c| {
            let c = engine.get("console", c).unwrap();
            assert_eq!(
                c.str("location"),
                format!("http://drover.test:8080/console?ref={}", c.r)
            );
            assert_eq!(c.str("VM"), vm);
            c.str("protocol").to_string()
        })
        .collect();
    protocols.sort();
    assert_eq!(protocols, ["rfb", "vt100"]);
    let vt100 = consoles
        .iter()
        .find(|c| engine.get("console", c).unwrap().str("protocol") == "vt100")
        .unwrap()
        .to_string();
    let rfb = consoles
        .iter()
        .find(|c| ***c != *vt100)
        .unwrap()
        .to_string();
    let err = engine.console_log(&caller, &vt100).await.unwrap_err();
    assert!(
        matches!(err, CoreError::OperationNotAllowed(ref m) if m.contains("simulated")),
        "{err:?}"
    );
    let err = engine.console_log(&caller, &rfb).await.unwrap_err();
    assert!(matches!(err, CoreError::OperationNotAllowed(_)), "{err:?}");
    assert!(matches!(
        engine.console_open(&caller, &rfb).await,
        Err(CoreError::OperationNotAllowed(_))
    ));
    assert!(matches!(
        engine.console_log(&caller, "OpaqueRef:nope").await,
        Err(CoreError::HandleInvalid { .. })
    ));
    vm_op(&engine, &caller, &vm, VmAction::Suspend).await;
    assert!(engine.get("VM", &vm).unwrap().refs("consoles").is_empty());
    assert!(engine.get("console", &vt100).is_err());
    vm_op(
        &engine,
        &caller,
        &vm,
        VmAction::Resume {
            paused: true,
            force: false,
        },
    )
    .await;
    assert_eq!(engine.get("VM", &vm).unwrap().refs("consoles").len(), 2);
    vm_op(&engine, &caller, &vm, VmAction::HardShutdown).await;
    let halted = engine.get("VM", &vm).unwrap();
    assert!(halted.refs("consoles").is_empty());
    assert_eq!(halted.str("guest_metrics"), drover_model::NULL_REF);
    assert!(engine.read(|db| db.all("console").next().is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cd_media_changes_on_a_running_vm() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let caller = admin(&engine).await;
    let vm = new_vm(&engine, &caller, "cd").await;
    let sr = engine
        .get("VDI", &disk_of(&engine, &vm))
        .unwrap()
        .str("SR")
        .to_string();
    let iso = new_disk(&engine, &caller, &sr, 1 << 20).await;
    let cd = new_vbd(
        &engine,
        &caller,
        &vm,
        drover_model::NULL_REF,
        "3",
        "RO",
        "CD",
    )
    .await;
    vm_op(&engine, &caller, &vm, START).await;
    let insert = |vdi: &str| Op::Vbd {
        vbd: cd.clone(),
        action: VbdAction::Insert { vdi: vdi.into() },
    };
    call(&engine, &caller, insert(&iso)).await.unwrap();
    assert_eq!(engine.get("VBD", &cd).unwrap().str("VDI"), iso);
    assert!(matches!(
        call(&engine, &caller, insert(&iso)).await,
        Err(CoreError::VbdNotEmpty(_))
    ));
    let eject = || Op::Vbd {
        vbd: cd.clone(),
        action: VbdAction::Eject,
    };
    call(&engine, &caller, eject()).await.unwrap();
    assert!(engine.get("VBD", &cd).unwrap().bool("empty"));
    assert!(matches!(
        call(&engine, &caller, eject()).await,
        Err(CoreError::VbdIsEmpty(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_fill_a_disk_that_no_running_vm_uses() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let caller = admin(&engine).await;
    let vm = new_vm(&engine, &caller, "import").await;
    let disk = disk_of(&engine, &vm);
    let thin = r(call(
        &engine,
        &caller,
        Op::Vdi {
            vdi: disk.clone(),
            action: VdiAction::Clone,
        },
    )
    .await
    .unwrap());
    let data = |n: usize| -> ByteSource { Box::new(std::io::Cursor::new(vec![7u8; n])) };
    engine
        .import_vdi(&caller, &thin, "raw", data(3 << 20))
        .await
        .unwrap();
    assert_eq!(
        engine
            .get("VDI", &thin)
            .unwrap()
            .int("physical_utilisation"),
        3 << 20
    );
    let err = engine
        .import_vdi(&caller, &thin, "qcow2", data(1))
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::ImportFailed(_)), "{err:?}");
    let err = engine
        .import_vdi(&caller, &disk, "vhd", data(1))
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::InvalidValue { .. }), "{err:?}");
    vm_op(&engine, &caller, &vm, START).await;
    let err = engine
        .import_vdi(&caller, &disk, "raw", data(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoreError::VdiInUse { ref op, .. } if op == "import"),
        "{err:?}"
    );
}

fn sr_create(path: &str, kind: &str) -> Op {
    Op::Sr {
        sr: String::new(),
        action: SrAction::Create {
            host: String::new(),
            device_config: vec![("path".into(), path.into())],
            spec: SrSpec {
                name_label: format!("{kind} SR"),
                kind: kind.into(),
                ..SrSpec::default()
            },
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srs_are_created_scanned_and_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let caller = admin(&engine).await;
    let host = engine.this_host().to_string();
    let with_host = |op: Op| match op {
        Op::Sr {
            sr,
            action:
                SrAction::Create {
                    device_config,
                    spec,
                    ..
                },
        } => Op::Sr {
            sr,
            action: SrAction::Create {
                host: host.clone(),
                device_config,
                spec,
            },
        },
        other => other,
    };
    let types = call(
        &engine,
        &caller,
        Op::Sr {
            sr: String::new(),
            action: SrAction::GetSupportedTypes,
        },
    )
    .await
    .unwrap();
    assert!(matches!(types, Reply::Value(Value::Set(ref t)) if t.contains(&Value::str("shared"))));
    let err = call(&engine, &caller, with_host(sr_create("/nowhere", "nfs")))
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::SrUnknownDriver(_)), "{err:?}");
    let path = dir.path().join("extra-sr");
    let sr = r(call(
        &engine,
        &caller,
        with_host(sr_create(path.to_str().unwrap(), "local")),
    )
    .await
    .unwrap());
    let rec = engine.get("SR", &sr).unwrap();
    assert_eq!(
        (rec.str("type"), rec.str("content_type")),
        ("local", "user")
    );
    assert!(rec.int("physical_size") > 0);
    let pbd = engine.get("PBD", &rec.refs("PBDs")[0]).unwrap();
    assert!(pbd.bool("currently_attached"));
    assert_eq!(
        pbd.get("device_config")
            .map_get("path")
            .and_then(|v| v.as_str()),
        path.to_str()
    );
    let vdi = new_disk(&engine, &caller, &sr, 1 << 20).await;
    assert_eq!(engine.get("VDI", &vdi).unwrap().str("SR"), sr);
    // A scan keeps what it finds and forgets what is gone.
    let scan = || Op::Sr {
        sr: sr.clone(),
        action: SrAction::Scan,
    };
    call(&engine, &caller, scan()).await.unwrap();
    assert_eq!(
        engine.get("SR", &sr).unwrap().refs("VDIs"),
        vec![vdi.clone().into()]
    );
    assert!(matches!(
        call(
            &engine,
            &caller,
            Op::Destroy {
                class: "SR".into(),
                r: sr.clone()
            }
        )
        .await,
        Err(CoreError::SrNotEmpty)
    ));
    call(
        &engine,
        &caller,
        Op::Destroy {
            class: "VDI".into(),
            r: vdi,
        },
    )
    .await
    .unwrap();
    call(
        &engine,
        &caller,
        Op::Destroy {
            class: "SR".into(),
            r: sr.clone(),
        },
    )
    .await
    .unwrap();
    assert!(engine.get("SR", &sr).is_err());
    assert!(engine.get("PBD", &pbd.r).is_err());
    // An ISO library: unplugged, its VDIs cannot be made; forgotten, its records go.
    let iso = r(call(&engine, &caller, with_host(sr_create("/isos", "iso")))
        .await
        .unwrap());
    assert_eq!(engine.get("SR", &iso).unwrap().str("content_type"), "iso");
    let iso_pbd = engine.get("SR", &iso).unwrap().refs("PBDs")[0].to_string();
    call(
        &engine,
        &caller,
        Op::Pbd {
            pbd: iso_pbd.clone(),
            action: PbdAction::Unplug,
        },
    )
    .await
    .unwrap();
    assert!(!engine
        .get("PBD", &iso_pbd)
        .unwrap()
        .bool("currently_attached"));
    let err = call(
        &engine,
        &caller,
        Op::Create {
            class: "VDI".into(),
            fields: vec![
                ("SR".into(), Value::str(&iso)),
                ("virtual_size".into(), Value::Int(1)),
            ],
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CoreError::SrNotAttached(_)), "{err:?}");
    call(
        &engine,
        &caller,
        Op::Pbd {
            pbd: iso_pbd.clone(),
            action: PbdAction::Plug,
        },
    )
    .await
    .unwrap();
    call(
        &engine,
        &caller,
        Op::Sr {
            sr: iso.clone(),
            action: SrAction::Forget,
        },
    )
    .await
    .unwrap();
    assert!(engine.get("SR", &iso).is_err() && engine.get("PBD", &iso_pbd).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_halts_vms_whose_guest_is_gone_and_drops_their_consoles() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let caller = admin(&engine).await;
    let vm = new_vm(&engine, &caller, "gone").await;
    vm_op(&engine, &caller, &vm, START).await;
    assert_eq!(engine.get("VM", &vm).unwrap().refs("consoles").len(), 2);
    drop(caller);
    drop(engine);
    let engine = open(dir.path()).await;
    let obj = engine.get("VM", &vm).unwrap();
    assert_eq!(obj.str("power_state"), "Halted");
    assert!(obj.refs("consoles").is_empty());
    assert!(engine.read(|db| db.all("SM").any(|sm| sm.str("type") == "shared")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_reconciles_vdis_with_the_images_found() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, host) = open_with_host(dir.path()).await;
    let caller = admin(&engine).await;
    let vm = new_vm(&engine, &caller, "scanned").await;
    let used = disk_of(&engine, &vm);
    let sr = engine.get("VDI", &used).unwrap().str("SR").to_string();
    let spare = new_disk(&engine, &caller, &sr, 1 << 20).await;
    let other = new_vm(&engine, &caller, "holder").await;
    let cd = new_vbd(&engine, &caller, &other, &spare, "3", "RO", "CD").await;
    host.image_create(&sr, "by-hand.img", 2 << 20, ImageFormat::Raw)
        .await
        .unwrap();
    vm_op(&engine, &caller, &vm, START).await;
    for vdi in [&used, &spare] {
        let location = engine.get("VDI", vdi).unwrap().str("location").to_string();
        host.image_destroy(&sr, &location).await.unwrap();
    }
    call(
        &engine,
        &caller,
        Op::Sr {
            sr: sr.clone(),
            action: SrAction::Scan,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let found = engine.read(|db| {
        db.all("VDI")
            .find(|v| v.str("location") == "by-hand.img")
            .cloned()
            .unwrap()
    });
    assert_eq!(
        (
            found.str("name_label"),
            found.int("virtual_size"),
            found.str("SR")
        ),
        ("by-hand.img", 2 << 20, sr.as_str())
    );
    assert!(!found.bool("read_only"));
    assert!(
        engine.get("VDI", &used).unwrap().bool("missing"),
        "a running VM's disk stays, marked missing"
    );
    assert!(
        engine.get("VDI", &spare).is_err(),
        "an unused VDI goes with its image"
    );
    let cd = engine.get("VBD", &cd).unwrap();
    assert!(cd.bool("empty"), "CD drives that held it are empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_host_takes_no_new_guests() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let caller = admin(&engine).await;
    let vm = new_vm(&engine, &caller, "maint").await;
    let host = engine.this_host().to_string();
    let host_op = |action: HostAction| Op::Host {
        host: host.clone(),
        action,
    };
    call(&engine, &caller, host_op(HostAction::Disable))
        .await
        .unwrap();
    assert!(!engine.get("host", &host).unwrap().bool("enabled"));
    let refused = call(
        &engine,
        &caller,
        Op::Vm {
            vm: vm.clone(),
            action: START,
        },
    )
    .await;
    assert!(matches!(refused, Err(CoreError::HostDisabled(_))));
    assert_eq!(engine.get("VM", &vm).unwrap().str("power_state"), "Halted");
    call(&engine, &caller, host_op(HostAction::Enable))
        .await
        .unwrap();
    vm_op(&engine, &caller, &vm, START).await;
    assert_eq!(engine.get("VM", &vm).unwrap().str("power_state"), "Running");
    let log = engine.audit_log(None, None);
    assert!(log.iter().any(|e| e.message.contains("maintenance")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reverted_disk_keeps_its_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let caller = admin(&engine).await;
    let vm = new_vm(&engine, &caller, "rev").await;
    let before = disk_of(&engine, &vm);
    let uuid = engine.get("VDI", &before).unwrap().uuid().to_string();
    let snap = r(call(
        &engine,
        &caller,
        Op::Vm {
            vm: vm.clone(),
            action: VmAction::Snapshot { name: "s".into() },
        },
    )
    .await
    .unwrap());
    vm_op(&engine, &caller, &snap, VmAction::Revert).await;
    let after = disk_of(&engine, &vm);
    assert_ne!(after, before, "the VM's disk is a new image");
    assert!(engine.get("VDI", &before).is_err());
    assert_eq!(engine.get("VDI", &after).unwrap().uuid(), uuid);
    let by_uuid = engine.read(|db| db.table("VDI").and_then(|t| t.by_uuid(&uuid)).cloned());
    assert_eq!(by_uuid.as_deref(), Some(after.as_str()));
    drop(engine);
    let engine = open(dir.path()).await;
    let by_uuid = engine.read(|db| db.table("VDI").and_then(|t| t.by_uuid(&uuid)).cloned());
    assert_eq!(by_uuid.as_deref(), Some(after.as_str()));
}
