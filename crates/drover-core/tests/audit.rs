//! The audit log: what the one entry path records, and how the log is kept.

use std::sync::Arc;

use drover_core::{
    audit_codes, AuditEntry, CallOpts, Caller, CoreError, Engine, EngineConfig, Op, Reply,
    Severity, TaskRender, VmAction,
};
use drover_host::sim::{SimConfig, SimHost};
use drover_model::Value;

async fn open(dir: &std::path::Path, retention: usize) -> Arc<Engine> {
    let host = Arc::new(SimHost::new(SimConfig {
        state_file: Some(dir.join("sim.json")),
        ..SimConfig::default()
    }));
    let config = EngineConfig {
        data_dir: dir.to_path_buf(),
        admin_password: Some("secret".into()),
        audit_retention: retention,
        ..EngineConfig::default()
    };
    Engine::open(config, host).await.unwrap()
}

async fn admin(engine: &Engine) -> Caller {
    let session = engine.login("admin", "secret", "test").await.unwrap();
    engine.authenticate(&session).unwrap()
}

fn vm_op(vm: &str, action: VmAction) -> Op {
    Op::Vm {
        vm: vm.into(),
        action,
    }
}

const START: VmAction = VmAction::Start {
    paused: false,
    force: false,
};

/// A halted VM named `name` with one disk, from the install template.
async fn new_vm(engine: &Arc<Engine>, caller: &Caller, name: &str) -> String {
    let template = engine.read(|db| {
        db.all("VM")
            .find(|v| v.str("name_label") == "Other install media")
            .unwrap()
            .r
            .to_string()
    });
    let clone = VmAction::Clone { name: name.into() };
    let Reply::Ref(vm) = engine.call(caller, vm_op(&template, clone)).await.unwrap() else {
        panic!("clone answers a reference");
    };
    engine
        .call(caller, vm_op(&vm, VmAction::Provision))
        .await
        .unwrap();
    let set = Op::SetField {
        class: "VM".into(),
        r: vm.to_string(),
        field: "is_a_template".into(),
        value: Value::Bool(false),
    };
    engine.call(caller, set).await.unwrap();
    vm.to_string()
}

fn newest(engine: &Engine) -> AuditEntry {
    engine.audit_log(None, Some(1)).remove(0)
}

fn uuid(engine: &Engine, class: &str, r: &str) -> String {
    engine.get(class, r).unwrap().uuid().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_recorded_and_reads_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), 1000).await;
    let caller = admin(&engine).await;
    let vm = new_vm(&engine, &caller, "web1").await;
    let made = engine.audit_log(None, None);
    assert_eq!(made.len(), 3, "clone, provision, update: {made:#?}");
    assert_eq!(made[2].code, audit_codes::USER_ADD_VM);
    assert_eq!(
        made[2].message,
        "Template web1 was cloned from template Other install media by admin."
    );
    assert!(made[2].subjects[0] == ("VM".into(), uuid(&engine, "VM", &vm)));
    assert_eq!(made[1].code, audit_codes::USER_ADD_DISK_TO_VM);
    assert_eq!(made[0].code, audit_codes::USER_UPDATE_VM_TEMPLATE);

    let last = made[0].id;
    for read in [
        Op::GetAll { class: "VM".into() },
        Op::GetAllRecords { class: "VM".into() },
        Op::GetRecord {
            class: "VM".into(),
            r: vm.clone(),
        },
        Op::GetField {
            class: "VM".into(),
            r: vm.clone(),
            field: "name_label".into(),
        },
        Op::GetByNameLabel {
            class: "VM".into(),
            label: "web1".into(),
        },
        Op::EventCurrentId,
        vm_op(&vm, VmAction::GetAllowedVbdDevices),
    ] {
        engine.call(&caller, read).await.unwrap();
    }
    assert!(engine.audit_log(Some(last), None).is_empty());

    engine.call(&caller, vm_op(&vm, START)).await.unwrap();
    let started = newest(&engine);
    assert_eq!(started.id, last + 1);
    assert_eq!(started.code, audit_codes::USER_RUN_VM);
    assert_eq!(started.severity, Severity::Normal);
    assert_eq!(started.message, "VM web1 was started by admin.");
    assert_eq!(started.user, "admin");
    assert!(started
        .subjects
        .contains(&("VM".into(), uuid(&engine, "VM", &vm))));
    let host = engine.this_host();
    assert!(started
        .subjects
        .contains(&("host".into(), uuid(&engine, "host", &host))));
    assert_eq!(engine.audit_entry(started.id), Some(started));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_errors_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), 1000).await;
    let caller = admin(&engine).await;
    let vm = new_vm(&engine, &caller, "db1").await;
    engine.call(&caller, vm_op(&vm, START)).await.unwrap();
    let err = engine.call(&caller, vm_op(&vm, START)).await.unwrap_err();
    let failed = newest(&engine);
    assert_eq!(failed.severity, Severity::Error);
    assert_eq!(failed.code, audit_codes::USER_FAILED_RUN_VM);
    assert_eq!(
        failed.message,
        format!("Failed to start VM db1 (User: admin): {err}.")
    );

    // A VM removed is still named by the entry that tells of it.
    let vm_uuid = uuid(&engine, "VM", &vm);
    engine
        .call(&caller, vm_op(&vm, VmAction::HardShutdown))
        .await
        .unwrap();
    assert_eq!(newest(&engine).code, audit_codes::USER_STOP_VM);
    engine
        .call(
            &caller,
            Op::Destroy {
                class: "VM".into(),
                r: vm,
            },
        )
        .await
        .unwrap();
    let removed = newest(&engine);
    assert_eq!(removed.code, audit_codes::USER_REMOVE_VM_FINISHED);
    assert_eq!(removed.message, "VM db1 was removed by admin.");
    assert!(removed.subjects.contains(&("VM".into(), vm_uuid)));
}

