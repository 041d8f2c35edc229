//! Disk attachments of a VM or template: its VBDs of disks, with the disk's id as theirs.
//! Adding one attaches an existing disk or makes a new one; on a running VM the drive is
//! hot-plugged when `active`. The interface oVirt asks for is kept in the VBD's `other_config`
//! (the engine's guests see every disk as virtio-blk).

use std::sync::Arc;

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{Obj, Op, VbdAction};
use drover_model::Value;

use crate::api::{collection, entity, limit, no_such_resource, parse_bool, Api, Req, Resp};
use crate::coll::disks;
use crate::fault::{ApiError, ApiResult};
use crate::model;
use crate::node::Node;

/// VBD `other_config` key of the interface oVirt shows for a disk.
pub const INTERFACE_KEY: &str = "ovirt_interface";

/// The interfaces a disk attachment may name.
const INTERFACES: &[&str] = &["virtio", "virtio_scsi", "ide", "sata", "spapr_vscsi"];

/// Device positions of a VM's VBDs.
const VBD_POSITIONS: u32 = 16;

/// Handles `/vms/{id}/diskattachments/...` and `/templates/{id}/diskattachments/...`.
pub async fn handle(api: &Api, req: &Req, owner: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => {
            let nodes = api.engine.read(|db| {
                attachments(db, owner)
                    .iter()
                    .map(|(vbd, vdi)| render(db, owner, vbd, vdi))
                    .collect::<Vec<_>>()
            });
            Resp::ok(collection("disk_attachments", limit(nodes, req.max()?)))
        }
        ([], &Method::POST) => add(api, req, owner).await,
        ([id], &Method::GET) => {
            let (vbd, vdi) = attachment(api, owner, id)?;
            Resp::ok(api.engine.read(|db| render(db, owner, &vbd, &vdi)))
        }
        ([id], &Method::PUT) => update(api, req, owner, id).await,
        ([id], &Method::DELETE) => remove(api, req, owner, id).await,
        _ => Err(no_such_resource(
            req,
            &format!("{}/diskattachments", owner_path(owner).1),
            rest,
        )),
    }
}

/// The element and path (`vms/<id>` or `templates/<id>`) of a VM or template.
pub fn owner_path(owner: &Obj) -> (&'static str, String) {
    if model::is_template(owner) {
        ("template", format!("templates/{}", owner.uuid()))
    } else {
        ("vm", format!("vms/{}", owner.uuid()))
    }
}

/// A reference to a VM or template.
pub fn owner_ref(owner: &Obj) -> Node {
    let (elem, path) = owner_path(owner);
    let collection = path.split('/').next().unwrap_or("vms").to_string();
    entity(elem, &collection, owner.uuid())
}

/// The lowest VBD position from `from` that no drive of the VM takes.
pub fn free_position(db: &Db, vm: &Obj, from: u32) -> Option<u32> {
    let used: Vec<String> = vm
        .refs("VBDs")
        .iter()
        .filter_map(|b| db.get("VBD", b))
        .map(|b| b.str("userdevice").to_string())
        .collect();
    (from..VBD_POSITIONS).find(|p| !used.contains(&p.to_string()))
}

/// The disk drives of a VM with their disks, by position.
fn attachments(db: &Db, owner: &Obj) -> Vec<(Arc<Obj>, Arc<Obj>)> {
    let mut out: Vec<(Arc<Obj>, Arc<Obj>)> = owner
        .refs("VBDs")
        .iter()
        .filter_map(|b| db.get("VBD", b))
        .filter(|b| b.str("type") != "CD" && !b.bool("empty"))
        .filter_map(|b| db.get("VDI", b.str("VDI")).map(|v| (b.clone(), v.clone())))
        .collect();
    out.sort_by_key(|(b, _)| b.str("userdevice").parse::<u32>().unwrap_or(u32::MAX));
    out
}

/// The attachment of the disk with an oVirt id.
fn attachment(api: &Api, owner: &Obj, id: &str) -> ApiResult<(Arc<Obj>, Arc<Obj>)> {
    let owner = api
        .obj("VM", &owner.r)
        .ok_or_else(|| ApiError::not_found("VM", owner.uuid()))?;
    api.engine
        .read(|db| {
            attachments(db, &owner)
                .into_iter()
                .find(|(_, vdi)| vdi.uuid() == id)
        })
        .ok_or_else(|| ApiError::not_found("DiskAttachment", id))
}

/// Whether the drive is in the guest: plugged into a running VM; a halted VM's drives are
/// all attached when it starts.
fn active(owner: &Obj, vbd: &Obj) -> bool {
    match owner.str("power_state") {
        "Running" | "Paused" => vbd.bool("currently_attached"),
        _ => true,
    }
}

