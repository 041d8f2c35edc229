//! The `disks` collection: VDIs as oVirt disks — listed and searched, added as floating disks,
//! renamed and grown, removed — and the one place that reads a `<disk>` and makes its VDI.

use std::sync::Arc;

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{Obj, Op, VdiAction};
use drover_model::Value;

use crate::api::{
    collection, entity, no_such_resource, parse_bool, parse_int, with_links, Api, Req, Resp,
};
use crate::coll::vms::NamedSubject;
use crate::coll::{permissions, vmdevices};
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::model;
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// Sub-collections of a disk.
const SUBS: &[&str] = &["permissions", "statistics"];

/// VDI types that are the engine's own images (saved memory, crash dumps...), not disks.
const ENGINE_TYPES: &[&str] = &[
    "suspend",
    "crashdump",
    "ha_statefile",
    "metadata",
    "redo_log",
    "pvs_cache",
    "cbt_metadata",
];

/// Handles `/disks/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req),
        ([], &Method::POST) => {
            let body = req.body("disk")?;
            let vdi = create(api, req, &body, "Disk").await?;
            Resp::created(rendered(api, &vdi)?)
        }
        ([id], &Method::GET) => {
            let vdi = disk(api, id)?;
            Resp::ok(api.engine.read(|db| render(db, &vdi)))
        }
        ([id], &Method::PUT) => {
            let vdi = disk(api, id)?;
            let body = req.body("disk")?;
            apply(api, req, &vdi, &body).await?;
            Resp::ok(rendered(api, &vdi.r)?)
        }
        ([id], &Method::DELETE) => remove(api, req, id).await,
        ([id, "permissions", tail @ ..], _) => {
            let vdi = disk(api, id)?;
            permissions::for_object(api, req, "VDI", &vdi, tail).await
        }
        ([id, "statistics", tail @ ..], &Method::GET) => {
            let vdi = disk(api, id)?;
            let stats = api.engine.read(|db| statistics(db, &vdi));
            let owner = entity("disk", "disks", vdi.uuid());
            vmdevices::statistics_resp(req, &format!("disks/{id}"), owner, stats, tail)
        }
        _ => Err(no_such_resource(req, "/disks", rest)),
    }
}

/// Whether a VDI is an oVirt disk: not a snapshot's image, not an image the engine keeps for
/// itself, not a config drive it made.
pub fn is_disk(vdi: &Obj) -> bool {
    !vdi.bool("is_a_snapshot")
        && !ENGINE_TYPES.contains(&vdi.str("type"))
        && vdi.other("config_drive") != Some("true")
}

/// The disk with an oVirt id.
pub fn disk(api: &Api, id: &str) -> ApiResult<Arc<Obj>> {
    let vdi = api.by_id("VDI", id, "Disk")?;
    if is_disk(&vdi) {
        Ok(vdi)
    } else {
        Err(ApiError::not_found("Disk", id))
    }
}

fn list(api: &Api, req: &Req) -> ApiResult<Resp> {
    let target = search::object_type("disks")
        .ok_or_else(|| ApiError::Internal("no Disks search type".into()))?;
    let nodes = api.engine.read(|db| {
        let subjects: Vec<DiskSubject> = db
            .all("VDI")
            .filter(|v| is_disk(v))
            .map(|v| DiskSubject { vdi: v, db })
            .collect();
        listing::select(req, target, subjects)
            .map(|list| list.iter().map(|s| render(db, s.vdi)).collect::<Vec<_>>())
    })?;
    Resp::ok(collection("disks", nodes))
}

/// The disk of a VDI reference, rendered.
fn rendered(api: &Api, r: &str) -> ApiResult<Node> {
    api.engine.read(|db| {
        db.get("VDI", r)
            .map(|v| render(db, v))
            .ok_or_else(|| ApiError::Internal("the disk vanished".into()))
    })
}

/// The format oVirt names for a VDI's image: `raw` when it was made raw (`sm_config:type`) or
/// its file is plain bytes (`.raw`, `.iso`), else `cow` (qcow2).
fn format(vdi: &Obj) -> &'static str {
    let location = vdi.str("location");
    let made_raw = vdi
        .get("sm_config")
        .map_get("type")
        .and_then(|t| t.as_str())
        == Some("raw");
    if made_raw || location.ends_with(".raw") || location.ends_with(".iso") {
        "raw"
    } else {
        "cow"
    }
}