struct Plain;

impl TaskRender for Plain {
    fn result(&self, _: &Reply) -> String {
        String::new()
    }
    fn error(&self, e: &CoreError) -> Vec<String> {
        vec![e.to_string()]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_ids_reach_entries_and_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), 1000).await;
    let caller = admin(&engine).await;
    let vm = new_vm(&engine, &caller, "app").await;
    let opts = |id: &str| CallOpts {
        correlation_id: Some(id.into()),
    };
    engine
        .call_with(&caller, vm_op(&vm, START), opts("c-1"))
        .await
        .unwrap();
    assert_eq!(newest(&engine).correlation_id.as_deref(), Some("c-1"));

    let task = engine
        .submit_with(
            &caller,
            vm_op(&vm, VmAction::HardShutdown),
            "stop",
            Arc::new(Plain),
            opts("c-2"),
        )
        .await
        .unwrap();
    let mut generations = engine.generations();
    while engine.get("task", &task).unwrap().str("status") == "pending" {
        generations.changed().await.unwrap();
    }
    let record = engine.get("task", &task).unwrap();
    assert_eq!(
        record
            .get("other_config")
            .map_get("correlation_id")
            .and_then(|v| v.as_str()),
        Some("c-2")
    );
    let stopped = newest(&engine);
    assert_eq!(stopped.code, audit_codes::USER_STOP_VM);
    assert_eq!(stopped.correlation_id.as_deref(), Some("c-2"));
    assert!(stopped
        .subjects
        .contains(&("task".into(), record.uuid().to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_keep_increasing_and_the_oldest_entries_go() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), 3).await;
    let caller = admin(&engine).await;
    for i in 1..=5 {
        let id = engine
            .audit_record(
                &caller,
                audit_codes::USER_VDC_LOGIN,
                Severity::Normal,
                &format!("login {i}"),
                vec![],
                None,
            )
            .unwrap();
        assert_eq!(id, i);
    }
    let ids = |log: Vec<AuditEntry>| log.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(engine.audit_log(None, None)), [5, 4, 3]);
    assert_eq!(ids(engine.audit_log(Some(3), None)), [5, 4]);
    assert_eq!(ids(engine.audit_log(None, Some(2))), [5, 4]);
    assert_eq!(ids(engine.audit_log(Some(5), None)), Vec::<u64>::new());
    assert!(engine.audit_entry(2).is_none());
    assert_eq!(engine.audit_entry(4).unwrap().message, "login 4");
    drop(caller);
    drop(engine);

    // The trimmed entries are gone from the store too; ids go on from the newest.
    let engine = open(dir.path(), 100).await;
    assert_eq!(ids(engine.audit_log(None, None)), [5, 4, 3]);
    let caller = admin(&engine).await;
    engine
        .call(
            &caller,
            Op::SetField {
                class: "pool".into(),
                r: engine.read(|db| db.all("pool").next().unwrap().r.to_string()),
                field: "name_label".into(),
                value: Value::str("lab"),
            },
        )
        .await
        .unwrap();
    let entry = newest(&engine);
    assert_eq!(entry.id, 6);
    assert_eq!(entry.code, audit_codes::USER_UPDATE_STORAGE_POOL);
    assert!(entry.message.starts_with("Pool "), "{}", entry.message);
    assert!(entry.message.ends_with(" was updated by admin."));
}
