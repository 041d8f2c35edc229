//! Snapshots of a VM: the `Active VM` entry and each XenAPI snapshot of the VM, their adds,
//! removal and restore, and the VM's preview, commit and undo of a snapshot.
//!
//! A preview keeps the VM's state in a hidden snapshot (the VM's `other_config`
//! [`PREVIEW_UNDO_KEY`] names it, its own [`UNDO_MARK_KEY`] hides it), reverts the VM to the
//! chosen snapshot and marks the VM with [`PREVIEW_KEY`]. A commit keeps the previewed state and
//! drops the hidden snapshot and the snapshots taken after the previewed one; an undo reverts
//! to the hidden snapshot and drops it.

use std::sync::Arc;

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{Obj, Op, VmAction};

use crate::api::{
    collection, date_ms, entity, limit, members_or_one, no_such_resource, parse_bool, with_links,
    Api, Req, Resp,
};
use crate::coll::disks;
use crate::coll::vmdevices::secs;
use crate::fault::{ApiError, ApiResult};
use crate::model;
use crate::node::Node;

/// VM `other_config` key: the snapshot the VM previews.
pub const PREVIEW_KEY: &str = "ovirt_preview";
/// VM `other_config` key: the hidden snapshot of the VM's state before its preview.
pub const PREVIEW_UNDO_KEY: &str = "ovirt_preview_undo";
/// Snapshot `other_config` key marking the hidden snapshot of a preview.
pub const UNDO_MARK_KEY: &str = "ovirt_undo_snapshot";
/// Snapshot `other_config` key: when it was taken, in milliseconds (orders snapshots taken
/// within a second).
pub const TAKEN_KEY: &str = "ovirt_snapshot_ms";

/// Actions of a regular snapshot.
const ACTIONS: &[&str] = &["restore"];
/// Sub-collections of a regular snapshot.
const SUBS: &[&str] = &["disks"];

/// Handles `/vms/{id}/snapshots/...`.
pub async fn handle(api: &Api, req: &Req, vm: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    let active_id = model::active_snapshot_id(vm.uuid());
    match (rest, &req.method) {
        ([], &Method::GET) => {
            let nodes = api.engine.read(|db| {
                let snaps = snapshots(db, vm);
                let mut nodes = vec![render_active(vm, &snaps)];
                nodes.extend(snaps.iter().map(|s| render(vm, s)));
                nodes
            });
            Resp::ok(collection("snapshots", limit(nodes, req.max()?)))
        }
        ([], &Method::POST) => add(api, req, vm).await,
        ([id], &Method::GET) if *id == active_id => {
            Resp::ok(api.engine.read(|db| render_active(vm, &snapshots(db, vm))))
        }
        ([id], &Method::GET) => {
            let s = snapshot(api, vm, id)?;
            Resp::ok(render(vm, &s))
        }
        ([id], &Method::DELETE) if *id == active_id => Err(ApiError::Conflict(
            "Cannot remove Snapshot. The Active VM snapshot cannot be removed.".into(),
        )),
        ([id], &Method::DELETE) => remove(api, req, vm, id).await,
        ([id, "restore"], &Method::POST) => {
            let s = snapshot(api, vm, id)?;
            let body = req.body("action")?;
            restore(api, req, vm, &s, &body).await
        }
        ([id, "disks", tail @ ..], &Method::GET) => {
            let s = snapshot(api, vm, id)?;
            snapshot_disks(api, req, vm, &s, tail)
        }
        _ => Err(no_such_resource(
            req,
            &format!("/vms/{}/snapshots", vm.uuid()),
            rest,
        )),
    }
}

/// When a snapshot was taken, in milliseconds.
fn taken_ms(s: &Obj) -> i64 {
    s.other(TAKEN_KEY)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| secs(s.get("snapshot_time")).saturating_mul(1000))
}

/// The VM's snapshots oVirt shows (the hidden one of a preview is not one), oldest first.
fn snapshots(db: &Db, vm: &Obj) -> Vec<Arc<Obj>> {
    let mut out: Vec<Arc<Obj>> = vm
        .refs("snapshots")
        .iter()
        .filter_map(|s| db.get("VM", s))
        .filter(|s| s.bool("is_a_snapshot") && s.other(UNDO_MARK_KEY).is_none())
        .cloned()
        .collect();
    out.sort_by_key(|s| taken_ms(s));
    out
}

