//! The `templates` collection: `Blank` and every XenAPI template, templates made from a down
//! VM (a full copy of it and its disks), their updates and removal, and their disk attachments,
//! NICs, permissions and tags.

use std::sync::Arc;

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{Obj, Op, VmAction};
use drover_model::{Value, NULL_REF};

use crate::api::{collection, date, entity, no_such_resource, with_links, Api, Req, Resp, ZERO_ID};
use crate::coll::vmdevices::secs;
use crate::coll::vms::{self, NamedSubject, OS_KEY, STOP_REASON_KEY, TEMPLATE_KEY, TYPE_KEY};
use crate::coll::{diskattachments, nics, permissions, snapshots, tags, vmdevices};
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::model::{self, COMMENT_KEY};
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// Template `other_config` key: when the template was made (unix seconds).
pub const CREATED_KEY: &str = "ovirt_creation_time";

/// Sub-collections of a template.
const SUBS: &[&str] = &["diskattachments", "nics", "permissions", "tags"];

/// Memory of the `Blank` template: 1 GiB.
const BLANK_MEMORY: i64 = 1 << 30;

/// The creation time oVirt gives its `Blank` template (2008-04-01).
const BLANK_CREATED: i64 = 1_207_008_000;

/// Keys of a VM's `other_config` that say something of the VM, not of a template made from it.
const VM_ONLY_KEYS: &[&str] = &[
    TEMPLATE_KEY,
    STOP_REASON_KEY,
    snapshots::PREVIEW_KEY,
    snapshots::PREVIEW_UNDO_KEY,
    "last_shutdown_reason",
    "last_shutdown_initiator",
    "last_shutdown_time",
];

/// Handles `/templates/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req),
        ([], &Method::POST) => add(api, req).await,
        ([ZERO_ID], &Method::GET) => Resp::ok(api.engine.read(render_blank)),
        ([ZERO_ID, sub], &Method::GET) if SUBS.contains(sub) => {
            let name = match *sub {
                "diskattachments" => "disk_attachments",
                "nics" => "nics",
                "permissions" => "permissions",
                _ => "tags",
            };
            Resp::ok(collection(name, []))
        }
        ([ZERO_ID, ..], _) => Err(ApiError::Conflict(
            "Cannot edit Template. The Blank template cannot be changed or removed.".into(),
        )),
        ([id], &Method::GET) => {
            let t = template(api, id)?;
            Resp::ok(api.engine.read(|db| render(db, &t)))
        }
        ([id], &Method::PUT) => update(api, req, id).await,
        ([id], &Method::DELETE) => remove(api, req, id).await,
        ([id, sub, tail @ ..], _) if SUBS.contains(sub) => {
            let t = template(api, id)?;
            match *sub {
                "diskattachments" => diskattachments::handle(api, req, &t, tail).await,
                "nics" => nics::handle(api, req, &t, tail).await,
                "permissions" => permissions::for_object(api, req, "VM", &t, tail).await,
                _ => tags::for_object(api, req, "VM", &t, tail).await,
            }
        }
        _ => Err(no_such_resource(req, "/templates", rest)),
    }
}

/// The template with an oVirt id (not `Blank`).
pub fn template(api: &Api, id: &str) -> ApiResult<Arc<Obj>> {
    let t = api.by_id("VM", id, "Template")?;
    if model::is_template(&t) {
        Ok(t)
    } else {
        Err(ApiError::not_found("Template", id))
    }
}

fn list(api: &Api, req: &Req) -> ApiResult<Resp> {
    let target = search::object_type("templates")
        .ok_or_else(|| ApiError::Internal("no Templates search type".into()))?;
    let nodes = api.engine.read(|db| {
        let subjects: Vec<TemplateSubject> = std::iter::once(TemplateSubject { tpl: None, db })
            .chain(
                db.all("VM")
                    .filter(|v| model::is_template(v))
                    .map(|v| TemplateSubject { tpl: Some(v), db }),
            )
            .collect();
        listing::select(req, target, subjects).map(|list| {
            list.iter()
                .map(|s| match s.tpl {
                    Some(t) => render(db, t),
                    None => render_blank(db),
                })
                .collect::<Vec<_>>()
        })
    })?;
    Resp::ok(collection("templates", nodes))
}

