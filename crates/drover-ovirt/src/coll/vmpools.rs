//! The `vmpools` collection: VM pools, sets of like VMs made thin from one template that
//! users take VMs from.
//!
//! XenAPI has no object for such a set (`VM_appliance` is not part of the engine's model), so
//! a VM pool is kept in the pool object's `other_config` as `ovirt_vmpool:<id>` = JSON of its
//! settings, and its VMs carry `ovirt_vmpool` = the VM pool's id (and `ovirt_vmpool_user` =
//! the id of the user it was handed to). Its size is the number of its VMs.

use std::sync::Arc;

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{Obj, VmAction};
use serde::{Deserialize, Serialize};

use crate::api::{
    collection, entity, no_such_resource, parse_bool, parse_int, pool_records, with_links, Api,
    Req, Resp, ZERO_ID,
};
use crate::coll::{clusters, vms};
use crate::coll::{permissions, users};
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::model;
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// `other_config` key prefix (on the pool) of a VM pool's settings.
pub const VMPOOL_KEY: &str = "ovirt_vmpool:";
/// `other_config` key (on a VM) of the VM pool it belongs to.
pub const MEMBER_KEY: &str = "ovirt_vmpool";
/// `other_config` key (on a VM of a VM pool) of the user it was handed to.
pub const ASSIGNED_KEY: &str = "ovirt_vmpool_user";

/// Actions of a VM pool.
const ACTIONS: &[&str] = &["allocatevm"];
/// Sub-collections of a VM pool.
const SUBS: &[&str] = &["permissions"];

/// The settings of a VM pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PoolDef {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    comment: String,
    #[serde(rename = "type")]
    kind: String,
    max_user_vms: i64,
    prestarted_vms: i64,
    /// The template's id ([`ZERO_ID`] for `Blank`).
    template: String,
    #[serde(default)]
    stateful: bool,
}

/// A VM pool: its id and settings.
#[derive(Debug, Clone)]
pub struct VmPool {
    id: String,
    def: PoolDef,
}

/// Handles `/vmpools/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req),
        ([], &Method::POST) => add(api, req).await,
        ([id], &Method::GET) => {
            let p = pool_record(api, id)?;
            Resp::ok(api.engine.read(|db| render(db, &p)))
        }
        ([id], &Method::PUT) => update(api, req, id).await,
        ([id], &Method::DELETE) => remove(api, req, id).await,
        ([id, "allocatevm"], &Method::POST) => allocate(api, req, id).await,
        ([id, "permissions", tail @ ..], _) => {
            pool_record(api, id)?;
            let target = api
                .engine
                .read(|db| permissions::vm_pool_target(db, id))
                .ok_or_else(|| ApiError::not_found("VM pool", id))?;
            permissions::serve(api, req, &target, tail).await
        }
        _ => Err(no_such_resource(req, "/vmpools", rest)),
    }
}

/// The VM pool with an id.
pub fn pool_record(api: &Api, id: &str) -> ApiResult<VmPool> {
    api.engine
        .read(|db| all(db).into_iter().find(|p| p.id == id))
        .ok_or_else(|| ApiError::not_found("VM pool", id))
}

/// Every VM pool, by name.
fn all(db: &Db) -> Vec<VmPool> {
    let mut list: Vec<VmPool> = pool_records(db, VMPOOL_KEY)
        .into_iter()
        .map(|(id, def)| VmPool { id, def })
        .collect();
    list.sort_by(|a, b| a.def.name.cmp(&b.def.name));
    list
}

/// The VMs of a VM pool, by name.
fn members<'a>(db: &'a Db, id: &str) -> Vec<&'a Obj> {
    let mut list: Vec<&Obj> = db
        .all("VM")
        .filter(|v| model::is_vm(v) && v.other(MEMBER_KEY) == Some(id))
        .map(|v| &**v)
        .collect();
    list.sort_by_key(|v| natural_key(v.str("name_label")));
    list
}

/// Sorts `pool-2` before `pool-10`.
fn natural_key(name: &str) -> (String, u64) {
    match name.rsplit_once('-') {
        Some((stem, n)) if n.parse::<u64>().is_ok() => (stem.to_string(), n.parse().unwrap_or(0)),
        _ => (name.to_string(), 0),
    }
}

