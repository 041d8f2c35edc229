//! Removing a VM with its disks, NICs and snapshots (`VmAction::Remove`).

use std::sync::Arc;

use drover_core::{Caller, CoreError, Engine, EngineConfig, Op, Reply, SrAction, SrSpec, VmAction};
use drover_host::sim::{SimConfig, SimHost};
use drover_host::HostDriver;
use drover_model::{Value, NULL_REF};

struct Lab {
    engine: Arc<Engine>,
    host: Arc<SimHost>,
    caller: Caller,
    dir: tempfile::TempDir,
}

async fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(SimHost::new(SimConfig {
        state_file: Some(dir.path().join("sim.json")),
        ..SimConfig::default()
    }));
    let config = EngineConfig {
        data_dir: dir.path().to_path_buf(),
        admin_password: Some("secret".into()),
        ..EngineConfig::default()
    };
    let engine = Engine::open(config, host.clone()).await.unwrap();
    let session = engine.login("admin", "secret", "test").await.unwrap();
    let caller = engine.authenticate(&session).unwrap();
    Lab {
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

impl Lab {
    async fn call(&self, op: Op) -> Result<Reply, CoreError> {
        self.engine.call(&self.caller, op).await
    }

    async fn vm(&self, vm: &str, action: VmAction) -> Result<Reply, CoreError> {
        self.call(Op::Vm {
            vm: vm.into(),
            action,
        })
        .await
    }

    /// A halted VM with one provisioned disk and a NIC on the first network.
    async fn new_vm(&self, name: &str) -> String {
        let template = self.engine.read(|db| {
            db.all("VM")
                .find(|v| v.str("name_label") == "Other install media")
                .unwrap()
                .r
                .to_string()
        });
        let clone = VmAction::Clone { name: name.into() };
        let vm = r(self.vm(&template, clone).await.unwrap());
        self.vm(&vm, VmAction::Provision).await.unwrap();
        self.set("VM", &vm, "is_a_template", Value::Bool(false))
            .await;
        let network = self
            .engine
            .read(|db| db.all("network").next().unwrap().r.to_string());
        self.create(
            "VIF",
            vec![
                ("VM", Value::str(&vm)),
                ("network", Value::str(network)),
                ("device", Value::str("0")),
            ],
        )
        .await;
        vm
    }

    async fn set(&self, class: &str, r: &str, field: &str, value: Value) {
        self.call(Op::SetField {
            class: class.into(),
            r: r.into(),
            field: field.into(),
            value,
        })
        .await
        .unwrap();
    }

    async fn create(&self, class: &str, fields: Vec<(&str, Value)>) -> String {
        r(self
            .call(Op::Create {
                class: class.into(),
                fields: fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            })
            .await
            .unwrap())
    }

    async fn new_disk(&self, sr: &str) -> String {
        self.create(
            "VDI",
            vec![
                ("SR", Value::str(sr)),
                ("virtual_size", Value::Int(1 << 20)),
                ("name_label", Value::str("extra")),
                ("type", Value::str("user")),
            ],
        )
        .await
    }

    async fn attach(&self, vm: &str, vdi: &str, device: &str, kind: &str) -> String {
        self.create(
            "VBD",
            vec![
                ("VM", Value::str(vm)),
                ("VDI", Value::str(vdi)),
                ("userdevice", Value::str(device)),
                ("mode", Value::str(if kind == "CD" { "RO" } else { "RW" })),
                ("type", Value::str(kind)),
                ("empty", Value::Bool(false)),
            ],
        )
        .await
    }

    fn disk_of(&self, vm: &str) -> String {
        let vbd = self.engine.get("VM", vm).unwrap().refs("VBDs")[0].clone();
        self.engine.get("VBD", &vbd).unwrap().str("VDI").to_string()
    }

    fn default_sr(&self) -> String {
        self.engine
            .read(|db| db.all("pool").next().unwrap().str("default_SR").to_string())
    }

    fn exists(&self, class: &str, r: &str) -> bool {
        self.engine.get(class, r).is_ok()
    }

    /// Whether the host still has the VDI's image (looked up by its record's SR and location).
    async fn has_image(&self, sr: &str, location: &str) -> bool {
        self.host.image_info(sr, location).await.is_ok()
    }

    fn image(&self, vdi: &str) -> (String, String) {
        let o = self.engine.get("VDI", vdi).unwrap();
        (o.str("SR").to_string(), o.str("location").to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_goes_with_its_disks_nics_and_snapshots() {
    let lab = lab().await;
    let vm = lab.new_vm("web").await;
    let other = lab.new_vm("db").await;
    let sr = lab.default_sr();
    let root = lab.disk_of(&vm);
    let root_image = lab.image(&root);
    let vbds = lab.engine.get("VM", &vm).unwrap().refs("VBDs");
    let vifs = lab.engine.get("VM", &vm).unwrap().refs("VIFs");
    assert_eq!(vifs.len(), 1);
    let metrics = lab
        .engine
        .get("VBD", &vbds[0])
        .unwrap()
        .str("metrics")
        .to_string();

    // A sharable disk, and a disk another VM has too, stay; a config drive goes.
    let shared = lab.new_disk(&sr).await;
    lab.set("VDI", &shared, "sharable", Value::Bool(true)).await;
    lab.attach(&vm, &shared, "1", "Disk").await;
    let common = lab.new_disk(&sr).await;
    lab.attach(&vm, &common, "2", "Disk").await;
    let kept_vbd = lab.attach(&other, &common, "1", "Disk").await;
    let drive = lab.new_disk(&sr).await;
    lab.set("VDI", &drive, "read_only", Value::Bool(true)).await;
    lab.attach(&vm, &drive, "3", "CD").await;

    let snap = r(lab
        .vm(&vm, VmAction::Snapshot { name: "s1".into() })
        .await
        .unwrap());
    let snap_disks: Vec<String> = lab
        .engine
        .get("VM", &snap)
        .unwrap()
        .refs("VBDs")
        .iter()
        .map(|b| lab.engine.get("VBD", b).unwrap().str("VDI").to_string())
        .filter(|v| v != NULL_REF)
        .collect();
    let snap_root = lab
        .engine
        .read(|db| {
            db.all("VDI")
                .find(|v| v.str("snapshot_of") == root)
                .map(|v| v.r.to_string())
        })
        .unwrap();
    assert!(snap_disks.contains(&snap_root));
    let snap_image = lab.image(&snap_root);

    lab.vm(&vm, VmAction::Remove { keep_disks: false })
        .await
        .unwrap();

    assert!(!lab.exists("VM", &vm));
    assert!(!lab.exists("VM", &snap));
    for vbd in &vbds {
        assert!(!lab.exists("VBD", vbd));
    }
    assert!(!lab.exists("VIF", &vifs[0]));
    assert!(!lab.exists("VDI", &root));
    assert!(!lab.exists("VDI", &snap_root));
    assert!(!lab.exists("VDI", &drive));
    assert!(!lab.has_image(&root_image.0, &root_image.1).await);
    assert!(!lab.has_image(&snap_image.0, &snap_image.1).await);
    assert!(lab.exists("VDI", &shared), "a sharable disk stays");
    assert!(lab
        .engine
        .get("VDI", &shared)
        .unwrap()
        .refs("VBDs")
        .is_empty());
    assert!(lab.exists("VDI", &common), "a disk another VM has stays");
    assert_eq!(
        lab.engine.get("VDI", &common).unwrap().refs("VBDs"),
        vec![kept_vbd.as_str().into()]
    );
    assert!(lab.exists("VM", &other));
    if metrics != NULL_REF {
        assert!(!lab.exists("VBD_metrics", &metrics));
    }
    let entry = lab.engine.audit_log(None, Some(1)).remove(0);
    assert_eq!(
        entry.code,
        drover_core::audit_codes::USER_REMOVE_VM_FINISHED
    );
    assert_eq!(entry.message, "VM web was removed with its disks by admin.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_disks_stay_and_snapshot_disks_go() {
    let lab = lab().await;
    let vm = lab.new_vm("keep").await;
    let root = lab.disk_of(&vm);
    let image = lab.image(&root);
    let snap = r(lab
        .vm(&vm, VmAction::Snapshot { name: "s".into() })
        .await
        .unwrap());
    let snap_root = lab.disk_of(&snap);
    lab.vm(&vm, VmAction::Remove { keep_disks: true })
        .await
        .unwrap();
    assert!(!lab.exists("VM", &vm));
    assert!(!lab.exists("VM", &snap));
    assert!(!lab.exists("VDI", &snap_root));
    assert!(lab.exists("VDI", &root));
    assert!(lab
        .engine
        .get("VDI", &root)
        .unwrap()
        .refs("VBDs")
        .is_empty());
    assert!(lab.has_image(&image.0, &image.1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso_images_stay() {
    let lab = lab().await;
    let vm = lab.new_vm("installer").await;
    let path = lab.dir.path().join("isos");
    let iso_sr = r(lab
        .call(Op::Sr {
            sr: String::new(),
            action: SrAction::Create {
                host: lab.engine.this_host().to_string(),
                device_config: vec![("path".into(), path.to_str().unwrap().into())],
                spec: SrSpec {
                    name_label: "ISOs".into(),
                    kind: "iso".into(),
                    ..SrSpec::default()
                },
            },
        })
        .await
        .unwrap());
    let iso = lab.new_disk(&iso_sr).await;
    lab.attach(&vm, &iso, "3", "CD").await;
    lab.vm(&vm, VmAction::Remove { keep_disks: false })
        .await
        .unwrap();
    assert!(!lab.exists("VM", &vm));
    assert!(lab.exists("VDI", &iso));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_vm_is_refused_and_kept_whole() {
    let lab = lab().await;
    let vm = lab.new_vm("busy").await;
    let root = lab.disk_of(&vm);
    let start = VmAction::Start {
        paused: false,
        force: false,
    };
    lab.vm(&vm, start).await.unwrap();
    let err = lab
        .vm(&vm, VmAction::Remove { keep_disks: false })
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoreError::VmBadPowerState { ref expected, ref actual, .. }
            if expected == "halted" && actual == "running"),
        "{err:?}"
    );
    let obj = lab.engine.get("VM", &vm).unwrap();
    assert_eq!(obj.refs("VBDs").len(), 1);
    assert_eq!(obj.refs("VIFs").len(), 1);
    assert!(lab.exists("VDI", &root));
    assert!(obj.get("current_operations").as_map().unwrap().is_empty());

    // Removal needs what VM.destroy needs.
    assert_eq!(
        Op::Vm {
            vm,
            action: VmAction::Remove { keep_disks: false }
        }
        .permission(),
        ("VM".to_string(), "destroy".to_string())
    );
}
