//! The VM power state machine (Halted, Paused, Running, Suspended) and the VM messages.

use std::sync::Arc;
use std::time::Duration;

use drover_host::{DiskSpec, GuestSpec, HostError, ImageFormat};
use drover_model::{Value, NULL_REF};

use crate::db::{Obj, Ref, View};
use crate::engine::{now, Engine};
use crate::error::{CoreError, Result};
use crate::ops::{Ctx, Reply};
use crate::storage::{claim_disks, disk_spec, image_location, release_disks};
use crate::txn::Txn;

/// A VM operation.
#[derive(Debug, Clone)]
pub enum VmAction {
    /// Start on the local host.
    Start {
        /// Leave the guest paused.
        paused: bool,
        /// Skip pre-boot checks.
        force: bool,
    },
    /// Start on a given host.
    StartOn {
        /// The host.
        host: String,
        /// Leave the guest paused.
        paused: bool,
        /// Skip pre-boot checks.
        force: bool,
    },
    /// Pause.
    Pause,
    /// Unpause.
    Unpause,
    /// ACPI shutdown, waiting for the guest.
    CleanShutdown,
    /// Immediate power-off.
    HardShutdown,
    /// ACPI shutdown, powering the guest off if it has not stopped within `secs` seconds.
    ShutdownWithin {
        /// Seconds the guest has to stop by itself.
        secs: u64,
    },
    /// Guest-cooperative reboot.
    CleanReboot,
    /// Reset.
    HardReboot,
    /// Save memory to a suspend VDI and stop.
    Suspend,
    /// Restore from the suspend VDI.
    Resume {
        /// Leave paused.
        paused: bool,
        /// Skip checks.
        force: bool,
    },
    /// Live-migrate to another host (`None`: the scheduler's choice).
    PoolMigrate {
        /// The target host.
        host: Option<String>,
    },
    /// Cancel a live migration under way.
    CancelMigration,
    /// Restore on a given host.
    ResumeOn {
        /// The host.
        host: String,
        /// Leave paused.
        paused: bool,
        /// Skip checks.
        force: bool,
    },
    /// Thin copy of the VM and its disks.
    Clone {
        /// New name.
        name: String,
    },
    /// Full copy of the VM and its disks.
    Copy {
        /// New name.
        name: String,
        /// Target SR, or the null reference for the disks' own SRs.
        sr: String,
    },
    /// Snapshot of the VM's disks as a template.
    Snapshot {
        /// Snapshot name.
        name: String,
    },
    /// Restores the VM a snapshot was taken of to the snapshot (the target is the snapshot).
    Revert,
    /// Creates the disks of a template's provisioning spec.
    Provision,
    /// Deletes the VM record (not its disks).
    Destroy,
    /// Deletes a halted VM with its NICs, disk attachments and snapshots, and the disks that
    /// only it (and its snapshots) use; shared disks, ISO images and disks other VMs have stay.
    Remove {
        /// Keep the VM's own disks (its snapshots' disks still go).
        keep_disks: bool,
    },
    /// Sets all four memory limits.
    SetMemoryLimits {
        /// static_min.
        static_min: i64,
        /// static_max.
        static_max: i64,
        /// dynamic_min.
        dynamic_min: i64,
        /// dynamic_max.
        dynamic_max: i64,
    },
    /// Sets the dynamic range.
    SetMemoryDynamicRange {
        /// dynamic_min.
        min: i64,
        /// dynamic_max.
        max: i64,
    },
    /// Sets the static range.
    SetMemoryStaticRange {
        /// static_min.
        min: i64,
        /// static_max.
        max: i64,
    },
    /// Sets all memory fields to one value.
    SetMemory {
        /// Bytes.
        value: i64,
    },
    /// Changes VCPUs of a running VM.
    SetVcpusNumberLive {
        /// Count.
        n: i64,
    },
    /// Sets VCPUs_max.
    SetVcpusMax {
        /// Count.
        n: i64,
    },
    /// Sets VCPUs_at_startup.
    SetVcpusAtStartup {
        /// Count.
        n: i64,
    },
    /// The record the VM booted with.
    GetBootRecord,
    /// Fails unless `op` is allowed now.
    AssertOperationValid {
        /// A `vm_operations` value.
        op: String,
    },
    /// Recomputes allowed_operations.
    UpdateAllowedOperations,
    /// Forces the VM record to Halted.
    PowerStateReset,
    /// Free VBD device positions.
    GetAllowedVbdDevices,
    /// Free VIF device positions.
    GetAllowedVifDevices,
    /// Hosts the VM could start on.
    GetPossibleHosts,
    /// Fails unless the VM could start on the host.
    AssertCanBootHere {
        /// The host.
        host: String,
    },
}

