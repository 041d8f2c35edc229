//! The `vms` collection: VMs as oVirt shows them, their adds, updates and removal, their
//! actions, and the hand-off to their sub-collections.

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{Obj, Op, VmAction};
use drover_model::{Value, NULL_REF};

use crate::api::{
    collection, date, entity, no_such_resource, parse_bool, parse_int, with_links, Api, Req, Resp,
    ZERO_ID,
};
use crate::coll::templates::TemplateSubject;
use crate::coll::{clusters, diskattachments, nics, permissions, snapshots, tags, vmdevices};
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::model::{self, COMMENT_KEY};
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// `other_config` key of the template a VM was made from.
pub const TEMPLATE_KEY: &str = "ovirt_template";
/// `other_config` key of a VM's operating system type.
pub const OS_KEY: &str = "ovirt_os";
/// `other_config` key of a VM's type (server, desktop, high_performance).
pub const TYPE_KEY: &str = "ovirt_vm_type";
/// `other_config` key of the reason given for a VM's last stop.
pub const STOP_REASON_KEY: &str = "ovirt_stop_reason";

/// Actions of a VM.
const ACTIONS: &[&str] = &[
    "cancelmigration",
    "clone",
    "commitsnapshot",
    "migrate",
    "previewsnapshot",
    "reboot",
    "reset",
    "shutdown",
    "start",
    "stop",
    "suspend",
    "ticket",
    "undosnapshot",
];

/// Sub-collections of a VM.
const SUBS: &[&str] = &[
    "cdroms",
    "diskattachments",
    "graphicsconsoles",
    "nics",
    "permissions",
    "reporteddevices",
    "snapshots",
    "statistics",
    "tags",
];

/// Handles `/vms/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req),
        ([], &Method::POST) => add(api, req).await,
        ([id], &Method::GET) => {
            let vm = vm(api, id)?;
            Resp::ok(api.engine.read(|db| render(db, &vm))?)
        }
        ([id], &Method::PUT) => update(api, req, id).await,
        ([id], &Method::DELETE) => remove(api, req, id).await,
        ([id, sub, tail @ ..], _) if SUBS.contains(sub) => {
            let vm = vm(api, id)?;
            match *sub {
                "cdroms" => vmdevices::cdroms(api, req, &vm, tail).await,
                "diskattachments" => diskattachments::handle(api, req, &vm, tail).await,
                "graphicsconsoles" => vmdevices::graphicsconsoles(api, req, &vm, tail).await,
                "nics" => nics::handle(api, req, &vm, tail).await,
                "permissions" => permissions::for_object(api, req, "VM", &vm, tail).await,
                "reporteddevices" => vmdevices::reporteddevices(api, req, &vm, tail).await,
                "snapshots" => snapshots::handle(api, req, &vm, tail).await,
                "statistics" => vmdevices::statistics(api, req, &vm, tail).await,
                _ => tags::for_object(api, req, "VM", &vm, tail).await,
            }
        }
        ([id, action], &Method::POST) if ACTIONS.contains(action) => {
            let vm = vm(api, id)?;
            act(api, req, &vm, action).await
        }
        _ => Err(no_such_resource(req, "/vms", rest)),
    }
}

/// The VM with an oVirt id.
pub fn vm(api: &Api, id: &str) -> ApiResult<std::sync::Arc<Obj>> {
    let vm = api.by_id("VM", id, "VM")?;
    if model::is_vm(&vm) {
        Ok(vm)
    } else {
        Err(ApiError::not_found("VM", id))
    }
}

fn list(api: &Api, req: &Req) -> ApiResult<Resp> {
    let target = search::object_type("vms")
        .ok_or_else(|| ApiError::Internal("no Vms search type".into()))?;
    let nodes = api.engine.read(|db| {
        let subjects: Vec<VmSubject> = db
            .all("VM")
            .filter(|v| model::is_vm(v))
            .map(|v| VmSubject { vm: v, db })
            .collect();
        listing::select(req, target, subjects).map(|list| {
            list.iter()
                .map(|s| render(db, s.vm))
                .collect::<ApiResult<Vec<_>>>()
        })
    })??;
    Resp::ok(collection("vms", nodes))
}

