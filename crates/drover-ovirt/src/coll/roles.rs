//! The `roles` collection: oVirt's predefined roles, their permits (action groups), and the
//! one table that ties each role to the core role that enforces it.
//!
//! The engine enforces the roles of the XenAPI datamodel (`pool-admin` … `read-only`), one per
//! login account. Each oVirt role stands for one of them:
//!
//! | oVirt role                                                        | core role        |
//! |-------------------------------------------------------------------|------------------|
//! | SuperUser                                                         | `pool-admin`     |
//! | DataCenterAdmin, ClusterAdmin, HostAdmin, StorageAdmin, NetworkAdmin | `pool-operator` |
//! | PowerUserRole, TemplateAdmin, VmPoolAdmin                         | `vm-power-admin` |
//! | UserVmManager                                                     | `vm-admin`       |
//! | UserRole, UserTemplateBasedVm                                     | `vm-operator`    |
//! | ReadOnlyAdmin                                                     | `read-only`      |
//!
//! An account shows as holding the first role of [`ROLES`] that stands for its core role. The
//! ids are oVirt's own ids of these roles; the roles are predefined and cannot be changed.

use axum::http::Method;

use crate::api::{collection, entity, limit, no_such_resource, with_links, Api, Req, Resp};
use crate::fault::{ApiError, ApiResult};
use crate::node::Node;

/// An oVirt action group, shown as a permit.
#[derive(Debug)]
pub struct ActionGroup {
    /// oVirt's number of the group (the permit's id).
    pub id: u32,
    /// Its name, as the API writes it.
    pub name: &'static str,
    /// Whether it is an administrative group.
    pub administrative: bool,
}

const fn group(id: u32, name: &'static str, administrative: bool) -> ActionGroup {
    ActionGroup {
        id,
        name,
        administrative,
    }
}

/// The action groups the roles draw on.
pub const ACTION_GROUPS: &[ActionGroup] = &[
    group(1, "create_vm", false),
    group(2, "delete_vm", false),
    group(3, "edit_vm_properties", false),
    group(4, "vm_basic_operations", false),
    group(5, "change_vm_cd", false),
    group(6, "migrate_vm", false),
    group(7, "connect_to_vm", false),
    group(8, "import_export_vm", true),
    group(9, "configure_vm_network", false),
    group(10, "configure_vm_storage", false),
    group(11, "move_vm", false),
    group(12, "manipulate_vm_snapshots", false),
    group(100, "create_host", true),
    group(101, "edit_host_configuration", true),
    group(102, "delete_host", true),
    group(103, "manipulate_host", true),
    group(104, "configure_host_network", true),
    group(200, "create_template", false),
    group(201, "edit_template_properties", false),
    group(202, "delete_template", false),
    group(203, "copy_template", false),
    group(204, "configure_template_network", false),
    group(300, "create_vm_pool", false),
    group(301, "edit_vm_pool_configuration", false),
    group(302, "delete_vm_pool", false),
    group(303, "vm_pool_basic_operations", false),
    group(400, "create_cluster", true),
    group(401, "edit_cluster_configuration", true),
    group(402, "delete_cluster", true),
    group(403, "configure_cluster_network", true),
    group(500, "manipulate_users", true),
    group(501, "manipulate_roles", true),
    group(502, "manipulate_permissions", false),
    group(600, "create_storage_domain", true),
    group(601, "edit_storage_domain_configuration", true),
    group(602, "delete_storage_domain", true),
    group(603, "manipulate_storage_domain", true),
    group(700, "create_storage_pool", true),
    group(701, "delete_storage_pool", true),
    group(702, "edit_storage_pool_configuration", true),
    group(703, "configure_storage_pool_network", true),
    group(800, "configure_engine", true),
    group(1100, "create_disk", false),
    group(1101, "attach_disk", false),
    group(1102, "edit_disk_properties", false),
    group(1103, "configure_disk_storage", false),
    group(1104, "delete_disk", false),
    group(1300, "login", false),
];

/// A predefined role.
#[derive(Debug)]
pub struct Role {
    /// oVirt's id of the role.
    pub id: &'static str,
    /// Its name.
    pub name: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// Whether it is an administrator's role.
    pub administrative: bool,
    /// The core role that enforces it.
    pub core: &'static str,
    /// The action groups it allows (ids of [`ACTION_GROUPS`]); `None` for all of them.
    pub permits: Option<&'static [u32]>,
}