impl VmAction {
    /// The datamodel message name.
    pub fn message(&self) -> &'static str {
        match self {
            VmAction::Start { .. } => "start",
            VmAction::StartOn { .. } => "start_on",
            VmAction::Pause => "pause",
            VmAction::Unpause => "unpause",
            VmAction::CleanShutdown => "clean_shutdown",
            VmAction::HardShutdown => "hard_shutdown",
            VmAction::ShutdownWithin { .. } => "clean_shutdown",
            VmAction::CleanReboot => "clean_reboot",
            VmAction::HardReboot => "hard_reboot",
            VmAction::Suspend => "suspend",
            VmAction::Resume { .. } => "resume",
            VmAction::ResumeOn { .. } => "resume_on",
            VmAction::PoolMigrate { .. } => "pool_migrate",
            VmAction::CancelMigration => "cancel_migration",
            VmAction::Clone { .. } => "clone",
            VmAction::Copy { .. } => "copy",
            VmAction::Snapshot { .. } => "snapshot",
            VmAction::Revert => "revert",
            VmAction::Provision => "provision",
            VmAction::Destroy | VmAction::Remove { .. } => "destroy",
            VmAction::SetMemoryLimits { .. } => "set_memory_limits",
            VmAction::SetMemoryDynamicRange { .. } => "set_memory_dynamic_range",
            VmAction::SetMemoryStaticRange { .. } => "set_memory_static_range",
            VmAction::SetMemory { .. } => "set_memory",
            VmAction::SetVcpusNumberLive { .. } => "set_VCPUs_number_live",
            VmAction::SetVcpusMax { .. } => "set_VCPUs_max",
            VmAction::SetVcpusAtStartup { .. } => "set_VCPUs_at_startup",
            VmAction::GetBootRecord => "get_boot_record",
            VmAction::AssertOperationValid { .. } => "assert_operation_valid",
            VmAction::UpdateAllowedOperations => "update_allowed_operations",
            VmAction::PowerStateReset => "power_state_reset",
            VmAction::GetAllowedVbdDevices => "get_allowed_VBD_devices",
            VmAction::GetAllowedVifDevices => "get_allowed_VIF_devices",
            VmAction::GetPossibleHosts => "get_possible_hosts",
            VmAction::AssertCanBootHere { .. } => "assert_can_boot_here",
        }
    }
}

/// Power states in which an operation is allowed (errors name them all), and whether templates
/// allow it.
fn rule(op: &str) -> Option<(&'static [&'static str], bool)> {
    const H: &[&str] = &["Halted"];
    Some(match op {
        "destroy" => (&["Halted", "Suspended"], true),
        "start"
        | "start_on"
        | "make_into_template"
        | "changing_static_range"
        | "changing_VCPUs" => (H, false),
        "clone" | "copy" | "provision" | "export" => (
            &["Halted", "Suspended"][..if op == "provision" { 1 } else { 2 }],
            true,
        ),
        "pause"
        | "clean_shutdown"
        | "clean_reboot"
        | "changing_VCPUs_live"
        | "changing_memory_live" => (&["Running"], false),
        "unpause" => (&["Paused"], false),
        "hard_shutdown" => (&["Running", "Paused", "Suspended"], false),
        "hard_reboot" => (&["Running", "Paused"], false),
        "suspend" => (&["Running", "Paused"], false),
        "resume" | "resume_on" => (&["Suspended"], false),
        "pool_migrate" => (&["Running", "Paused"], false),
        "migrate_send" => (H, false),
        "snapshot" => (&["Halted", "Running", "Paused", "Suspended"], false),
        "changing_memory_limits" | "changing_dynamic_range" => (&["Halted", "Running"], true),
        _ => return None,
    })
}

/// The power states a refused operation's error names: all it is allowed in, except that clone
/// and copy name only `halted` (copying a suspended VM is a shortcut, not their ordinary entry).
fn expected_states(op: &str, states: &[&str]) -> String {
    let named = if matches!(op, "clone" | "copy") {
        &states[..1]
    } else {
        states
    };
    named
        .iter()
        .map(|s| s.to_lowercase())
        .collect::<Vec<_>>()
        .join(", ")
}

const ALL_OPS: &[&str] = &[
    "start",
    "start_on",
    "pause",
    "unpause",
    "clean_shutdown",
    "hard_shutdown",
    "clean_reboot",
    "hard_reboot",
    "suspend",
    "resume",
    "resume_on",
    "pool_migrate",
    "clone",
    "copy",
    "snapshot",
    "provision",
    "destroy",
    "export",
    "make_into_template",
    "changing_VCPUs",
    "changing_VCPUs_live",
    "changing_memory_live",
    "changing_memory_limits",
    "changing_dynamic_range",
    "changing_static_range",
];

/// Fails with `VM_BAD_POWER_STATE` unless the VM is halted.
pub(crate) fn require_halted(vm: &Obj) -> Result<()> {
    if vm.str("power_state") != "Halted" {
        return Err(CoreError::VmBadPowerState {
            vm: vm.r.to_string(),
            expected: "halted".into(),
            actual: vm.str("power_state").to_lowercase(),
        });
    }
    Ok(())
}

/// Checks an operation against a VM's state; the error a client should see if it is refused.
pub(crate) fn check_op(vm: &Obj, op: &str) -> Result<()> {
    let Some((states, template_ok)) = rule(op) else {
        return Ok(());
    };
    if vm.bool("is_a_template") && !template_ok {
        return Err(CoreError::VmIsTemplate {
            vm: vm.r.to_string(),
            op: op.to_string(),
        });
    }
    if op == "destroy" && vm.bool("is_default_template") {
        return Err(CoreError::CannotDeleteDefaultTemplate(vm.r.to_string()));
    }
    let state = vm.str("power_state");
    if !states.contains(&state) {
        return Err(CoreError::VmBadPowerState {
            vm: vm.r.to_string(),
            expected: expected_states(op, states),
            actual: state.to_lowercase(),
        });
    }
    if let Some((task, running)) = vm
        .get("current_operations")
        .as_map()
        .and_then(|m| m.first())
    {
        return Err(CoreError::OtherOperationInProgress {
            class: "VM".into(),
            handle: vm.r.to_string(),
            op: running.as_str().unwrap_or_default().into(),
            task: task.as_str().unwrap_or_default().into(),
        });
    }
    Ok(())
}

