//! How the audit log tells each operation: the one table from operations to their oVirt codes
//! (success, failure) and words, and the objects each involves. Reads, event calls and task
//! bookkeeping have no line: they are never recorded.

use drover_model::{Schema, Type, Value};

use super::codes::*;
use super::words::{describe, fill, involve, kind, noun, Kind};
use super::{Draft, Severity};
use crate::db::{Db, View};
use crate::error::Result;
use crate::host::HostAction;
use crate::network::NetOp;
use crate::ops::{Op, Reply};
use crate::sr::{PbdAction, SrAction};
use crate::storage::{VbdAction, VdiAction};
use crate::vm::VmAction;

/// How one operation is told.
#[derive(Debug, Clone, Copy)]
struct Line {
    /// Code on success.
    ok: u32,
    /// Code on failure.
    failed: u32,
    /// The attempt, for failures: "Failed to {verb} {what} …".
    verb: &'static str,
    /// The success, over `{what}` (the object worked on), `{new}` (what it made), `{user}`.
    done: &'static str,
}

const fn line(ok: u32, failed: u32, verb: &'static str, done: &'static str) -> Line {
    Line {
        ok,
        failed,
        verb,
        done,
    }
}

const UPDATED: &str = "{what} was updated by {user}.";
const REMOVED: &str = "{what} was removed by {user}.";
const CREATED: &str = "{new} was created by {user}.";

/// An operation about to run, as its entry will tell it: captured before it runs, since
/// what it removes is gone afterwards.
pub(crate) struct Plan {
    line: Line,
    /// The object it works on, in words ("VM web1").
    what: String,
    /// The class of the object it answers when it makes one.
    made: Option<&'static str>,
    /// The object it works on (class, reference), looked at again when it ends: a VM started
    /// involves the host it now runs on.
    target: Option<(String, String)>,
    /// The objects involved, as (class, uuid).
    subjects: Vec<(String, String)>,
}

/// The entry of an operation, or `None` for one that is never recorded.
pub(crate) fn plan(db: &Db, op: &Op) -> Option<Plan> {
    let (line, class, r, made): (Line, &str, String, Option<&'static str>) = match op {
        Op::SetField { class, r, .. }
        | Op::MapAdd { class, r, .. }
        | Op::MapRemove { class, r, .. }
        | Op::SetAdd { class, r, .. }
        | Op::SetRemove { class, r, .. } => (update_line(db, class, r), class, r.clone(), None),
        Op::Create { class, fields } => return Some(creation(db, class, fields)),
        Op::Destroy { class, r } => (destroy_line(db, class, r)?, class, r.clone(), None),
        Op::Vm { vm, action } => {
            let (line, made) = vm_line(db, vm, action)?;
            (line, "VM", vm.clone(), made)
        }
        Op::Net(n) => net_line(db, n)?,
        Op::Vdi { vdi, action } => {
            let made = (!matches!(action, VdiAction::Resize { .. })).then_some("VDI");
            (vdi_line(action), "VDI", vdi.clone(), made)
        }
        Op::Vbd { vbd, action } => (vbd_line(action), "VBD", vbd.clone(), None),
        Op::Sr { sr, action } => return sr_plan(db, sr, action),
        Op::Pbd { pbd, action } => (pbd_line(action), "PBD", pbd.clone(), None),
        Op::Host { host, action } => (host_line(action)?, "host", host.clone(), None),
        Op::PoolJoin { .. } => (
            line(
                USER_ADD_VDS,
                USER_FAILED_ADD_VDS,
                "add a host to",
                "{new} was added to the pool by {user}.",
            ),
            "pool",
            db.all("pool").next()?.r.to_string(),
            Some("host"),
        ),
        Op::TaskCancel { task } => (
            line(
                TASK_STOPPING_ASYNC_TASK,
                UNASSIGNED,
                "cancel",
                "{what} was cancelled by {user}.",
            ),
            "task",
            task.clone(),
            None,
        ),
        Op::GetAll { .. }
        | Op::GetAllRecords { .. }
        | Op::GetRecord { .. }
        | Op::GetByUuid { .. }
        | Op::GetByNameLabel { .. }
        | Op::GetField { .. }
        | Op::TaskCreate { .. }
        | Op::EventFrom { .. }
        | Op::EventRegister { .. }
        | Op::EventUnregister { .. }
        | Op::EventNext
        | Op::EventCurrentId
        | Op::EventInject { .. } => return None,
    };
    let mut subjects = Vec::new();
    involve(db, class, &r, &mut subjects, 2);
    for (c, x) in other_refs(op) {
        involve(db, c, x, &mut subjects, 1);
    }
    Some(Plan {
        line,
        what: describe(db, class, &r),
        made,
        target: Some((class.to_string(), r)),
        subjects,
    })
}