/// Whether a VDI's storage is an ISO library.
fn is_iso_sr(db: &Db, vdi: &Obj) -> bool {
    db.get("SR", vdi.str("SR"))
        .is_some_and(|sr| sr.str("content_type") == "iso")
}

/// oVirt's status of a disk: `locked` while an operation runs on it or on a VM that has it.
pub fn status(db: &Db, vdi: &Obj) -> &'static str {
    let busy = |o: &Obj| {
        o.get("current_operations")
            .as_map()
            .is_some_and(|m| !m.is_empty())
    };
    let vm_busy = vdi
        .refs("VBDs")
        .iter()
        .filter_map(|b| db.get("VBD", b))
        .filter_map(|b| db.get("VM", b.str("VM")))
        .any(|vm| model::vm_status(vm) == "image_locked");
    if busy(vdi) || vm_busy {
        "locked"
    } else {
        "ok"
    }
}

/// A disk as oVirt shows it.
pub fn render(db: &Db, vdi: &Obj) -> Node {
    let id = vdi.uuid();
    let iso = is_iso_sr(db, vdi);
    let format = if iso { "raw" } else { format(vdi) };
    let used = vdi.int("physical_utilisation");
    let mut node = entity("disk", "disks", id)
        .text("name", vdi.str("name_label"))
        .text("description", vdi.str("name_description"));
    node = with_links(node, &format!("disks/{id}"), &[], SUBS);
    let mut domains = Node::list("storage_domains");
    if let Some(sr) = db.get("SR", vdi.str("SR")) {
        domains.push(entity("storage_domain", "storagedomains", sr.uuid()));
    }
    node.text("actual_size", used)
        .text("alias", vdi.str("name_label"))
        .text("content_type", if iso { "iso" } else { "data" })
        .text("format", format)
        .text("image_id", id)
        .text("propagate_errors", false)
        .text("provisioned_size", vdi.int("virtual_size"))
        .text("shareable", vdi.bool("sharable"))
        .text("sparse", format == "cow")
        .text("status", status(db, vdi))
        .text("storage_type", "image")
        .text("total_size", used)
        .text("wipe_after_delete", false)
        .child(domains)
}

/// The statistics of a disk: the I/O rates of the drives that have it.
fn statistics(db: &Db, vdi: &Obj) -> Vec<vmdevices::Stat> {
    let (read, write) = vdi
        .refs("VBDs")
        .iter()
        .filter_map(|b| db.get("VBD", b))
        .filter(|b| b.bool("currently_attached"))
        .filter_map(|b| db.get("VBD_metrics", b.str("metrics")))
        .fold((0.0, 0.0), |(r, w), m| {
            (
                r + vmdevices::float(m.get("io_read_kbs")),
                w + vmdevices::float(m.get("io_write_kbs")),
            )
        });
    vec![
        vmdevices::Stat::rate("data.current.read", "Read data rate", read * 1024.0),
        vmdevices::Stat::rate("data.current.write", "Write data rate", write * 1024.0),
    ]
}

/// The SR a `<disk>` asks for (`storage_domains/storage_domain` by id or name), else the pool's
/// default SR; an ISO library cannot hold a data disk.
fn target_sr(api: &Api, disk: &Node) -> ApiResult<Arc<Obj>> {
    let wanted = disk.at("storage_domains/storage_domain");
    let id = wanted.and_then(|_| disk.id_at("storage_domains/storage_domain"));
    let name = wanted.and_then(|w| w.text_at("name"));
    let sr = match (id, name) {
        (Some(id), _) => api.by_id("SR", id, "StorageDomain")?,
        (None, Some(name)) => api
            .engine
            .read(|db| db.all("SR").find(|s| s.str("name_label") == name).cloned())
            .ok_or_else(|| {
                ApiError::NotFound(format!("Entity not found: StorageDomain: name={name}"))
            })?,
        (None, None) => api
            .engine
            .read(|db| {
                model::pool(db)
                    .and_then(|p| db.get("SR", p.str("default_SR")))
                    .cloned()
            })
            .ok_or_else(|| ApiError::missing("Disk", "storage_domains.storage_domain.id|name"))?,
    };
    if sr.str("content_type") == "iso" {
        return Err(ApiError::Conflict(
            "Cannot add Virtual Disk. Storage Domain type ISO cannot hold disks.".into(),
        ));
    }
    Ok(sr)
}

/// What a `<disk>` to add asks for.
#[derive(Debug, PartialEq)]
struct NewDisk {
    name: Option<String>,
    description: String,
    size: i64,
    shareable: bool,
    /// A raw image rather than qcow2.
    raw: bool,
}