/// Recomputes `allowed_operations` of a VM (and of its VIFs) from its state.
pub(crate) fn refresh_allowed(t: &mut Txn, vm: &str) -> Result<()> {
    let obj = t.must("VM", vm)?;
    let allowed: Vec<Value> = ALL_OPS
        .iter()
        .filter(|op| check_op(obj, op).is_ok())
        .map(|op| Value::str(*op))
        .collect();
    let vifs = obj.refs("VIFs");
    t.set("VM", vm, "allowed_operations", Value::Set(allowed))?;
    for vif in vifs {
        if t.get("VIF", &vif).is_some() {
            crate::network::vif::refresh_allowed(t, &vif)?;
        }
    }
    Ok(())
}

impl Engine {
    /// Marks `op` as running on the VM (refusing it if not allowed now) and returns the VM.
    pub(crate) fn begin(&self, ctx: &Ctx<'_>, vm: &str, op: &str) -> Result<Arc<Obj>> {
        self.write(|t| {
            check_op(t.must("VM", vm)?, op)?;
            let task = ctx.task.to_string();
            t.update("VM", vm, "current_operations", |m| {
                m.map_insert(Value::str(task), Value::str(op));
            })?;
            refresh_allowed(t, vm)
        })?;
        ctx.started();
        self.get("VM", vm)
    }

    /// Ends the running operation, applying `f` in the same transaction.
    pub(crate) fn end(
        &self,
        ctx: &Ctx<'_>,
        vm: &str,
        f: impl FnOnce(&mut Txn) -> Result<()>,
    ) -> Result<()> {
        self.write(|t| {
            if t.get("VM", vm).is_none() {
                return Ok(());
            }
            t.update("VM", vm, "current_operations", |m| {
                m.map_remove(&Value::str(&*ctx.task))
            })?;
            f(t)?;
            if t.get("VM", vm).is_some() {
                refresh_allowed(t, vm)?;
            }
            Ok(())
        })
    }

    /// Runs `body` as operation `op` on a VM: marked busy throughout, unmarked however it ends.
    pub(crate) async fn guarded<T>(
        &self,
        ctx: &Ctx<'_>,
        vm: &str,
        _op: &str,
        body: impl std::future::Future<
            Output = Result<(T, Box<dyn FnOnce(&mut Txn) -> Result<()> + Send>)>,
        >,
    ) -> Result<T> {
        match body.await {
            Ok((out, commit)) => {
                self.end(ctx, vm, commit)?;
                Ok(out)
            }
            Err(e) => {
                self.end(ctx, vm, |_| Ok(()))?;
                Err(e)
            }
        }
    }

    /// What the host needs to run the VM's guest, with the VIFs that become its NICs: all of
    /// them, or when `resuming` those the guest had when it was suspended.
    pub(crate) fn guest_spec(&self, vm: &Obj, resuming: bool) -> Result<(GuestSpec, Vec<Ref>)> {
        self.read(|db| {
            let nics = crate::network::vif::guest_nics(db, vm, resuming)?;
            let vifs = nics.iter().map(|(r, _)| r.clone()).collect();
            let mut disks: Vec<DiskSpec> = vm
                .refs("VBDs")
                .iter()
                .filter_map(|r| db.get("VBD", r))
                .filter(|vbd| !vbd.bool("empty") || vbd.str("type") == "CD")
                .map(|vbd| disk_spec(db, vbd))
                .collect();
            disks.sort_by(|a, b| a.device.cmp(&b.device));
            let spec = GuestSpec {
                uuid: vm.uuid().to_string(),
                name: vm.str("name_label").to_string(),
                vcpus: vm.int("VCPUs_at_startup").max(0) as u32,
                vcpus_max: vm.int("VCPUs_max").max(0) as u32,
                memory: vm.int("memory_dynamic_max").max(0) as u64,
                kernel: vm.str("PV_kernel").to_string(),
                ramdisk: vm.str("PV_ramdisk").to_string(),
                args: vm.str("PV_args").to_string(),
                boot_policy: vm.str("HVM_boot_policy").to_string(),
                boot_order: vm
                    .get("HVM_boot_params")
                    .map_get("order")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string(),
                disks,
                nics: nics.into_iter().map(|(_, n)| n).collect(),
            };
            Ok((spec, vifs))
        })
    }

    fn check_startable(&self, vm: &Obj) -> Result<()> {
        let vcpus = vm.int("VCPUs_at_startup");
        if vcpus < 1 {
            return Err(CoreError::VmNoVcpus(vm.r.to_string()));
        }
        if vcpus > vm.int("VCPUs_max") || vcpus > 64 {
            return Err(CoreError::VmTooManyVcpus(vm.r.to_string()));
        }
        if vm.int("memory_dynamic_max") < 16 << 20 {
            return Err(CoreError::MemoryConstraint(
                "memory_dynamic_max must be at least 16 MiB to start".into(),
            ));
        }
        Ok(())
    }

    /// Fails unless `host` is a host of the pool the engine is connected to.
    pub(crate) fn check_host(&self, host: &str) -> Result<()> {
        self.driver(host).map(drop)
    }