/// The parts every template shows, from its values.
struct Shape<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    comment: &'a str,
    created: i64,
    status: &'static str,
    kind: &'a str,
}

fn shell(db: &Db, s: &Shape<'_>) -> Node {
    let node = entity("template", "templates", s.id)
        .text("name", s.name)
        .text("description", s.description)
        .text("comment", s.comment);
    with_links(node, &format!("templates/{}", s.id), &[], SUBS)
        .text("creation_time", date(s.created))
        .text("status", s.status)
        .text("type", s.kind)
        .child(
            Node::new("version")
                .text("version_name", "base version")
                .text("version_number", 1)
                .child(entity("base_template", "templates", s.id)),
        )
        .child(entity("cluster", "clusters", &model::cluster_id(db)))
}

/// When a template was made.
fn created(db: &Db, t: &Obj) -> i64 {
    t.other(CREATED_KEY)
        .and_then(|c| c.parse().ok())
        .or_else(|| {
            db.get("VM_metrics", t.str("metrics"))
                .map(|m| secs(m.get("install_time")))
        })
        .unwrap_or(0)
}

/// A template as oVirt shows it.
pub fn render(db: &Db, t: &Obj) -> Node {
    let busy = t
        .get("current_operations")
        .as_map()
        .is_some_and(|m| !m.is_empty());
    shell(
        db,
        &Shape {
            id: t.uuid(),
            name: t.str("name_label"),
            description: t.str("name_description"),
            comment: t.other(COMMENT_KEY).unwrap_or(""),
            created: created(db, t),
            status: if busy { "locked" } else { "ok" },
            kind: t.other(TYPE_KEY).unwrap_or("server"),
        },
    )
    .child(vms::cpu(t))
    .text("delete_protected", false)
    .child(Node::new("display").text("type", "vnc"))
    .child(
        Node::new("high_availability")
            .text("enabled", t.str("ha_restart_priority") == "restart")
            .text("priority", t.int("order")),
    )
    .text("memory", t.int("memory_static_max"))
    .child(
        Node::new("memory_policy")
            .text("guaranteed", t.int("memory_dynamic_min"))
            .text("max", t.int("memory_static_max")),
    )
    .child(vms::os(t))
    .text("stateless", false)
}

/// The `Blank` template: 1 GiB, one vCPU, booting from a disk it does not have.
fn render_blank(db: &Db) -> Node {
    shell(
        db,
        &Shape {
            id: ZERO_ID,
            name: "Blank",
            description: "Blank template",
            comment: "",
            created: BLANK_CREATED,
            status: "ok",
            kind: "server",
        },
    )
    .child(
        Node::new("cpu").text("architecture", "x86_64").child(
            Node::new("topology")
                .text("cores", 1)
                .text("sockets", 1)
                .text("threads", 1),
        ),
    )
    .text("delete_protected", false)
    .child(Node::new("display").text("type", "vnc"))
    .child(
        Node::new("high_availability")
            .text("enabled", false)
            .text("priority", 0),
    )
    .text("memory", BLANK_MEMORY)
    .child(
        Node::new("memory_policy")
            .text("guaranteed", BLANK_MEMORY)
            .text("max", BLANK_MEMORY),
    )
    .child(
        Node::new("os")
            .child(Node::new("boot").child(Node::list("devices").text("device", "hd")))
            .text("type", "other"),
    )
    .text("stateless", false)
}

