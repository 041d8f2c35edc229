//! A pool of simulated hosts: joining and ejecting hosts, shared storage, live migration,
//! evacuation, and HA with fencing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use drover_core::{
    Caller, CoreError, Engine, EngineConfig, HostAction, HostConnector, Op, PowerAction,
    PowerManager, PowerState, Reply, SrAction, SrSpec, VmAction,
};
use drover_host::sim::{SimConfig, SimHost};
use drover_host::{HostDriver, HostError};
use drover_model::Value;

/// Simulated hosts by name; each one's enrolment secret is `secret-NAME`.
#[derive(Default)]
struct Fleet {
    hosts: Mutex<HashMap<String, Arc<SimHost>>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fleet")
    }
}

impl Fleet {
    fn host(&self, name: &str) -> Arc<SimHost> {
        self.hosts
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(SimHost::new(SimConfig {
                    hostname: name.into(),
                    memory: 8 << 30,
                    ..SimConfig::default()
                }))
            })
            .clone()
    }
}

#[async_trait]
impl HostConnector for Fleet {
    async fn enrol(
        &self,
        address: &str,
        secret: &str,
        name: &str,
    ) -> Result<Arc<dyn HostDriver>, HostError> {
        if secret != format!("secret-{address}") {
            return Err(HostError::Failed("the enrolment secret is wrong".into()));
        }
        self.connect(address, name).await
    }

    async fn connect(&self, address: &str, _name: &str) -> Result<Arc<dyn HostDriver>, HostError> {
        Ok(self.host(address))
    }
}

/// Power management of the simulated hosts: `off` makes a host stop answering; with
/// `broken`, every action fails.
#[derive(Debug, Default)]
struct Power {
    fleet: Arc<Fleet>,
    off: Mutex<Vec<String>>,
    broken: Mutex<bool>,
}

#[async_trait]
impl PowerManager for Power {
    async fn run(
        &self,
        _kind: &str,
        options: &BTreeMap<String, String>,
        action: PowerAction,
    ) -> Result<PowerState, String> {
        if *self.broken.lock().unwrap() {
            return Err("the power switch does not answer".into());
        }
        let plug = options.get("plug").cloned().unwrap_or_default();
        let name = ["b", "c", "d"].into_iter().find(|n| addr(n) == plug);
        assert_eq!(
            options.get("password"),
            name.map(|n| format!("pw-{n}")).as_ref(),
            "the agent gets the password from its secret"
        );
        let mut off = self.off.lock().unwrap();
        Ok(match action {
            PowerAction::Off => {
                self.fleet.host(&plug).set_unresponsive(true);
                off.push(plug);
                PowerState::Off
            }
            PowerAction::On => {
                off.retain(|p| *p != plug);
                self.fleet.host(&plug).set_unresponsive(false);
                PowerState::On
            }
            PowerAction::Status if off.contains(&plug) => PowerState::Off,
            PowerAction::Status => PowerState::On,
        })
    }
}

struct Pool {
    engine: Arc<Engine>,
    caller: Caller,
    fleet: Arc<Fleet>,
    power: Arc<Power>,
    _dir: tempfile::TempDir,
}

impl Pool {
    async fn new() -> Pool {
        let fleet = Arc::new(Fleet::default());
        let power = Arc::new(Power {
            fleet: fleet.clone(),
            ..Power::default()
        });
        Pool::open(tempfile::tempdir().unwrap(), fleet, power).await
    }

    /// The engine on `dir` (again, after a restart) with this fleet and power switch.
    async fn open(dir: tempfile::TempDir, fleet: Arc<Fleet>, power: Arc<Power>) -> Pool {
        let config = EngineConfig {
            data_dir: dir.path().to_path_buf(),
            admin_password: Some("secret".into()),
            connector: Some(fleet.clone()),
            power_manager: Some(power.clone()),
            balance_period: Duration::from_millis(500),
            ..EngineConfig::default()
        };
        let engine = Engine::open(config, fleet.host("master")).await.unwrap();
        let session = engine.login("root", "secret", "test").await.unwrap();
        let caller = engine.authenticate(&session).unwrap();
        Pool {
            engine,
            caller,
            fleet,
            power,
            _dir: dir,
        }
    }

    async fn call(&self, op: Op) -> Result<Reply, CoreError> {
        self.engine.call(&self.caller, op).await
    }

    /// A host operation.
    async fn host_op(&self, host: &str, action: HostAction) -> Result<Reply, CoreError> {
        self.call(Op::Host {
            host: host.into(),
            action,
        })
        .await
    }

