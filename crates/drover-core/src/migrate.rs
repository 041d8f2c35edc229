//! Moving VMs between hosts: live migration of running guests over shared storage, and cold
//! migration of halted VMs, whose disks on storage the target cannot reach are copied.
//!
//! A live migration runs in this order, so that a guest is never lost and no disk ever has
//! two writers:
//! 1. the target launches the guest waiting for its state (`migrate_receive`);
//! 2. the source sends it (`migrate_send`), with the final pause bounded by the engine's
//!    `max_migration_downtime_ms`; QEMU stops the source and releases its disks before the
//!    last state goes, and the target runs the guest only after it has all of it;
//! 3. only then is the VM recorded on the target, the target's guest confirmed
//!    (`migrate_incoming_finish`) and the source's released (`migrate_release`).
//!
//! If the send fails or is cancelled, the target's guest is discarded and the guest keeps
//! running on the source, untouched.

use std::collections::HashMap;

use drover_host::{HostError, MigrationStats};
use drover_model::Value;

use crate::audit::{codes, Severity};
use crate::db::{Obj, Ref};
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::ops::{Ctx, Reply};
use crate::txn::Txn;

/// The longest pause of a live migration unless the engine is configured otherwise, in
/// milliseconds.
pub const DEFAULT_MAX_DOWNTIME_MS: u64 = 300;

/// `VM_metrics.other_config` keys of the last live migration's figures.
pub const DOWNTIME_KEY: &str = "migration_downtime_ms";
/// See [`DOWNTIME_KEY`].
pub const TOTAL_KEY: &str = "migration_total_ms";

impl Engine {
    /// Live-migrates a running VM to `target`, or to the host the scheduler picks.
    pub(crate) async fn pool_migrate(
        &self,
        ctx: &Ctx<'_>,
        vm: &str,
        target: Option<&str>,
    ) -> Result<Reply> {
        if self.get("VM", vm)?.str("power_state") == "Halted" {
            return self.cold_migrate(ctx, vm, target).await;
        }
        let obj = self.begin(ctx, vm, "pool_migrate")?;
        let vmr = vm.to_string();
        let registered = self.register_cancel(ctx);
        let out = self
            .guarded(ctx, vm, "pool_migrate", async {
                let (source, sd) = self.resident(&obj)?;
                let dest = match target {
                    Some(h) if *h == *source => {
                        return Err(CoreError::OperationNotAllowed(
                            "the VM already runs on that host".into(),
                        ))
                    }
                    Some(h) => {
                        self.check_host_for(&obj, h, Some(&source))?;
                        Ref::from(h)
                    }
                    None => self.choose_host(&obj, Some(&source))?,
                };
                let dd = self.driver(&dest)?;
                self.require_shared_disks(&obj, &dest)?;
                let (spec, _) = self.guest_spec(&obj, false)?;
                let listen = self.get("host", &dest)?.str("address").to_string();
                let failed = |reason: String| CoreError::VmMigrateFailed {
                    vm: vmr.clone(),
                    from: source.to_string(),
                    destination: dest.to_string(),
                    reason,
                };
                let uri = dd
                    .migrate_receive(&spec, &listen)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let uuid = obj.uuid();
                // The send's own answer decides: a cancel that comes during the switch-over is
                // refused and the send completes.
                let send = sd.migrate_send(uuid, &uri, self.max_downtime_ms);
                tokio::pin!(send);
                let sent = tokio::select! {
                    r = &mut send => r,
                    () = ctx.cancel.cancelled() => {
                        if let Err(e) = sd.migrate_cancel(uuid).await {
                            tracing::info!(vm, error = %e, "the migration could not be cancelled");
                        }
                        send.await
                    }
                };
                let stats = match sent {
                    Ok(s) => s,
                    Err(e) => {
                        if let Err(d) = dd.migrate_incoming_finish(uuid, false).await {
                            tracing::warn!(vm, error = %d, "cannot discard the target's guest");
                        }
                        let reason = e.to_string();
                        self.audit_system(
                            codes::VM_MIGRATION_FAILED,
                            Severity::Error,
                            "VM",
                            vm,
                            &format!("Migration failed; the VM keeps running: {reason}"),
                        );
                        return Err(match e {
                            HostError::MigrationCancelled => {
                                CoreError::TaskCancelled(ctx.task.to_string())
                            }
                            _ => failed(reason),
                        });
                    }
                };
                let taken = dd.migrate_incoming_finish(uuid, true).await;
                if let Err(e) = sd.migrate_release(uuid).await {
                    tracing::warn!(vm, error = %e, "cannot release the source's guest");
                }
                if let Err(e) = taken {
                    // The source has handed the guest over and cannot take it back: the guest
                    // is gone, and the inventory says so.
                    let _ = dd.migrate_incoming_finish(uuid, false).await;
                    let reason = format!("the target did not take the guest: {e}");
                    self.write(|t| {
                        crate::vm::record_unplanned_stop(t, vm, &reason)?;
                        crate::vm::halt(t, vm)
                    })?;
                    return Err(failed(reason));
                }
                self.write(|t| moved(t, vm, &dest, &stats))?;
                self.audit_system(
                    codes::VM_MIGRATION_DONE,
                    Severity::Normal,
                    "VM",
                    vm,
                    &format!(
                        "Migration completed (downtime {} ms, total {} ms)",
                        stats.downtime_ms, stats.total_ms
                    ),
                );
                Ok(((), Box::new(|_: &mut Txn| Ok(())) as Box<_>))
            })
            .await;
        if registered {
            self.unregister_cancel(ctx);
        }
        out.map(|()| Reply::Void)
    }