/// Lines of host operations that change something.
fn host_line(action: &HostAction) -> Option<Line> {
    match action {
        HostAction::Disable => Some(line(
            USER_VDS_MAINTENANCE,
            VDS_MAINTENANCE_FAILED,
            "switch to maintenance mode",
            "{what} was switched to maintenance mode by {user}.",
        )),
        HostAction::Enable => Some(line(
            VDS_ACTIVATE,
            VDS_ACTIVATE_FAILED,
            "activate",
            "{what} was activated by {user}.",
        )),
        HostAction::Evacuate => Some(line(
            USER_VDS_MAINTENANCE,
            VDS_MAINTENANCE_FAILED,
            "evacuate",
            "The guests of {what} were moved away by {user}.",
        )),
        HostAction::SetPowerOnMode { .. } => Some(line(
            USER_UPDATE_VDS,
            USER_FAILED_UPDATE_VDS,
            "set the power management of",
            "The power management of {what} was set by {user}.",
        )),
        HostAction::PowerOn => Some(line(
            USER_UPDATE_VDS,
            USER_FAILED_UPDATE_VDS,
            "switch on",
            "{what} was switched on by {user}.",
        )),
        HostAction::PowerOff => Some(line(
            USER_UPDATE_VDS,
            USER_FAILED_UPDATE_VDS,
            "fence",
            "{what} was fenced by {user}.",
        )),
        HostAction::ConfirmFenced => Some(line(
            USER_UPDATE_VDS,
            USER_FAILED_UPDATE_VDS,
            "confirm the reboot of",
            "{user} confirmed that {what} was rebooted.",
        )),
        HostAction::Eject => Some(line(
            USER_REMOVE_VDS,
            USER_FAILED_REMOVE_VDS,
            "remove",
            "{what} was removed from the pool by {user}.",
        )),
        HostAction::PowerStatus
        | HostAction::ComputeFreeMemory
        | HostAction::GetServertime
        | HostAction::GetServerLocaltime
        | HostAction::GetManagementInterface => None,
    }
}