/// Reads a `<disk>` to add: its size (required), names, and the formats this engine makes
/// (thin images: `cow` is qcow2, `raw` a sparse raw file; preallocated images it cannot make).
fn read_new(disk: &Node) -> ApiResult<NewDisk> {
    let size = disk
        .text_at("provisioned_size")
        .or_else(|| disk.text_at("size"))
        .ok_or_else(|| ApiError::missing("Disk", "provisioned_size"))
        .and_then(|s| parse_int("provisioned_size", s))?;
    if size <= 0 {
        return Err(ApiError::BadRequest(
            "Cannot add Virtual Disk. The provisioned size must be positive.".into(),
        ));
    }
    let format = disk.text_at("format").unwrap_or("cow");
    let sparse = disk
        .text_at("sparse")
        .map(parse_bool)
        .transpose()?
        .unwrap_or(true);
    match (format, sparse) {
        ("cow" | "raw", true) => {}
        ("cow" | "raw", false) => {
            let kind = if format == "raw" { "RAW" } else { "COW" };
            return Err(ApiError::Conflict(format!(
                "Cannot add Virtual Disk. Disk configuration ({kind} Preallocated) is \
                 incompatible with the storage domain type: this engine makes thin disks (COW \
                 Sparse or RAW Sparse)."
            )));
        }
        (other, _) => {
            return Err(ApiError::BadRequest(format!(
                "\"{other}\" is not a disk format; use cow or raw"
            )))
        }
    }
    if let Some(kind) = disk.text_at("content_type").filter(|k| *k != "data") {
        return Err(ApiError::Conflict(format!(
            "Cannot add Virtual Disk. Disks of content type \"{kind}\" are not made here; ISO \
             images belong to an ISO storage domain."
        )));
    }
    Ok(NewDisk {
        name: disk
            .text_at("alias")
            .or_else(|| disk.text_at("name"))
            .map(String::from),
        description: disk.text_at("description").unwrap_or("").to_string(),
        size,
        raw: format == "raw",
        shareable: disk
            .text_at("shareable")
            .map(parse_bool)
            .transpose()?
            .unwrap_or(false),
    })
}

/// Makes the VDI a `<disk>` describes on its storage domain; `default_name` names it when the
/// document gives no `alias`/`name`. Answers the VDI's reference.
pub async fn create(api: &Api, req: &Req, disk: &Node, default_name: &str) -> ApiResult<String> {
    let new = read_new(disk)?;
    let sr = target_sr(api, disk)?;
    api.op_ref(
        req,
        Op::Create {
            class: "VDI".into(),
            fields: vec![
                ("SR".into(), Value::str(&*sr.r)),
                ("virtual_size".into(), Value::Int(new.size)),
                (
                    "name_label".into(),
                    Value::str(new.name.as_deref().unwrap_or(default_name)),
                ),
                ("name_description".into(), Value::str(new.description)),
                ("type".into(), Value::str("user")),
                ("sharable".into(), Value::Bool(new.shareable)),
                ("read_only".into(), Value::Bool(false)),
                (
                    "sm_config".into(),
                    Value::string_map([("type", if new.raw { "raw" } else { "qcow2" })]),
                ),
            ],
        },
    )
    .await
}

/// Applies the settable parts of a `<disk>`: names, description, a larger size, shareable.
pub async fn apply(api: &Api, req: &Req, vdi: &Obj, body: &Node) -> ApiResult<()> {
    let r = &*vdi.r;
    if let Some(name) = body.text_at("alias").or_else(|| body.text_at("name")) {
        if name != vdi.str("name_label") {
            api.set(req, "VDI", r, "name_label", Value::str(name))
                .await?;
        }
    }
    if let Some(d) = body
        .at("description")
        .map(|n| n.text.as_deref().unwrap_or("").trim())
    {
        if d != vdi.str("name_description") {
            api.set(req, "VDI", r, "name_description", Value::str(d))
                .await?;
        }
    }
    if let Some(s) = body.text_at("provisioned_size") {
        let size = parse_int("provisioned_size", s)?;
        let now = vdi.int("virtual_size");
        if size < now {
            return Err(ApiError::BadRequest(format!(
                "Cannot edit Virtual Disk. New disk size ({size}) cannot be smaller than the \
                 current size ({now})."
            )));
        }
        if size > now {
            api.op(
                req,
                Op::Vdi {
                    vdi: r.to_string(),
                    action: VdiAction::Resize { size },
                },
            )
            .await?;
        }
    }
    if let Some(s) = body.text_at("shareable").map(parse_bool).transpose()? {
        if s != vdi.bool("sharable") {
            api.set(req, "VDI", r, "sharable", Value::Bool(s)).await?;
        }
    }
    Ok(())
}