fn assigned(vm: &Obj) -> Option<&str> {
    vm.other(ASSIGNED_KEY).filter(|u| !u.is_empty())
}

fn list(api: &Api, req: &Req) -> ApiResult<Resp> {
    let target = search::object_type("pools")
        .ok_or_else(|| ApiError::Internal("no Pools search type".into()))?;
    let nodes = api.engine.read(|db| {
        let pools = all(db);
        let subjects: Vec<PoolSubject> =
            pools.iter().map(|p| PoolSubject { pool: p, db }).collect();
        listing::select(req, target, subjects)
            .map(|list| list.iter().map(|s| render(db, s.pool)).collect::<Vec<_>>())
    })?;
    Resp::ok(collection("vm_pools", nodes))
}

/// A VM pool as oVirt shows it.
fn render(db: &Db, p: &VmPool) -> Node {
    let node = entity("vm_pool", "vmpools", &p.id)
        .text("name", &p.def.name)
        .text("description", &p.def.description)
        .text("comment", &p.def.comment);
    with_links(node, &format!("vmpools/{}", p.id), ACTIONS, SUBS)
        .text("auto_storage_select", false)
        .text("max_user_vms", p.def.max_user_vms)
        .text("prestarted_vms", p.def.prestarted_vms)
        .text("size", members(db, &p.id).len())
        .text("stateful", p.def.stateful)
        .text("type", &p.def.kind)
        .text("use_latest_template_version", false)
        .child(entity("cluster", "clusters", &model::cluster_id(db)))
        .child(entity("template", "templates", &p.def.template))
}

fn check_name(api: &Api, name: &str, except: Option<&str>) -> ApiResult<()> {
    if !model::VM_NAMES.accepts(name) {
        return Err(ApiError::BadRequest(format!(
            "Cannot add or update VM-Pool. The name \"{name}\" contains special characters. \
             Only upper-case and lower-case letters, numbers, '_', '-' and '.' are allowed."
        )));
    }
    let taken = api.engine.read(|db| {
        all(db)
            .iter()
            .any(|p| p.def.name == name && Some(p.id.as_str()) != except)
    });
    if taken {
        return Err(ApiError::Conflict(format!(
            "Cannot add or update VM-Pool. The name \"{name}\" is already in use by another \
             VM-Pool."
        )));
    }
    Ok(())
}

/// An integer setting of a document, if given, at least `min`.
fn int_at(body: &Node, field: &str, min: i64) -> ApiResult<Option<i64>> {
    let Some(v) = body.text_at(field) else {
        return Ok(None);
    };
    let n = parse_int(field, v)?;
    if n < min {
        return Err(ApiError::BadRequest(format!(
            "Value \"{n}\" of \"{field}\" must be at least {min}"
        )));
    }
    Ok(Some(n))
}

fn kind_at(body: &Node) -> ApiResult<Option<String>> {
    match body.text_at("type") {
        None => Ok(None),
        Some(k @ ("automatic" | "manual")) => Ok(Some(k.to_string())),
        Some(other) => Err(ApiError::BadRequest(format!(
            "\"{other}\" is not a VM pool type; use automatic or manual"
        ))),
    }
}

fn check_prestarted(prestarted: i64, size: i64) -> ApiResult<()> {
    if prestarted > size {
        return Err(ApiError::BadRequest(format!(
            "Cannot add or update VM-Pool. The number of prestarted VMs ({prestarted}) exceeds \
             the number of VMs in the VM-Pool ({size})."
        )));
    }
    Ok(())
}