/// Lines of VM operations, with the class of what they make.
fn vm_line(db: &Db, vm: &str, action: &VmAction) -> Option<(Line, Option<&'static str>)> {
    let kind = kind(db.obj("VM", vm));
    let made = |l: Line| Some((l, Some("VM")));
    let plain = |l: Line| Some((l, None));
    match action {
        VmAction::Start { .. } | VmAction::StartOn { .. } => plain(line(
            USER_RUN_VM,
            USER_FAILED_RUN_VM,
            "start",
            "{what} was started by {user}.",
        )),
        VmAction::Resume { .. } | VmAction::ResumeOn { .. } => plain(line(
            USER_RUN_VM,
            USER_FAILED_RUN_VM,
            "resume",
            "{what} was resumed by {user}.",
        )),
        VmAction::PoolMigrate { .. } => plain(line(
            VM_MIGRATION_DONE,
            VM_MIGRATION_FAILED,
            "migrate",
            "{what} was migrated by {user}.",
        )),
        VmAction::CancelMigration => plain(line(
            VM_MIGRATION_CANCELED,
            UNASSIGNED,
            "cancel the migration of",
            "The migration of {what} was cancelled by {user}.",
        )),
        VmAction::Pause => plain(line(
            USER_PAUSE_VM,
            USER_FAILED_PAUSE_VM,
            "pause",
            "{what} was paused by {user}.",
        )),
        VmAction::Unpause => plain(line(
            USER_RESUME_VM,
            USER_FAILED_RESUME_VM,
            "unpause",
            "{what} was unpaused by {user}.",
        )),
        VmAction::CleanShutdown | VmAction::ShutdownWithin { .. } => plain(line(
            USER_INITIATED_SHUTDOWN_VM,
            USER_FAILED_SHUTDOWN_VM,
            "shut down",
            "{what} was shut down by {user}.",
        )),
        VmAction::HardShutdown => plain(line(
            USER_STOP_VM,
            USER_FAILED_STOP_VM,
            "power off",
            "{what} was powered off by {user}.",
        )),
        VmAction::CleanReboot => plain(line(
            USER_REBOOT_VM,
            USER_FAILED_REBOOT_VM,
            "reboot",
            "{what} was rebooted by {user}.",
        )),
        VmAction::HardReboot => plain(line(
            USER_RESET_VM,
            USER_FAILED_RESET_VM,
            "reset",
            "{what} was reset by {user}.",
        )),
        VmAction::Suspend => plain(line(
            USER_SUSPEND_VM,
            USER_FAILED_SUSPEND_VM,
            "suspend",
            "{what} was suspended by {user}.",
        )),
        VmAction::Clone { .. } => made(line(
            USER_ADD_VM,
            USER_FAILED_ADD_VM,
            "clone",
            "{new} was cloned from {what} by {user}.",
        )),
        VmAction::Copy { .. } => made(line(
            USER_ADD_VM,
            USER_FAILED_ADD_VM,
            "copy",
            "{new} was copied from {what} by {user}.",
        )),
        VmAction::Snapshot { .. } => made(line(
            USER_CREATE_SNAPSHOT,
            USER_FAILED_CREATE_SNAPSHOT,
            "take a snapshot of",
            "{new} was taken by {user}.",
        )),
        VmAction::Revert => plain(line(
            USER_RESTORE_FROM_SNAPSHOT,
            USER_FAILED_RESTORE_FROM_SNAPSHOT,
            "revert to",
            "{what} was restored by {user}.",
        )),
        VmAction::Provision => plain(line(
            USER_ADD_DISK_TO_VM,
            USER_FAILED_ADD_DISK_TO_VM,
            "provision the disks of",
            "The disks of {what} were provisioned by {user}.",
        )),
        VmAction::Destroy => plain(removal(kind, REMOVED)),
        VmAction::Remove { keep_disks: true } => plain(removal(
            kind,
            "{what} was removed by {user}; its disks were kept.",
        )),
        VmAction::Remove { keep_disks: false } => plain(removal(
            kind,
            "{what} was removed with its disks by {user}.",
        )),
        VmAction::SetMemoryLimits { .. }
        | VmAction::SetMemoryDynamicRange { .. }
        | VmAction::SetMemoryStaticRange { .. }
        | VmAction::SetMemory { .. }
        | VmAction::SetVcpusNumberLive { .. }
        | VmAction::SetVcpusMax { .. }
        | VmAction::SetVcpusAtStartup { .. }
        | VmAction::PowerStateReset => plain(vm_update(kind)),
        VmAction::GetBootRecord
        | VmAction::AssertOperationValid { .. }
        | VmAction::UpdateAllowedOperations
        | VmAction::GetAllowedVbdDevices
        | VmAction::GetAllowedVifDevices
        | VmAction::GetPossibleHosts
        | VmAction::AssertCanBootHere { .. } => None,
    }
}

/// Removing a VM, template or snapshot.
fn removal(kind: Kind, done: &'static str) -> Line {
    let (ok, failed) = match kind {
        Kind::Vm => (USER_REMOVE_VM_FINISHED, USER_FAILED_REMOVE_VM),
        Kind::Template => (USER_REMOVE_VM_TEMPLATE, USER_FAILED_REMOVE_VM_TEMPLATE),
        Kind::Snapshot => (USER_REMOVE_SNAPSHOT, USER_FAILED_REMOVE_SNAPSHOT),
    };
    line(ok, failed, "remove", done)
}

fn vm_update(kind: Kind) -> Line {
    match kind {
        Kind::Template => line(
            USER_UPDATE_VM_TEMPLATE,
            USER_FAILED_UPDATE_VM_TEMPLATE,
            "update",
            UPDATED,
        ),
        Kind::Vm | Kind::Snapshot => line(USER_UPDATE_VM, USER_FAILED_UPDATE_VM, "update", UPDATED),
    }
}

