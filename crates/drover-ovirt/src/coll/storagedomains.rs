//! The `storagedomains` collection: SRs as storage domains (data domains, and ISO domains for
//! ISO libraries), their adds (a directory SR on a host), updates and removal, their disks,
//! and the data center's attached domains with `activate`/`deactivate` (plugging and unplugging
//! the SR's PBDs).
//!
//! An SR with a PBD is attached to the data center unless oVirt detached it (`ovirt_detached`
//! in its `other_config`); an attached SR is `active` while a PBD is plugged and in
//! `maintenance` otherwise. A domain added through oVirt starts unattached and unplugged, as in
//! oVirt, until it is attached to the data center.

use std::sync::Arc;

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{Obj, Op, PbdAction, SrAction, SrSpec};
use drover_model::Value;

use crate::api::{collection, entity, limit, no_such_resource, with_links, Api, Req, Resp};
use crate::coll::{datacenters, disks, hosts, permissions};
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::model::{self, COMMENT_KEY};
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// `other_config` key of an SR that oVirt detached from the data center.
pub const DETACHED_KEY: &str = "ovirt_detached";

/// Sub-collections of a storage domain.
const SUBS: &[&str] = &["disks", "permissions"];

/// Actions of an attached storage domain.
const ATTACHED_ACTIONS: &[&str] = &["activate", "deactivate"];

/// Handles `/storagedomains/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req),
        ([], &Method::POST) => add(api, req).await,
        ([id], &Method::GET) => {
            let sr = domain(api, id)?;
            Resp::ok(api.engine.read(|db| render(db, &sr)))
        }
        ([id], &Method::PUT) => update(api, req, id).await,
        ([id], &Method::DELETE) => remove(api, req, id).await,
        ([id, "disks", tail @ ..], _) => {
            let sr = domain(api, id)?;
            domain_disks(api, req, &sr, tail).await
        }
        ([id, "permissions", tail @ ..], _) => {
            let sr = domain(api, id)?;
            permissions::for_object(api, req, "SR", &sr, tail).await
        }
        _ => Err(no_such_resource(req, "/storagedomains", rest)),
    }
}

/// The storage domain with an oVirt id.
pub fn domain(api: &Api, id: &str) -> ApiResult<Arc<Obj>> {
    api.by_id("SR", id, "StorageDomain")
}

/// Whether an SR is an ISO domain.
pub fn is_iso(sr: &Obj) -> bool {
    sr.str("content_type") == "iso"
}

/// The PBDs of an SR.
fn pbds<'a>(db: &'a Db, sr: &Obj) -> Vec<&'a Obj> {
    sr.refs("PBDs")
        .iter()
        .filter_map(|p| db.get("PBD", p))
        .map(|p| &**p)
        .collect()
}

/// Whether an SR is attached to the data center.
pub fn is_attached(db: &Db, sr: &Obj) -> bool {
    !pbds(db, sr).is_empty() && sr.other(DETACHED_KEY) != Some("true")
}

/// oVirt's status of a storage domain: `unattached`, `active` or `maintenance`.
pub fn status(db: &Db, sr: &Obj) -> &'static str {
    if !is_attached(db, sr) {
        "unattached"
    } else if pbds(db, sr).iter().any(|p| p.bool("currently_attached")) {
        "active"
    } else {
        "maintenance"
    }
}

/// The status as oVirt's messages write it.
fn status_word(status: &str) -> &'static str {
    match status {
        "active" => "Active",
        "maintenance" => "Maintenance",
        _ => "Unattached",
    }
}

/// oVirt's refusal of an action in a domain's present status.
fn illegal_status(action: &str, status: &str) -> ApiError {
    ApiError::Conflict(format!(
        "Cannot {action} Storage. The relevant Storage Domain's status is {}.",
        status_word(status)
    ))
}

/// oVirt's storage type of an SR: a directory SR is `localfs`, a shared directory `posixfs`.
fn storage_type(sr: &Obj) -> &'static str {
    match sr.str("type") {
        "shared" => "posixfs",
        _ => "localfs",
    }
}