    /// The host a VM starts or resumes on: the one asked for, which must accept new guests
    /// (the host itself then checks its memory), or else its affinity host when the scheduler
    /// lets it run there, or else the scheduler's choice. A pool of one host always offers
    /// that host, so that its own refusal says why.
    fn start_host(&self, vm: &Obj, target: Option<&str>) -> Result<Ref> {
        if let Some(h) = target {
            self.require_enabled(h)?;
            return Ok(Ref::from(h));
        }
        let hosts: Vec<Ref> = self.read(|db| db.all("host").map(|h| h.r.clone()).collect());
        if let [only] = hosts.as_slice() {
            self.require_enabled(only)?;
            return Ok(only.clone());
        }
        let affinity = vm.str("affinity");
        let preferred = hosts.iter().any(|h| **h == *affinity)
            && self.require_enabled(affinity).is_ok()
            && self.check_host_for(vm, affinity, None).is_ok();
        if preferred {
            return Ok(Ref::from(affinity));
        }
        self.choose_host(vm, None)
    }

    pub(crate) async fn vm_action(
        &self,
        ctx: &Ctx<'_>,
        vm: &str,
        action: VmAction,
    ) -> Result<Reply> {
        match action {
            VmAction::Start { paused, .. } => self.start(ctx, vm, paused, "start", None).await,
            VmAction::StartOn {
                host: h, paused, ..
            } => {
                self.check_host(&h)?;
                self.start(ctx, vm, paused, "start_on", Some(&h)).await
            }
            VmAction::PoolMigrate { host } => self.pool_migrate(ctx, vm, host.as_deref()).await,
            VmAction::CancelMigration => self.cancel_migration(vm).map(|()| Reply::Void),
            VmAction::Pause => self.simple(ctx, vm, "pause", "Paused").await,
            VmAction::Unpause => self.simple(ctx, vm, "unpause", "Running").await,
            VmAction::CleanShutdown | VmAction::HardShutdown | VmAction::ShutdownWithin { .. } => {
                let hard = matches!(action, VmAction::HardShutdown);
                let within = match action {
                    VmAction::ShutdownWithin { secs } => Some(Duration::from_secs(secs)),
                    _ => None,
                };
                let op = if hard {
                    "hard_shutdown"
                } else {
                    "clean_shutdown"
                };
                let obj = self.begin(ctx, vm, op)?;
                let uuid = obj.uuid().to_string();
                let suspended = obj.str("power_state") == "Suspended";
                let vmr = vm.to_string();
                self.guarded(ctx, vm, op, async {
                    if suspended {
                        self.discard_suspend_image(&obj).await?;
                    } else {
                        let (_, host) = self.resident(&obj)?;
                        if let Some(limit) = within {
                            let clean = tokio::time::timeout(limit, host.shutdown(&uuid, false));
                            if !matches!(clean.await, Ok(Ok(()))) {
                                self.waiting(&vmr, op, host.shutdown(&uuid, true)).await?;
                            }
                        } else {
                            self.waiting(&vmr, op, host.shutdown(&uuid, hard)).await?;
                        }
                    }
                    Ok(((), Box::new(move |t: &mut Txn| halt(t, &vmr)) as Box<_>))
                })
                .await?;
                Ok(Reply::Void)
            }
            VmAction::CleanReboot | VmAction::HardReboot => {
                let hard = matches!(action, VmAction::HardReboot);
                let op = if hard { "hard_reboot" } else { "clean_reboot" };
                let obj = self.begin(ctx, vm, op)?;
                let vmr = vm.to_string();
                self.guarded(ctx, vm, op, async {
                    let (_, host) = self.resident(&obj)?;
                    self.waiting(&vmr, op, host.reboot(obj.uuid(), hard))
                        .await?;
                    let commit = move |t: &mut Txn| {
                        t.set("VM", &vmr, "power_state", Value::str("Running"))?;
                        let metrics = t.must("VM", &vmr)?.str("metrics").to_string();
                        if t.get("VM_metrics", &metrics).is_some() {
                            t.set("VM_metrics", &metrics, "start_time", Value::DateTime(now()))?;
                        }
                        Ok(())
                    };
                    Ok(((), Box::new(commit) as Box<_>))
                })
                .await?;
                Ok(Reply::Void)
            }
            VmAction::Suspend => self.suspend(ctx, vm).await,
            VmAction::Resume { paused, .. } => self.resume(ctx, vm, paused, "resume", None).await,
            VmAction::ResumeOn {
                host: h, paused, ..
            } => {
                self.check_host(&h)?;
                self.resume(ctx, vm, paused, "resume_on", Some(&h)).await
            }
            VmAction::Clone { name } => self
                .duplicate(ctx, vm, &name, crate::clone::Mode::Clone)
                .await
                .map(Reply::Ref),
            VmAction::Copy { name, sr } => {
                if sr != NULL_REF && !sr.is_empty() {
                    self.get("SR", &sr)?;
                }
                self.duplicate(ctx, vm, &name, crate::clone::Mode::Copy(sr))
                    .await
                    .map(Reply::Ref)
            }
            VmAction::Snapshot { name } => self
                .duplicate(ctx, vm, &name, crate::clone::Mode::Snapshot)
                .await
                .map(Reply::Ref),
            VmAction::Revert => self.revert(ctx, vm).await.map(|_| Reply::Void),
            VmAction::Provision => self.provision(vm).await.map(|_| Reply::Void),
            VmAction::Destroy => self.destroy_vm(ctx, vm).await.map(|_| Reply::Void),
            VmAction::Remove { keep_disks } => self
                .remove_vm(ctx, vm, keep_disks)
                .await
                .map(|_| Reply::Void),
            VmAction::SetMemoryLimits {
                static_min,
                static_max,
                dynamic_min,
                dynamic_max,
            } => self
                .set_memory(vm, static_min, static_max, dynamic_min, dynamic_max)
                .map(|_| Reply::Void),
            VmAction::SetMemoryDynamicRange { min, max } => {
                let o = self.get("VM", vm)?;
                self.set_memory(
                    vm,
                    o.int("memory_static_min"),
                    o.int("memory_static_max"),
                    min,
                    max,
                )
                .map(|_| Reply::Void)
            }
            VmAction::SetMemoryStaticRange { min, max } => {
                let o = self.get("VM", vm)?;
                require_halted(&o)?;
                self.set_memory(
                    vm,
                    min,
                    max,
                    o.int("memory_dynamic_min"),
                    o.int("memory_dynamic_max"),
                )
                .map(|_| Reply::Void)
            }
            VmAction::SetMemory { value } => {
                let o = self.get("VM", vm)?;
                require_halted(&o)?;
                let smin = o.int("memory_static_min").min(value);
                self.set_memory(vm, smin, value, value, value)
                    .map(|_| Reply::Void)
            }
            VmAction::SetVcpusNumberLive { n } => {
                let obj = self.begin(ctx, vm, "changing_VCPUs_live")?;
                let vmr = vm.to_string();
                self.guarded(ctx, vm, "changing_VCPUs_live", async {
                    if n < 1 || n > obj.int("VCPUs_max") {
                        return Err(CoreError::InvalidValue {
                            field: "nvcpu".into(),
                            value: n.to_string(),
                        });
                    }
                    self.resident(&obj)?
                        .1
                        .set_vcpus(obj.uuid(), n as u32)
                        .await
                        .map_err(|e| self.host_error(e, "changing_VCPUs_live"))?;
                    let commit = move |t: &mut Txn| {
                        t.set("VM", &vmr, "VCPUs_at_startup", Value::Int(n))?;
                        let metrics = t.must("VM", &vmr)?.str("metrics").to_string();
                        if t.get("VM_metrics", &metrics).is_some() {
                            t.set("VM_metrics", &metrics, "VCPUs_number", Value::Int(n))?;
                        }
                        Ok(())
                    };
                    Ok(((), Box::new(commit) as Box<_>))
                })
                .await?;
                Ok(Reply::Void)
            }
            VmAction::SetVcpusMax { n } => {
                let o = self.get("VM", vm)?;
                require_halted(&o)?;
                if n < 1 || n < o.int("VCPUs_at_startup") {
                    return Err(CoreError::InvalidValue {
                        field: "VCPUs_max".into(),
                        value: n.to_string(),
                    });
                }
                self.write(|t| t.set("VM", vm, "VCPUs_max", Value::Int(n)))?;
                Ok(Reply::Void)
            }
            VmAction::SetVcpusAtStartup { n } => {
                let o = self.get("VM", vm)?;
                if n < 1 || n > o.int("VCPUs_max") {
                    return Err(CoreError::InvalidValue {
                        field: "VCPUs_at_startup".into(),
                        value: n.to_string(),
                    });
                }
                self.write(|t| t.set("VM", vm, "VCPUs_at_startup", Value::Int(n)))?;
                Ok(Reply::Void)
            }
            VmAction::GetBootRecord => Ok(Reply::Record(self.get("VM", vm)?)),
            VmAction::AssertOperationValid { op } => {
                let o = self.get("VM", vm)?;
                if rule(&op).is_none() && !ALL_OPS.contains(&op.as_str()) {
                    return Err(CoreError::OperationNotAllowed(format!(
                        "{op} is not a VM operation Drover supports"
                    )));
                }
                check_op(&o, &op)?;
                Ok(Reply::Void)
            }
            VmAction::UpdateAllowedOperations => {
                self.write(|t| refresh_allowed(t, vm))?;
                Ok(Reply::Void)
            }
            VmAction::PowerStateReset => {
                self.get("VM", vm)?;
                self.write(|t| {
                    halt(t, vm)?;
                    t.set("VM", vm, "current_operations", Value::empty_map())?;
                    refresh_allowed(t, vm)
                })?;
                Ok(Reply::Void)
            }
            VmAction::GetAllowedVbdDevices | VmAction::GetAllowedVifDevices => {
                let (class, set) = if matches!(action, VmAction::GetAllowedVbdDevices) {
                    ("VBD", "VBDs")
                } else {
                    ("VIF", "VIFs")
                };
                let o = self.get("VM", vm)?;
                let used: Vec<String> = self.read(|db| {
                    o.refs(set)
                        .iter()
                        .filter_map(|r| db.get(class, r))
                        .map(|d| {
                            d.str(if class == "VBD" {
                                "userdevice"
                            } else {
                                "device"
                            })
                            .to_string()
                        })
                        .collect()
                });
                let positions = if class == "VBD" {
                    16
                } else {
                    crate::network::vif::POSITIONS
                };
                let free = (0..positions)
                    .map(|i| i.to_string())
                    .filter(|d| !used.contains(d))
                    .map(Value::Str)
                    .collect();
                Ok(Reply::Value(Value::Set(free)))
            }
            VmAction::GetPossibleHosts => {
                let o = self.get("VM", vm)?;
                let hosts = self.read(|db| db.all("host").map(|h| h.r.clone()).collect::<Vec<_>>());
                Ok(Reply::Refs(
                    hosts
                        .into_iter()
                        .filter(|h| self.check_host_for(&o, h, None).is_ok())
                        .collect(),
                ))
            }
            VmAction::AssertCanBootHere { host: h } => {
                let o = self.get("VM", vm)?;
                self.check_host(&h)?;
                self.check_startable(&o)?;
                let free = self.driver(&h)?.metrics().await.memory_free;
                let needed = o.int("memory_dynamic_max").max(0) as u64;
                if needed > free {
                    return Err(CoreError::HostNotEnoughFreeMemory {
                        needed,
                        available: free,
                    });
                }
                Ok(Reply::Void)
            }
        }
    }