/// Changes of fields through the generic setters.
fn update_line(db: &Db, class: &str, r: &str) -> Line {
    let (ok, failed) = match class {
        "VM" => return vm_update(kind(db.obj("VM", r))),
        "VDI" => (USER_UPDATE_DISK, USER_FAILED_UPDATE_DISK),
        "VBD" => (USER_UPDATE_VM_DISK, USER_FAILED_UPDATE_VM_DISK),
        "VIF" => (
            NETWORK_UPDATE_VM_INTERFACE,
            NETWORK_UPDATE_VM_INTERFACE_FAILED,
        ),
        "network" => (NETWORK_UPDATE_NETWORK, NETWORK_UPDATE_NETWORK_FAILED),
        "host" => (USER_UPDATE_VDS, USER_FAILED_UPDATE_VDS),
        "SR" => (
            USER_UPDATE_STORAGE_DOMAIN,
            USER_UPDATE_STORAGE_DOMAIN_FAILED,
        ),
        "pool" => (USER_UPDATE_STORAGE_POOL, USER_UPDATE_STORAGE_POOL_FAILED),
        "PIF" | "Bond" | "VLAN" => host_nets(),
        _ => (UNASSIGNED, UNASSIGNED),
    };
    line(ok, failed, "update", UPDATED)
}

fn host_nets() -> (u32, u32) {
    (
        NETWORK_UPDATE_NETWORK_TO_VDS_INTERFACE,
        NETWORK_UPDATE_NETWORK_TO_VDS_INTERFACE_FAILED,
    )
}

/// Destructors; a task's is bookkeeping, not recorded.
fn destroy_line(db: &Db, class: &str, r: &str) -> Option<Line> {
    let (ok, failed, verb, done) = match class {
        "task" => return None,
        "VM" => return Some(removal(kind(db.obj("VM", r)), REMOVED)),
        "VDI" => (
            USER_FINISHED_REMOVE_DISK,
            USER_FINISHED_FAILED_REMOVE_DISK,
            "remove",
            REMOVED,
        ),
        "VBD" => (
            USER_DETACH_DISK_FROM_VM,
            USER_FAILED_DETACH_DISK_FROM_VM,
            "detach",
            "{what} was detached by {user}.",
        ),
        "VIF" => (
            NETWORK_REMOVE_VM_INTERFACE,
            NETWORK_REMOVE_VM_INTERFACE_FAILED,
            "remove",
            REMOVED,
        ),
        "network" => (
            NETWORK_REMOVE_NETWORK,
            NETWORK_REMOVE_NETWORK_FAILED,
            "remove",
            REMOVED,
        ),
        "SR" => (
            USER_REMOVE_STORAGE_DOMAIN,
            USER_REMOVE_STORAGE_DOMAIN_FAILED,
            "destroy",
            "{what} was destroyed by {user}.",
        ),
        "Bond" => (
            NETWORK_REMOVE_BOND,
            NETWORK_REMOVE_BOND_FAILED,
            "remove",
            REMOVED,
        ),
        "PIF" | "VLAN" => {
            let (ok, failed) = host_nets();
            (ok, failed, "remove", REMOVED)
        }
        _ => (UNASSIGNED, UNASSIGNED, "remove", REMOVED),
    };
    Some(line(ok, failed, verb, done))
}

