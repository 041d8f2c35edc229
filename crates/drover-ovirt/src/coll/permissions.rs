//! Permissions: who holds which role where.
//!
//! Every login account holds one system-wide permission: the oVirt role that stands for its
//! core role (see [`roles`]), shown on the data center. It is what the engine enforces; the
//! engine has no way to change an account's role, so system permissions cannot be added or
//! removed here. Permissions on one object are recorded in that object's `other_config` as
//! `ovirt_permission:<permission id>` = `<user id>:<role id>` (the cluster's on the pool as
//! `ovirt_cluster_permission:…`, a VM pool's on the pool as
//! `ovirt_vmpool_permission:<pool id>:…`), so XenAPI clients see and keep them; they are
//! records for oVirt clients, enforcement stays with the account's core role. An object's
//! permissions list the system permissions too, as oVirt lists inherited ones.

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{AccountInfo, Obj};

use crate::api::{collection, entity, limit, no_such_resource, others_under, Api, Req, Resp};
use crate::coll::roles::{self, Role};
use crate::coll::{users, vmpools};
use crate::fault::{ApiError, ApiResult};
use crate::model;
use crate::node::Node;

/// `other_config` key prefix of a permission on an object.
pub const PERMISSION_KEY: &str = "ovirt_permission:";
/// `other_config` key prefix (on the pool) of a permission on the cluster.
pub const CLUSTER_PERMISSION_KEY: &str = "ovirt_cluster_permission:";
/// `other_config` key prefix (on the pool) of a permission on a VM pool; the VM pool's id and
/// a `:` follow.
pub const VMPOOL_PERMISSION_KEY: &str = "ovirt_vmpool_permission:";

/// How a permission's object is referred to: element, collection and id.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    elem: &'static str,
    coll: &'static str,
    id: String,
}

/// An object permissions are given on, and where they are kept.
#[derive(Debug, Clone)]
pub struct Target {
    /// Class of the object that keeps them in its `other_config`.
    class: &'static str,
    /// Its reference.
    r: String,
    /// Key prefix of its permissions.
    prefix: String,
    /// How the object is referred to (`None`: oVirt's permission has no element for it).
    shown: Option<Shown>,
    /// Path of the object below the API root.
    path: String,
}

/// Where a recorded permission is kept.
#[derive(Debug, Clone)]
struct Stored {
    class: &'static str,
    r: String,
    key: String,
}

/// A permission.
#[derive(Debug, Clone)]
struct Perm {
    id: String,
    role: &'static Role,
    user: String,
    object: Option<Shown>,
    /// `None` for a system permission (an account's role).
    stored: Option<Stored>,
}

/// Handles `/permissions/...`: the system permissions, one per account.
pub async fn handle_system(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => {
            let list = system_perms(api);
            Resp::ok(render_list(&list, "permissions", req.max()?))
        }
        ([], &Method::POST) => {
            let body = req.body("permission")?;
            let role = roles::named_in(&body)?;
            let user = body
                .id_at("user")
                .ok_or_else(|| ApiError::missing("Permission", "user.id"))?;
            let (account, _) = users::account(api, user)?;
            Err(system_change(&account, role))
        }
        ([id], &Method::GET) => {
            let list = system_perms(api);
            Resp::ok(render(find(&list, id)?, "permissions"))
        }
        ([id], &Method::DELETE) => {
            let list = system_perms(api);
            Err(system_removal(find(&list, id)?))
        }
        _ => Err(no_such_resource(req, "/permissions", rest)),
    }
}

/// Handles `/<collection>/{id}/permissions/...`: permissions on one object of `class` —
/// `VM` (a VM or a template), `host`, `SR` (storage domain), `VDI` (disk), `network`, `pool`
/// (the data center), or `cluster` (with the pool object: the cluster).
pub async fn for_object(
    api: &Api,
    req: &Req,
    class: &'static str,
    obj: &Obj,
    rest: &[&str],
) -> ApiResult<Resp> {
    let target = api.engine.read(|db| target_of(db, class, obj));
    serve(api, req, &target, rest).await
}