/// The guest's name of a disk at a rank among the VM's plugged disks (virtio-blk in slot order).
fn logical_name(rank: usize) -> String {
    let mut letters = String::new();
    let mut n = rank + 1;
    while n > 0 {
        n -= 1;
        letters.insert(0, char::from(b'a' + (n % 26) as u8));
        n /= 26;
    }
    format!("/dev/vd{letters}")
}

/// A disk attachment as oVirt shows it.
pub fn render(db: &Db, owner: &Obj, vbd: &Obj, vdi: &Obj) -> Node {
    let (_, path) = owner_path(owner);
    let live = matches!(owner.str("power_state"), "Running" | "Paused");
    let rank = attachments(db, owner)
        .iter()
        .filter(|(b, _)| b.bool("currently_attached"))
        .position(|(b, _)| b.r == vbd.r);
    let name = rank
        .filter(|_| live && vbd.bool("currently_attached"))
        .map(logical_name);
    entity(
        "disk_attachment",
        &format!("{path}/diskattachments"),
        vdi.uuid(),
    )
    .text("active", active(owner, vbd))
    .text("bootable", vbd.bool("bootable"))
    .text("interface", vbd.other(INTERFACE_KEY).unwrap_or("virtio"))
    .opt_child(name.map(|n| Node::leaf("logical_name", n)))
    .text("pass_discard", false)
    .text("read_only", vbd.str("mode") == "RO")
    .text("uses_scsi_reservation", false)
    .child(entity("disk", "disks", vdi.uuid()))
    .child(owner_ref(owner))
}

/// Checks an interface name.
fn interface(name: &str) -> ApiResult<&str> {
    if INTERFACES.contains(&name) {
        Ok(name)
    } else {
        Err(ApiError::BadRequest(format!(
            "\"{name}\" is not a disk interface; use one of {}",
            INTERFACES.join(", ")
        )))
    }
}

/// The id of a reference element itself (its attribute, or an `<id>` child as JSON sends it).
pub fn own_id(n: &Node) -> Option<&str> {
    n.get_attr("id")
        .or_else(|| n.text_at("id"))
        .filter(|s| !s.is_empty())
}

/// A boolean of a document, if given.
fn flag(body: &Node, name: &str) -> ApiResult<Option<bool>> {
    body.text_at(name).map(parse_bool).transpose()
}

/// Refuses a second bootable disk, as oVirt does.
fn check_boot(db: &Db, owner: &Obj, except: Option<&str>) -> ApiResult<()> {
    let boot = attachments(db, owner)
        .into_iter()
        .find(|(b, v)| b.bool("bootable") && Some(v.uuid()) != except);
    match boot {
        Some((_, vdi)) => Err(ApiError::Conflict(format!(
            "Cannot attach Virtual Disk. Disk {} is already marked as boot.",
            vdi.str("name_label")
        ))),
        None => Ok(()),
    }
}

/// Checks that an existing disk may be attached to `owner`.
fn check_attachable(db: &Db, owner: &Obj, vdi: &Obj) -> ApiResult<()> {
    if db
        .get("SR", vdi.str("SR"))
        .is_some_and(|sr| sr.str("content_type") == "iso")
    {
        return Err(ApiError::Conflict(
            "Cannot attach Virtual Disk. An ISO image goes into the CD-ROM, not a disk drive."
                .into(),
        ));
    }
    let holders: Vec<&Arc<Obj>> = vdi
        .refs("VBDs")
        .iter()
        .filter_map(|b| db.get("VBD", b))
        .filter_map(|b| db.get("VM", b.str("VM")))
        .filter(|vm| !vm.bool("is_a_snapshot"))
        .collect();
    if holders.iter().any(|vm| vm.r == owner.r) {
        return Err(ApiError::Conflict(format!(
            "Cannot attach Virtual Disk. The disk is already attached to VM {}.",
            owner.str("name_label")
        )));
    }
    if !holders.is_empty() && !vdi.bool("sharable") {
        return Err(ApiError::Conflict(format!(
            "Cannot attach Virtual Disk. The disk is not shareable and it is already attached \
             to VM {}.",
            holders[0].str("name_label")
        )));
    }
    Ok(())
}

/// What a `<disk_attachment>` to add asks for.
struct NewAttachment<'a> {
    interface: &'a str,
    bootable: bool,
    active: bool,
    read_only: bool,
    disk: &'a Node,
}