/// Constructors: the object is named by its fields before it exists; a disk or NIC by the VM
/// it is for.
fn creation(db: &Db, class: &str, fields: &[(String, Value)]) -> Plan {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let named = |noun: &str| match field("name_label") {
        "" => noun.to_string(),
        name => format!("{noun} {name}"),
    };
    let template = fields
        .iter()
        .any(|(n, v)| n == "is_a_template" && v.as_bool() == Some(true));
    let (line, what) = match class {
        "VM" if template => (
            line(
                USER_ADD_VM_TEMPLATE,
                USER_FAILED_ADD_VM_TEMPLATE,
                "create",
                CREATED,
            ),
            named("template"),
        ),
        "VM" => (
            line(USER_ADD_VM, USER_FAILED_ADD_VM, "create", CREATED),
            named("VM"),
        ),
        "VDI" => (
            line(USER_ADD_DISK, USER_FAILED_ADD_DISK, "create", CREATED),
            named("disk"),
        ),
        "VBD" => (
            line(
                USER_ATTACH_DISK_TO_VM,
                USER_FAILED_ATTACH_DISK_TO_VM,
                "attach a disk to",
                "{new} was attached by {user}.",
            ),
            describe(db, "VM", field("VM")),
        ),
        "VIF" => (
            line(
                NETWORK_ADD_VM_INTERFACE,
                NETWORK_ADD_VM_INTERFACE_FAILED,
                "add an interface to",
                "{new} was added by {user}.",
            ),
            describe(db, "VM", field("VM")),
        ),
        "network" => (
            line(
                NETWORK_ADD_NETWORK,
                NETWORK_ADD_NETWORK_FAILED,
                "create",
                CREATED,
            ),
            named("network"),
        ),
        _ => (
            line(UNASSIGNED, UNASSIGNED, "create", CREATED),
            named(noun(class)),
        ),
    };
    let mut subjects = Vec::new();
    if let Some(k) = Schema::get().class(class) {
        for (name, v) in fields {
            if let (Some(Type::Ref(target)), Some(r)) = (k.field(name).map(|f| &f.ty), v.as_str()) {
                involve(db, target, r, &mut subjects, 1);
            }
        }
    }
    Plan {
        line,
        what,
        made: Schema::get().class(class).map(|k| &*k.name),
        target: None,
        subjects,
    }
}

/// Lines of network operations, with the object each works on and the class of what it makes.
fn net_line(db: &Db, op: &NetOp) -> Option<(Line, &'static str, String, Option<&'static str>)> {
    let (ok, failed) = host_nets();
    let on_host = |verb, done| line(ok, failed, verb, done);
    Some(match op {
        NetOp::VifPlug { vif } => (
            line(
                NETWORK_ACTIVATE_VM_INTERFACE_SUCCESS,
                NETWORK_ACTIVATE_VM_INTERFACE_FAILURE,
                "plug",
                "{what} was plugged by {user}.",
            ),
            "VIF",
            vif.clone(),
            None,
        ),
        NetOp::VifUnplug { vif, .. } => (
            line(
                NETWORK_DEACTIVATE_VM_INTERFACE_SUCCESS,
                NETWORK_DEACTIVATE_VM_INTERFACE_FAILURE,
                "unplug",
                "{what} was unplugged by {user}.",
            ),
            "VIF",
            vif.clone(),
            None,
        ),
        NetOp::VifMove { vif, .. } => (
            line(
                NETWORK_UPDATE_VM_INTERFACE,
                NETWORK_UPDATE_VM_INTERFACE_FAILED,
                "move",
                "{what} was moved to another network by {user}.",
            ),
            "VIF",
            vif.clone(),
            None,
        ),
        NetOp::VifConfigureIp { vif, .. } => (
            line(
                NETWORK_UPDATE_VM_INTERFACE,
                NETWORK_UPDATE_VM_INTERFACE_FAILED,
                "configure the addresses of",
                "The addresses of {what} were configured by {user}.",
            ),
            "VIF",
            vif.clone(),
            None,
        ),
        NetOp::PifPlug { pif } => (
            on_host("plug", "{what} was plugged by {user}."),
            "PIF",
            pif.clone(),
            None,
        ),
        NetOp::PifUnplug { pif } => (
            on_host("unplug", "{what} was unplugged by {user}."),
            "PIF",
            pif.clone(),
            None,
        ),
        NetOp::PifForget { pif } => (
            on_host("forget", "{what} was forgotten by {user}."),
            "PIF",
            pif.clone(),
            None,
        ),
        NetOp::PifReconfigureIp { pif, .. } | NetOp::PifReconfigureIpv6 { pif, .. } => (
            on_host(
                "configure the addresses of",
                "The addresses of {what} were configured by {user}.",
            ),
            "PIF",
            pif.clone(),
            None,
        ),
        NetOp::PifSetProperty { pif, .. } => (
            on_host("set a property of", UPDATED),
            "PIF",
            pif.clone(),
            None,
        ),
        NetOp::BondSetProperty { bond, .. } => (
            on_host("set a property of", UPDATED),
            "Bond",
            bond.clone(),
            None,
        ),
        NetOp::PifScan { host } => (
            line(
                UNASSIGNED,
                UNASSIGNED,
                "scan the interfaces of",
                "The interfaces of {what} were scanned by {user}.",
            ),
            "host",
            host.clone(),
            None,
        ),
        NetOp::PifIntroduce { host, .. } => (
            on_host(
                "introduce an interface of",
                "{new} was introduced by {user}.",
            ),
            "host",
            host.clone(),
            Some("PIF"),
        ),
        NetOp::VlanCreate { pif, .. } => (
            on_host("create a VLAN on", CREATED),
            "PIF",
            pif.clone(),
            Some("VLAN"),
        ),
        NetOp::PoolCreateVlanFromPif { pif, .. } => (
            on_host(
                "create a VLAN on",
                "A VLAN on {what} was created by {user}.",
            ),
            "PIF",
            pif.clone(),
            None,
        ),
        NetOp::PifCreateVlan { host, .. } => (
            on_host("create a VLAN on", CREATED),
            "host",
            host.clone(),
            Some("PIF"),
        ),
        NetOp::PoolCreateVlan { .. } => (
            on_host(
                "create a VLAN on",
                "A VLAN on {what} was created by {user}.",
            ),
            "pool",
            db.all("pool").next()?.r.to_string(),
            None,
        ),
        NetOp::BondCreate { network, .. } => (
            on_host("create a bond on", CREATED),
            "network",
            network.clone(),
            Some("Bond"),
        ),
    })
}