async fn remove(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let vdi = disk(api, id)?;
    let running = api.engine.read(|db| {
        vdi.refs("VBDs")
            .iter()
            .filter_map(|b| db.get("VBD", b))
            .filter_map(|b| db.get("VM", b.str("VM")))
            .any(|vm| vm.str("power_state") != "Halted")
    });
    if running {
        return Err(ApiError::Conflict(
            "Cannot remove Virtual Disk. At least one of the VMs is not down.".into(),
        ));
    }
    api.destroy(req, "VDI", &vdi.r).await?;
    Resp::removed()
}

/// A disk as the search language sees it.
struct DiskSubject<'a> {
    vdi: &'a Obj,
    db: &'a Db,
}

impl DiskSubject<'_> {
    fn vms(&self) -> Vec<&Obj> {
        let mut vms: Vec<&Obj> = Vec::new();
        for b in self.vdi.refs("VBDs") {
            if let Some(vm) = self
                .db
                .get("VBD", &b)
                .and_then(|b| self.db.get("VM", b.str("VM")))
            {
                if model::is_vm(vm) && !vms.iter().any(|v| v.r == vm.r) {
                    vms.push(vm);
                }
            }
        }
        vms
    }
}

impl Subject for DiskSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let v = self.vdi;
        let text = |s: &str| vec![FieldValue::Text(s.to_string())];
        let gib = |b: i64| vec![FieldValue::Number(b as f64 / f64::from(1u32 << 30))];
        match field {
            "name" | "alias" => text(v.str("name_label")),
            "description" => text(v.str("name_description")),
            "id" => text(v.uuid()),
            "provisioned_size" | "size" => gib(v.int("virtual_size")),
            "actual_size" => gib(v.int("physical_utilisation")),
            "status" => text(status(self.db, v)),
            "disk_content_type" => text(if is_iso_sr(self.db, v) { "iso" } else { "data" }),
            "disk_type" => text("image"),
            "allocation_policy" => text(if format(v) == "cow" {
                "sparse"
            } else {
                "preallocated"
            }),
            "shareable" => vec![FieldValue::Bool(v.bool("sharable"))],
            "wipe_after_delete" => vec![FieldValue::Bool(false)],
            "number_of_vms" => vec![FieldValue::Number(self.vms().len() as f64)],
            "vm_names" => self
                .vms()
                .iter()
                .map(|vm| FieldValue::Text(vm.str("name_label").to_string()))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn related(&self, object: &str) -> Vec<Box<dyn Subject + '_>> {
        match object {
            "Storage" => self
                .db
                .get("SR", self.vdi.str("SR"))
                .map(|sr| Box::new(NamedSubject(sr)) as Box<dyn Subject>)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(xml: &str) -> Node {
        Node::from_xml(xml.as_bytes()).unwrap()
    }

    #[test]
    fn new_disks_need_a_size() {
        let e = read_new(&doc("<disk><name>d</name></disk>")).unwrap_err();
        assert_eq!(e, ApiError::missing("Disk", "provisioned_size"));
        let d = read_new(&doc(
            "<disk><alias>a</alias><name>n</name><provisioned_size>1048576</provisioned_size>\
             <format>cow</format><shareable>true</shareable></disk>",
        ))
        .unwrap();
        assert_eq!(d.name.as_deref(), Some("a"));
        assert_eq!(d.size, 1 << 20);
        assert!(d.shareable);
    }

    #[test]
    fn only_thin_qcow2_is_made() {
        let raw = doc("<disk><provisioned_size>1</provisioned_size><format>raw</format></disk>");
        assert!(read_new(&raw).is_ok_and(|d| d.raw));
        let thick =
            doc("<disk><provisioned_size>1</provisioned_size><sparse>false</sparse></disk>");
        assert!(matches!(read_new(&thick), Err(ApiError::Conflict(_))));
        let odd = doc("<disk><provisioned_size>1</provisioned_size><format>vhd</format></disk>");
        assert!(matches!(read_new(&odd), Err(ApiError::BadRequest(_))));
        let zero = doc("<disk><provisioned_size>0</provisioned_size></disk>");
        assert!(matches!(read_new(&zero), Err(ApiError::BadRequest(_))));
    }
}