    async fn start(
        &self,
        ctx: &Ctx<'_>,
        vm: &str,
        paused: bool,
        op: &str,
        target: Option<&str>,
    ) -> Result<Reply> {
        let obj = self.begin(ctx, vm, op)?;
        let vmr = vm.to_string();
        let base = self.console_base.clone();
        self.guarded(ctx, vm, op, async {
            self.check_startable(&obj)?;
            let host = self.start_host(&obj, target)?;
            let driver = self.driver(&host)?;
            let (spec, vifs) = self.guest_spec(&obj, false)?;
            ctx.checkpoint()?;
            self.with_disks(&obj, op, driver.start(&spec, paused))
                .await?;
            let state = if paused { "Paused" } else { "Running" };
            let vcpus = spec.vcpus as i64;
            let memory = spec.memory as i64;
            let commit = move |t: &mut Txn| {
                run_on(t, &vmr, &host, state, vcpus, memory, &base)?;
                crate::network::vif::mark(t, &vifs, true)
            };
            Ok(((), Box::new(commit) as Box<_>))
        })
        .await?;
        Ok(Reply::Void)
    }

    async fn simple(&self, ctx: &Ctx<'_>, vm: &str, op: &str, to: &'static str) -> Result<Reply> {
        let obj = self.begin(ctx, vm, op)?;
        let vmr = vm.to_string();
        self.guarded(ctx, vm, op, async {
            let uuid = obj.uuid();
            let (_, host) = self.resident(&obj)?;
            if op == "pause" {
                host.pause(uuid).await
            } else {
                host.unpause(uuid).await
            }
            .map_err(|e| self.host_error(e, op))?;
            let commit = move |t: &mut Txn| t.set("VM", &vmr, "power_state", Value::str(to));
            Ok(((), Box::new(commit) as Box<_>))
        })
        .await?;
        Ok(Reply::Void)
    }