    async fn join(&self, name: &str) -> String {
        let reply = self
            .call(Op::PoolJoin {
                address: addr(name),
                secret: format!("secret-{}", addr(name)),
            })
            .await
            .unwrap();
        r(reply)
    }

    fn vm_field(&self, vm: &str, field: &str) -> String {
        self.engine.get("VM", vm).unwrap().str(field).to_string()
    }

    /// A VM with one disk on `sr` (none without), its memory `mib`.
    async fn vm(&self, name: &str, sr: Option<&str>, mib: i64) -> String {
        let template = self.engine.read(|db| {
            db.all("VM")
                .find(|v| v.str("name_label") == "Other install media")
                .unwrap()
                .r
                .to_string()
        });
        let vm = r(self
            .call(Op::Vm {
                vm: template,
                action: VmAction::Clone { name: name.into() },
            })
            .await
            .unwrap());
        self.call(Op::MapRemove {
            class: "VM".into(),
            r: vm.clone(),
            field: "other_config".into(),
            key: Value::str("disks"),
        })
        .await
        .unwrap();
        if let Some(sr) = sr {
            self.call(Op::MapAdd {
                class: "VM".into(),
                r: vm.clone(),
                field: "other_config".into(),
                key: Value::str("disks"),
                value: Value::str(format!(
                    r#"<provision><disk device="0" size="1073741824" sr="{}" bootable="true" type="system"/></provision>"#,
                    self.engine.get("SR", sr).unwrap().uuid()
                )),
            })
            .await
            .unwrap();
        }
        self.call(Op::Vm {
            vm: vm.clone(),
            action: VmAction::Provision,
        })
        .await
        .unwrap();
        self.call(Op::SetField {
            class: "VM".into(),
            r: vm.clone(),
            field: "is_a_template".into(),
            value: Value::Bool(false),
        })
        .await
        .unwrap();
        self.call(Op::Vm {
            vm: vm.clone(),
            action: VmAction::SetMemoryLimits {
                static_min: mib << 20,
                static_max: mib << 20,
                dynamic_min: mib << 20,
                dynamic_max: mib << 20,
            },
        })
        .await
        .unwrap();
        vm
    }

    async fn shared_sr(&self, dir: &std::path::Path) -> String {
        let master = self.engine.this_host().to_string();
        r(self
            .call(Op::Sr {
                sr: String::new(),
                action: SrAction::Create {
                    host: master,
                    device_config: vec![("path".into(), dir.display().to_string())],
                    spec: SrSpec {
                        name_label: "shared".into(),
                        kind: "shared".into(),
                        shared: true,
                        ..SrSpec::default()
                    },
                },
            })
            .await
            .unwrap())
    }

    async fn set_pm(&self, host: &str, name: &str) {
        self.call(Op::Host {
            host: host.into(),
            action: HostAction::SetPowerOnMode {
                mode: "sim".into(),
                config: vec![
                    ("plug".into(), addr(name)),
                    ("password".into(), format!("pw-{name}")),
                ],
            },
        })
        .await
        .unwrap();
        let config = self
            .engine
            .get("host", host)
            .unwrap()
            .get("power_on_config")
            .clone();
        assert!(
            config.map_get("password").is_none(),
            "no password in the record"
        );
        assert!(config.map_get("password_secret").is_some());
    }

    /// Sets the pool's scheduling policy and its parameters.
    async fn policy(&self, name: &str, params: &[(&str, &str)]) {
        let pool = self
            .engine
            .read(|db| db.all("pool").next().unwrap().r.to_string());
        let mut config = vec![(drover_core::POLICY_KEY.to_string(), name.to_string())];
        config.extend(
            params
                .iter()
                .map(|(k, v)| (format!("scheduling_policy:{k}"), v.to_string())),
        );
        self.call(Op::SetField {
            class: "pool".into(),
            r: pool,
            field: "other_config".into(),
            value: Value::string_map(config),
        })
        .await
        .unwrap();
    }

    fn running_on(&self, host: &str) -> usize {
        self.engine.read(|db| {
            db.all("VM")
                .filter(|v| v.str("resident_on") == host && v.str("power_state") == "Running")
                .count()
        })
    }