/// A snapshot of the VM by its oVirt id.
fn snapshot(api: &Api, vm: &Obj, id: &str) -> ApiResult<Arc<Obj>> {
    let s = api.by_id("VM", id, "Snapshot")?;
    if s.bool("is_a_snapshot") && s.str("snapshot_of") == &*vm.r && s.other(UNDO_MARK_KEY).is_none()
    {
        Ok(s)
    } else {
        Err(ApiError::not_found("Snapshot", id))
    }
}

/// The `Active VM` entry: the VM's current state.
fn render_active(vm: &Obj, snaps: &[Arc<Obj>]) -> Node {
    let id = model::active_snapshot_id(vm.uuid());
    let since = snaps.last().map(|s| taken_ms(s)).unwrap_or(0);
    entity("snapshot", &format!("vms/{}/snapshots", vm.uuid()), &id)
        .text("description", "Active VM")
        .text("date", date_ms(since))
        .text("persist_memorystate", false)
        .text("snapshot_status", "ok")
        .text("snapshot_type", "active")
        .child(entity("vm", "vms", vm.uuid()))
}

/// A snapshot as oVirt shows it.
fn render(vm: &Obj, s: &Obj) -> Node {
    let id = s.uuid();
    let base = format!("vms/{}/snapshots/{id}", vm.uuid());
    let busy = s
        .get("current_operations")
        .as_map()
        .is_some_and(|m| !m.is_empty());
    let status = if vm.other(PREVIEW_KEY) == Some(id) {
        "in_preview"
    } else if busy || model::vm_status(vm) == "image_locked" {
        "locked"
    } else {
        "ok"
    };
    let node = entity("snapshot", &format!("vms/{}/snapshots", vm.uuid()), id)
        .text("description", s.str("name_label"));
    with_links(node, &base, ACTIONS, SUBS)
        .text("date", date_ms(taken_ms(s)))
        .text("persist_memorystate", false)
        .text("snapshot_status", status)
        .text("snapshot_type", "regular")
        .child(entity("vm", "vms", vm.uuid()))
}

/// `/vms/{id}/snapshots/{sid}/disks`: the disks of a snapshot (their images as they were).
fn snapshot_disks(api: &Api, req: &Req, vm: &Obj, s: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    let base = format!("vms/{}/snapshots/{}", vm.uuid(), s.uuid());
    let nodes: Vec<Node> = api.engine.read(|db| {
        s.refs("VBDs")
            .iter()
            .filter_map(|b| db.get("VBD", b))
            .filter(|b| b.str("type") != "CD" && !b.bool("empty"))
            .filter_map(|b| db.get("VDI", b.str("VDI")))
            .map(|v| {
                let mut node = disks::render(db, v);
                let href = crate::api::href(&format!("{base}/disks/{}", v.uuid()));
                node.attrs.retain(|(k, _)| k != "href");
                node.attrs.insert(0, ("href".into(), href));
                node
            })
            .collect()
    });
    let unknown = ApiError::NotFound(format!("no such resource: {}", rest.join("/")));
    members_or_one(req, "disks", "Disk", nodes, false, rest, unknown)
}

/// The VM as it is now.
fn fresh(api: &Api, vm: &Obj) -> ApiResult<Arc<Obj>> {
    api.obj("VM", &vm.r)
        .ok_or_else(|| ApiError::not_found("VM", vm.uuid()))
}

/// Takes a snapshot of the VM named `name`, stamped with the time it was taken.
async fn take(
    api: &Api,
    req: &Req,
    vm: &Obj,
    name: &str,
    extra: &[(&str, Option<&str>)],
) -> ApiResult<String> {
    let r = api
        .op_ref(
            req,
            Op::Vm {
                vm: vm.r.to_string(),
                action: VmAction::Snapshot { name: name.into() },
            },
        )
        .await?;
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).to_string();
    let mut marks: Vec<(&str, Option<&str>)> = vec![
        (TAKEN_KEY, Some(&now)),
        (PREVIEW_KEY, None),
        (PREVIEW_UNDO_KEY, None),
    ];
    marks.extend_from_slice(extra);
    if let Err(e) = api.set_other(req, "VM", &r, &marks).await {
        drop_snapshot(api, req, &r).await;
        return Err(e);
    }
    Ok(r)
}