    async fn suspend(&self, ctx: &Ctx<'_>, vm: &str) -> Result<Reply> {
        let obj = self.begin(ctx, vm, "suspend")?;
        let vmr = vm.to_string();
        self.guarded(ctx, vm, "suspend", async {
            let sr = self.suspend_sr(&obj)?;
            let size = obj
                .int("memory_static_max")
                .max(obj.int("memory_dynamic_max"))
                + (16 << 20);
            let vdi = self
                .new_vdi(
                    &sr,
                    &format!("Suspend image of {}", obj.str("name_label")),
                    size,
                    "suspend",
                    ImageFormat::Raw,
                )
                .await?;
            let image = image_location(&*self.get("VDI", &vdi)?);
            let (_, host) = self.resident(&obj)?;
            if let Err(e) = host.suspend(obj.uuid(), &sr, &image).await {
                self.forget_vdi(&vdi).await;
                return Err(self.host_error(e, "suspend"));
            }
            let used = host
                .image_info(&sr, &image)
                .await
                .map(|i| i.physical_utilisation as i64)
                .unwrap_or(0);
            let commit = move |t: &mut Txn| {
                t.set("VDI", &vdi, "physical_utilisation", Value::Int(used))?;
                // The saved guest has these NICs; it gets them again when it resumes.
                let vm_obj = t.must("VM", &vmr)?.clone();
                let plugged: Vec<Ref> = t
                    .members(&vm_obj, "VIFs", "VIF")
                    .iter()
                    .filter(|v| v.bool("currently_attached"))
                    .map(|v| v.r.clone())
                    .collect();
                halt(t, &vmr)?;
                t.set("VM", &vmr, "power_state", Value::str("Suspended"))?;
                t.set("VM", &vmr, "suspend_VDI", Value::str(&*vdi))?;
                crate::network::vif::mark(t, &plugged, true)
            };
            Ok(((), Box::new(commit) as Box<_>))
        })
        .await?;
        Ok(Reply::Void)
    }

