//! What a fresh installation has, and how a restarted engine reconciles with its host.

use std::io::Write;
use std::sync::Arc;

use drover_host::{GuestState, HostDriver};
use drover_model::{Value, NULL_REF};
use rand::distr::{Alphanumeric, SampleString};

use crate::auth::{hash_password, Account, SUPERUSER_ROLE};
use crate::db::{Obj, Ref};
use crate::engine::{now, Engine};
use crate::error::{CoreError, Result};
use crate::fleet::{create_host, create_local_sr};
use crate::sr::pbd_location;
use crate::txn::Txn;
use crate::vm::run_on;

/// Provisioning spec of the blank install template: one 8 GiB bootable disk on the default SR.
const INSTALL_DISKS: &str = r#"<provision><disk device="0" size="8589934592" sr="" bootable="true" type="system"/></provision>"#;

/// Storage drivers of every host: type and name of their SM records.
const STORAGE_TYPES: &[(&str, &str)] = &[
    ("local", "Local directory SR"),
    ("shared", "Shared directory SR"),
    ("iso", "ISO library"),
];

fn create_sm(t: &mut Txn, kind: &str, name: &str) -> Result<()> {
    t.create(
        "SM",
        vec![
            ("name_label", Value::str(name)),
            ("type", Value::str(kind)),
            ("vendor", Value::str("Drover")),
            ("version", Value::str(env!("CARGO_PKG_VERSION"))),
        ],
    )?;
    Ok(())
}

/// Creates the pool, the local host and its storage, its interfaces with a network each, the
/// templates, and the superuser.
pub(crate) async fn first_start(engine: &Arc<Engine>, admin_password: Option<&str>) -> Result<()> {
    let info = engine.local.info();
    let metrics = engine.local.metrics().await;
    let interfaces: Vec<_> = engine
        .local
        .pif_scan()
        .await?
        .into_iter()
        .map(|i| (i, crate::txn::new_ref()))
        .collect();
    let (host, sr) = engine.write(|t| {
        let host = create_host(t, &info, &metrics, "127.0.0.1", None)?;
        for (kind, name) in STORAGE_TYPES {
            create_sm(t, kind, name)?;
        }
        let sr = create_local_sr(t, &host)?;
        crate::network::pif::record_interfaces(t, &host, &interfaces)?;
        t.create(
            "pool",
            vec![
                ("name_label", Value::str("")),
                ("master", Value::str(&*host)),
                ("default_SR", Value::str(&*sr)),
                ("suspend_image_SR", Value::str(&*sr)),
                ("crash_dump_SR", Value::str(&*sr)),
            ],
        )?;
        let metrics = t.create("VM_metrics", vec![])?;
        let tpl = t.create(
            "VM",
            vec![
                ("name_label", Value::str("Other install media")),
                (
                    "name_description",
                    Value::str("Template for installing an operating system from install media"),
                ),
                ("is_a_template", Value::Bool(true)),
                ("is_default_template", Value::Bool(true)),
                ("memory_static_max", Value::Int(1 << 30)),
                ("memory_dynamic_max", Value::Int(1 << 30)),
                ("memory_dynamic_min", Value::Int(1 << 30)),
                ("memory_static_min", Value::Int(256 << 20)),
                ("VCPUs_max", Value::Int(1)),
                ("VCPUs_at_startup", Value::Int(1)),
                ("HVM_boot_policy", Value::str("BIOS order")),
                ("HVM_boot_params", Value::string_map([("order", "cdn")])),
                (
                    "other_config",
                    Value::string_map([("disks", INSTALL_DISKS), ("default_template", "true")]),
                ),
                ("power_state", Value::str("Halted")),
                ("domid", Value::Int(-1)),
                ("metrics", Value::str(&*metrics)),
            ],
        )?;
        crate::vm::refresh_allowed(t, &tpl)?;
        Ok((host, sr))
    })?;
    let password = match admin_password {
        Some(p) => p.to_string(),
        None => {
            let p = Alphanumeric.sample_string(&mut rand::rng(), 20);
            write_secret(&engine.data_dir.join("admin-password"), &p)?;
            p
        }
    };
    let user = engine.write(|t| {
        t.create(
            "user",
            vec![
                ("short_name", Value::str("admin")),
                ("fullname", Value::str("Drover administrator")),
            ],
        )
    })?;
    engine.put_account(
        "admin",
        Account {
            hash: hash_password(&password)?,
            role: SUPERUSER_ROLE.into(),
            user: user.to_string(),
        },
    )?;
    tracing::info!(host = %host, sr = %sr, "created a fresh installation");
    Ok(())
}