/// A VM as oVirt shows it.
pub fn render(db: &Db, vm: &Obj) -> ApiResult<Node> {
    let id = vm.uuid();
    let base = format!("vms/{id}");
    let metrics = db.get("VM_metrics", vm.str("metrics"));
    let status = model::vm_status(vm);
    let mut node = entity("vm", "vms", id)
        .text("name", vm.str("name_label"))
        .text("description", vm.str("name_description"))
        .text("comment", vm.other(COMMENT_KEY).unwrap_or(""));
    node = with_links(node, &base, ACTIONS, SUBS);
    node = node
        .child(cpu(vm))
        .opt_child(metrics.map(|m| {
            Node::leaf(
                "creation_time",
                date(vmdevices::secs(m.get("install_time"))),
            )
        }))
        .text("delete_protected", is_delete_protected(vm))
        .child(Node::new("display").text("type", "vnc"))
        .child(
            Node::new("high_availability")
                .text("enabled", vm.str("ha_restart_priority") == "restart")
                .text("priority", vm.int("order")),
        )
        .text("memory", vm.int("memory_static_max"))
        .child(
            Node::new("memory_policy")
                .text("guaranteed", vm.int("memory_dynamic_min"))
                .text("max", vm.int("memory_static_max")),
        )
        .child(os(vm))
        .child(Node::new("placement_policy").text("affinity", "migratable"));
    if status != "down" {
        if let Some(m) = metrics {
            node = node.text("start_time", date(vmdevices::secs(m.get("start_time"))));
        }
    }
    node = node
        .text("stateless", false)
        .text("status", status)
        .text("stop_reason", vm.other(STOP_REASON_KEY).unwrap_or(""))
        .text("type", vm.other(TYPE_KEY).unwrap_or("server"))
        .child(entity("cluster", "clusters", &model::cluster_id(db)));
    let host = vm.str("resident_on");
    if status != "down" && host != NULL_REF {
        if let Some(h) = db.get("host", host) {
            node = node.child(entity("host", "hosts", h.uuid()));
        }
    }
    let template = vm.other(TEMPLATE_KEY).unwrap_or(ZERO_ID);
    Ok(node
        .child(entity("original_template", "templates", template))
        .child(entity("template", "templates", template)))
}

/// A VM's CPU: its topology from `VCPUs_max` and `platform:cores-per-socket`.
pub fn cpu(vm: &Obj) -> Node {
    let vcpus = vm.int("VCPUs_max").max(1);
    let cores = vm
        .get("platform")
        .map_get("cores-per-socket")
        .and_then(|v| v.as_str())
        .and_then(|c| c.parse::<i64>().ok())
        .filter(|c| *c >= 1 && vcpus % c == 0)
        .unwrap_or(1);
    Node::new("cpu").text("architecture", "x86_64").child(
        Node::new("topology")
            .text("cores", cores)
            .text("sockets", vcpus / cores)
            .text("threads", 1),
    )
}

/// A VM's `<os>`: type, boot devices and direct kernel boot.
pub fn os(vm: &Obj) -> Node {
    let order = vm
        .get("HVM_boot_params")
        .map_get("order")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let mut devices = Node::list("devices");
    for c in order.chars() {
        let d = match c {
            'c' => "hd",
            'd' => "cdrom",
            'n' => "network",
            _ => continue,
        };
        devices.push(Node::leaf("device", d));
    }
    let mut os = Node::new("os").child(Node::new("boot").child(devices));
    for (elem, field) in [
        ("cmdline", "PV_args"),
        ("initrd", "PV_ramdisk"),
        ("kernel", "PV_kernel"),
    ] {
        if !vm.str(field).is_empty() {
            os = os.text(elem, vm.str(field));
        }
    }
    os.text("type", vm.other(OS_KEY).unwrap_or("other"))
}