    /// Moves a halted VM to `target` (or the host the scheduler picks): each disk on an SR the
    /// target cannot reach is copied onto the target's local SR — a new VDI with the same name
    /// and size, its contents streamed from a host that has the original — the VM's drive takes
    /// the copy, and the original goes unless another VM uses it. The VM's `affinity` becomes
    /// the target, where it then starts. A failure leaves the VM as it was.
    pub(crate) async fn cold_migrate(
        &self,
        ctx: &Ctx<'_>,
        vm: &str,
        target: Option<&str>,
    ) -> Result<Reply> {
        let obj = self.begin(ctx, vm, "migrate_send")?;
        self.guarded(ctx, vm, "migrate_send", async {
            let dest = match target {
                Some(h) => {
                    self.check_host(h)?;
                    Ref::from(h)
                }
                None => self.choose_host(&obj, None)?,
            };
            let local = self.local_sr(&dest)?;
            let moving: Vec<Obj> = self.read(|db| {
                obj.refs("VBDs")
                    .iter()
                    .filter_map(|v| db.get("VBD", v))
                    .filter(|v| !v.bool("empty"))
                    .filter_map(|v| db.get("VDI", v.str("VDI")).map(|d| (**d).clone()))
                    .collect()
            });
            let mut copies: Vec<(Obj, Ref)> = Vec::new();
            for vdi in moving {
                if self.sr_hosts(vdi.str("SR")).iter().any(|h| **h == *dest) {
                    continue;
                }
                ctx.checkpoint()?;
                match self.copy_across(&vdi, &local).await {
                    Ok(copy) => copies.push((vdi, copy)),
                    Err(e) => {
                        for (_, copy) in &copies {
                            self.forget_vdi(copy).await;
                        }
                        return Err(e);
                    }
                }
            }
            let vmr = vm.to_string();
            let swapped = self.write(|t| {
                let mut gone = Vec::new();
                for (old, copy) in &copies {
                    let vbds: Vec<Ref> = t
                        .must("VM", &vmr)?
                        .refs("VBDs")
                        .into_iter()
                        .filter(|v| t.get("VBD", v).is_some_and(|b| b.str("VDI") == &*old.r))
                        .collect();
                    for vbd in vbds {
                        t.set("VBD", &vbd, "VDI", Value::str(&**copy))?;
                    }
                    if t.must("VDI", &old.r)?.refs("VBDs").is_empty() {
                        gone.push((
                            old.str("SR").to_string(),
                            crate::storage::image_location(old),
                        ));
                        t.destroy("VDI", &old.r)?;
                    }
                }
                t.set("VM", &vmr, "affinity", Value::str(&*dest))?;
                Ok(gone)
            });
            match swapped {
                Ok(gone) => {
                    self.delete_images(&gone).await;
                    Ok(((), Box::new(|_: &mut Txn| Ok(())) as Box<_>))
                }
                Err(e) => {
                    for (_, copy) in &copies {
                        self.forget_vdi(copy).await;
                    }
                    Err(e)
                }
            }
        })
        .await?;
        Ok(Reply::Void)
    }

    /// The plugged local SR of a host.
    fn local_sr(&self, host: &str) -> Result<Ref> {
        self.read(|db| {
            db.all("PBD")
                .filter(|p| p.str("host") == host && p.bool("currently_attached"))
                .filter_map(|p| db.get("SR", p.str("SR")))
                .find(|s| s.str("type") == "local")
                .map(|s| s.r.clone())
        })
        .ok_or_else(|| CoreError::OperationNotAllowed(format!("host {host} has no local storage")))
    }