fn vdi_line(action: &VdiAction) -> Line {
    match action {
        VdiAction::Clone => line(
            USER_COPIED_DISK,
            USER_FAILED_COPY_DISK,
            "clone",
            "{new} was cloned from {what} by {user}.",
        ),
        VdiAction::Copy { .. } => line(
            USER_COPIED_DISK,
            USER_FAILED_COPY_DISK,
            "copy",
            "{new} was copied from {what} by {user}.",
        ),
        VdiAction::Snapshot => line(
            USER_CREATE_SNAPSHOT,
            USER_FAILED_CREATE_SNAPSHOT,
            "take a snapshot of",
            "A snapshot of {what} was taken by {user}.",
        ),
        VdiAction::Resize { .. } => line(
            USER_EXTEND_DISK_SIZE_SUCCESS,
            USER_EXTEND_DISK_SIZE_FAILURE,
            "resize",
            "{what} was resized by {user}.",
        ),
    }
}

fn vbd_line(action: &VbdAction) -> Line {
    match action {
        VbdAction::Plug => line(
            USER_HOTPLUG_DISK,
            USER_FAILED_HOTPLUG_DISK,
            "plug",
            "{what} was plugged by {user}.",
        ),
        VbdAction::Unplug => line(
            USER_HOTUNPLUG_DISK,
            USER_FAILED_HOTUNPLUG_DISK,
            "unplug",
            "{what} was unplugged by {user}.",
        ),
        VbdAction::Insert { .. } => line(
            USER_CHANGE_DISK_VM,
            USER_FAILED_CHANGE_DISK_VM,
            "insert media into",
            "Media were inserted into {what} by {user}.",
        ),
        VbdAction::Eject => line(
            USER_EJECT_VM_DISK,
            USER_FAILED_CHANGE_DISK_VM,
            "eject",
            "{what} was ejected by {user}.",
        ),
    }
}

/// SR operations; those that make an SR name it by its spec, as it has no record yet.
fn sr_plan(db: &Db, sr: &str, action: &SrAction) -> Option<Plan> {
    let (line, spec) = match action {
        SrAction::GetSupportedTypes => return None,
        SrAction::Scan => (
            line(
                UNASSIGNED,
                UNASSIGNED,
                "scan",
                "{what} was scanned by {user}.",
            ),
            None,
        ),
        SrAction::Forget => (
            line(
                USER_DETACH_STORAGE_DOMAIN_FROM_POOL,
                USER_DETACH_STORAGE_DOMAIN_FROM_POOL_FAILED,
                "forget",
                "{what} was forgotten by {user}.",
            ),
            None,
        ),
        SrAction::Create { spec, .. } => (
            line(
                USER_ADD_STORAGE_DOMAIN,
                USER_ADD_STORAGE_DOMAIN_FAILED,
                "create",
                CREATED,
            ),
            Some(spec),
        ),
        SrAction::Introduce { spec } => (
            line(
                USER_ADD_STORAGE_DOMAIN,
                USER_ADD_STORAGE_DOMAIN_FAILED,
                "introduce",
                "{new} was introduced by {user}.",
            ),
            Some(spec),
        ),
    };
    let mut subjects = Vec::new();
    let target = spec.is_none().then(|| ("SR".to_string(), sr.to_string()));
    let what = match spec {
        Some(spec) => {
            if let SrAction::Create { host, .. } = action {
                involve(db, "host", host, &mut subjects, 1);
            }
            format!("{} {}", noun("SR"), spec.name_label)
        }
        None => {
            involve(db, "SR", sr, &mut subjects, 1);
            describe(db, "SR", sr)
        }
    };
    Some(Plan {
        line,
        what,
        made: spec.map(|_| "SR"),
        target,
        subjects,
    })
}