/// Where an SR's storage is: its first PBD's `device_config` path (or location).
fn path(db: &Db, sr: &Obj) -> String {
    pbds(db, sr)
        .iter()
        .find_map(|p| {
            let config = p.get("device_config");
            ["path", "location"]
                .iter()
                .find_map(|k| config.map_get(k).and_then(|v| v.as_str()))
                .map(String::from)
        })
        .unwrap_or_default()
}

/// Whether an SR is the data center's master domain (the pool's default SR).
fn is_master(db: &Db, sr: &Obj) -> bool {
    model::pool(db).is_some_and(|p| p.str("default_SR") == &*sr.r)
}

/// Every SR, by name.
fn sorted(db: &Db) -> Vec<&Obj> {
    let mut srs: Vec<&Obj> = db.all("SR").map(|s| &**s).collect();
    srs.sort_by(|a, b| a.str("name_label").cmp(b.str("name_label")));
    srs
}

fn list(api: &Api, req: &Req) -> ApiResult<Resp> {
    let target = search::object_type("storagedomains")
        .ok_or_else(|| ApiError::Internal("no Storage search type".into()))?;
    let nodes = api.engine.read(|db| {
        listing::select(req, target, subjects(db))
            .map(|list| list.iter().map(|s| render(db, s.sr)).collect::<Vec<_>>())
    })?;
    Resp::ok(collection("storage_domains", nodes))
}

/// A storage domain's names, in its element `node`.
fn body_of(sr: &Obj, node: Node) -> Node {
    node.text("name", sr.str("name_label"))
        .text("description", sr.str("name_description"))
        .text("comment", sr.other(COMMENT_KEY).unwrap_or(""))
}

/// The figures and settings of a storage domain.
fn facts(db: &Db, sr: &Obj, node: Node) -> Node {
    let size = sr.int("physical_size");
    let used = sr.int("physical_utilisation");
    node.text("available", (size - used).max(0))
        .text("backup", false)
        .text("block_size", 512)
        .text("committed", sr.int("virtual_allocation"))
        .text("critical_space_action_blocker", 5)
        .text("discard_after_delete", false)
        .text("external_status", "ok")
        .text("master", is_master(db, sr))
        .text("status", status(db, sr))
        .child(
            Node::new("storage")
                .text("path", path(db, sr))
                .text("type", storage_type(sr)),
        )
        .text("storage_format", "v5")
        .text("supports_discard", false)
        .text("supports_discard_zeroes_data", false)
        .text("type", if is_iso(sr) { "iso" } else { "data" })
        .text("used", used)
        .text("warning_low_space_indicator", 10)
        .text("wipe_after_delete", false)
}

/// A storage domain as oVirt shows it.
pub fn render(db: &Db, sr: &Obj) -> Node {
    let id = sr.uuid();
    let node = body_of(sr, entity("storage_domain", "storagedomains", id));
    let mut node = facts(
        db,
        sr,
        with_links(node, &format!("storagedomains/{id}"), &[], SUBS),
    );
    if is_attached(db, sr) {
        node.push(Node::list("data_centers").child(datacenters::datacenter_ref(db)));
    }
    node
}

/// A storage domain as the data center lists it, with its actions.
fn render_attached(db: &Db, sr: &Obj) -> Node {
    let base = format!("datacenters/{}/storagedomains", model::datacenter_id(db));
    let id = sr.uuid();
    let node = body_of(sr, entity("storage_domain", &base, id));
    facts(
        db,
        sr,
        with_links(node, &format!("{base}/{id}"), ATTACHED_ACTIONS, &[]),
    )
    .child(datacenters::datacenter_ref(db))
    .child(Node::list("data_centers").child(datacenters::datacenter_ref(db)))
}