    /// Waits until `check` holds, for at most `secs` seconds.
    async fn until(&self, secs: u64, what: &str, check: impl Fn(&Pool) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !check(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The address of simulated host `name` (b, c or d).
fn addr(name: &str) -> String {
    let n = match name {
        "b" => 2,
        "c" => 3,
        _ => 4,
    };
    format!("127.0.0.{n}:8443")
}

fn r(reply: Reply) -> String {
    match reply {
        Reply::Ref(r) => r.to_string(),
        other => panic!("expected a ref, got {other:?}"),
    }
}

fn start(vm: &str, host: Option<&str>) -> Op {
    Op::Vm {
        vm: vm.into(),
        action: match host {
            Some(h) => VmAction::StartOn {
                host: h.into(),
                paused: false,
                force: false,
            },
            None => VmAction::Start {
                paused: false,
                force: false,
            },
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_join_with_their_secret_and_share_storage_and_networks() {
    let pool = Pool::new().await;
    let refused = pool
        .call(Op::PoolJoin {
            address: addr("b"),
            secret: "wrong".into(),
        })
        .await;
    assert!(
        matches!(refused, Err(CoreError::JoiningHostConnectionFailed(_))),
        "{refused:?}"
    );
    let b = pool.join("b").await;
    let again = pool
        .call(Op::PoolJoin {
            address: addr("b"),
            secret: format!("secret-{}", addr("b")),
        })
        .await;
    assert!(
        matches!(again, Err(CoreError::InvalidValue { .. })),
        "{again:?}"
    );
    let c = pool.join("c").await;
    let hosts = pool.engine.read(|db| db.all("host").count());
    assert_eq!(hosts, 3);
    // Each host has its local SR; its interfaces join the pool-wide networks.
    for host in [&b, &c] {
        let locals = pool.engine.read(|db| {
            db.all("PBD")
                .filter(|p| p.str("host") == host.as_str())
                .filter(|p| db.get("SR", p.str("SR")).unwrap().str("type") == "local")
                .count()
        });
        assert_eq!(locals, 1);
        assert!(pool.engine.host_connected(host));
    }
    let networks = pool.engine.read(|db| {
        db.all("PIF")
            .map(|p| p.str("network").to_string())
            .collect::<std::collections::BTreeSet<_>>()
    });
    let devices = pool.engine.read(|db| {
        db.all("PIF")
            .filter(|p| p.str("host") == pool.engine.this_host().as_ref())
            .count()
    });
    assert_eq!(networks.len(), devices, "one network per device, pool-wide");
    // A shared SR gets a plugged PBD on every host, and a host joining later gets one too.
    let dir = tempfile::tempdir().unwrap();
    let sr = pool.shared_sr(dir.path()).await;
    let pbds = pool.engine.get("SR", &sr).unwrap().refs("PBDs").len();
    assert_eq!(pbds, 3);
    pool.join("d").await;
    let pbds = pool.engine.get("SR", &sr).unwrap().refs("PBDs").len();
    assert_eq!(pbds, 4);
    // Ejecting a host forgets it and its local storage.
    pool.host_op(&c, HostAction::Eject).await.unwrap();
    assert!(pool.engine.get("host", &c).is_err());
    assert_eq!(pool.engine.get("SR", &sr).unwrap().refs("PBDs").len(), 3);
    let master = pool.engine.this_host().to_string();
    let own = pool.host_op(&master, HostAction::Eject).await;
    assert!(
        matches!(own, Err(CoreError::OperationNotAllowed(_))),
        "{own:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_migration_moves_a_guest_and_evacuation_empties_a_host() {
    let pool = Pool::new().await;
    let b = pool.join("b").await;
    let c = pool.join("c").await;
    let dir = tempfile::tempdir().unwrap();
    let shared = pool.shared_sr(dir.path()).await;
    let vm = pool.vm("web", Some(&shared), 512).await;
    pool.call(start(&vm, Some(&b))).await.unwrap();
    assert_eq!(pool.vm_field(&vm, "resident_on"), b);
    let uuid = pool.engine.get("VM", &vm).unwrap().uuid().to_string();
    pool.call(Op::Vm {
        vm: vm.clone(),
        action: VmAction::PoolMigrate {
            host: Some(c.clone()),
        },
    })
    .await
    .unwrap();
    assert_eq!(pool.vm_field(&vm, "resident_on"), c);
    assert_eq!(pool.vm_field(&vm, "power_state"), "Running");
    let on_c = pool.fleet.host(&addr("c")).guests().await;
    let on_b = pool.fleet.host(&addr("b")).guests().await;
    assert!(
        on_c.iter().any(|(u, _)| *u == uuid) && !on_b.iter().any(|(u, _)| *u == uuid),
        "the guest runs on c only"
    );
    // Its local disk cannot go with it: a VM on b's local SR cannot move.
    let local = pool.engine.read(|db| {
        db.all("PBD")
            .find(|p| {
                p.str("host") == b && db.get("SR", p.str("SR")).unwrap().str("type") == "local"
            })
            .unwrap()
            .str("SR")
            .to_string()
    });
    let pinned = pool.vm("db", Some(&local), 256).await;
    pool.call(start(&pinned, Some(&b))).await.unwrap();
    let moved = pool
        .call(Op::Vm {
            vm: pinned.clone(),
            action: VmAction::PoolMigrate {
                host: Some(c.clone()),
            },
        })
        .await;
    assert!(
        matches!(moved, Err(CoreError::VmRequiresSr { .. })),
        "{moved:?}"
    );
    assert_eq!(pool.vm_field(&pinned, "resident_on"), b);
    // Evacuating c moves its guest off; b cannot be emptied while "db" holds to its disk.
    pool.host_op(&c, HostAction::Disable).await.unwrap();
    pool.host_op(&c, HostAction::Evacuate).await.unwrap();
    assert_ne!(pool.vm_field(&vm, "resident_on"), c);
    let stuck = pool.host_op(&b, HostAction::Evacuate).await;
    assert!(
        matches!(stuck, Err(CoreError::CannotEvacuateHost(_))),
        "{stuck:?}"
    );
    assert!(
        pool.engine
            .audit_log(None, None)
            .iter()
            .any(|e| e.message.contains("cannot enter maintenance")),
        "an event says why the host cannot enter maintenance"
    );
    // A disabled host takes no new guests.
    let refused = pool.call(start(&pinned, Some(&c))).await;
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_host_is_fenced_before_its_ha_guests_restart_elsewhere() {
    let pool = Pool::new().await;
    let b = pool.join("b").await;
    let c = pool.join("c").await;
    pool.set_pm(&b, "b").await;
    pool.set_pm(&c, "c").await;
    let ha = pool.vm("ha", None, 256).await;
    let plain = pool.vm("plain", None, 256).await;
    pool.call(Op::SetField {
        class: "VM".into(),
        r: ha.clone(),
        field: "ha_restart_priority".into(),
        value: Value::str("restart"),
    })
    .await
    .unwrap();
    pool.call(start(&ha, Some(&b))).await.unwrap();
    pool.call(start(&plain, Some(&b))).await.unwrap();
    pool.fleet.host(&addr("b")).set_unresponsive(true);
    pool.until(20, "HA guest restarted", |p| {
        p.vm_field(&ha, "power_state") == "Running" && p.vm_field(&ha, "resident_on") != b
    })
    .await;
    assert!(
        pool.power.off.lock().unwrap().contains(&addr("b")),
        "b was fenced"
    );
    assert_eq!(pool.vm_field(&plain, "power_state"), "Halted");
    let state = pool.engine.get("host", &b).unwrap();
    assert_eq!(state.other("drover_state"), Some("down"));
    // Switched on again, the host answers and is taken back.
    pool.host_op(&b, HostAction::PowerOn).await.unwrap();
    pool.until(20, "b up again", |p| {
        p.engine
            .get("host", &b)
            .unwrap()
            .other("drover_state")
            .is_none()
            && p.engine.host_connected(&b)
    })
    .await;

    // When fencing cannot be confirmed, nothing is restarted.
    *pool.power.broken.lock().unwrap() = true;
    let host_of_ha = pool.vm_field(&ha, "resident_on");
    assert_eq!(host_of_ha, c);
    pool.fleet.host(&addr("c")).set_unresponsive(true);
    pool.until(20, "c non-responsive", |p| {
        p.engine.get("host", &c).unwrap().other("drover_state") == Some("non_responsive")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        pool.vm_field(&ha, "resident_on"),
        c,
        "never two copies of a VM"
    );
    assert_eq!(pool.vm_field(&ha, "power_state"), "Running");
    // An administrator who switched c off by hand says so; its HA guest then restarts.
    pool.host_op(&c, HostAction::ConfirmFenced).await.unwrap();
    pool.until(20, "HA guest restarted after the confirmation", |p| {
        p.vm_field(&ha, "power_state") == "Running" && p.vm_field(&ha, "resident_on") != c
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_migration_copies_local_disks_to_the_target() {
    let pool = Pool::new().await;
    let b = pool.join("b").await;
    let c = pool.join("c").await;
    let local_of = |host: &str| {
        pool.engine.read(|db| {
            db.all("PBD")
                .find(|p| {
                    p.str("host") == host
                        && db.get("SR", p.str("SR")).unwrap().str("type") == "local"
                })
                .unwrap()
                .str("SR")
                .to_string()
        })
    };
    let vm = pool.vm("cold", Some(&local_of(&b)), 256).await;
    let disk = |pool: &Pool| {
        pool.engine.read(|db| {
            let vm = db.get("VM", &vm).unwrap();
            let vbd = vm
                .refs("VBDs")
                .into_iter()
                .find_map(|v| db.get("VBD", &v).filter(|v| !v.bool("empty")).cloned())
                .unwrap();
            db.get("VDI", vbd.str("VDI")).unwrap().clone()
        })
    };
    let before = disk(&pool);
    pool.call(Op::Vm {
        vm: vm.clone(),
        action: VmAction::PoolMigrate {
            host: Some(c.clone()),
        },
    })
    .await
    .unwrap();
    let after = disk(&pool);
    assert_eq!(
        after.str("SR"),
        local_of(&c),
        "the disk was copied to c's storage"
    );
    assert_eq!(after.int("virtual_size"), before.int("virtual_size"));
    assert!(
        pool.engine.get("VDI", &before.r).is_err(),
        "the original is gone"
    );
    assert_eq!(pool.vm_field(&vm, "affinity"), c);
    pool.call(start(&vm, None)).await.unwrap();
    assert_eq!(
        pool.vm_field(&vm, "resident_on"),
        c,
        "it starts where its disk is"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancing_spreads_guests_and_the_power_saver_switches_idle_hosts() {
    let pool = Pool::new().await;
    let b = pool.join("b").await;
    let c = pool.join("c").await;
    let master = pool.engine.this_host().to_string();
    pool.host_op(&master, HostAction::Disable).await.unwrap();
    let mut vms = Vec::new();
    for i in 0..4 {
        let vm = pool.vm(&format!("g{i}"), None, 256).await;
        pool.call(start(&vm, Some(&b))).await.unwrap();
        vms.push(vm);
    }
    assert_eq!(pool.running_on(&b), 4);
    pool.policy(
        "vm_evenly_distributed",
        &[("HighVmCount", "3"), ("MigrationThreshold", "2")],
    )
    .await;
    pool.until(20, "guests spread to c", |p| {
        p.running_on(&b) == 2 && p.running_on(&c) == 2
    })
    .await;

    // The power saver drains c onto b and switches the empty host off.
    pool.set_pm(&b, "b").await;
    pool.set_pm(&c, "c").await;
    pool.policy(
        "power_saving",
        &[
            ("EnableAutomaticHostPowerManagement", "true"),
            ("HostsInReserve", "0"),
            ("LowUtilization", "20"),
        ],
    )
    .await;
    pool.until(30, "an idle host switched off", |p| {
        [&b, &c]
            .iter()
            .any(|h| p.engine.get("host", h).unwrap().other("drover_state") == Some("powered_off"))
    })
    .await;
    let off = if pool.engine.get("host", &b).unwrap().other("drover_state") == Some("powered_off") {
        b.clone()
    } else {
        c.clone()
    };
    assert_eq!(pool.running_on(&off), 0, "only an empty host goes off");
    assert_eq!(
        vms.iter()
            .filter(|v| pool.vm_field(v, "power_state") == "Running")
            .count(),
        4
    );
    // Wanting a host in reserve switches it on again; it answers and is up.
    pool.policy(
        "power_saving",
        &[
            ("EnableAutomaticHostPowerManagement", "true"),
            ("HostsInReserve", "1"),
            ("LowUtilization", "0"),
        ],
    )
    .await;
    pool.until(30, "the host switched on again", |p| {
        p.engine
            .get("host", &off)
            .unwrap()
            .other("drover_state")
            .is_none()
            && p.engine.host_connected(&off)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_management_passwords_are_secrets_that_survive_a_restart() {
    let pool = Pool::new().await;
    let b = pool.join("b").await;
    pool.set_pm(&b, "b").await;
    let Pool {
        engine,
        fleet,
        power,
        _dir: dir,
        ..
    } = pool;
    drop(engine);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pool = Pool::open(dir, fleet, power).await;
    // The power switch checks that it gets b's password, read back from the store.
    let state = pool.host_op(&b, HostAction::PowerStatus).await.unwrap();
    assert!(
        matches!(state, Reply::Value(ref v) if v.as_str() == Some("on")),
        "{state:?}"
    );
}