fn write_secret(path: &std::path::Path, secret: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| CoreError::Internal(format!("{}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    writeln!(f, "{secret}").map_err(io)?;
    f.sync_all().map_err(io)
}

/// After a start: add storage drivers that are new since the installation, clear operations
/// that died with the last process, and fail tasks that were running. Each host is then
/// brought in line by [`recover_host`] once it is connected.
pub(crate) fn recover(engine: &Arc<Engine>) -> Result<()> {
    engine.write(|t| {
        for (kind, name) in STORAGE_TYPES {
            if !t.db().all("SM").any(|sm| sm.str("type") == *kind) {
                create_sm(t, kind, name)?;
            }
        }
        Ok(())
    })?;
    engine.write(|t| {
        let busy: Vec<(String, String)> = t
            .db()
            .all("VM")
            .map(|v| (v.r.to_string(), v.class.name.to_string()))
            .chain(t.db().all("VDI").map(|v| (v.r.to_string(), "VDI".into())))
            .filter(|(r, c)| {
                t.get(c, r).is_some_and(|o| {
                    o.get("current_operations")
                        .as_map()
                        .is_some_and(|m| !m.is_empty())
                })
            })
            .collect();
        for (r, c) in busy {
            t.set(&c, &r, "current_operations", Value::empty_map())?;
        }
        let pending: Vec<String> = t
            .db()
            .all("task")
            .filter(|k| matches!(k.str("status"), "pending" | "cancelling"))
            .map(|k| k.r.to_string())
            .collect();
        for k in pending {
            t.set("task", &k, "status", Value::str("failure"))?;
            t.set("task", &k, "finished", Value::DateTime(now()))?;
            t.set("task", &k, "allowed_operations", Value::empty_set())?;
            t.set(
                "task",
                &k,
                "error_info",
                Value::Set(vec![
                    Value::str("INTERNAL_ERROR"),
                    Value::str("the engine restarted while the task ran"),
                ]),
            )?;
        }
        Ok(())
    })
}

/// Brings a host that has just been connected in line with the inventory: attaches its plugged
/// storage (unplugging what cannot be attached), makes its networks again, and brings the power
/// state (and consoles) of the VMs it runs, or the inventory says it runs, in line with it.
pub(crate) async fn recover_host(
    engine: &Arc<Engine>,
    host: &Ref,
    driver: &Arc<dyn HostDriver>,
) -> Result<()> {
    let pbds: Vec<(String, String, String)> = engine.read(|db| {
        db.all("PBD")
            .filter(|p| p.str("host") == &**host && p.bool("currently_attached"))
            .map(|p| (p.r.to_string(), p.str("SR").to_string(), pbd_location(p)))
            .collect()
    });
    for (pbd, sr, location) in &pbds {
        match driver.sr_attach(sr, location).await {
            Ok(_) => engine.refresh_sr(sr).await,
            Err(e) => {
                tracing::warn!(sr, error = %e, "cannot attach a storage repository: unplugging it");
                engine.write(|t| t.set("PBD", pbd, "currently_attached", Value::Bool(false)))?;
            }
        }
    }
    engine.restore_networks(host, driver).await?;
    let present = driver.guests().await;
    let base = engine.console_base.clone();
    engine.write(|t| {
        let vms: Vec<Obj> = t
            .db()
            .all("VM")
            .filter(|v| !v.bool("is_a_template"))
            .filter(|v| {
                v.str("resident_on") == &**host || present.iter().any(|(u, _)| u == v.uuid())
            })
            .map(|v| (**v).clone())
            .collect();
        for v in vms {
            let (vm, state) = (&*v.r, v.str("power_state"));
            let elsewhere = !matches!(v.str("resident_on"), r if r == &**host || r == NULL_REF);
            if elsewhere && matches!(state, "Running" | "Paused") {
                tracing::warn!(vm, %host, "a guest of a VM running elsewhere is here too");
                continue;
            }
            let actual = present.iter().find(|(u, _)| u == v.uuid()).map(|(_, s)| *s);
            let live = match actual {
                Some(GuestState::Running) => Some("Running"),
                Some(GuestState::Paused) => Some("Paused"),
                _ => None,
            };
            match (state, live) {
                ("Running" | "Paused", None) => {
                    tracing::warn!(vm, "guest is gone from its host: marking the VM halted");
                    crate::vm::record_unplanned_stop(
                        t,
                        vm,
                        "the guest stopped while Drover was not running",
                    )?;
                    crate::vm::halt(t, vm)?;
                }
                (_, Some(running)) if state != running => {
                    let (vcpus, memory) = (v.int("VCPUs_at_startup"), v.int("memory_dynamic_max"));
                    run_on(t, vm, host, running, vcpus, memory, &base)?;
                    crate::network::vif::mark(t, &v.refs("VIFs"), true)?;
                }
                (_, Some(_)) => crate::console::ensure_consoles(t, vm, &base)?,
                _ => {}
            }
            crate::vm::refresh_allowed(t, vm)?;
        }
        Ok(())
    })
}