async fn add(api: &Api, req: &Req) -> ApiResult<Resp> {
    let body = req.body("vm_pool")?;
    let name = body
        .text_at("name")
        .ok_or_else(|| ApiError::missing("VmPool", "name"))?
        .to_string();
    api.engine
        .read(|db| clusters::check_ref(db, &body, "VmPool"))?;
    if body.get("template").is_none() {
        return Err(ApiError::missing("VmPool", "template.id|name"));
    }
    let template = vms::template_of(api, &body)?;
    check_name(api, &name, None)?;
    let size = int_at(&body, "size", 1)?.unwrap_or(1);
    let prestarted = int_at(&body, "prestarted_vms", 0)?.unwrap_or(0);
    check_prestarted(prestarted, size)?;
    let def = PoolDef {
        name,
        description: body.text_at("description").unwrap_or("").to_string(),
        comment: body.text_at("comment").unwrap_or("").to_string(),
        kind: kind_at(&body)?.unwrap_or_else(|| "automatic".into()),
        max_user_vms: int_at(&body, "max_user_vms", 1)?.unwrap_or(1),
        prestarted_vms: prestarted,
        template: template
            .as_ref()
            .map_or_else(|| ZERO_ID.to_string(), |t| t.uuid().to_string()),
        stateful: body
            .text_at("stateful")
            .map(parse_bool)
            .transpose()?
            .unwrap_or(false),
    };
    let p = VmPool {
        id: uuid::Uuid::new_v4().to_string(),
        def,
    };
    store(api, req, &p).await?;
    if let Err(e) = grow(api, req, &p, template.as_deref(), size as usize).await {
        let _ = drop_pool(api, req, &p).await;
        return Err(e);
    }
    keep_prestarted(api, req, &p).await?;
    Resp::created(api.engine.read(|db| render(db, &p)))
}

async fn update(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let mut p = pool_record(api, id)?;
    let body = req.body("vm_pool")?;
    if let Some(name) = body.text_at("name").filter(|n| *n != p.def.name) {
        check_name(api, name, Some(id))?;
        p.def.name = name.to_string();
    }
    for (field, slot) in [
        ("description", &mut p.def.description),
        ("comment", &mut p.def.comment),
    ] {
        if let Some(n) = body.get(field) {
            *slot = n.text.as_deref().unwrap_or("").trim().to_string();
        }
    }
    if let Some(k) = kind_at(&body)? {
        p.def.kind = k;
    }
    if let Some(m) = int_at(&body, "max_user_vms", 1)? {
        p.def.max_user_vms = m;
    }
    if let Some(s) = body.text_at("stateful") {
        p.def.stateful = parse_bool(s)?;
    }
    if let Some(n) = int_at(&body, "prestarted_vms", 0)? {
        p.def.prestarted_vms = n;
    }
    let current = api.engine.read(|db| members(db, id).len()) as i64;
    let size = int_at(&body, "size", 1)?.unwrap_or(current);
    check_prestarted(p.def.prestarted_vms, size)?;
    let template = if size > current {
        template_obj(api, &p)?
    } else {
        None
    };
    let doomed = if size < current {
        removable(api, &p, (current - size) as usize)?
    } else {
        Vec::new()
    };
    store(api, req, &p).await?;
    if size > current {
        grow(api, req, &p, template.as_deref(), (size - current) as usize).await?;
    }
    for r in doomed {
        remove_vm(api, req, &r).await?;
    }
    keep_prestarted(api, req, &p).await?;
    Resp::ok(api.engine.read(|db| render(db, &p)))
}

/// The template of a VM pool (`None` for `Blank`).
fn template_obj(api: &Api, p: &VmPool) -> ApiResult<Option<Arc<Obj>>> {
    if p.def.template == ZERO_ID {
        return Ok(None);
    }
    match api.by_id("VM", &p.def.template, "Template") {
        Ok(t) if model::is_template(&t) => Ok(Some(t)),
        _ => Err(ApiError::Conflict(format!(
            "Cannot add VMs to VM-Pool {}. Its template {} no longer exists.",
            p.def.name, p.def.template
        ))),
    }
}

async fn remove(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let p = pool_record(api, id)?;
    let vms: Vec<(String, String)> = api.engine.read(|db| {
        members(db, id)
            .iter()
            .map(|v| (v.r.to_string(), v.str("power_state").to_string()))
            .collect()
    });
    if vms.iter().any(|(_, state)| state != "Halted") {
        return Err(ApiError::Conflict(
            "Cannot remove VM-Pool. One or more VMs of the VM-Pool are running; stop them first."
                .into(),
        ));
    }
    for (r, _) in vms {
        remove_vm(api, req, &r).await?;
    }
    drop_pool(api, req, &p).await?;
    Resp::removed()
}