/// Handles the permissions of a target (an object, or a VM pool).
pub async fn serve(api: &Api, req: &Req, target: &Target, rest: &[&str]) -> ApiResult<Resp> {
    let base = format!("{}/permissions", target.path);
    match (rest, &req.method) {
        ([], &Method::GET) => {
            let list = on_target(api, target);
            Resp::ok(render_list(&list, &base, req.max()?))
        }
        ([], &Method::POST) => {
            let body = req.body("permission")?;
            let role = roles::named_in(&body)?;
            if body.get("group").is_some() {
                return Err(no_group(&body));
            }
            let user = body
                .id_at("user")
                .ok_or_else(|| ApiError::missing("Permission", "user|group.id"))?;
            users::account(api, user)?;
            let p = add(api, req, target, user, role).await?;
            Resp::created(render(&p, &base))
        }
        ([id], &Method::GET) => {
            let list = on_target(api, target);
            Resp::ok(render(find(&list, id)?, &base))
        }
        ([id], &Method::DELETE) => {
            let list = on_target(api, target);
            remove(api, req, find(&list, id)?).await
        }
        _ => Err(no_such_resource(req, &format!("/{base}"), rest)),
    }
}

/// Handles `/users/{id}/permissions/...`: the permissions one account holds.
pub async fn for_user(
    api: &Api,
    req: &Req,
    account: &AccountInfo,
    user: &str,
    rest: &[&str],
) -> ApiResult<Resp> {
    let base = format!("users/{user}/permissions");
    let held = || held_by(api, user);
    match (rest, &req.method) {
        ([], &Method::GET) => Resp::ok(render_list(&held(), &base, req.max()?)),
        ([], &Method::POST) => {
            let body = req.body("permission")?;
            let role = roles::named_in(&body)?;
            match target_in(api, &body)? {
                Some(target) => {
                    let p = add(api, req, &target, user, role).await?;
                    Resp::created(render(&p, &base))
                }
                None => Err(system_change(account, role)),
            }
        }
        ([id], &Method::GET) => Resp::ok(render(find(&held(), id)?, &base)),
        ([id], &Method::DELETE) => remove(api, req, find(&held(), id)?).await,
        _ => Err(no_such_resource(req, &format!("/{base}"), rest)),
    }
}

/// The roles an account holds anywhere, for `/users/{id}/roles`.
pub fn roles_of(api: &Api, user: &str) -> Vec<&'static Role> {
    let mut out: Vec<&'static Role> = Vec::new();
    for p in held_by(api, user) {
        if !out.iter().any(|r| r.id == p.role.id) {
            out.push(p.role);
        }
    }
    out
}

/// The target of a VM pool whose permissions the pool object keeps.
pub fn vm_pool_target(db: &Db, pool_id: &str) -> Option<Target> {
    let pool = model::pool(db)?;
    Some(Target {
        class: "pool",
        r: pool.r.to_string(),
        prefix: format!("{VMPOOL_PERMISSION_KEY}{pool_id}:"),
        shown: Some(Shown {
            elem: "vm_pool",
            coll: "vmpools",
            id: pool_id.to_string(),
        }),
        path: format!("vmpools/{pool_id}"),
    })
}

/// The `other_config` keys of a VM pool's permissions on the pool object, to drop with it.
pub fn vm_pool_keys(pool: &Obj, pool_id: &str) -> Vec<String> {
    let prefix = format!("{VMPOOL_PERMISSION_KEY}{pool_id}:");
    others_under(pool, &prefix)
        .map(|(key, _, _)| key.to_string())
        .collect()
}

fn target_of(db: &Db, class: &'static str, obj: &Obj) -> Target {
    if class == "cluster" {
        let id = model::cluster_id(db);
        return Target {
            class: "pool",
            r: obj.r.to_string(),
            prefix: CLUSTER_PERMISSION_KEY.into(),
            path: format!("clusters/{id}"),
            shown: Some(Shown {
                elem: "cluster",
                coll: "clusters",
                id,
            }),
        };
    }
    let shown = shown_of(class, obj);
    let path = match &shown {
        Some(s) => format!("{}/{}", s.coll, s.id),
        None => format!("networks/{}", obj.uuid()),
    };
    Target {
        class,
        r: obj.r.to_string(),
        prefix: PERMISSION_KEY.into(),
        shown,
        path,
    }
}

/// How an object is referred to in a permission.
fn shown_of(class: &str, obj: &Obj) -> Option<Shown> {
    let (elem, coll) = match class {
        "VM" if model::is_template(obj) => ("template", "templates"),
        "VM" => ("vm", "vms"),
        "host" => ("host", "hosts"),
        "SR" => ("storage_domain", "storagedomains"),
        "VDI" => ("disk", "disks"),
        "pool" => ("data_center", "datacenters"),
        _ => return None,
    };
    Some(Shown {
        elem,
        coll,
        id: obj.uuid().to_string(),
    })
}