/// The predefined roles; for each core role, the first that stands for it is the one an
/// account of that core role holds.
pub const ROLES: &[Role] = &[
    Role {
        id: "00000000-0000-0000-0000-000000000001",
        name: "SuperUser",
        description: "Every permission on every object of the system",
        administrative: true,
        core: "pool-admin",
        permits: None,
    },
    Role {
        id: "def00002-0000-0000-0000-def000000002",
        name: "DataCenterAdmin",
        description: "Administers every object of a data center except its storage",
        administrative: true,
        core: "pool-operator",
        permits: Some(&[
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100, 101, 102, 103, 104, 200, 201, 202, 203,
            204, 300, 301, 302, 303, 400, 401, 402, 403, 700, 701, 702, 703, 1300,
        ]),
    },
    Role {
        id: "def00001-0000-0000-0000-def000000001",
        name: "ClusterAdmin",
        description: "Administers every object of a cluster",
        administrative: true,
        core: "pool-operator",
        permits: Some(&[
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100, 101, 102, 103, 104, 300, 301, 302, 303,
            400, 401, 402, 403, 1300,
        ]),
    },
    Role {
        id: "def00004-0000-0000-0000-def000000004",
        name: "HostAdmin",
        description: "Administers a host",
        administrative: true,
        core: "pool-operator",
        permits: Some(&[100, 101, 102, 103, 104, 600, 601, 602, 603, 1300]),
    },
    Role {
        id: "def00003-0000-0000-0000-def000000003",
        name: "StorageAdmin",
        description: "Administers a storage domain",
        administrative: true,
        core: "pool-operator",
        permits: Some(&[600, 601, 602, 603, 1300]),
    },
    Role {
        id: "def00005-0000-0000-0000-def000000005",
        name: "NetworkAdmin",
        description: "Administers a logical network",
        administrative: true,
        core: "pool-operator",
        permits: Some(&[103, 104, 403, 1300]),
    },
    Role {
        id: "00000000-0000-0000-0001-000000000002",
        name: "PowerUserRole",
        description: "A user who creates and manages VMs, templates and disks",
        administrative: false,
        core: "vm-power-admin",
        permits: Some(&[1, 200, 300, 1100, 1300]),
    },
    Role {
        id: "def00008-0000-0000-0000-def000000008",
        name: "TemplateAdmin",
        description: "Administers a template",
        administrative: true,
        core: "vm-power-admin",
        permits: Some(&[200, 201, 202, 203, 204, 1300]),
    },
    Role {
        id: "def00007-0000-0000-0000-def000000007",
        name: "VmPoolAdmin",
        description: "Administers a VM pool",
        administrative: true,
        core: "vm-power-admin",
        permits: Some(&[300, 301, 302, 303, 1300]),
    },
    Role {
        id: "def00006-0000-0000-0000-def000000006",
        name: "UserVmManager",
        description: "A user who does anything with VMs",
        administrative: false,
        core: "vm-admin",
        permits: Some(&[1, 2, 3, 4, 5, 7, 9, 10, 12, 1300]),
    },
    Role {
        id: "00000000-0000-0000-0001-000000000001",
        name: "UserRole",
        description: "A user who uses VMs and VM pools",
        administrative: false,
        core: "vm-operator",
        permits: Some(&[4, 5, 7, 303, 1300]),
    },
    Role {
        id: "def00009-0000-0000-0000-def000000009",
        name: "UserTemplateBasedVm",
        description: "A user who makes VMs from templates",
        administrative: false,
        core: "vm-operator",
        permits: Some(&[1, 1300]),
    },
    Role {
        id: "def0000c-0000-0000-0000-def00000000c",
        name: "ReadOnlyAdmin",
        description: "An administrator who sees everything and changes nothing",
        administrative: true,
        core: "read-only",
        permits: Some(&[1300]),
    },
];

/// The role with an id.
pub fn by_id(id: &str) -> Option<&'static Role> {
    ROLES.iter().find(|r| r.id.eq_ignore_ascii_case(id))
}

/// The role an account of a core role holds.
pub fn for_core(core: &str) -> Option<&'static Role> {
    ROLES.iter().find(|r| r.core == core)
}

/// The role a `<role>` reference (by `id` or `<name>`) of a document names.
pub fn named_in(node: &Node) -> ApiResult<&'static Role> {
    match (node.id_at("role"), node.text_at("role/name")) {
        (Some(id), _) => by_id(id).ok_or_else(|| ApiError::not_found("Role", id)),
        (None, Some(name)) => ROLES
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| ApiError::NotFound(format!("Entity not found: Role: name={name}"))),
        (None, None) => Err(ApiError::missing("Permission", "role.id|name")),
    }
}