    /// A copy of a VDI on `sr`, streamed between the hosts of the two SRs.
    async fn copy_across(&self, vdi: &Obj, sr: &str) -> Result<Ref> {
        let from = vdi.str("SR");
        let copy = self
            .new_vdi(
                sr,
                vdi.str("name_label"),
                vdi.int("virtual_size"),
                vdi.str("type"),
                drover_host::ImageFormat::Qcow2,
            )
            .await?;
        let copied = async {
            let data = self
                .sr_driver(from)?
                .image_export(from, &crate::storage::image_location(vdi))
                .await
                .map_err(|e| self.host_error(e, "migrate_send"))?;
            let location = crate::storage::image_location(&*self.get("VDI", &copy)?);
            let info = self
                .sr_driver(sr)?
                .image_import(sr, &location, "raw", data)
                .await
                .map_err(|e| self.host_error(e, "migrate_send"))?;
            self.write(|t| {
                crate::storage::record_sizes(t, &copy, &info)?;
                t.set(
                    "VDI",
                    &copy,
                    "name_description",
                    Value::str(vdi.str("name_description")),
                )
            })
        };
        match copied.await {
            Ok(()) => Ok(copy),
            Err(e) => {
                self.forget_vdi(&copy).await;
                Err(e)
            }
        }
    }

    /// Fails with `VM_REQUIRES_SR` unless `host` reaches every disk of the VM.
    fn require_shared_disks(&self, vm: &Obj, host: &str) -> Result<()> {
        for sr in self.vm_srs(vm) {
            if !self.sr_hosts(&sr).iter().any(|h| **h == *host) {
                return Err(CoreError::VmRequiresSr {
                    vm: vm.r.to_string(),
                    sr: sr.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The SRs of a VM's disks.
    pub(crate) fn vm_srs(&self, vm: &Obj) -> Vec<Ref> {
        self.read(|db| {
            let mut srs: Vec<Ref> = vm
                .refs("VBDs")
                .iter()
                .filter_map(|v| db.get("VBD", v))
                .filter(|v| !v.bool("empty"))
                .filter_map(|v| db.get("VDI", v.str("VDI")))
                .map(|d| Ref::from(d.str("SR")))
                .collect();
            srs.sort();
            srs.dedup();
            srs
        })
    }

    /// Makes the operation's cancellation reachable by its task reference (for a synchronous
    /// call, which has no task record); whether it was added here.
    fn register_cancel(&self, ctx: &Ctx<'_>) -> bool {
        let mut cancels = self.cancels.lock().unwrap_or_else(|e| e.into_inner());
        if cancels.contains_key(&ctx.task) {
            return false;
        }
        cancels.insert(ctx.task.clone(), ctx.cancel.clone());
        true
    }

    fn unregister_cancel(&self, ctx: &Ctx<'_>) {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ctx.task);
    }

    /// Cancels the live migration of a VM under way (oVirt `cancelmigration`).
    pub(crate) fn cancel_migration(&self, vm: &str) -> Result<()> {
        let obj = self.get("VM", vm)?;
        let running: HashMap<String, String> = obj
            .get("current_operations")
            .as_map()
            .unwrap_or(&[])
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
            .collect();
        let task = running
            .iter()
            .find(|(_, op)| op.as_str() == "pool_migrate")
            .map(|(t, _)| t.clone())
            .ok_or_else(|| {
                CoreError::OperationNotAllowed(format!("VM {vm} is not being migrated"))
            })?;
        let cancels = self.cancels.lock().unwrap_or_else(|e| e.into_inner());
        match cancels.get(task.as_str()) {
            Some(token) => {
                token.cancel();
                Ok(())
            }
            None => Err(CoreError::OperationNotAllowed(format!(
                "the migration of VM {vm} cannot be cancelled now"
            ))),
        }
    }
}

/// Records a VM as running on `host` after a live migration, with the migration's figures.
fn moved(t: &mut Txn, vm: &str, host: &Ref, stats: &MigrationStats) -> Result<()> {
    t.set("VM", vm, "resident_on", Value::str(&**host))?;
    let record = t.must("VM", vm)?.clone();
    let metrics = record.str("metrics");
    if t.get("VM_metrics", metrics).is_some() {
        let (downtime, total) = (stats.downtime_ms.to_string(), stats.total_ms.to_string());
        t.update("VM_metrics", metrics, "other_config", |m| {
            m.map_insert(Value::str(DOWNTIME_KEY), Value::str(downtime));
            m.map_insert(Value::str(TOTAL_KEY), Value::str(total));
        })?;
    }
    Ok(())
}
