//! The object-type tables, after oVirt's condition-field and cross-reference
//! autocompleters, and the enum values of their status-like fields.

use super::schema::{FieldDef, FieldKind, ObjectType};

const fn text(name: &'static str) -> FieldDef {
    FieldDef {
        name,
        kind: FieldKind::Text,
    }
}

const fn number(name: &'static str) -> FieldDef {
    FieldDef {
        name,
        kind: FieldKind::Number,
    }
}

const fn date(name: &'static str) -> FieldDef {
    FieldDef {
        name,
        kind: FieldKind::Date,
    }
}

const fn flag(name: &'static str) -> FieldDef {
    FieldDef {
        name,
        kind: FieldKind::Bool,
    }
}

const fn choice(name: &'static str, values: &'static [&'static str]) -> FieldDef {
    FieldDef {
        name,
        kind: FieldKind::Enum(values),
    }
}

const VM_STATUS: &[&str] = &[
    "down",
    "image_locked",
    "migrating",
    "not_responding",
    "paused",
    "powering_down",
    "powering_up",
    "reboot_in_progress",
    "restoring_state",
    "saving_state",
    "suspended",
    "unassigned",
    "unknown",
    "up",
    "wait_for_launch",
];
const HOST_STATUS: &[&str] = &[
    "connecting",
    "down",
    "error",
    "initializing",
    "install_failed",
    "installing",
    "installing_os",
    "kdumping",
    "maintenance",
    "non_operational",
    "non_responsive",
    "pending_approval",
    "preparing_for_maintenance",
    "reboot",
    "unassigned",
    "up",
];
const STORAGE_DOMAIN_STATUS: &[&str] = &[
    "activating",
    "active",
    "detaching",
    "inactive",
    "locked",
    "maintenance",
    "mixed",
    "preparing_for_maintenance",
    "unattached",
    "unknown",
];
const DISK_STATUS: &[&str] = &["illegal", "locked", "ok"];
const TEMPLATE_STATUS: &[&str] = &["illegal", "locked", "ok"];
const DATA_CENTER_STATUS: &[&str] = &[
    "contend",
    "maintenance",
    "not_operational",
    "problematic",
    "uninitialized",
    "up",
];
const JOB_STATUS: &[&str] = &["aborted", "failed", "finished", "started", "unknown"];
const LOG_SEVERITY: &[&str] = &["alert", "error", "normal", "warning"];
const EXTERNAL_STATUS: &[&str] = &["error", "failure", "info", "ok", "warning"];
const DISK_CONTENT_TYPE: &[&str] = &[
    "backup_scratch",
    "data",
    "hosted_engine",
    "hosted_engine_configuration",
    "hosted_engine_metadata",
    "hosted_engine_sanlock",
    "iso",
    "memory_dump_volume",
    "memory_metadata_volume",
    "ovf_store",
];
const VM_TYPE: &[&str] = &["desktop", "high_performance", "server"];
const HOST_TYPE: &[&str] = &["ovirt_node", "rhel", "rhev_h"];
const POOL_TYPE: &[&str] = &["automatic", "manual"];
const BIOS_TYPE: &[&str] = &[
    "cluster_default",
    "i440fx_sea_bios",
    "q35_ovmf",
    "q35_sea_bios",
    "q35_secure_boot",
];

/// Virtual machines.
pub static VMS: ObjectType = ObjectType {
    name: "Vms",
    aliases: &["vms", "vm"],
    fields: &[
        text("address"),
        text("apps"),
        text("architecture"),
        choice("bios_type", BIOS_TYPE),
        text("cluster"),
        text("comment"),
        text("compatibility_level"),
        number("cpu_usage"),
        text("created_by_user_id"),
        date("creationdate"),
        text("custom_compatibility_level"),
        text("custom_cpu_type"),
        text("custom_emulated_machine"),
        text("datacenter"),
        text("description"),
        text("fqdn"),
        number("guaranteed_memory"),
        flag("has_illegal_images"),
        text("id"),
        text("ip"),
        text("k8s_namespace"),
        text("loggedinuser"),
        number("mem_usage"),
        number("memory"),
        number("migration_progress_percent"),
        text("name"),
        number("network_usage"),
        flag("next_run_config_exists"),
        text("on_host"),
        text("os"),
        text("pool"),
        text("quota"),
        choice("status", VM_STATUS),
        text("tag"),
        choice("type", VM_TYPE),
        number("uptime"),
        number("vcpus"),
    ],
    joins: &["Events", "Hosts", "Nics", "Storage", "Templates", "Users"],
};

/// Hosts.
pub static HOSTS: ObjectType = ObjectType {
    name: "Hosts",
    aliases: &["hosts", "host"],
    fields: &[
        number("active_vms"),
        text("address"),
        text("architecture"),
        text("cluster"),
        text("comment"),
        number("committed_mem"),
        text("cpu_model"),
        number("cpu_speed"),
        number("cpu_usage"),
        number("cpus"),
        text("datacenter"),
        choice("external_status", EXTERNAL_STATUS),
        number("ha_score"),
        text("hw_id"),
        text("id"),
        number("load"),
        number("mem_usage"),
        number("memory"),
        number("migrating_vms"),
        text("name"),
        number("network_usage"),
        number("spm_id"),
        choice("status", HOST_STATUS),
        text("tag"),
        choice("type", HOST_TYPE),
        flag("update_available"),
        text("version"),
    ],
    joins: &["Events", "Nics", "Storage", "Templates", "Users", "Vms"],
};

/// Templates.
pub static TEMPLATES: ObjectType = ObjectType {
    name: "Templates",
    aliases: &["templates", "template"],
    fields: &[
        text("architecture"),
        number("childcount"),
        text("cluster"),
        text("comment"),
        date("creationdate"),
        text("datacenter"),
        text("description"),
        text("id"),
        number("mem"),
        text("name"),
        text("os"),
        text("quota"),
        flag("sealed"),
        choice("status", TEMPLATE_STATUS),
        text("tag"),
        text("version_name"),
        text("_vmt_id"),
    ],
    joins: &["Events", "Hosts", "Nics", "Storage", "Users", "Vms"],
};

/// Events (the audit log).
pub static EVENTS: ObjectType = ObjectType {
    name: "Events",
    aliases: &["events", "event"],
    fields: &[
        text("correlation_id"),
        number("custom_event_id"),
        flag("deleted"),
        text("event_datacenter"),
        text("event_host"),
        text("event_storage"),
        text("event_template"),
        text("event_vm"),
        text("event_volume"),
        text("id"),
        text("message"),
        text("origin"),
        choice("severity", LOG_SEVERITY),
        date("time"),
        number("type"),
        text("usrid"),
        text("usrname"),
        text("_event_datacenter_id"),
        text("_event_host_id"),
        text("_event_quota_id"),
        text("_event_storage_id"),
        text("_event_template_id"),
        text("_event_vm_id"),
    ],
    joins: &["Clusters", "Templates", "Users", "Vms"],
};

/// Users.
pub static USERS: ObjectType = ObjectType {
    name: "Users",
    aliases: &["users", "user"],
    fields: &[
        text("department"),
        text("directory"),
        text("id"),
        text("lastname"),
        text("login"),
        text("name"),
        text("pool"),
        text("tag"),
        text("type"),
        text("user_and_domain"),
        text("usrname"),
    ],
    joins: &["Events", "Hosts", "Templates", "Vms"],
};

/// Groups.
pub static GROUPS: ObjectType = ObjectType {
    name: "Groups",
    aliases: &["groups", "group"],
    fields: &[text("grpname"), text("id"), text("name")],
    joins: &[],
};

/// Clusters.
pub static CLUSTERS: ObjectType = ObjectType {
    name: "Clusters",
    aliases: &["clusters", "cluster"],
    fields: &[
        text("architecture"),
        text("comment"),
        text("compatibility_level"),
        text("cpu_type"),
        text("description"),
        text("id"),
        text("name"),
    ],
    joins: &["DataCenter", "Storage"],
};

/// Data centers (storage pools).
pub static DATA_CENTERS: ObjectType = ObjectType {
    name: "DataCenter",
    aliases: &["datacenter", "datacenters"],
    fields: &[
        text("comment"),
        text("compatibility_version"),
        text("description"),
        text("id"),
        flag("local"),
        text("name"),
        choice("status", DATA_CENTER_STATUS),
    ],
    joins: &["Clusters", "Networks", "Storage"],
};

/// Storage domains.
pub static STORAGE: ObjectType = ObjectType {
    name: "Storage",
    aliases: &["storage", "storagedomains", "storagedomain"],
    fields: &[
        flag("backup"),
        text("comment"),
        number("committed"),
        number("critical_space_threshold"),
        text("datacenter"),
        text("description"),
        flag("discard_after_delete"),
        choice("external_status", EXTERNAL_STATUS),
        number("free_size"),
        text("id"),
        number("low_space_threshold"),
        text("name"),
        text("shared_status"),
        choice("status", STORAGE_DOMAIN_STATUS),
        number("total_size"),
        text("type"),
        number("used_size"),
        flag("wipe_after_delete"),
    ],
    joins: &["Clusters", "Hosts"],
};

/// Disks.
pub static DISKS: ObjectType = ObjectType {
    name: "Disks",
    aliases: &["disks", "disk"],
    fields: &[
        number("actual_size"),
        text("alias"),
        text("allocation_policy"),
        date("creation_date"),
        text("description"),
        choice("disk_content_type", DISK_CONTENT_TYPE),
        text("disk_type"),
        text("id"),
        date("last_modified"),
        text("name"),
        number("number_of_vms"),
        number("provisioned_size"),
        text("quota"),
        flag("shareable"),
        number("size"),
        choice("status", DISK_STATUS),
        text("vm_names"),
        flag("wipe_after_delete"),
    ],
    joins: &["DataCenter", "Storage"],
};

/// Logical networks.
pub static NETWORKS: ObjectType = ObjectType {
    name: "Networks",
    aliases: &["networks", "network"],
    fields: &[
        text("comment"),
        text("datacenter"),
        text("description"),
        text("id"),
        text("label"),
        number("mtu"),
        text("name"),
        text("provider_name"),
        text("qos_name"),
        flag("stp"),
        number("vlanid"),
        flag("vmnetwork"),
    ],
    joins: &[],
};

/// Virtual NIC profiles.
pub static VNIC_PROFILES: ObjectType = ObjectType {
    name: "VnicProfiles",
    aliases: &["vnicprofiles", "vnicprofile"],
    fields: &[
        text("compatibility_version"),
        text("datacenter"),
        text("description"),
        text("failover"),
        text("id"),
        text("name"),
        text("network_filter"),
        text("network_name"),
        text("passthrough"),
        flag("port_mirroring"),
        text("qos_name"),
    ],
    joins: &[],
};

/// VM pools.
pub static POOLS: ObjectType = ObjectType {
    name: "Pools",
    aliases: &["pools", "pool", "vmpools", "vmpool"],
    fields: &[
        text("architecture"),
        number("assigned_vm_count"),
        text("cluster"),
        text("comment"),
        text("datacenter"),
        text("description"),
        text("id"),
        text("name"),
        number("running_vm_count"),
        choice("type", POOL_TYPE),
    ],
    joins: &[],
};

/// Jobs.
pub static JOBS: ObjectType = ObjectType {
    name: "Jobs",
    aliases: &["jobs", "job"],
    fields: &[
        text("correlation_id"),
        text("id"),
        choice("status", JOB_STATUS),
    ],
    joins: &[],
};

/// Network interfaces of VMs and hosts, for cross-object conditions.
pub static NICS: ObjectType = ObjectType {
    name: "Nics",
    aliases: &["nics", "nic"],
    fields: &[text("id"), text("mac"), text("network_name")],
    joins: &[],
};

/// Every object type, for lookups.
pub(super) static ALL: &[&ObjectType] = &[
    &VMS,
    &HOSTS,
    &TEMPLATES,
    &EVENTS,
    &USERS,
    &GROUPS,
    &CLUSTERS,
    &DATA_CENTERS,
    &STORAGE,
    &DISKS,
    &NETWORKS,
    &VNIC_PROFILES,
    &POOLS,
    &JOBS,
    &NICS,
];