/// Checks a new name: valid, and not another domain's.
fn check_name(api: &Api, action: &str, name: &str, except: Option<&str>) -> ApiResult<()> {
    if !model::DOMAIN_NAMES.accepts(name) {
        return Err(ApiError::BadRequest(
            "Storage Domain name must be formed of 'a-z', 'A-Z', '0-9', '_' or '-' characters"
                .into(),
        ));
    }
    let taken = api.engine.read(|db| {
        db.all("SR")
            .any(|s| s.str("name_label") == name && Some(&*s.r) != except)
    });
    if taken {
        return Err(ApiError::Conflict(format!(
            "Cannot {action} Storage. The Storage Domain name is already in use."
        )));
    }
    Ok(())
}

/// What a new domain is: its SR driver type, from oVirt's domain and storage types.
fn sr_kind(domain_type: &str, storage: &str) -> ApiResult<&'static str> {
    if storage != "localfs" {
        return Err(ApiError::Conflict(format!(
            "Cannot add Storage. This engine makes storage domains of local directories only \
             (storage type localfs), not {storage}."
        )));
    }
    match domain_type {
        "data" => Ok("local"),
        "iso" => Ok("iso"),
        other => Err(ApiError::Conflict(format!(
            "Cannot add Storage. This engine keeps data and ISO domains only, not {other} domains."
        ))),
    }
}

async fn add(api: &Api, req: &Req) -> ApiResult<Resp> {
    let body = req.body("storage_domain")?;
    let name = body
        .text_at("name")
        .ok_or_else(|| ApiError::missing("StorageDomain", "name"))?;
    let domain_type = body
        .text_at("type")
        .ok_or_else(|| ApiError::missing("StorageDomain", "type"))?;
    let storage = body
        .text_at("storage/type")
        .ok_or_else(|| ApiError::missing("StorageDomain", "storage.type"))?;
    let host = hosts::host_of(api, &body, "StorageDomain")?;
    let kind = sr_kind(domain_type, storage)?;
    let dir = body
        .text_at("storage/path")
        .ok_or_else(|| ApiError::missing("StorageDomain", "storage.path"))?;
    check_name(api, "add", name, None)?;
    let sr = api
        .op_ref(
            req,
            Op::Sr {
                sr: String::new(),
                action: SrAction::Create {
                    host: host.r.to_string(),
                    device_config: vec![("path".into(), dir.into())],
                    spec: SrSpec {
                        name_label: name.into(),
                        name_description: body.text_at("description").unwrap_or("").into(),
                        kind: kind.into(),
                        ..SrSpec::default()
                    },
                },
            },
        )
        .await?;
    if let Err(e) = leave_unattached(api, req, &sr, body.text_at("comment")).await {
        let _ = api
            .op(
                req,
                Op::Sr {
                    sr: sr.clone(),
                    action: SrAction::Forget,
                },
            )
            .await;
        return Err(e);
    }
    let node = api.engine.read(|db| {
        db.get("SR", &sr)
            .map(|s| render(db, s))
            .ok_or_else(|| ApiError::Internal("the new storage domain vanished".into()))
    })?;
    Resp::created(node)
}

/// A new domain, as oVirt has it: unplugged and not attached to the data center yet.
async fn leave_unattached(api: &Api, req: &Req, sr: &str, comment: Option<&str>) -> ApiResult<()> {
    set_pbds(api, req, sr, PbdAction::Unplug).await?;
    api.set_other(
        req,
        "SR",
        sr,
        &[(DETACHED_KEY, Some("true")), (COMMENT_KEY, comment)],
    )
    .await
}

/// Plugs or unplugs every PBD of an SR that is not so yet, synchronously.
async fn set_pbds(api: &Api, req: &Req, sr: &str, action: PbdAction) -> ApiResult<()> {
    run_pbd_ops(api, req, pending(api, sr, &action), &action).await
}

/// Runs a PBD action on each of `pbds`, synchronously.
async fn run_pbd_ops(api: &Api, req: &Req, pbds: Vec<String>, action: &PbdAction) -> ApiResult<()> {
    for pbd in pbds {
        api.op(
            req,
            Op::Pbd {
                pbd,
                action: action.clone(),
            },
        )
        .await?;
    }
    Ok(())
}