/// Refuses a template name oVirt would not take or another template has.
fn check_name(api: &Api, name: &str, except: Option<&str>) -> ApiResult<()> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(ApiError::BadRequest(format!(
            "Cannot add or update Template. The name \"{name}\" contains special characters. \
             Only upper-case and lower-case letters, numbers, '_', '-' and '.' are allowed."
        )));
    }
    let taken = name == "Blank"
        || api.engine.read(|db| {
            db.all("VM").any(|v| {
                model::is_template(v) && v.str("name_label") == name && Some(&*v.r) != except
            })
        });
    if taken {
        return Err(ApiError::Conflict(
            "Cannot add or update Template. The Template name is already in use, please choose \
             a unique name and try again."
                .into(),
        ));
    }
    Ok(())
}

/// The VM a `<template>` is made from.
fn source_vm(api: &Api, body: &Node) -> ApiResult<Arc<Obj>> {
    match (body.id_at("vm"), body.text_at("vm/name")) {
        (Some(id), _) => vms::vm(api, id),
        (None, Some(name)) => api
            .engine
            .read(|db| {
                db.all("VM")
                    .find(|v| model::is_vm(v) && v.str("name_label") == name)
                    .cloned()
            })
            .ok_or_else(|| ApiError::NotFound(format!("Entity not found: VM: name={name}"))),
        (None, None) => Err(ApiError::missing("Template", "vm.id|name")),
    }
}

/// Adds a template from a down VM: a full copy of the VM and its disks, made a template.
async fn add(api: &Api, req: &Req) -> ApiResult<Resp> {
    let body = req.body("template")?;
    let name = body
        .text_at("name")
        .ok_or_else(|| ApiError::missing("Template", "name"))?
        .to_string();
    let vm = source_vm(api, &body)?;
    check_name(api, &name, None)?;
    if vm.str("power_state") != "Halted" {
        return Err(ApiError::Conflict(
            "Cannot add Template. VM must be in Down status.".into(),
        ));
    }
    if vm.other(snapshots::PREVIEW_KEY).is_some() {
        return Err(ApiError::Conflict(
            "Cannot add Template. The VM is previewing a Snapshot.".into(),
        ));
    }
    let r = api
        .op_ref(
            req,
            Op::Vm {
                vm: vm.r.to_string(),
                action: VmAction::Copy {
                    name: name.clone(),
                    sr: NULL_REF.into(),
                },
            },
        )
        .await?;
    if let Err(e) = make_template(api, req, &r, &body).await {
        api.discard_vm(req, &r).await;
        return Err(e);
    }
    let node = api.engine.read(|db| {
        db.get("VM", &r)
            .map(|t| render(db, t))
            .ok_or_else(|| ApiError::Internal("the new template vanished".into()))
    })?;
    Resp::created(node)
}

/// Turns a copy of a VM into a template with the document's settings; the copy's cloud-init
/// drive (the source VM's identity) is not the template's.
async fn make_template(api: &Api, req: &Req, r: &str, body: &Node) -> ApiResult<()> {
    let drives: Vec<String> = api.engine.read(|db| {
        db.get("VM", r)
            .map(|t| {
                t.refs("VBDs")
                    .iter()
                    .filter_map(|b| db.get("VBD", b))
                    .filter(|b| b.other(vmdevices::CLOUD_INIT_KEY).is_some())
                    .map(|b| b.r.to_string())
                    .collect()
            })
            .unwrap_or_default()
    });
    for vbd in drives {
        api.destroy(req, "VBD", &vbd).await?;
    }
    api.set(req, "VM", r, "is_a_template", Value::Bool(true))
        .await?;
    let now = drover_core::now().to_string();
    let mut marks: Vec<(&str, Option<&str>)> = VM_ONLY_KEYS.iter().map(|k| (*k, None)).collect();
    marks.push((CREATED_KEY, Some(&now)));
    api.set_other(req, "VM", r, &marks).await?;
    vms::apply(api, req, r, body).await
}

