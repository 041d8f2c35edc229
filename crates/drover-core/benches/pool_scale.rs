//! A pool of 1,000 simulated hosts and 10,000 VMs through the engine's one entry path.
//!
//! Run: `cargo bench -p drover-core --bench pool_scale` (release profile). Prints the time to
//! join the hosts, to create the VMs, to start them all (each start is placed by the scheduler
//! over every host: engine-level placement decisions per second), and where they landed.
//! `POOL_HOSTS` and `POOL_VMS` change the sizes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use drover_core::{Engine, EngineConfig, HostConnector, Op, Reply, VmAction};
use drover_host::sim::{SimConfig, SimHost};
use drover_host::{HostDriver, HostError};
use drover_model::Value;

/// Simulated hosts by address; no secrets.
#[derive(Default)]
struct Fleet(Mutex<HashMap<String, Arc<SimHost>>>);

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fleet")
    }
}

impl Fleet {
    fn host(&self, name: &str) -> Arc<SimHost> {
        self.0
            .lock()
            .unwrap()
            .entry(name.into())
            .or_insert_with(|| {
                Arc::new(SimHost::new(SimConfig {
                    hostname: name.into(),
                    memory: 256 << 30,
                    ..SimConfig::default()
                }))
            })
            .clone()
    }
}

#[async_trait]
impl HostConnector for Fleet {
    async fn enrol(&self, a: &str, _: &str, n: &str) -> Result<Arc<dyn HostDriver>, HostError> {
        self.connect(a, n).await
    }
    async fn connect(&self, a: &str, _: &str) -> Result<Arc<dyn HostDriver>, HostError> {
        Ok(self.host(a))
    }
}

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let hosts = size("POOL_HOSTS", 1000);
    let vms = size("POOL_VMS", 10_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run(hosts, vms));
}

async fn run(hosts: usize, vms: usize) {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Arc::new(Fleet::default());
    let config = EngineConfig {
        data_dir: dir.path().to_path_buf(),
        admin_password: Some("bench".into()),
        connector: Some(fleet.clone()),
        ..EngineConfig::default()
    };
    let engine = Engine::open(config, fleet.host("master")).await.unwrap();
    let caller = engine
        .authenticate(&engine.login("admin", "bench", "bench").await.unwrap())
        .unwrap();

    let t = Instant::now();
    for i in 0..hosts {
        let address = format!("10.{}.{}.{}:8443", i / 65536, (i / 256) % 256, i % 256);
        engine
            .call(
                &caller,
                Op::PoolJoin {
                    address,
                    secret: String::new(),
                },
            )
            .await
            .unwrap();
    }
    let joined = t.elapsed();
    println!(
        "joined {hosts} hosts in {:.1} s ({:.0} hosts/s)",
        joined.as_secs_f64(),
        hosts as f64 / joined.as_secs_f64()
    );

    let template = engine.read(|db| {
        db.all("VM")
            .find(|v| v.str("name_label") == "Other install media")
            .unwrap()
            .r
            .to_string()
    });
    let t = Instant::now();
    let mut made = Vec::with_capacity(vms);
    for i in 0..vms {
        let Reply::Ref(vm) = engine
            .call(
                &caller,
                Op::Vm {
                    vm: template.clone(),
                    action: VmAction::Clone {
                        name: format!("vm-{i}"),
                    },
                },
            )
            .await
            .unwrap()
        else {
            panic!("clone answers a reference");
        };
        for (field, value) in [
            ("is_a_template", Value::Bool(false)),
            ("other_config", Value::empty_map()),
        ] {
            engine
                .call(
                    &caller,
                    Op::SetField {
                        class: "VM".into(),
                        r: vm.to_string(),
                        field: field.into(),
                        value,
                    },
                )
                .await
                .unwrap();
        }
        made.push(vm.to_string());
    }
    let created = t.elapsed();
    println!(
        "created {vms} VMs in {:.1} s ({:.0} VMs/s)",
        created.as_secs_f64(),
        vms as f64 / created.as_secs_f64()
    );

    let t = Instant::now();
    for vm in &made {
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
    }
    let started = t.elapsed();
    println!(
        "started {vms} VMs, each placed over {} hosts, in {:.1} s ({:.0} placed starts/s)",
        hosts + 1,
        started.as_secs_f64(),
        vms as f64 / started.as_secs_f64()
    );
    let spread: BTreeMap<usize, usize> = engine.read(|db| {
        let mut per_host: HashMap<&str, usize> = HashMap::new();
        for v in db.all("VM").filter(|v| v.str("power_state") == "Running") {
            *per_host.entry(v.str("resident_on")).or_default() += 1;
        }
        let mut spread = BTreeMap::new();
        for n in per_host.values() {
            *spread.entry(*n).or_default() += 1;
        }
        spread
    });
    println!("guests per host -> hosts: {spread:?}");
}