fn pbd_line(action: &PbdAction) -> Line {
    match action {
        PbdAction::Plug => line(
            USER_ACTIVATED_STORAGE_DOMAIN,
            USER_ACTIVATE_STORAGE_DOMAIN_FAILED,
            "plug",
            "{what} was plugged by {user}.",
        ),
        PbdAction::Unplug => line(
            USER_DEACTIVATED_STORAGE_DOMAIN,
            USER_DEACTIVATE_STORAGE_DOMAIN_FAILED,
            "unplug",
            "{what} was unplugged by {user}.",
        ),
    }
}

/// Objects an operation names besides the one it works on.
fn other_refs(op: &Op) -> Vec<(&'static str, &str)> {
    match op {
        Op::Vm { action, .. } => match action {
            VmAction::StartOn { host, .. } | VmAction::ResumeOn { host, .. } => {
                vec![("host", host.as_str())]
            }
            VmAction::Copy { sr, .. } => vec![("SR", sr.as_str())],
            _ => vec![],
        },
        Op::Vdi {
            action: VdiAction::Copy { sr },
            ..
        } => vec![("SR", sr.as_str())],
        Op::Vbd {
            action: VbdAction::Insert { vdi },
            ..
        } => vec![("VDI", vdi.as_str())],
        Op::Net(n) => match n {
            NetOp::VifMove { network, .. }
            | NetOp::VlanCreate { network, .. }
            | NetOp::PifCreateVlan { network, .. }
            | NetOp::PoolCreateVlan { network, .. }
            | NetOp::PoolCreateVlanFromPif { network, .. } => vec![("network", network.as_str())],
            NetOp::BondCreate { members, .. } => {
                members.iter().map(|m| ("PIF", m.as_str())).collect()
            }
            _ => vec![],
        },
        _ => vec![],
    }
}

impl Plan {
    /// The entry of the operation that ended with `outcome`, run by `user` (as task `task`).
    pub(crate) fn finish(
        mut self,
        db: &Db,
        user: &str,
        outcome: &Result<Reply>,
        correlation_id: Option<String>,
        task: Option<&str>,
    ) -> Draft {
        let (severity, code, message) = match outcome {
            Ok(reply) => {
                let new = match (self.made, reply) {
                    (Some(class), Reply::Ref(r)) => {
                        let mut made = Vec::new();
                        involve(db, class, r, &mut made, 0);
                        made.retain(|s| !self.subjects.contains(s));
                        self.subjects.splice(0..0, made);
                        describe(db, class, r)
                    }
                    _ => String::new(),
                };
                let text = fill(
                    self.line.done,
                    &[("what", &self.what), ("new", &new), ("user", user)],
                );
                (Severity::Normal, self.line.ok, text)
            }
            Err(e) => {
                let error = e.to_string();
                let text = format!(
                    "Failed to {} {} (User: {user}): {}.",
                    self.line.verb,
                    self.what,
                    error.trim_end_matches('.')
                );
                (Severity::Error, self.line.failed, text)
            }
        };
        if let Some((class, r)) = &self.target {
            involve(db, class, r, &mut self.subjects, 2);
        }
        if let Some(task) = task.and_then(|t| db.obj("task", t)) {
            self.subjects
                .push(("task".to_string(), task.uuid().to_string()));
        }
        Draft {
            severity,
            code,
            message,
            user: user.to_string(),
            correlation_id,
            subjects: self.subjects,
        }
    }
}