/// The PBDs of an SR that an action would change.
fn pending(api: &Api, sr: &str, action: &PbdAction) -> Vec<String> {
    let plug = matches!(action, PbdAction::Plug);
    api.engine.read(|db| {
        db.get("SR", sr)
            .map(|s| {
                pbds(db, s)
                    .iter()
                    .filter(|p| p.bool("currently_attached") != plug)
                    .map(|p| p.r.to_string())
                    .collect()
            })
            .unwrap_or_default()
    })
}

async fn update(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let sr = domain(api, id)?;
    let body = req.body("storage_domain")?;
    let r = sr.r.to_string();
    if let Some(name) = body.text_at("name").filter(|n| *n != sr.str("name_label")) {
        check_name(api, "edit", name, Some(&r))?;
        api.set(req, "SR", &r, "name_label", Value::str(name))
            .await?;
    }
    api.update_description_comment(req, "SR", &sr, &body)
        .await?;
    Resp::ok(api.engine.read(|db| {
        db.get("SR", &r)
            .map(|s| render(db, s))
            .ok_or_else(|| ApiError::not_found("StorageDomain", id))
    })?)
}

/// `DELETE /storagedomains/{id}`: a domain that is not active leaves the engine; with
/// `format=true` its storage goes too (refused while it holds disks), otherwise the storage
/// stays as it is (oVirt's `destroy=true` removes the record only, like the plain removal).
async fn remove(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let sr = domain(api, id)?;
    let status = api.engine.read(|db| status(db, &sr));
    if status == "active" {
        return Err(illegal_status("remove", status));
    }
    let op = if req.flag("format")?.unwrap_or(false) {
        Op::Destroy {
            class: "SR".into(),
            r: sr.r.to_string(),
        }
    } else {
        Op::Sr {
            sr: sr.r.to_string(),
            action: SrAction::Forget,
        }
    };
    api.op(req, op).await?;
    Resp::removed()
}

/// Handles `/storagedomains/{id}/disks/...`: the disks on a domain; a disk added here goes
/// on this domain.
async fn domain_disks(api: &Api, req: &Req, sr: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => {
            let max = req.max()?;
            let nodes = api.engine.read(|db| {
                let mut vdis: Vec<&Obj> = sr
                    .refs("VDIs")
                    .iter()
                    .filter_map(|v| db.get("VDI", v))
                    .map(|v| &**v)
                    .filter(|v| disks::is_disk(v))
                    .collect();
                vdis.sort_by(|a, b| a.str("name_label").cmp(b.str("name_label")));
                vdis.into_iter()
                    .map(|v| disks::render(db, v))
                    .collect::<Vec<_>>()
            });
            Resp::ok(collection("disks", limit(nodes, max)))
        }
        ([], &Method::POST) => {
            let mut body = req.body("disk")?;
            body.children.retain(|c| c.name != "storage_domains");
            body.push(Node::list("storage_domains").child(entity(
                "storage_domain",
                "storagedomains",
                sr.uuid(),
            )));
            let vdi = disks::create(api, req, &body, "Disk").await?;
            let node = api.engine.read(|db| {
                db.get("VDI", &vdi)
                    .map(|v| disks::render(db, v))
                    .ok_or_else(|| ApiError::Internal("the new disk vanished".into()))
            })?;
            Resp::created(node)
        }
        ([disk], &Method::GET) => {
            let vdi = disks::disk(api, disk)?;
            if vdi.str("SR") != &*sr.r {
                return Err(ApiError::not_found("Disk", disk));
            }
            Resp::ok(api.engine.read(|db| disks::render(db, &vdi)))
        }
        _ => Err(no_such_resource(
            req,
            &format!("/storagedomains/{}/disks", sr.uuid()),
            rest,
        )),
    }
}