    async fn resume(
        &self,
        ctx: &Ctx<'_>,
        vm: &str,
        paused: bool,
        op: &str,
        target: Option<&str>,
    ) -> Result<Reply> {
        let obj = self.begin(ctx, vm, op)?;
        let vmr = vm.to_string();
        let base = self.console_base.clone();
        self.guarded(ctx, vm, op, async {
            let host = self.start_host(&obj, target)?;
            let driver = self.driver(&host)?;
            let suspend_vdi = obj.str("suspend_VDI");
            let Some(image) = self
                .get("VDI", suspend_vdi)
                .ok()
                .filter(|_| suspend_vdi != NULL_REF)
            else {
                return Err(CoreError::VmHasNoSuspendVdi(vmr.clone()));
            };
            let (spec, vifs) = self.guest_spec(&obj, true)?;
            let location = image_location(&image);
            self.with_disks(
                &obj,
                op,
                driver.resume(&spec, image.str("SR"), &location, paused),
            )
            .await?;
            self.forget_vdi(&image.r).await;
            let state = if paused { "Paused" } else { "Running" };
            let (vcpus, memory) = (spec.vcpus as i64, spec.memory as i64);
            let commit = move |t: &mut Txn| {
                t.set("VM", &vmr, "suspend_VDI", Value::str(NULL_REF))?;
                run_on(t, &vmr, &host, state, vcpus, memory, &base)?;
                crate::network::vif::mark(t, &vifs, true)
            };
            Ok(((), Box::new(commit) as Box<_>))
        })
        .await?;
        Ok(Reply::Void)
    }

    /// Runs a host call that waits for the guest; a timeout is `VM_SHUTDOWN_TIMEOUT` with the
    /// seconds waited.
    async fn waiting(
        &self,
        vm: &str,
        op: &str,
        call: impl std::future::Future<Output = Result<(), HostError>>,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        call.await.map_err(|e| match e {
            HostError::ShutdownTimeout(_) => CoreError::VmShutdownTimeout {
                vm: vm.into(),
                timeout: started.elapsed().as_secs().to_string(),
            },
            e => self.host_error(e, op),
        })
    }

    /// Runs a host call that brings up the VM's guest with its disks claimed (refused with
    /// `VDI_IN_USE` if another VM writes one), releasing them if it fails.
    async fn with_disks(
        &self,
        vm: &Obj,
        op: &str,
        call: impl std::future::Future<Output = Result<(), HostError>>,
    ) -> Result<()> {
        let vbds = vm.refs("VBDs");
        self.write(|t| claim_disks(t, &vm.r, &vbds, op))?;
        if let Err(e) = call.await {
            self.write(|t| release_disks(t, &vbds))?;
            return Err(self.host_error(e, op));
        }
        Ok(())
    }

    async fn discard_suspend_image(&self, vm: &Obj) -> Result<()> {
        let image = vm.str("suspend_VDI");
        if image != NULL_REF {
            self.forget_vdi(image).await;
        }
        Ok(())
    }

    fn suspend_sr(&self, vm: &Obj) -> Result<String> {
        let sr = vm.str("suspend_SR");
        if sr != NULL_REF && self.get("SR", sr).is_ok() {
            return Ok(sr.to_string());
        }
        self.default_sr()
    }

    /// The pool's default SR.
    pub(crate) fn default_sr(&self) -> Result<String> {
        self.read(|db| {
            db.all("pool")
                .next()
                .map(|p| p.str("default_SR").to_string())
                .filter(|sr| db.get("SR", sr).is_some())
                .ok_or_else(|| CoreError::OperationNotAllowed("the pool has no default SR".into()))
        })
    }

    fn set_memory(&self, vm: &str, smin: i64, smax: i64, dmin: i64, dmax: i64) -> Result<()> {
        if !(0 <= smin && smin <= dmin && dmin <= dmax && dmax <= smax) {
            return Err(CoreError::MemoryConstraint(
                "static_min <= dynamic_min <= dynamic_max <= static_max".into(),
            ));
        }
        let o = self.get("VM", vm)?;
        if o.str("power_state") != "Halted"
            && (smin != o.int("memory_static_min") || smax != o.int("memory_static_max"))
        {
            require_halted(&o)?;
        }
        self.write(|t| {
            t.set("VM", vm, "memory_static_min", Value::Int(smin))?;
            t.set("VM", vm, "memory_static_max", Value::Int(smax))?;
            t.set("VM", vm, "memory_dynamic_min", Value::Int(dmin))?;
            t.set("VM", vm, "memory_dynamic_max", Value::Int(dmax))
        })
    }

    /// A setter of one memory field, checked against the others.
    pub(crate) fn vm_set_memory_field(&self, vm: &str, field: &str, value: Value) -> Result<()> {
        let o = self.get("VM", vm)?;
        let v = value
            .as_int()
            .ok_or_else(|| CoreError::FieldType(field.into()))?;
        let mut m = [
            o.int("memory_static_min"),
            o.int("memory_static_max"),
            o.int("memory_dynamic_min"),
            o.int("memory_dynamic_max"),
        ];
        match field {
            "memory_static_min" => m[0] = v,
            "memory_static_max" => m[1] = v,
            "memory_dynamic_min" => m[2] = v,
            "memory_dynamic_max" => m[3] = v,
            _ => return self.write(|t| t.set("VM", vm, field, value)),
        }
        self.set_memory(vm, m[0], m[1], m[2], m[3])
    }

    async fn destroy_vm(&self, ctx: &Ctx<'_>, vm: &str) -> Result<()> {
        let obj = self.begin(ctx, vm, "destroy")?;
        if obj.str("power_state") == "Suspended" {
            self.discard_suspend_image(&obj).await?;
        }
        let nets = self.read(|db| {
            crate::network::distinct(
                db.members(&obj, "VIFs", "VIF")
                    .iter()
                    .map(|v| Ref::from(v.str("network"))),
            )
        });
        let destroyed = self.net_change(&nets, |t| destroy_vm_record(t, vm)).await;
        if destroyed.is_err() {
            self.end(ctx, vm, |_| Ok(()))?;
        }
        destroyed
    }
}