fn is_delete_protected(vm: &Obj) -> bool {
    vm.get("blocked_operations").map_get("destroy").is_some()
}

fn check_name(api: &Api, name: &str, except: Option<&str>) -> ApiResult<()> {
    if !model::VM_NAMES.accepts(name) {
        return Err(ApiError::BadRequest(format!(
            "Cannot add or update VM. The name \"{name}\" contains special characters. Only \
             upper-case and lower-case letters, numbers, '_', '-' and '.' are allowed."
        )));
    }
    let taken = api.engine.read(|db| {
        db.all("VM")
            .any(|v| model::is_vm(v) && v.str("name_label") == name && Some(&*v.r) != except)
    });
    if taken {
        return Err(ApiError::Conflict(format!(
            "Cannot add or update VM. The VM name \"{name}\" is already in use by another VM."
        )));
    }
    Ok(())
}

/// The template a `<template>` reference names: `None` for `Blank`.
pub fn template_of(api: &Api, node: &Node) -> ApiResult<Option<std::sync::Arc<Obj>>> {
    match (node.id_at("template"), node.text_at("template/name")) {
        (Some(ZERO_ID), _) | (None, Some("Blank")) => Ok(None),
        (Some(id), _) => {
            let t = api.by_id("VM", id, "Template")?;
            if model::is_template(&t) {
                Ok(Some(t))
            } else {
                Err(ApiError::not_found("Template", id))
            }
        }
        (None, Some(name)) => api
            .engine
            .read(|db| {
                db.all("VM")
                    .find(|v| model::is_template(v) && v.str("name_label") == name)
                    .cloned()
            })
            .map(Some)
            .ok_or_else(|| ApiError::NotFound(format!("Entity not found: Template: name={name}"))),
        (None, None) => Err(ApiError::missing("Vm", "template.id|name")),
    }
}

async fn add(api: &Api, req: &Req) -> ApiResult<Resp> {
    let body = req.body("vm")?;
    let name = body
        .text_at("name")
        .ok_or_else(|| ApiError::missing("Vm", "name"))?
        .to_string();
    api.engine.read(|db| clusters::check_ref(db, &body, "Vm"))?;
    let template = template_of(api, &body)?;
    check_name(api, &name, None)?;
    let full_copy = req.flag("clone")?.unwrap_or(false);
    let r = new_vm(api, req, template.as_deref(), &name, full_copy, &[]).await?;
    if let Err(e) = apply(api, req, &r, &body).await {
        api.discard_vm(req, &r).await;
        return Err(e);
    }
    let node = api.engine.read(|db| {
        db.get("VM", &r)
            .ok_or_else(|| ApiError::Internal("the new VM vanished".into()))
            .and_then(|v| render(db, v))
    })?;
    Resp::created(node)
}

/// Makes a VM named `name`: from `template` thin (a clone over its disks, provisioned as the
/// template says) or, with `full_copy`, a full copy; without a template an empty VM of
/// `Blank`. `marks` are further `other_config` keys the VM gets. A VM half made is removed.
pub async fn new_vm(
    api: &Api,
    req: &Req,
    template: Option<&Obj>,
    name: &str,
    full_copy: bool,
    marks: &[(&str, Option<&str>)],
) -> ApiResult<String> {
    match template {
        None => create_blank(api, req, name, marks).await,
        Some(t) => from_template(api, req, t, name, full_copy, marks).await,
    }
}