/// Handles `/datacenters/{id}/storagedomains/...`: the domains attached to the data center,
/// attaching (`POST`, which activates the domain) and detaching (`DELETE`, of a domain in
/// maintenance), and the `activate`/`deactivate` actions.
pub async fn attached(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    let dc = api.engine.read(model::datacenter_id);
    let base = format!("datacenters/{dc}/storagedomains");
    match (rest, &req.method) {
        ([], &Method::GET) => {
            let max = req.max()?;
            let nodes = api.engine.read(|db| {
                sorted(db)
                    .into_iter()
                    .filter(|s| is_attached(db, s))
                    .map(|s| render_attached(db, s))
                    .collect::<Vec<_>>()
            });
            Resp::ok(collection("storage_domains", limit(nodes, max)))
        }
        ([], &Method::POST) => attach(api, req).await,
        ([id], &Method::GET) => {
            let sr = attached_domain(api, id)?;
            Resp::ok(api.engine.read(|db| render_attached(db, &sr)))
        }
        ([id], &Method::DELETE) => detach(api, req, id).await,
        ([id, action], &Method::POST) if ATTACHED_ACTIONS.contains(action) => {
            let sr = attached_domain(api, id)?;
            let body = req.body("action")?;
            switch(api, req, &sr, &body, *action == "activate").await
        }
        _ => Err(no_such_resource(req, &format!("/{base}"), rest)),
    }
}

/// An attached domain by id; 404 for one that is not attached.
fn attached_domain(api: &Api, id: &str) -> ApiResult<Arc<Obj>> {
    let sr = domain(api, id)?;
    if api.engine.read(|db| is_attached(db, &sr)) {
        Ok(sr)
    } else {
        Err(ApiError::not_found("StorageDomain", id))
    }
}

/// The domain a `<storage_domain>` document names by id or name.
fn named_domain(api: &Api, body: &Node) -> ApiResult<Arc<Obj>> {
    match (
        body.get_attr("id").or_else(|| body.text_at("id")),
        body.text_at("name"),
    ) {
        (Some(id), _) => domain(api, id),
        (None, Some(name)) => api
            .engine
            .read(|db| db.all("SR").find(|s| s.str("name_label") == name).cloned())
            .ok_or_else(|| {
                ApiError::NotFound(format!("Entity not found: StorageDomain: name={name}"))
            }),
        (None, None) => Err(ApiError::missing("StorageDomain", "id|name")),
    }
}

async fn attach(api: &Api, req: &Req) -> ApiResult<Resp> {
    let body = req.body("storage_domain")?;
    let sr = named_domain(api, &body)?;
    let (attached, has_pbd) = api
        .engine
        .read(|db| (is_attached(db, &sr), !pbds(db, &sr).is_empty()));
    if attached {
        return Err(ApiError::Conflict(
            "Cannot attach Storage. The Storage Domain is already attached to the Data Center."
                .into(),
        ));
    }
    if !has_pbd {
        return Err(ApiError::Conflict(
            "Cannot attach Storage. The storage domain has no connection to a host (an SR \
             introduced without a PBD); create and plug its PBD first."
                .into(),
        ));
    }
    let r = sr.r.to_string();
    api.set_other(req, "SR", &r, &[(DETACHED_KEY, None)])
        .await?;
    set_pbds(api, req, &r, PbdAction::Plug).await?;
    let node = api.engine.read(|db| {
        db.get("SR", &r)
            .map(|s| render_attached(db, s))
            .ok_or_else(|| ApiError::not_found("StorageDomain", sr.uuid()))
    })?;
    Resp::created(node)
}

async fn detach(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let sr = domain(api, id)?;
    let status = api.engine.read(|db| status(db, &sr));
    match status {
        "unattached" => Err(ApiError::Conflict(
            "Storage Domain is already detached from the Data Center.".into(),
        )),
        "active" => Err(illegal_status("detach", status)),
        _ => {
            api.set_other(req, "SR", &sr.r, &[(DETACHED_KEY, Some("true"))])
                .await?;
            Resp::removed()
        }
    }
}