/// Removes a snapshot with its disks, best effort (for undoing a step that failed).
async fn drop_snapshot(api: &Api, req: &Req, r: &str) {
    api.discard_vm(req, r).await;
}

async fn add(api: &Api, req: &Req, vm: &Obj) -> ApiResult<Resp> {
    let body = req.body("snapshot")?;
    let description = body
        .text_at("description")
        .ok_or_else(|| ApiError::missing("Snapshot", "description"))?;
    let vm = fresh(api, vm)?;
    if vm.other(PREVIEW_KEY).is_some() {
        return Err(ApiError::Conflict(
            "Cannot create Snapshot. The VM is previewing a Snapshot.".into(),
        ));
    }
    let memory = body
        .text_at("persist_memorystate")
        .map(parse_bool)
        .transpose()?;
    if memory == Some(true) && vm.str("power_state") != "Halted" {
        return Err(ApiError::Conflict(
            "Cannot create Snapshot. This engine takes snapshots of a VM's disks only; the \
             memory state cannot be saved (persist_memorystate=false)."
                .into(),
        ));
    }
    let r = take(api, req, &vm, description, &[]).await?;
    let node = api.engine.read(|db| {
        let vm = db.get("VM", &vm.r);
        let s = db.get("VM", &r);
        match (vm, s) {
            (Some(vm), Some(s)) => Ok(render(vm, s)),
            _ => Err(ApiError::Internal("the new snapshot vanished".into())),
        }
    })?;
    Resp::created(node)
}

async fn remove(api: &Api, req: &Req, vm: &Obj, id: &str) -> ApiResult<Resp> {
    let s = snapshot(api, vm, id)?;
    let vm = fresh(api, vm)?;
    if vm.other(PREVIEW_KEY).is_some() {
        return Err(ApiError::Conflict(
            "Cannot remove Snapshot. The VM is previewing a Snapshot; commit or undo the \
             preview first."
                .into(),
        ));
    }
    api.vm_op(req, &s.r, VmAction::Remove { keep_disks: false })
        .await?;
    Resp::removed()
}

/// The snapshot an action's `<snapshot id>` names.
fn named_snapshot(api: &Api, vm: &Obj, body: &Node) -> ApiResult<Arc<Obj>> {
    let id = body
        .id_at("snapshot")
        .ok_or_else(|| ApiError::missing("Action", "snapshot.id"))?;
    if id == model::active_snapshot_id(vm.uuid()) {
        return Err(ApiError::BadRequest(
            "The Active VM snapshot is the VM's current state; preview another snapshot.".into(),
        ));
    }
    snapshot(api, vm, id)
}

/// Refuses an action unless the VM is down.
fn require_down(vm: &Obj, action: &str) -> ApiResult<()> {
    if vm.str("power_state") == "Halted" {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!(
            "Cannot {action} Snapshot. VM must be in Down status."
        )))
    }
}

/// The VM's preview marks: (previewed snapshot, hidden snapshot).
fn preview_marks(vm: &Obj) -> Option<(String, String)> {
    Some((
        vm.other(PREVIEW_KEY)?.to_string(),
        vm.other(PREVIEW_UNDO_KEY)?.to_string(),
    ))
}

/// Clears a VM's preview marks and what a revert copied from a snapshot's own marks.
async fn clear_marks(api: &Api, req: &Req, vm: &str) -> ApiResult<()> {
    api.set_other(
        req,
        "VM",
        vm,
        &[
            (PREVIEW_KEY, None),
            (PREVIEW_UNDO_KEY, None),
            (UNDO_MARK_KEY, None),
            (TAKEN_KEY, None),
        ],
    )
    .await
}

/// Reverts the VM to a snapshot.
async fn revert(api: &Api, req: &Req, snapshot: &str) -> ApiResult<()> {
    api.vm_op(req, snapshot, VmAction::Revert).await.map(|_| ())
}

/// Keeps the VM's state in a hidden snapshot and reverts the VM to `target`, marking it as
/// previewing `target`.
async fn begin_preview(api: &Api, req: &Req, vm: &Obj, target: &Obj) -> ApiResult<String> {
    let undo = take(
        api,
        req,
        vm,
        "Active VM before the preview",
        &[(UNDO_MARK_KEY, Some("true"))],
    )
    .await?;
    if let Err(e) = revert(api, req, &target.r).await {
        drop_snapshot(api, req, &undo).await;
        return Err(e);
    }
    let undo_uuid = api.uuid_of("VM", &undo).unwrap_or_default();
    clear_marks(api, req, &vm.r).await?;
    api.set_other(
        req,
        "VM",
        &vm.r,
        &[
            (PREVIEW_KEY, Some(target.uuid())),
            (PREVIEW_UNDO_KEY, Some(&undo_uuid)),
        ],
    )
    .await?;
    Ok(undo)
}

