//! How oVirt's entities sit on the engine's objects: derived ids, the data center and cluster
//! of the pool, and the statuses oVirt shows for the core's states.

use drover_core::db::Db;
use drover_core::Obj;

/// The name of the pool's one cluster and, unless renamed, of its data center.
pub const DEFAULT_NAME: &str = "Default";

/// `other_config` key (on the pool) of the data center's name.
pub const DC_NAME_KEY: &str = "ovirt_datacenter_name";
/// `other_config` key (on the pool) of the cluster's name.
pub const CLUSTER_NAME_KEY: &str = "ovirt_cluster_name";
/// `other_config` key of an entity's oVirt comment.
pub const COMMENT_KEY: &str = "ovirt_comment";

/// A stable id derived from another one: oVirt entities that have no object of their own
/// (the cluster of a pool, the vNIC profile of a network) get `uuid5(source, kind)`.
pub fn derived_id(source: &str, kind: &str) -> String {
    let ns = uuid::Uuid::parse_str(source).unwrap_or(uuid::Uuid::NAMESPACE_OID);
    uuid::Uuid::new_v5(&ns, kind.as_bytes()).to_string()
}

/// The pool (the data center) of the inventory.
pub fn pool(db: &Db) -> Option<&Obj> {
    db.all("pool").next().map(|p| &**p)
}

/// The data center's id: the pool's uuid.
pub fn datacenter_id(db: &Db) -> String {
    pool(db).map(|p| p.uuid().to_string()).unwrap_or_default()
}

/// The data center's name.
pub fn datacenter_name(db: &Db) -> String {
    pool(db)
        .and_then(|p| p.other(DC_NAME_KEY))
        .unwrap_or(DEFAULT_NAME)
        .to_string()
}

/// The cluster's id.
pub fn cluster_id(db: &Db) -> String {
    derived_id(&datacenter_id(db), "cluster")
}

/// The cluster's name.
pub fn cluster_name(db: &Db) -> String {
    pool(db)
        .and_then(|p| p.other(CLUSTER_NAME_KEY))
        .unwrap_or(DEFAULT_NAME)
        .to_string()
}

/// The id of a network's vNIC profile.
pub fn vnic_profile_id(network_uuid: &str) -> String {
    derived_id(network_uuid, "vnic_profile")
}

/// The id of a VM's `Active VM` snapshot.
pub fn active_snapshot_id(vm_uuid: &str) -> String {
    derived_id(vm_uuid, "active_snapshot")
}

/// oVirt's status of a VM, from its power state and the operation it is in.
pub fn vm_status(vm: &Obj) -> &'static str {
    let ops = vm.get("current_operations");
    let busy = |op: &str| {
        ops.as_map()
            .is_some_and(|m| m.iter().any(|(_, v)| v.as_str() == Some(op)))
    };
    if busy("pool_migrate") || busy("migrate_send") {
        return "migrating";
    }
    if busy("clone") || busy("copy") || busy("snapshot") || busy("revert") || busy("provision") {
        return "image_locked";
    }
    if busy("suspend") {
        return "saving_state";
    }
    if busy("resume") || busy("resume_on") {
        return "restoring_state";
    }
    if busy("start") || busy("start_on") {
        return "powering_up";
    }
    if busy("clean_shutdown") || busy("hard_shutdown") || busy("shutdown") {
        return "powering_down";
    }
    if busy("clean_reboot") || busy("hard_reboot") {
        return "reboot_in_progress";
    }
    match vm.str("power_state") {
        "Running" => "up",
        "Paused" => "paused",
        "Suspended" => "suspended",
        _ => "down",
    }
}

/// oVirt's status of a host.
pub fn host_status(host: &Obj, metrics_live: bool) -> &'static str {
    match host.other(drover_core::STATE_KEY) {
        Some("non_responsive") => return "non_responsive",
        Some("down" | "powered_off") => return "down",
        Some("powering_up") => return "connecting",
        _ => {}
    }
    if !host.bool("enabled") {
        let has_guests = !host.refs("resident_VMs").is_empty();
        return if has_guests {
            "preparing_for_maintenance"
        } else {
            "maintenance"
        };
    }
    if metrics_live {
        "up"
    } else {
        "non_responsive"
    }
}

/// Whether a VM object is an oVirt VM (not a template, snapshot or the control domain).
pub fn is_vm(vm: &Obj) -> bool {
    !vm.bool("is_a_template") && !vm.bool("is_a_snapshot") && !vm.bool("is_control_domain")
}

/// Whether a VM object is an oVirt template (a XenAPI template that is not a snapshot).
pub fn is_template(vm: &Obj) -> bool {
    vm.bool("is_a_template") && !vm.bool("is_a_snapshot")
}

/// The names oVirt accepts for a kind of entity: letters, digits, `-` and `_`, dots where
/// allowed, at most `max` characters.
pub struct NameRule {
    /// Longest name, in characters.
    pub max: usize,
    /// Whether `.` is allowed.
    pub dots: bool,
}

impl NameRule {
    /// Whether `name` follows the rule.
    pub fn accepts(&self, name: &str) -> bool {
        !name.is_empty()
            && name.chars().count() <= self.max
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || (self.dots && c == '.'))
    }
}

/// Names of VMs, templates, VM pools and hosts.
pub const VM_NAMES: NameRule = NameRule {
    max: 255,
    dots: true,
};
/// Names of data centers and clusters.
pub const CLUSTER_NAMES: NameRule = NameRule {
    max: 40,
    dots: false,
};
/// Names of storage domains.
pub const DOMAIN_NAMES: NameRule = NameRule {
    max: 50,
    dots: false,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = derived_id("2ae8a1a6-0000-0000-0000-000000000000", "cluster");
        assert_eq!(
            a,
            derived_id("2ae8a1a6-0000-0000-0000-000000000000", "cluster")
        );
        assert_ne!(
            a,
            derived_id("2ae8a1a6-0000-0000-0000-000000000000", "vnic_profile")
        );
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn name_rules() {
        assert!(VM_NAMES.accepts("vm-1_a.b"));
        assert!(!VM_NAMES.accepts("vm 1"));
        assert!(!VM_NAMES.accepts(""));
        assert!(CLUSTER_NAMES.accepts("Default"));
        assert!(!CLUSTER_NAMES.accepts("a.b"));
        assert!(!CLUSTER_NAMES.accepts(&"x".repeat(41)));
        assert!(DOMAIN_NAMES.accepts("data-1_x"));
        assert!(!DOMAIN_NAMES.accepts(&"x".repeat(51)));
    }
}