/// A VM of the `Blank` template: 1 GiB, one vCPU, booting from its disk, no devices.
async fn create_blank(
    api: &Api,
    req: &Req,
    name: &str,
    marks: &[(&str, Option<&str>)],
) -> ApiResult<String> {
    const GIB: i64 = 1 << 30;
    let mut other_config = Value::string_map([(TEMPLATE_KEY, ZERO_ID)]);
    for (k, v) in marks {
        if let Some(v) = v {
            other_config.map_insert(Value::str(*k), Value::str(*v));
        }
    }
    api.op_ref(
        req,
        Op::Create {
            class: "VM".into(),
            fields: vec![
                ("name_label".into(), Value::str(name)),
                ("memory_static_max".into(), Value::Int(GIB)),
                ("memory_dynamic_max".into(), Value::Int(GIB)),
                ("memory_dynamic_min".into(), Value::Int(GIB)),
                ("memory_static_min".into(), Value::Int(GIB)),
                ("VCPUs_max".into(), Value::Int(1)),
                ("VCPUs_at_startup".into(), Value::Int(1)),
                ("HVM_boot_policy".into(), Value::str("BIOS order")),
                (
                    "HVM_boot_params".into(),
                    Value::string_map([("order", "c")]),
                ),
                ("actions_after_shutdown".into(), Value::str("destroy")),
                ("actions_after_reboot".into(), Value::str("restart")),
                ("actions_after_crash".into(), Value::str("destroy")),
                ("other_config".into(), other_config),
            ],
        },
    )
    .await
}

/// A VM from a template: thin (a clone over the template's disks) or a full copy.
async fn from_template(
    api: &Api,
    req: &Req,
    t: &Obj,
    name: &str,
    full_copy: bool,
    marks: &[(&str, Option<&str>)],
) -> ApiResult<String> {
    let action = if full_copy {
        VmAction::Copy {
            name: name.into(),
            sr: NULL_REF.into(),
        }
    } else {
        VmAction::Clone { name: name.into() }
    };
    let r = api
        .op_ref(
            req,
            Op::Vm {
                vm: t.r.to_string(),
                action,
            },
        )
        .await?;
    let provisioned = async {
        if t.other("disks").is_some_and(|d| d.contains("<disk")) {
            api.vm_op(req, &r, VmAction::Provision).await?;
        }
        api.set(req, "VM", &r, "is_a_template", Value::Bool(false))
            .await?;
        let mut keys = vec![(TEMPLATE_KEY, Some(t.uuid())), ("default_template", None)];
        keys.extend_from_slice(marks);
        api.set_other(req, "VM", &r, &keys).await
    }
    .await;
    if let Err(e) = provisioned {
        api.discard_vm(req, &r).await;
        return Err(e);
    }
    Ok(r)
}

async fn update(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let vm = vm(api, id)?;
    let body = req.body("vm")?;
    if let Some(name) = body.text_at("name") {
        if name != vm.str("name_label") {
            check_name(api, name, Some(&vm.r))?;
        }
    }
    apply(api, req, &vm.r, &body).await?;
    let node = api.engine.read(|db| {
        db.get("VM", &vm.r)
            .ok_or_else(|| ApiError::not_found("VM", id))
            .and_then(|v| render(db, v))
    })?;
    Resp::ok(node)
}