fn read_new(body: &Node) -> ApiResult<NewAttachment<'_>> {
    let disk = body
        .get("disk")
        .ok_or_else(|| ApiError::missing("DiskAttachment", "disk"))?;
    let name = body
        .text_at("interface")
        .ok_or_else(|| ApiError::missing("DiskAttachment", "interface"))?;
    Ok(NewAttachment {
        interface: interface(name)?,
        bootable: flag(body, "bootable")?.unwrap_or(false),
        active: flag(body, "active")?.unwrap_or(true),
        read_only: flag(body, "read_only")?.unwrap_or(false),
        disk,
    })
}

async fn add(api: &Api, req: &Req, owner: &Obj) -> ApiResult<Resp> {
    let body = req.body("disk_attachment")?;
    let new = read_new(&body)?;
    let existing = match own_id(new.disk) {
        Some(id) if new.disk.text_at("provisioned_size").is_none() => Some(disks::disk(api, id)?),
        _ => None,
    };
    let owner = api
        .obj("VM", &owner.r)
        .ok_or_else(|| ApiError::not_found("VM", owner.uuid()))?;
    api.engine.read(|db| -> ApiResult<()> {
        if new.bootable {
            check_boot(db, &owner, None)?;
        }
        if let Some(vdi) = &existing {
            check_attachable(db, &owner, vdi)?;
        }
        Ok(())
    })?;
    let position = api
        .engine
        .read(|db| free_position(db, &owner, 0))
        .ok_or_else(|| {
            ApiError::Conflict(
                "Cannot attach Virtual Disk. Maximum PCI devices exceeded: the VM has no free disk position."
                    .into(),
            )
        })?;
    let vdi = match &existing {
        Some(v) => v.r.to_string(),
        None => {
            let count = api.engine.read(|db| attachments(db, &owner).len());
            let default = format!("{}_Disk{}", owner.str("name_label"), count + 1);
            disks::create(api, req, new.disk, &default).await?
        }
    };
    let attached = attach(api, req, &owner, &vdi, position, &new).await;
    let vbd = match attached {
        Ok(vbd) => vbd,
        Err(e) => {
            if existing.is_none() {
                let _ = api.destroy(req, "VDI", &vdi).await;
            }
            return Err(e);
        }
    };
    let node = api.engine.read(|db| {
        let owner = db.get("VM", &owner.r);
        let vbd = db.get("VBD", &vbd);
        let vdi = db.get("VDI", &vdi);
        match (owner, vbd, vdi) {
            (Some(o), Some(b), Some(v)) => Ok(render(db, o, b, v)),
            _ => Err(ApiError::Internal(
                "the new disk attachment vanished".into(),
            )),
        }
    })?;
    Resp::created(node)
}

/// Makes the VBD of a new attachment and plugs it into a running VM when asked; nothing is
/// left if the plug fails.
async fn attach(
    api: &Api,
    req: &Req,
    owner: &Obj,
    vdi: &str,
    position: u32,
    new: &NewAttachment<'_>,
) -> ApiResult<String> {
    let vbd = api
        .op_ref(
            req,
            Op::Create {
                class: "VBD".into(),
                fields: vec![
                    ("VM".into(), Value::str(&*owner.r)),
                    ("VDI".into(), Value::str(vdi)),
                    ("userdevice".into(), Value::str(position.to_string())),
                    ("bootable".into(), Value::Bool(new.bootable)),
                    (
                        "mode".into(),
                        Value::str(if new.read_only { "RO" } else { "RW" }),
                    ),
                    ("type".into(), Value::str("Disk")),
                    ("empty".into(), Value::Bool(false)),
                    ("unpluggable".into(), Value::Bool(true)),
                    (
                        "other_config".into(),
                        Value::string_map([(INTERFACE_KEY, new.interface)]),
                    ),
                ],
            },
        )
        .await?;
    let live = matches!(owner.str("power_state"), "Running" | "Paused");
    if live && new.active {
        let plugged = api
            .op(
                req,
                Op::Vbd {
                    vbd: vbd.clone(),
                    action: VbdAction::Plug,
                },
            )
            .await;
        if let Err(e) = plugged {
            let _ = api.destroy(req, "VBD", &vbd).await;
            return Err(e);
        }
    }
    Ok(vbd)
}