/// Removes a VM pool's record and the permissions given on it.
async fn drop_pool(api: &Api, req: &Req, p: &VmPool) -> ApiResult<()> {
    let mut keys = api.engine.read(|db| {
        model::pool(db)
            .map(|o| permissions::vm_pool_keys(o, &p.id))
            .unwrap_or_default()
    });
    keys.push(format!("{VMPOOL_KEY}{}", p.id));
    api.remove_pool_keys(req, &keys).await
}

async fn store(api: &Api, req: &Req, p: &VmPool) -> ApiResult<()> {
    api.store_pool_record(req, VMPOOL_KEY, &p.id, &p.def).await
}

/// The next `count` free names `<name>-<n>`.
fn free_names(taken: &[String], stem: &str, count: usize) -> Vec<String> {
    (1..)
        .map(|i| format!("{stem}-{i}"))
        .filter(|n| !taken.contains(n))
        .take(count)
        .collect()
}

/// Adds `count` VMs to a VM pool, made from its template.
async fn grow(
    api: &Api,
    req: &Req,
    p: &VmPool,
    template: Option<&Obj>,
    count: usize,
) -> ApiResult<()> {
    let taken: Vec<String> = api.engine.read(|db| {
        db.all("VM")
            .filter(|v| model::is_vm(v))
            .map(|v| v.str("name_label").to_string())
            .collect()
    });
    let mut made = Vec::new();
    for name in free_names(&taken, &p.def.name, count) {
        match new_vm(api, req, template, &name, &p.id).await {
            Ok(r) => made.push(r),
            Err(e) => {
                for r in made {
                    let _ = remove_vm(api, req, &r).await;
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `count` VMs of a VM pool that are down and handed to no one, the last first, to remove.
fn removable(api: &Api, p: &VmPool, count: usize) -> ApiResult<Vec<String>> {
    let free: Vec<String> = api.engine.read(|db| {
        members(db, &p.id)
            .iter()
            .rev()
            .filter(|v| v.str("power_state") == "Halted" && assigned(v).is_none())
            .map(|v| v.r.to_string())
            .collect()
    });
    if free.len() < count {
        return Err(ApiError::Conflict(format!(
            "Cannot decrease the size of VM-Pool {} by {count}. Only {} of its VMs are down and \
             not handed to a user.",
            p.def.name,
            free.len()
        )));
    }
    Ok(free.into_iter().take(count).collect())
}

async fn remove_vm(api: &Api, req: &Req, r: &str) -> ApiResult<()> {
    api.vm_op(req, r, VmAction::Remove { keep_disks: false })
        .await
        .map(|_| ())
}

/// A VM of a VM pool: a thin clone of the template, or an empty VM of `Blank`.
async fn new_vm(
    api: &Api,
    req: &Req,
    template: Option<&Obj>,
    name: &str,
    pool: &str,
) -> ApiResult<String> {
    vms::new_vm(api, req, template, name, false, &[(MEMBER_KEY, Some(pool))]).await
}

/// Starts VMs of a VM pool that no one was handed until `prestarted_vms` of them run.
async fn keep_prestarted(api: &Api, req: &Req, p: &VmPool) -> ApiResult<()> {
    let (running, halted): (usize, Vec<String>) = api.engine.read(|db| {
        let free: Vec<&Obj> = members(db, &p.id)
            .into_iter()
            .filter(|v| assigned(v).is_none())
            .collect();
        let running = free
            .iter()
            .filter(|v| v.str("power_state") == "Running")
            .count();
        let halted = free
            .iter()
            .filter(|v| v.str("power_state") == "Halted")
            .map(|v| v.r.to_string())
            .collect();
        (running, halted)
    });
    let wanted = usize::try_from(p.def.prestarted_vms).unwrap_or(0);
    for r in halted.into_iter().take(wanted.saturating_sub(running)) {
        api.vm_op(
            req,
            &r,
            VmAction::Start {
                paused: false,
                force: false,
            },
        )
        .await?;
    }
    Ok(())
}

/// `allocatevm`: hands a free VM of the pool to the caller — a running one if there is one —
/// and starts it if it is not running.
async fn allocate(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    req.body("action")?;
    let p = pool_record(api, id)?;
    let user = users::id_of(api, &req.caller.user).ok_or_else(|| {
        ApiError::Forbidden(format!("the caller {} has no user", req.caller.user))
    })?;
    let (mine, pick) = api.engine.read(|db| {
        let vms = members(db, id);
        let mine = vms
            .iter()
            .filter(|v| assigned(v) == Some(user.as_str()))
            .count();
        let free: Vec<&&Obj> = vms.iter().filter(|v| assigned(v).is_none()).collect();
        let pick = free
            .iter()
            .find(|v| v.str("power_state") == "Running")
            .or_else(|| free.first())
            .map(|v| {
                (
                    v.r.to_string(),
                    v.uuid().to_string(),
                    v.str("power_state").to_string(),
                )
            });
        (mine, pick)
    });
    if i64::try_from(mine).unwrap_or(i64::MAX) >= p.def.max_user_vms {
        return Err(ApiError::Conflict(format!(
            "Cannot allocate and run VM from VM-Pool. The user already has the maximum number \
             of VMs ({}) of this VM-Pool.",
            p.def.max_user_vms
        )));
    }
    let Some((r, vm_id, state)) = pick else {
        return Err(ApiError::Conflict(
            "Cannot allocate and run VM from VM-Pool. There are no available VMs in the VM-Pool."
                .into(),
        ));
    };
    api.set_other(req, "VM", &r, &[(ASSIGNED_KEY, Some(&user))])
        .await?;
    let action = match state.as_str() {
        "Running" => None,
        "Paused" => Some(VmAction::Unpause),
        "Suspended" => Some(VmAction::Resume {
            paused: false,
            force: false,
        }),
        _ => Some(VmAction::Start {
            paused: false,
            force: false,
        }),
    };
    if let Some(action) = action {
        if let Err(e) = api.vm_op(req, &r, action).await {
            let _ = api.set_other(req, "VM", &r, &[(ASSIGNED_KEY, None)]).await;
            return Err(e);
        }
    }
    keep_prestarted(api, req, &p).await?;
    Resp::ok(
        Node::new("action")
            .text("status", "complete")
            .child(entity("vm", "vms", &vm_id)),
    )
}

/// A VM pool as the search language sees it.
struct PoolSubject<'a> {
    pool: &'a VmPool,
    db: &'a Db,
}

impl Subject for PoolSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let p = self.pool;
        let text = |s: &str| vec![FieldValue::Text(s.to_string())];
        let count = |f: &dyn Fn(&Obj) -> bool| {
            let n = members(self.db, &p.id).into_iter().filter(|v| f(v)).count();
            vec![FieldValue::Number(n as f64)]
        };
        match field {
            "name" => text(&p.def.name),
            "description" => text(&p.def.description),
            "comment" => text(&p.def.comment),
            "id" => text(&p.id),
            "type" => text(&p.def.kind),
            "cluster" => text(&model::cluster_name(self.db)),
            "datacenter" => text(&model::datacenter_name(self.db)),
            "architecture" => text("x86_64"),
            "assigned_vm_count" => count(&|v| assigned(v).is_some()),
            "running_vm_count" => count(&|v| v.str("power_state") == "Running"),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_new_vms() {
        let taken = vec!["web-1".to_string(), "web-3".to_string()];
        assert_eq!(
            free_names(&taken, "web", 3),
            vec!["web-2", "web-4", "web-5"]
        );
        assert!(free_names(&taken, "web", 0).is_empty());
    }

    #[test]
    fn natural_order() {
        assert!(natural_key("p-2") < natural_key("p-10"));
        assert_eq!(natural_key("plain"), ("plain".to_string(), 0));
    }

    #[test]
    fn settings_round_trip() {
        let def = PoolDef {
            name: "p".into(),
            description: String::new(),
            comment: String::new(),
            kind: "manual".into(),
            max_user_vms: 2,
            prestarted_vms: 1,
            template: ZERO_ID.into(),
            stateful: false,
        };
        let json = serde_json::to_string(&def).expect("json");
        assert!(json.contains("\"type\":\"manual\""));
        assert_eq!(serde_json::from_str::<PoolDef>(&json).expect("back"), def);
        assert!(check_prestarted(2, 1).is_err());
    }
}
