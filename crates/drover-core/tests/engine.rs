//! The engine through its one entry path, on a simulated host and a real SQLite store.

use std::sync::Arc;

use drover_core::{CoreError, Engine, EngineConfig, Op, Reply, VmAction};
use drover_host::sim::{SimConfig, SimHost};
use drover_model::Value;

async fn open(dir: &std::path::Path) -> Arc<Engine> {
    let host = Arc::new(SimHost::new(SimConfig {
        state_file: Some(dir.join("sim.json")),
        ..SimConfig::default()
    }));
    let config = EngineConfig {
        data_dir: dir.to_path_buf(),
        admin_password: Some("secret".into()),
    };
    Engine::open(config, host).await.unwrap()
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