/// Deletes a VM record with the records that belong to it alone (VBDs, VIFs, consoles, metrics);
/// its VIFs' addresses go back to their networks' ranges.
pub(crate) fn destroy_vm_record(t: &mut Txn, vm: &str) -> Result<()> {
    let obj = t.must("VM", vm)?.clone();
    let vbd_metrics: Vec<String> = t
        .members(&obj, "VBDs", "VBD")
        .iter()
        .map(|b| b.str("metrics").to_string())
        .collect();
    let (nets, vif_metrics): (Vec<Ref>, Vec<String>) = t
        .members(&obj, "VIFs", "VIF")
        .iter()
        .map(|v| (Ref::from(v.str("network")), v.str("metrics").to_string()))
        .unzip();
    for (class, set) in [
        ("VBD", "VBDs"),
        ("VIF", "VIFs"),
        ("console", "consoles"),
        ("VTPM", "VTPMs"),
        ("crashdump", "crash_dumps"),
    ] {
        for r in obj.refs(set) {
            if t.get(class, &r).is_some() {
                t.destroy(class, &r)?;
            }
        }
    }
    for (class, field) in [
        ("VM_metrics", "metrics"),
        ("VM_guest_metrics", "guest_metrics"),
    ] {
        let r = obj.str(field);
        if t.get(class, r).is_some() {
            t.destroy(class, r)?;
        }
    }
    for (class, metrics) in [("VIF_metrics", vif_metrics), ("VBD_metrics", vbd_metrics)] {
        for m in metrics {
            if t.get(class, &m).is_some() {
                t.destroy(class, &m)?;
            }
        }
    }
    t.destroy("VM", vm)?;
    for net in crate::network::distinct(nets) {
        if t.get("network", &net).is_some() {
            crate::network::dhcp::reconcile(t, &net)?;
        }
    }
    Ok(())
}

/// Marks a VM halted: not resident anywhere, disks and VIFs detached, without consoles or guest
/// metrics.
pub(crate) fn halt(t: &mut Txn, vm: &str) -> Result<()> {
    t.set("VM", vm, "power_state", Value::str("Halted"))?;
    t.set("VM", vm, "resident_on", Value::str(NULL_REF))?;
    t.set("VM", vm, "domid", Value::Int(-1))?;
    t.set("VM", vm, "suspend_VDI", Value::str(NULL_REF))?;
    let vbds = t.must("VM", vm)?.refs("VBDs");
    release_disks(t, &vbds)?;
    crate::console::drop_consoles(t, vm)?;
    let guest = t.must("VM", vm)?.str("guest_metrics").to_string();
    if t.get("VM_guest_metrics", &guest).is_some() {
        t.destroy("VM_guest_metrics", &guest)?;
    }
    t.set("VM", vm, "guest_metrics", Value::str(NULL_REF))?;
    let vifs = t.must("VM", vm)?.refs("VIFs");
    crate::network::vif::mark(t, &vifs, false)
}

/// Marks a VM running (or paused) on `host`: resident there, disks attached, consoles
/// under `console_base`, metrics of a fresh start.
pub(crate) fn run_on(
    t: &mut Txn,
    vm: &str,
    host: &Ref,
    state: &str,
    vcpus: i64,
    memory: i64,
    console_base: &str,
) -> Result<()> {
    let domid = t
        .db()
        .all("VM")
        .map(|v| v.int("domid"))
        .max()
        .unwrap_or(0)
        .max(0)
        + 1;
    t.set("VM", vm, "power_state", Value::str(state))?;
    t.set("VM", vm, "resident_on", Value::str(&**host))?;
    t.set("VM", vm, "domid", Value::Int(domid))?;
    let record = t.must("VM", vm)?.clone();
    for vbd in record.refs("VBDs") {
        if t.get("VBD", &vbd).is_some() {
            t.set("VBD", &vbd, "currently_attached", Value::Bool(true))?;
        }
    }
    crate::console::ensure_consoles(t, vm, console_base)?;
    let metrics = record.str("metrics").to_string();
    if t.get("VM_metrics", &metrics).is_some() {
        t.set("VM_metrics", &metrics, "start_time", Value::DateTime(now()))?;
        t.set("VM_metrics", &metrics, "VCPUs_number", Value::Int(vcpus))?;
        t.set("VM_metrics", &metrics, "memory_actual", Value::Int(memory))?;
        t.set(
            "VM_metrics",
            &metrics,
            "last_updated",
            Value::DateTime(now()),
        )?;
    }
    Ok(())
}

/// Records why a VM stopped without being asked to, in `other_config` (as xapi does), so that
/// the VM's change event says why.
pub(crate) fn record_unplanned_stop(t: &mut Txn, vm: &str, reason: &str) -> Result<()> {
    let time = drover_model::time::format(crate::engine::now());
    t.update("VM", vm, "other_config", |m| {
        m.map_insert(Value::str("last_shutdown_reason"), Value::str(reason));
        m.map_insert(
            Value::str("last_shutdown_initiator"),
            Value::str("external"),
        );
        m.map_insert(Value::str("last_shutdown_time"), Value::str(&time));
    })
}