/// Applies the settable parts of a `<vm>` (or `<template>`) document to a VM object.
pub async fn apply(api: &Api, req: &Req, r: &str, body: &Node) -> ApiResult<()> {
    let vm = api
        .obj("VM", r)
        .ok_or_else(|| ApiError::not_found("VM", r))?;
    if let Some(name) = body.text_at("name").filter(|n| *n != vm.str("name_label")) {
        api.set(req, "VM", r, "name_label", Value::str(name))
            .await?;
    }
    if let Some(d) = body
        .at("description")
        .map(|n| n.text.as_deref().unwrap_or(""))
    {
        api.set(req, "VM", r, "name_description", Value::str(d))
            .await?;
    }
    let mut others: Vec<(&str, Option<&str>)> = Vec::new();
    if let Some(c) = body.at("comment") {
        others.push((COMMENT_KEY, Some(c.text.as_deref().unwrap_or(""))));
    }
    if let Some(t) = body.text_at("os/type") {
        others.push((OS_KEY, Some(t)));
    }
    if let Some(t) = body.text_at("type") {
        if !matches!(t, "server" | "desktop" | "high_performance") {
            return Err(ApiError::BadRequest(format!("\"{t}\" is not a VM type")));
        }
        others.push((TYPE_KEY, Some(t)));
    }
    if !others.is_empty() {
        api.set_other(req, "VM", r, &others).await?;
    }
    apply_memory(api, req, &vm, body).await?;
    apply_cpu(api, req, &vm, body).await?;
    apply_os(api, req, r, body).await?;
    if let Some(ha) = body.at("high_availability") {
        if let Some(e) = ha.text_at("enabled") {
            let on = parse_bool(e)?;
            api.set(
                req,
                "VM",
                r,
                "ha_restart_priority",
                Value::str(if on { "restart" } else { "" }),
            )
            .await?;
            api.set(req, "VM", r, "ha_always_run", Value::Bool(on))
                .await?;
        }
        if let Some(p) = ha.text_at("priority") {
            api.set(req, "VM", r, "order", Value::Int(parse_int("priority", p)?))
                .await?;
        }
    }
    if let Some(p) = body.text_at("delete_protected") {
        let mut blocked = vm.get("blocked_operations").clone();
        blocked.map_remove(&Value::str("destroy"));
        if parse_bool(p)? {
            blocked.map_insert(Value::str("destroy"), Value::str("delete_protected"));
        }
        api.set(req, "VM", r, "blocked_operations", blocked).await?;
    }
    Ok(())
}

async fn apply_memory(api: &Api, req: &Req, vm: &Obj, body: &Node) -> ApiResult<()> {
    let memory = body
        .text_at("memory")
        .map(|m| parse_int("memory", m))
        .transpose()?;
    let guaranteed = body
        .text_at("memory_policy/guaranteed")
        .map(|m| parse_int("memory_policy.guaranteed", m))
        .transpose()?;
    let max = body
        .text_at("memory_policy/max")
        .map(|m| parse_int("memory_policy.max", m))
        .transpose()?;
    if memory.is_none() && guaranteed.is_none() && max.is_none() {
        return Ok(());
    }
    let memory = memory.unwrap_or(vm.int("memory_dynamic_max"));
    let static_max = max.unwrap_or(memory).max(memory);
    let dynamic_min = guaranteed.unwrap_or(memory).min(memory);
    if memory <= 0 || dynamic_min <= 0 {
        return Err(ApiError::BadRequest("memory must be positive".into()));
    }
    if guaranteed.is_some_and(|g| g > memory) {
        return Err(ApiError::BadRequest(
            "Cannot add or update VM. The guaranteed memory must not exceed the VM's memory."
                .into(),
        ));
    }
    api.vm_op(
        req,
        &vm.r,
        VmAction::SetMemoryLimits {
            static_min: dynamic_min.min(vm.int("memory_static_min")).max(1),
            static_max,
            dynamic_min,
            dynamic_max: memory,
        },
    )
    .await
    .map(|_| ())
}

async fn apply_cpu(api: &Api, req: &Req, vm: &Obj, body: &Node) -> ApiResult<()> {
    let Some(topology) = body.at("cpu/topology") else {
        return Ok(());
    };
    let part = |name: &str| {
        topology
            .text_at(name)
            .map(|v| parse_int(&format!("cpu.topology.{name}"), v))
            .transpose()
    };
    let current = cpu(vm);
    let now = |name: &str| {
        current
            .text_at(&format!("topology/{name}"))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(1)
    };
    let sockets = part("sockets")?.unwrap_or_else(|| now("sockets"));
    let cores = part("cores")?.unwrap_or_else(|| now("cores"));
    let threads = part("threads")?.unwrap_or(1);
    if sockets < 1 || cores < 1 || threads < 1 {
        return Err(ApiError::BadRequest(
            "the CPU topology needs at least one socket, core and thread".into(),
        ));
    }
    let vcpus = sockets * cores * threads;
    let r = vm.r.to_string();
    let halted = vm.str("power_state") == "Halted";
    if halted && vcpus > vm.int("VCPUs_max") {
        api.vm_op(req, &r, VmAction::SetVcpusMax { n: vcpus })
            .await?;
        api.vm_op(req, &r, VmAction::SetVcpusAtStartup { n: vcpus })
            .await?;
    } else if halted {
        api.vm_op(req, &r, VmAction::SetVcpusAtStartup { n: vcpus })
            .await?;
        api.vm_op(req, &r, VmAction::SetVcpusMax { n: vcpus })
            .await?;
    } else if vcpus != vm.int("VCPUs_max") {
        return Err(ApiError::Conflict(
            "Cannot update the CPU topology of a running VM; stop it first.".into(),
        ));
    }
    let mut platform = vm.get("platform").clone();
    platform.map_remove(&Value::str("cores-per-socket"));
    platform.map_insert(
        Value::str("cores-per-socket"),
        Value::str((cores * threads).to_string()),
    );
    api.set(req, "VM", &r, "platform", platform).await
}