/// Keeps the previewed state: drops the hidden snapshot and the snapshots taken after the
/// previewed one.
async fn finish_commit(
    api: &Api,
    req: &Req,
    vm: &Obj,
    previewed: &str,
    undo: &str,
) -> ApiResult<()> {
    let later: Vec<String> = api.engine.read(|db| {
        let snaps = snapshots(db, vm);
        let since = snaps
            .iter()
            .find(|s| s.uuid() == previewed)
            .map(|s| taken_ms(s));
        snaps
            .iter()
            .filter(|s| since.is_some_and(|t| taken_ms(s) > t))
            .map(|s| s.r.to_string())
            .collect()
    });
    let undo_ref = api
        .by_id("VM", undo, "Snapshot")
        .ok()
        .map(|s| s.r.to_string());
    for r in undo_ref.into_iter().chain(later) {
        api.vm_op(req, &r, VmAction::Remove { keep_disks: false })
            .await?;
    }
    clear_marks(api, req, &vm.r).await
}

/// The `previewsnapshot` action: the VM (down, not previewing) shows the chosen snapshot's
/// state until a commit or an undo.
pub async fn preview(api: &Api, req: &Req, vm: &Obj, body: &Node) -> ApiResult<Resp> {
    let vm = fresh(api, vm)?;
    let target = named_snapshot(api, &vm, body)?;
    if vm.other(PREVIEW_KEY).is_some() {
        return Err(ApiError::Conflict(
            "Cannot preview Snapshot. The VM is already previewing a Snapshot.".into(),
        ));
    }
    require_down(&vm, "preview")?;
    begin_preview(api, req, &vm, &target).await?;
    Resp::ok(Node::new("action").text("status", "complete"))
}

/// The `commitsnapshot` action.
pub async fn commit(api: &Api, req: &Req, vm: &Obj, _body: &Node) -> ApiResult<Resp> {
    let vm = fresh(api, vm)?;
    let (previewed, undo) = preview_marks(&vm).ok_or_else(|| {
        ApiError::Conflict("Cannot commit Snapshot. The VM is not previewing a Snapshot.".into())
    })?;
    require_down(&vm, "commit")?;
    finish_commit(api, req, &vm, &previewed, &undo).await?;
    Resp::ok(Node::new("action").text("status", "complete"))
}

/// The `undosnapshot` action.
pub async fn undo(api: &Api, req: &Req, vm: &Obj, _body: &Node) -> ApiResult<Resp> {
    let vm = fresh(api, vm)?;
    let (_, undo) = preview_marks(&vm).ok_or_else(|| {
        ApiError::Conflict("Cannot undo Snapshot. The VM is not previewing a Snapshot.".into())
    })?;
    require_down(&vm, "undo")?;
    let saved = api.by_id("VM", &undo, "Snapshot")?;
    revert(api, req, &saved.r).await?;
    api.vm_op(req, &saved.r, VmAction::Remove { keep_disks: false })
        .await?;
    clear_marks(api, req, &vm.r).await?;
    Resp::ok(Node::new("action").text("status", "complete"))
}

/// A snapshot's `restore` action: a preview and its commit in one step.
async fn restore(api: &Api, req: &Req, vm: &Obj, s: &Obj, _body: &Node) -> ApiResult<Resp> {
    let vm = fresh(api, vm)?;
    if vm.other(PREVIEW_KEY).is_some() {
        return Err(ApiError::Conflict(
            "Cannot restore Snapshot. The VM is previewing a Snapshot; commit or undo the \
             preview first."
                .into(),
        ));
    }
    require_down(&vm, "restore")?;
    let undo = begin_preview(api, req, &vm, s).await?;
    let undo_uuid = api.uuid_of("VM", &undo).unwrap_or_default();
    finish_commit(api, req, &vm, s.uuid(), &undo_uuid).await?;
    Resp::ok(Node::new("action").text("status", "complete"))
}