/// `activate` (plug the SR's PBDs) or `deactivate` (unplug them, refused while a running VM
/// uses one of its disks).
async fn switch(api: &Api, req: &Req, sr: &Obj, body: &Node, activate: bool) -> ApiResult<Resp> {
    let (action, word, label) = if activate {
        (PbdAction::Plug, "activate", "Activating storage domain")
    } else {
        (
            PbdAction::Unplug,
            "deactivate",
            "Deactivating storage domain",
        )
    };
    let mut todo = pending(api, &sr.r, &action);
    let Some(last) = todo.pop() else {
        let status = api.engine.read(|db| status(db, sr));
        return Err(illegal_status(word, status));
    };
    run_pbd_ops(api, req, todo, &action).await?;
    api.action(req, body, Op::Pbd { pbd: last, action }, label)
        .await
}

/// Every SR as the search language sees it, by name.
pub fn subjects(db: &Db) -> Vec<SdSubject<'_>> {
    sorted(db)
        .into_iter()
        .map(|sr| SdSubject { sr, db })
        .collect()
}

/// The storage domains that `keep` keeps, as the related objects of a search.
pub fn related_subjects<'a>(
    db: &'a Db,
    keep: impl Fn(&SdSubject<'a>) -> bool,
) -> Vec<Box<dyn Subject + 'a>> {
    subjects(db)
        .into_iter()
        .filter(|s| keep(s))
        .map(|s| Box::new(s) as Box<dyn Subject>)
        .collect()
}

/// A storage domain as the search language sees it.
pub struct SdSubject<'a> {
    /// The SR.
    pub sr: &'a Obj,
    /// The working set it lives in.
    pub db: &'a Db,
}

impl SdSubject<'_> {
    /// Whether the domain is attached to the data center.
    pub fn attached(&self) -> bool {
        is_attached(self.db, self.sr)
    }
}

impl Subject for SdSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let sr = self.sr;
        let text = |s: &str| vec![FieldValue::Text(s.to_string())];
        let gib = |n: i64| vec![FieldValue::Number((n >> 30) as f64)];
        let size = sr.int("physical_size");
        let used = sr.int("physical_utilisation");
        match field {
            "name" => text(sr.str("name_label")),
            "id" => text(sr.uuid()),
            "description" => text(sr.str("name_description")),
            "comment" => text(sr.other(COMMENT_KEY).unwrap_or("")),
            "status" => text(status(self.db, sr)),
            "type" => text(if is_iso(sr) { "iso" } else { "data" }),
            "datacenter" if self.attached() => text(&model::datacenter_name(self.db)),
            "total_size" => gib(size),
            "used_size" => gib(used),
            "free_size" => gib((size - used).max(0)),
            "committed" => gib(sr.int("virtual_allocation")),
            "external_status" => text("ok"),
            "backup" | "wipe_after_delete" | "discard_after_delete" => {
                vec![FieldValue::Bool(false)]
            }
            _ => Vec::new(),
        }
    }

    fn related(&self, object: &str) -> Vec<Box<dyn Subject + '_>> {
        match object {
            "Hosts" => pbds(self.db, self.sr)
                .iter()
                .filter_map(|p| self.db.get("host", p.str("host")))
                .map(|h| {
                    Box::new(hosts::HostSubject {
                        host: h,
                        db: self.db,
                    }) as Box<dyn Subject>
                })
                .collect(),
            "Clusters" if self.attached() => {
                vec![Box::new(crate::coll::clusters::ClusterSubject {
                    db: self.db,
                })]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(sr_kind("data", "localfs").unwrap(), "local");
        assert_eq!(sr_kind("iso", "localfs").unwrap(), "iso");
        assert!(matches!(sr_kind("data", "nfs"), Err(ApiError::Conflict(_))));
        assert!(matches!(
            sr_kind("export", "localfs"),
            Err(ApiError::Conflict(_))
        ));
    }

    #[test]
    fn status_words() {
        assert!(illegal_status("detach", "active")
            .detail()
            .ends_with("status is Active."));
    }
}