/// The target a permission document names (`<vm>`, `<template>`, `<host>`, …), if any.
fn target_in(api: &Api, body: &Node) -> ApiResult<Option<Target>> {
    const KINDS: &[(&str, &str, &str)] = &[
        ("vm", "VM", "VM"),
        ("template", "VM", "Template"),
        ("host", "host", "Host"),
        ("storage_domain", "SR", "Storage domain"),
        ("disk", "VDI", "Disk"),
    ];
    for (elem, class, what) in KINDS {
        if let Some(id) = body.id_at(elem) {
            let obj = api.by_id(class, id, what)?;
            let right_kind = match *elem {
                "vm" => model::is_vm(&obj),
                "template" => model::is_template(&obj),
                _ => true,
            };
            if !right_kind {
                return Err(ApiError::not_found(what, id));
            }
            return Ok(Some(api.engine.read(|db| target_of(db, class, &obj))));
        }
    }
    if let Some(id) = body.id_at("vm_pool") {
        vmpools::pool_record(api, id)?;
        return api
            .engine
            .read(|db| vm_pool_target(db, id))
            .map(Some)
            .ok_or_else(|| ApiError::not_found("VM pool", id));
    }
    let (dc, cluster) = api
        .engine
        .read(|db| (model::datacenter_id(db), model::cluster_id(db)));
    for (elem, id, what, class) in [
        ("data_center", &dc, "Data center", "pool"),
        ("cluster", &cluster, "Cluster", "cluster"),
    ] {
        if let Some(given) = body.id_at(elem) {
            if given != id.as_str() {
                return Err(ApiError::not_found(what, given));
            }
            let pool = api.by_id("pool", &dc, "Data center")?;
            return Ok(Some(api.engine.read(|db| target_of(db, class, &pool))));
        }
    }
    Ok(None)
}

/// The system permissions: each account's role on the data center.
fn system_perms(api: &Api) -> Vec<Perm> {
    let accounts = api.engine.accounts();
    api.engine.read(|db| {
        let dc = Shown {
            elem: "data_center",
            coll: "datacenters",
            id: model::datacenter_id(db),
        };
        accounts
            .iter()
            .filter_map(|a| {
                let user = db.get("user", &a.user)?.uuid().to_string();
                let role = roles::for_core(&a.role)?;
                Some(Perm {
                    id: model::derived_id(&user, "system_permission"),
                    role,
                    user,
                    object: Some(dc.clone()),
                    stored: None,
                })
            })
            .collect()
    })
}

/// The permissions recorded under `prefix` in an object's `other_config`.
fn recorded(obj: &Obj, class: &'static str, prefix: &str, shown: &Option<Shown>) -> Vec<Perm> {
    others_under(obj, prefix)
        .filter_map(|(key, id, value)| {
            let (user, role) = parse_value(value)?;
            Some(Perm {
                id: id.to_string(),
                role,
                user: user.to_string(),
                object: shown.clone(),
                stored: Some(Stored {
                    class,
                    r: obj.r.to_string(),
                    key: key.to_string(),
                }),
            })
        })
        .collect()
}

/// Reads a recorded permission's value `<user id>:<role id>`.
fn parse_value(v: &str) -> Option<(&str, &'static Role)> {
    let (user, role) = v.split_once(':')?;
    Some((user, roles::by_id(role)?))
}

/// The permissions on a target: its own and the system permissions it inherits.
fn on_target(api: &Api, target: &Target) -> Vec<Perm> {
    let mut list = api.engine.read(|db| {
        db.get(target.class, &target.r)
            .map(|o| recorded(o, target.class, &target.prefix, &target.shown))
            .unwrap_or_default()
    });
    list.extend(system_perms(api));
    list
}

/// Every permission an account holds: its system permission and those on objects.
fn held_by(api: &Api, user: &str) -> Vec<Perm> {
    let mut list: Vec<Perm> = system_perms(api)
        .into_iter()
        .filter(|p| p.user == user)
        .collect();
    list.extend(
        api.engine
            .read(all_recorded)
            .into_iter()
            .filter(|p| p.user == user),
    );
    list
}