/// A reference to a role.
pub fn reference_to(role: &Role) -> Node {
    entity("role", "roles", role.id)
}

/// The action groups a role allows.
pub fn permits(role: &Role) -> impl Iterator<Item = &'static ActionGroup> + '_ {
    ACTION_GROUPS
        .iter()
        .filter(move |g| role.permits.is_none_or(|ids| ids.contains(&g.id)))
}

/// Handles `/roles/...`.
pub async fn handle(_api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => Resp::ok(collection(
            "roles",
            limit(ROLES.iter().map(render).collect(), req.max()?),
        )),
        ([], &Method::POST) => Err(ApiError::Conflict(
            "Cannot add Role. This engine offers its predefined roles only, each enforced by a \
             role of the engine's accounts."
                .into(),
        )),
        ([id], &Method::GET) => Resp::ok(render(role(id)?)),
        ([id], &Method::PUT | &Method::DELETE) => {
            let r = role(id)?;
            let verb = if req.method == Method::PUT {
                "update"
            } else {
                "remove"
            };
            Err(read_only(verb, r))
        }
        ([id, "permits"], &Method::GET) => {
            let r = role(id)?;
            let list = permits(r).map(|g| permit(r, g)).collect();
            Resp::ok(collection("permits", limit(list, req.max()?)))
        }
        ([id, "permits"], &Method::POST) => Err(read_only("update", role(id)?)),
        ([id, "permits", pid], &Method::GET) => {
            let r = role(id)?;
            let g = permits(r)
                .find(|g| g.id.to_string() == *pid)
                .ok_or_else(|| ApiError::not_found("Permit", pid))?;
            Resp::ok(permit(r, g))
        }
        ([id, "permits", _], &Method::DELETE) => Err(read_only("update", role(id)?)),
        _ => Err(no_such_resource(req, "/roles", rest)),
    }
}

fn role(id: &str) -> ApiResult<&'static Role> {
    by_id(id).ok_or_else(|| ApiError::not_found("Role", id))
}

fn read_only(verb: &str, role: &Role) -> ApiError {
    ApiError::Conflict(format!(
        "Cannot {verb} Role. Role {} is predefined and read-only.",
        role.name
    ))
}

/// A role as oVirt shows it.
pub fn render(role: &Role) -> Node {
    let node = entity("role", "roles", role.id)
        .text("name", role.name)
        .text("description", role.description);
    with_links(node, &format!("roles/{}", role.id), &[], &["permits"])
        .text("administrative", role.administrative)
        .text("mutable", false)
}

fn permit(role: &Role, g: &ActionGroup) -> Node {
    entity(
        "permit",
        &format!("roles/{}/permits", role.id),
        &g.id.to_string(),
    )
    .text("name", g.name)
    .text("administrative", g.administrative)
    .child(reference_to(role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_role_has_a_role() {
        for core in [
            "pool-admin",
            "pool-operator",
            "vm-power-admin",
            "vm-admin",
            "vm-operator",
            "read-only",
        ] {
            assert!(for_core(core).is_some(), "{core}");
        }
        assert_eq!(for_core("pool-admin").map(|r| r.name), Some("SuperUser"));
        assert_eq!(
            for_core("pool-operator").map(|r| r.name),
            Some("DataCenterAdmin")
        );
        assert_eq!(for_core("vm-operator").map(|r| r.name), Some("UserRole"));
    }

    #[test]
    fn ids_and_names_are_unique_and_permits_known() {
        for (i, a) in ROLES.iter().enumerate() {
            assert_eq!(a.id.len(), 36);
            for b in &ROLES[i + 1..] {
                assert_ne!(a.id, b.id);
                assert_ne!(a.name, b.name);
            }
            for id in a.permits.unwrap_or(&[]) {
                assert!(ACTION_GROUPS.iter().any(|g| g.id == *id), "{} {id}", a.name);
            }
        }
        assert_eq!(permits(&ROLES[0]).count(), ACTION_GROUPS.len());
    }

    #[test]
    fn role_references() {
        let n = Node::new("permission").child(Node::new("role").text("name", "UserVmManager"));
        assert_eq!(
            named_in(&n).map(|r| r.id),
            Ok("def00006-0000-0000-0000-def000000006")
        );
        let n = Node::new("permission")
            .child(Node::new("role").attr("id", "DEF00006-0000-0000-0000-DEF000000006"));
        assert_eq!(named_in(&n).map(|r| r.name), Ok("UserVmManager"));
        assert!(named_in(&Node::new("permission")).is_err());
    }
}