async fn update(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let t = template(api, id)?;
    let body = req.body("template")?;
    if let Some(name) = body.text_at("name").filter(|n| *n != t.str("name_label")) {
        check_name(api, name, Some(&t.r))?;
    }
    vms::apply(api, req, &t.r, &body).await?;
    let node = api.engine.read(|db| {
        db.get("VM", &t.r)
            .map(|t| render(db, t))
            .ok_or_else(|| ApiError::not_found("Template", id))
    })?;
    Resp::ok(node)
}

/// The VMs made from a template.
fn children<'a>(db: &'a Db, id: &str) -> Vec<&'a Arc<Obj>> {
    db.all("VM")
        .filter(|v| model::is_vm(v) && v.other(TEMPLATE_KEY) == Some(id))
        .collect()
}

/// Removes a template with its disks, refused while VMs made from it exist.
async fn remove(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let t = template(api, id)?;
    let users: Vec<String> = api.engine.read(|db| {
        children(db, id)
            .iter()
            .map(|v| v.str("name_label").to_string())
            .collect()
    });
    if !users.is_empty() {
        return Err(ApiError::Conflict(format!(
            "Cannot delete Template. Template is being used by the following VMs: {}.",
            users.join(", ")
        )));
    }
    api.vm_op(req, &t.r, VmAction::Remove { keep_disks: false })
        .await?;
    Resp::removed()
}

/// A template as the search language sees it; `Blank` has no object.
pub struct TemplateSubject<'a> {
    /// The template, `None` for `Blank`.
    pub tpl: Option<&'a Obj>,
    /// The working set it lives in.
    pub db: &'a Db,
}

impl Subject for TemplateSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let text = |s: &str| vec![FieldValue::Text(s.to_string())];
        let Some(t) = self.tpl else {
            return match field {
                "name" => text("Blank"),
                "description" => text("Blank template"),
                "id" | "_vmt_id" => text(ZERO_ID),
                "mem" => vec![FieldValue::Number((BLANK_MEMORY >> 20) as f64)],
                "os" => text("other"),
                "status" => text("ok"),
                "architecture" => text("x86_64"),
                "version_name" => text("base version"),
                "creationdate" => vec![FieldValue::Date(BLANK_CREATED)],
                "sealed" => vec![FieldValue::Bool(false)],
                _ => Vec::new(),
            };
        };
        match field {
            "name" => text(t.str("name_label")),
            "description" => text(t.str("name_description")),
            "comment" => text(t.other(COMMENT_KEY).unwrap_or("")),
            "id" | "_vmt_id" => text(t.uuid()),
            "mem" => vec![FieldValue::Number(
                (t.int("memory_static_max") >> 20) as f64,
            )],
            "os" => text(t.other(OS_KEY).unwrap_or("other")),
            "status" => text(
                if t.get("current_operations")
                    .as_map()
                    .is_some_and(|m| !m.is_empty())
                {
                    "locked"
                } else {
                    "ok"
                },
            ),
            "cluster" => text(&model::cluster_name(self.db)),
            "datacenter" => text(&model::datacenter_name(self.db)),
            "architecture" => text("x86_64"),
            "version_name" => text("base version"),
            "creationdate" => vec![FieldValue::Date(created(self.db, t))],
            "childcount" => vec![FieldValue::Number(children(self.db, t.uuid()).len() as f64)],
            "sealed" => vec![FieldValue::Bool(false)],
            "tag" => tags::tag_values(t),
            _ => Vec::new(),
        }
    }

    fn related(&self, object: &str) -> Vec<Box<dyn Subject + '_>> {
        let id = self.tpl.map(|t| t.uuid()).unwrap_or(ZERO_ID);
        match object {
            "Vms" => children(self.db, id)
                .into_iter()
                .map(|v| Box::new(NamedSubject(v)) as Box<dyn Subject>)
                .collect(),
            _ => Vec::new(),
        }
    }
}