async fn apply_os(api: &Api, req: &Req, r: &str, body: &Node) -> ApiResult<()> {
    let Some(os) = body.at("os") else {
        return Ok(());
    };
    for (elem, field) in [
        ("kernel", "PV_kernel"),
        ("initrd", "PV_ramdisk"),
        ("cmdline", "PV_args"),
    ] {
        if let Some(n) = os.get(elem) {
            api.set(
                req,
                "VM",
                r,
                field,
                Value::str(n.text.as_deref().unwrap_or("").trim()),
            )
            .await?;
        }
    }
    if let Some(devices) = os.at("boot/devices") {
        let mut order = String::new();
        for d in devices.all("device") {
            let c = match d.text.as_deref().map(str::trim) {
                Some("hd") => 'c',
                Some("cdrom") => 'd',
                Some("network") => 'n',
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "\"{}\" is not a boot device; use hd, cdrom or network",
                        other.unwrap_or("")
                    )))
                }
            };
            if !order.contains(c) {
                order.push(c);
            }
        }
        let vm = api
            .obj("VM", r)
            .ok_or_else(|| ApiError::not_found("VM", r))?;
        let mut params = vm.get("HVM_boot_params").clone();
        params.map_remove(&Value::str("order"));
        params.map_insert(Value::str("order"), Value::str(order));
        api.set(req, "VM", r, "HVM_boot_params", params).await?;
    }
    Ok(())
}

async fn remove(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let vm = vm(api, id)?;
    if is_delete_protected(&vm) {
        return Err(ApiError::Conflict(
            "Cannot remove VM. Delete protection is enabled. In order to delete, disable Delete \
             protection first."
                .into(),
        ));
    }
    let keep_disks = req.flag("detach_only")?.unwrap_or(false);
    api.vm_op(req, &vm.r, VmAction::Remove { keep_disks })
        .await?;
    Resp::removed()
}

async fn act(api: &Api, req: &Req, vm: &Obj, action: &str) -> ApiResult<Resp> {
    let body = req.body("action")?;
    let r = vm.r.to_string();
    let op = |action: VmAction| Op::Vm {
        vm: r.clone(),
        action,
    };
    match action {
        "start" => start(api, req, vm, &body).await,
        "stop" => {
            api.action(req, &body, op(VmAction::HardShutdown), "VM stop")
                .await
        }
        "shutdown" => {
            api.action(req, &body, op(VmAction::CleanShutdown), "VM shutdown")
                .await
        }
        "reboot" => {
            api.action(req, &body, op(VmAction::CleanReboot), "VM reboot")
                .await
        }
        "reset" => {
            api.action(req, &body, op(VmAction::HardReboot), "VM reset")
                .await
        }
        "suspend" => {
            api.action(req, &body, op(VmAction::Suspend), "VM suspend")
                .await
        }
        "clone" => {
            let name = body
                .text_at("vm/name")
                .ok_or_else(|| ApiError::missing("Action", "vm.name"))?;
            check_name(api, name, None)?;
            api.action(
                req,
                &body,
                op(VmAction::Copy {
                    name: name.into(),
                    sr: NULL_REF.into(),
                }),
                "VM clone",
            )
            .await
        }
        "migrate" => migrate(api, req, vm, &body).await,
        "cancelmigration" => {
            let migrating = vm
                .get("current_operations")
                .as_map()
                .is_some_and(|m| m.iter().any(|(_, op)| op.as_str() == Some("pool_migrate")));
            if !migrating {
                return Err(ApiError::Conflict(
                    "Cannot cancel migration for VM. VM is not being migrated.".into(),
                ));
            }
            api.action(
                req,
                &body,
                op(VmAction::CancelMigration),
                "Cancelling migration",
            )
            .await
        }
        "previewsnapshot" => snapshots::preview(api, req, vm, &body).await,
        "commitsnapshot" => snapshots::commit(api, req, vm, &body).await,
        "undosnapshot" => snapshots::undo(api, req, vm, &body).await,
        _ => vmdevices::ticket(api, req, vm, &body).await,
    }
}