/// Every permission recorded on any object.
fn all_recorded(db: &Db) -> Vec<Perm> {
    let mut out = Vec::new();
    for class in ["VM", "host", "SR", "VDI", "network"] {
        for obj in db.all(class) {
            out.extend(recorded(obj, class, PERMISSION_KEY, &shown_of(class, obj)));
        }
    }
    if let Some(pool) = model::pool(db) {
        out.extend(recorded(
            pool,
            "pool",
            PERMISSION_KEY,
            &shown_of("pool", pool),
        ));
        let cluster = Some(Shown {
            elem: "cluster",
            coll: "clusters",
            id: model::cluster_id(db),
        });
        out.extend(recorded(pool, "pool", CLUSTER_PERMISSION_KEY, &cluster));
        let pool_ids: Vec<String> = others_under(pool, VMPOOL_PERMISSION_KEY)
            .filter_map(|(_, rest, _)| rest.split_once(':').map(|(id, _)| id.to_string()))
            .collect();
        for id in dedup(pool_ids) {
            if let Some(t) = vm_pool_target(db, &id) {
                out.extend(recorded(pool, "pool", &t.prefix, &t.shown));
            }
        }
    }
    out
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// Records a permission on a target.
async fn add(
    api: &Api,
    req: &Req,
    target: &Target,
    user: &str,
    role: &'static Role,
) -> ApiResult<Perm> {
    let exists = on_target(api, target)
        .iter()
        .any(|p| p.stored.is_some() && p.user == user && p.role.id == role.id);
    if exists {
        return Err(ApiError::Conflict(
            "Cannot add Permission. Permission already exists.".into(),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let key = format!("{}{id}", target.prefix);
    let value = format!("{user}:{}", role.id);
    api.set_other(req, target.class, &target.r, &[(&key, Some(&value))])
        .await?;
    Ok(Perm {
        id,
        role,
        user: user.to_string(),
        object: target.shown.clone(),
        stored: Some(Stored {
            class: target.class,
            r: target.r.clone(),
            key,
        }),
    })
}

/// Removes a recorded permission; a system permission cannot go.
async fn remove(api: &Api, req: &Req, p: &Perm) -> ApiResult<Resp> {
    let Some(stored) = &p.stored else {
        return Err(system_removal(p));
    };
    api.set_other(req, stored.class, &stored.r, &[(&stored.key, None)])
        .await?;
    Resp::removed()
}

fn system_change(account: &AccountInfo, role: &Role) -> ApiError {
    if roles::for_core(&account.role).is_some_and(|r| r.id == role.id) {
        return ApiError::Conflict("Cannot add Permission. Permission already exists.".into());
    }
    ApiError::Conflict(format!(
        "Cannot add Permission. A system-wide permission is the role of the engine's account \
         \"{}\" (now {}), and the engine offers no way to change an account's role.",
        account.name, account.role
    ))
}

fn system_removal(p: &Perm) -> ApiError {
    ApiError::Conflict(format!(
        "Cannot remove Permission. Permission {} is the system-wide role {} of the user's \
         engine account, which the engine offers no way to change.",
        p.id, p.role.name
    ))
}

fn no_group(body: &Node) -> ApiError {
    let id = body
        .id_at("group")
        .or_else(|| body.text_at("group/name"))
        .unwrap_or("");
    ApiError::NotFound(format!("Entity not found: Group: {id}"))
}

fn find<'a>(list: &'a [Perm], id: &str) -> ApiResult<&'a Perm> {
    list.iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::not_found("Permission", id))
}

fn render_list(list: &[Perm], path: &str, max: Option<usize>) -> Node {
    collection(
        "permissions",
        limit(list.iter().map(|p| render(p, path)).collect(), max),
    )
}

/// A permission as oVirt shows it, below the collection `path`.
fn render(p: &Perm, path: &str) -> Node {
    entity("permission", path, &p.id)
        .child(roles::reference_to(p.role))
        .child(entity("user", "users", &p.user))
        .opt_child(p.object.as_ref().map(|o| entity(o.elem, o.coll, &o.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values() {
        let (user, role) = parse_value("u1:def00006-0000-0000-0000-def000000006").expect("a value");
        assert_eq!(user, "u1");
        assert_eq!(role.name, "UserVmManager");
        assert!(parse_value("u1").is_none());
        assert!(parse_value("u1:nope").is_none());
    }

    #[test]
    fn rendering() {
        let p = Perm {
            id: "p9".into(),
            role: &roles::ROLES[0],
            user: "u1".into(),
            object: Some(Shown {
                elem: "vm",
                coll: "vms",
                id: "123".into(),
            }),
            stored: None,
        };
        let n = render(&p, "vms/123/permissions");
        assert_eq!(
            n.get_attr("href"),
            Some("/ovirt-engine/api/vms/123/permissions/p9")
        );
        assert_eq!(n.id_at("vm"), Some("123"));
        assert_eq!(n.id_at("user"), Some("u1"));
        assert_eq!(n.id_at("role"), Some(roles::ROLES[0].id));
    }
}