async fn update(api: &Api, req: &Req, owner: &Obj, id: &str) -> ApiResult<Resp> {
    let (vbd, vdi) = attachment(api, owner, id)?;
    let body = req.body("disk_attachment")?;
    let r = vbd.r.to_string();
    let owner = api
        .obj("VM", &owner.r)
        .ok_or_else(|| ApiError::not_found("VM", owner.uuid()))?;
    let live = matches!(owner.str("power_state"), "Running" | "Paused");
    if let Some(b) = flag(&body, "bootable")? {
        if b && !vbd.bool("bootable") {
            api.engine.read(|db| check_boot(db, &owner, Some(id)))?;
        }
        if b != vbd.bool("bootable") {
            api.set(req, "VBD", &r, "bootable", Value::Bool(b)).await?;
        }
    }
    if let Some(i) = body.text_at("interface") {
        let i = interface(i)?;
        api.set_other(req, "VBD", &r, &[(INTERFACE_KEY, Some(i))])
            .await?;
    }
    if let Some(ro) = flag(&body, "read_only")? {
        if ro != (vbd.str("mode") == "RO") {
            if live {
                return Err(ApiError::Conflict(
                    "Cannot edit Virtual Disk. The read-only flag of a disk changes while the VM is down.".into(),
                ));
            }
            api.set(
                req,
                "VBD",
                &r,
                "mode",
                Value::str(if ro { "RO" } else { "RW" }),
            )
            .await?;
        }
    }
    if let Some(a) = flag(&body, "active")? {
        set_active(api, req, &owner, &vbd, a).await?;
    }
    if let Some(disk) = body.get("disk") {
        disks::apply(api, req, &vdi, disk).await?;
    }
    let (vbd, vdi) = attachment(api, &owner, id)?;
    let owner = api
        .obj("VM", &owner.r)
        .ok_or_else(|| ApiError::not_found("VM", owner.uuid()))?;
    Resp::ok(api.engine.read(|db| render(db, &owner, &vbd, &vdi)))
}

/// Plugs or unplugs a drive of a running VM; a halted VM's drives are all attached when it
/// starts, so one cannot be made inactive.
async fn set_active(api: &Api, req: &Req, owner: &Obj, vbd: &Obj, on: bool) -> ApiResult<()> {
    if active(owner, vbd) == on {
        return Ok(());
    }
    if !matches!(owner.str("power_state"), "Running" | "Paused") {
        return Err(ApiError::Conflict(
            "Cannot deactivate Virtual Disk. This engine attaches every disk of a VM when it \
             starts; detach the disk instead."
                .into(),
        ));
    }
    let action = if on {
        VbdAction::Plug
    } else {
        VbdAction::Unplug
    };
    api.op(
        req,
        Op::Vbd {
            vbd: vbd.r.to_string(),
            action,
        },
    )
    .await
    .map(|_| ())
}

/// Detaches a disk (unplugging it from a running VM first); with `detach_only=false` the disk
/// goes too unless another VM has it.
async fn remove(api: &Api, req: &Req, owner: &Obj, id: &str) -> ApiResult<Resp> {
    let (vbd, vdi) = attachment(api, owner, id)?;
    let detach_only = req.flag("detach_only")?.unwrap_or(true);
    let owner = api
        .obj("VM", &owner.r)
        .ok_or_else(|| ApiError::not_found("VM", owner.uuid()))?;
    let r = vbd.r.to_string();
    if vbd.bool("currently_attached") && matches!(owner.str("power_state"), "Running" | "Paused") {
        api.op(
            req,
            Op::Vbd {
                vbd: r.clone(),
                action: VbdAction::Unplug,
            },
        )
        .await?;
    }
    api.destroy(req, "VBD", &r).await?;
    let unused = api
        .obj("VDI", &vdi.r)
        .is_some_and(|v| v.refs("VBDs").is_empty());
    if !detach_only && unused {
        api.destroy(req, "VDI", &vdi.r).await?;
    }
    Resp::removed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_disk_names() {
        assert_eq!(logical_name(0), "/dev/vda");
        assert_eq!(logical_name(25), "/dev/vdz");
        assert_eq!(logical_name(26), "/dev/vdaa");
    }

    #[test]
    fn attachments_need_a_disk_and_an_interface() {
        let no_iface =
            Node::from_xml(b"<disk_attachment><disk id=\"x\"/></disk_attachment>").unwrap();
        assert_eq!(
            read_new(&no_iface).err(),
            Some(ApiError::missing("DiskAttachment", "interface"))
        );
        let bad = Node::from_xml(
            b"<disk_attachment><interface>scsi</interface><disk id=\"x\"/></disk_attachment>",
        )
        .unwrap();
        assert!(matches!(read_new(&bad), Err(ApiError::BadRequest(_))));
        let ok = Node::from_xml(
            b"<disk_attachment><interface>virtio_scsi</interface><bootable>true</bootable>\
              <disk id=\"x\"/></disk_attachment>",
        )
        .unwrap();
        let n = read_new(&ok).unwrap();
        assert!(n.bootable && n.active && !n.read_only);
        assert_eq!(own_id(n.disk), Some("x"));
    }
}