/// `start`: resumes a suspended VM, unpauses a paused one, and starts a halted one — with
/// run-once settings (`<vm><os>` kernel, initrd, cmdline, boot devices) that apply to this
/// run only, and a cloud-init drive when `use_initialization` is set.
async fn start(api: &Api, req: &Req, vm: &Obj, body: &Node) -> ApiResult<Resp> {
    let r = vm.r.to_string();
    let paused = body
        .text_at("pause")
        .map(parse_bool)
        .transpose()?
        .unwrap_or(false);
    let action = match vm.str("power_state") {
        "Suspended" => VmAction::Resume {
            paused,
            force: false,
        },
        "Paused" => VmAction::Unpause,
        "Running" => return Err(ApiError::Conflict("Cannot run VM. VM is running.".into())),
        _ => VmAction::Start {
            paused,
            force: false,
        },
    };
    let starting = matches!(action, VmAction::Start { .. });
    if starting
        && body
            .text_at("use_initialization")
            .map(parse_bool)
            .transpose()?
            .unwrap_or(false)
    {
        if let Some(init) = body.at("vm/initialization") {
            vmdevices::attach_initialization(api, req, vm, init).await?;
        }
    }
    let run_once = body.at("vm").filter(|v| v.get("os").is_some() && starting);
    let saved = vm.clone();
    if let Some(once) = run_once {
        apply_os(api, req, &r, once).await?;
    }
    let outcome = api
        .action(
            req,
            body,
            Op::Vm {
                vm: r.clone(),
                action,
            },
            "VM start",
        )
        .await;
    if run_once.is_some() {
        for field in ["PV_kernel", "PV_ramdisk", "PV_args", "HVM_boot_params"] {
            api.set(req, "VM", &r, field, saved.get(field).clone())
                .await?;
        }
    }
    outcome
}

/// `migrate`: a live migration (the core's `VM.pool_migrate`) to the host given, or to the
/// one the scheduler picks.
async fn migrate(api: &Api, req: &Req, vm: &Obj, body: &Node) -> ApiResult<Resp> {
    if !matches!(vm.str("power_state"), "Running" | "Paused") {
        return Err(ApiError::Conflict(
            "Cannot migrate VM. VM is not running.".into(),
        ));
    }
    let target = match body.id_at("host").or_else(|| body.text_at("host/name")) {
        Some(t) => {
            let host = match body.id_at("host") {
                Some(id) => api.by_id("host", id, "Host")?,
                None => api
                    .engine
                    .read(|db| db.all("host").find(|h| h.str("name_label") == t).cloned())
                    .ok_or_else(|| ApiError::NotFound(format!("Host {t} not found")))?,
            };
            if *host.r == *vm.str("resident_on") {
                return Err(ApiError::Conflict(
                    "Cannot migrate VM. VM is already running on the destination host.".into(),
                ));
            }
            Some(host.r.to_string())
        }
        None => None,
    };
    let op = Op::Vm {
        vm: vm.r.to_string(),
        action: VmAction::PoolMigrate { host: target },
    };
    api.action(req, body, op, "Migrating VM").await
}

/// A VM as the search language sees it.
pub struct VmSubject<'a> {
    /// The VM.
    pub vm: &'a Obj,
    /// The working set it lives in.
    pub db: &'a Db,
}

impl Subject for VmSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let vm = self.vm;
        let text = |s: &str| vec![FieldValue::Text(s.to_string())];
        let num = |n: i64| vec![FieldValue::Number(n as f64)];
        match field {
            "name" => text(vm.str("name_label")),
            "id" => text(vm.uuid()),
            "description" => text(vm.str("name_description")),
            "comment" => text(vm.other(COMMENT_KEY).unwrap_or("")),
            "status" => text(model::vm_status(vm)),
            "memory" => num(vm.int("memory_static_max") >> 20),
            "guaranteed_memory" => num(vm.int("memory_dynamic_min") >> 20),
            "vcpus" => num(vm.int("VCPUs_max")),
            "cluster" => text(&model::cluster_name(self.db)),
            "datacenter" => text(&model::datacenter_name(self.db)),
            "os" => text(vm.other(OS_KEY).unwrap_or("other")),
            "type" => text(vm.other(TYPE_KEY).unwrap_or("server")),
            "architecture" => text("x86_64"),
            "on_host" => self
                .host()
                .map(|h| text(h.str("name_label")))
                .unwrap_or_default(),
            "tag" => tags::tag_values(vm),
            "ip" | "address" => self.ips(),
            "creationdate" => self
                .metrics()
                .map(|m| vec![FieldValue::Date(vmdevices::secs(m.get("install_time")))])
                .unwrap_or_default(),
            "uptime" => self
                .metrics()
                .filter(|_| vm.str("power_state") == "Running")
                .map(|m| num(drover_core::now() - vmdevices::secs(m.get("start_time"))))
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    fn related(&self, object: &str) -> Vec<Box<dyn Subject + '_>> {
        match object {
            "Hosts" => self
                .host()
                .map(|h| Box::new(NamedSubject(h)) as Box<dyn Subject>)
                .into_iter()
                .collect(),
            "Templates" => {
                let id = self.vm.other(TEMPLATE_KEY).unwrap_or(ZERO_ID);
                let tpl = self.db.by_uuid("VM", id).map(|t| &**t);
                if tpl.is_none() && id != ZERO_ID {
                    return Vec::new();
                }
                vec![Box::new(TemplateSubject { tpl, db: self.db })]
            }
            _ => Vec::new(),
        }
    }
}

impl<'a> VmSubject<'a> {
    fn host(&self) -> Option<&'a Obj> {
        if self.vm.str("power_state") == "Halted" {
            return None;
        }
        self.db
            .get("host", self.vm.str("resident_on"))
            .map(|h| &**h)
    }

    fn metrics(&self) -> Option<&'a Obj> {
        self.db
            .get("VM_metrics", self.vm.str("metrics"))
            .map(|m| &**m)
    }

    fn ips(&self) -> Vec<FieldValue> {
        self.db
            .get("VM_guest_metrics", self.vm.str("guest_metrics"))
            .and_then(|g| g.get("networks").as_map())
            .unwrap_or(&[])
            .iter()
            .filter_map(|(_, v)| v.as_str())
            .map(|ip| FieldValue::Text(ip.to_string()))
            .collect()
    }
}

/// Any object searched by its name, description and id (the far side of a join).
pub struct NamedSubject<'a>(pub &'a Obj);

impl Subject for NamedSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let o = self.0;
        let s = match field {
            "name" => o.str("name_label"),
            "description" => o.str("name_description"),
            "id" => o.uuid(),
            "address" if &*o.class.name == "host" => o.str("address"),
            _ => return Vec::new(),
        };
        vec![FieldValue::Text(s.to_string())]
    }
}
