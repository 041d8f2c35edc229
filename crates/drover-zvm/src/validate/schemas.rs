//! The request schemas of the reference (`sdkwsgi/schemas/*.py`), keywords in its order.
//!
//! Many of them list `'additionalProperties': False` inside `properties` by mistake; that is a
//! member named `additionalProperties` whose schema is `False` ([`Node::Never`]).

use super::draft4::Kw::{Maximum, Minimum, NoAdditional, Properties, Required, Type};
use super::draft4::Node::{self, Keywords as K, Never};
use super::types::*;

/// `{'type': 'object', 'properties': {member: inner, 'additionalProperties': False},
/// 'required': [member], 'additionalProperties': False}`.
macro_rules! wrapped {
    ($member:literal, $inner:expr) => {
        K(&[
            Type(OBJECT),
            Properties(&[($member, $inner), ("additionalProperties", Never)]),
            Required(&[$member]),
            NoAdditional,
        ])
    };
}

// guest.py

pub(super) const GUEST_CREATE: Node = wrapped!(
    "guest",
    K(&[
        Type(OBJECT),
        Properties(&[
            ("userid", USERID),
            ("vcpus", POSITIVE_INTEGER),
            ("memory", POSITIVE_INTEGER),
            ("user_profile", USERID_OR_NONE),
            ("disk_list", DISK_LIST),
            ("max_cpu", MAX_CPU),
            ("max_mem", MAX_MEM),
            ("ipl_from", IPL),
            ("ipl_param", IPL),
            ("ipl_loadparam", IPL),
            ("dedicate_vdevs", DEDICATE_VDEVS),
            ("loaddev", LOADDEV),
            ("account", ACCOUNT),
            ("comments", COMMENT_LIST),
            ("cschedule", USERID),
            ("cshare", SHARE),
            ("rdomain", USERID),
            ("pcif", PCIF),
        ]),
        Required(&["userid", "vcpus", "memory"]),
        NoAdditional,
    ])
);

pub(super) const LIVE_MIGRATE_VM: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("dest_zcc_userid", USERID_OR_NONE),
        ("destination", USERID),
        ("parms", LIVE_MIGRATE_PARMS),
        ("operation", NAME),
    ]),
    Required(&["destination", "operation"]),
    NoAdditional,
]);

pub(super) const CREATE_NIC: Node = wrapped!(
    "nic",
    K(&[
        Type(OBJECT),
        Properties(&[
            ("vdev", VDEV_OR_NONE),
            ("nic_id", ANY_STRING),
            ("mac_addr", MAC_ADDRESS),
            ("active", BOOLEAN),
        ]),
        NoAdditional,
    ])
);

pub(super) const CREATE_NETWORK_INTERFACE: Node = wrapped!(
    "interface",
    K(&[
        Type(OBJECT),
        Properties(&[
            ("os_version", OS_VERSION),
            ("guest_networks", NETWORK_LIST),
            ("active", BOOLEAN),
        ]),
        Required(&["os_version", "guest_networks"]),
        NoAdditional,
    ])
);

pub(super) const DELETE_NETWORK_INTERFACE: Node = wrapped!(
    "interface",
    K(&[
        Type(OBJECT),
        Properties(&[
            ("os_version", OS_VERSION),
            ("vdev", VDEV),
            ("active", BOOLEAN),
        ]),
        Required(&["os_version", "vdev"]),
        NoAdditional,
    ])
);

pub(super) const CONFIG_MINIDISKS: Node = wrapped!(
    "disk_info",
    K(&[
        Type(OBJECT),
        Properties(&[("disk_list", DISK_CONF)]),
        NoAdditional,
    ])
);

pub(super) const GROW_ROOT_VOLUME: Node = K(&[
    Type(OBJECT),
    Properties(&[("os_version", OS_VERSION)]),
    Required(&["os_version"]),
    NoAdditional,
]);

pub(super) const CREATE_DISKS: Node = wrapped!(
    "disk_info",
    K(&[
        Type(OBJECT),
        Properties(&[("disk_list", DISK_LIST)]),
        NoAdditional,
    ])
);

pub(super) const DELETE_DISKS: Node = wrapped!(
    "vdev_info",
    K(&[
        Type(OBJECT),
        Properties(&[("vdev_list", VDEV_LIST)]),
        NoAdditional,
    ])
);

pub(super) const NIC_COUPLE_UNCOUPLE: Node = wrapped!(
    "info",
    K(&[
        Type(OBJECT),
        Properties(&[
            ("couple", BOOLEAN),
            ("active", BOOLEAN),
            ("vswitch", VSWITCH_NAME),
            ("vlan_id", VLAN_ID_OR_MINUS_1),
        ]),
        Required(&["couple"]),
        NoAdditional,
    ])
);

pub(super) const DEPLOY: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("image", NAME),
        ("transportfiles", ANY_STRING),
        ("remotehost", REMOTEHOST),
        ("vdev", VDEV_OR_NONE),
        ("hostname", HOSTNAME),
        ("skipdiskcopy", BOOLEAN),
    ]),
    Required(&["image"]),
    NoAdditional,
]);

pub(super) const CAPTURE: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("image", NAME),
        ("capture_type", CAPTURE_TYPE),
        ("compress_level", ANY_INTEGER),
    ]),
    Required(&["image"]),
    NoAdditional,
]);

pub(super) const RESIZE_CPUS: Node = K(&[
    Type(OBJECT),
    Properties(&[("cpu_cnt", MAX_CPU)]),
    Required(&["cpu_cnt"]),
    NoAdditional,
]);

pub(super) const RESIZE_MEM: Node = K(&[
    Type(OBJECT),
    Properties(&[("size", MAX_MEM)]),
    Required(&["size"]),
    NoAdditional,
]);

/// Validated against a path's routing arguments (`{'userid': ...}`).
pub(super) const USERID_LIST_QUERY: Node = K(&[
    Type(OBJECT),
    Properties(&[("userid", USERID_LIST)]),
    NoAdditional,
]);

/// Unknown members are allowed.
pub(super) const REGISTER_VM: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("meta", ANY_STRING),
        ("net_set", ANY_STRING),
        ("port", ANY_STRING),
    ]),
    Required(&["meta", "net_set"]),
]);

pub(super) const DEREGISTER_VM: Node = K(&[
    Type(OBJECT),
    Properties(&[("userid", USERID)]),
    NoAdditional,
]);

pub(super) const USERID_LIST_ARRAY_QUERY: Node = K(&[
    Type(OBJECT),
    Properties(&[("userid", USERID_LIST_ARRAY)]),
    NoAdditional,
]);

pub(super) const START: Node = K(&[
    Type(OBJECT),
    Properties(&[("userid", USERID), ("timeout", NON_NEGATIVE_INTEGER)]),
    NoAdditional,
]);

/// `stop` and `softstop`.
pub(super) const STOP: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("userid", USERID),
        ("timeout", NON_NEGATIVE_INTEGER),
        ("poll_interval", NON_NEGATIVE_INTEGER),
    ]),
    NoAdditional,
]);

// host.py

pub(super) const HOST_VOLUME: Node = K(&[
    Type(OBJECT),
    Properties(&[("volumename", VOLUME_LIST)]),
    NoAdditional,
]);

// image.py

pub(super) const IMAGE_CREATE: Node = wrapped!(
    "image",
    K(&[
        Type(OBJECT),
        Properties(&[
            ("image_name", NAME),
            ("url", URL),
            ("image_meta", IMAGE_META),
            ("remote_host", REMOTEHOST),
        ]),
        Required(&["image_name", "url", "image_meta"]),
        NoAdditional,
    ])
);

pub(super) const IMAGE_EXPORT: Node = wrapped!(
    "location",
    K(&[
        Type(OBJECT),
        Properties(&[("dest_url", URL), ("remote_host", REMOTEHOST)]),
        Required(&["dest_url"]),
        NoAdditional,
    ])
);

/// Unknown members are allowed.
pub(super) const IMAGE_QUERY: Node = K(&[Type(OBJECT), Properties(&[("imagename", IMAGE_LIST)])]);

pub(super) const DISKPOOL: Node = K(&[
    Type(OBJECT),
    Properties(&[("poolname", DISK_POOL_LIST)]),
    NoAdditional,
]);

// volume.py

/// `attach` and `detach`.
pub(super) const VOLUME_ATTACH: Node = wrapped!(
    "info",
    K(&[
        Type(OBJECT),
        Properties(&[("connection", CONNECTION_INFO)]),
        Required(&["connection"]),
        NoAdditional,
    ])
);

/// Validated against a path's routing arguments (`{'fcp_id': ...}`).
pub(super) const GET_FCP_USAGE: Node = K(&[
    Type(OBJECT),
    Properties(&[("fcp_id", FCP_ID)]),
    Required(&["fcp_id"]),
    NoAdditional,
]);

pub(super) const GET_FCP_TEMPLATES: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("template_id_list", FCP_TEMPLATE_ID_LIST),
        ("assigner_id", SINGLE_USERID),
        ("host_default", SINGLE_BOOLEAN),
        ("storage_providers", ANY_ARRAY),
    ]),
    NoAdditional,
]);

pub(super) const GET_FCP_TEMPLATES_DETAILS: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("template_id_list", FCP_TEMPLATE_ID_LIST),
        ("raw", SINGLE_BOOLEAN),
        ("statistics", SINGLE_BOOLEAN),
        ("sync_with_zvm", SINGLE_BOOLEAN),
    ]),
    NoAdditional,
]);

/// No stray `additionalProperties` member here.
pub(super) const SET_FCP_USAGE: Node = K(&[
    Type(OBJECT),
    Properties(&[(
        "info",
        K(&[
            Type(OBJECT),
            Properties(&[
                ("userid", USERID),
                ("reserved", K(&[Type(INTEGER), Minimum(0), Maximum(1)])),
                ("connections", ANY_INTEGER),
                ("fcp_template_id", FCP_TEMPLATE_ID),
            ]),
            Required(&["reserved", "connections"]),
            NoAdditional,
        ]),
    )]),
    Required(&["info"]),
    NoAdditional,
]);

pub(super) const CREATE_FCP_TEMPLATE: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("name", NAME),
        ("description", ANY_STRING),
        ("fcp_devices", ANY_STRING),
        ("host_default", BOOLEAN),
        ("storage_providers", ANY_ARRAY),
        ("min_fcp_paths_count", POSITIVE_INTEGER),
    ]),
    Required(&["name"]),
    NoAdditional,
]);

pub(super) const EDIT_FCP_TEMPLATE: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("fcp_template_id", FCP_TEMPLATE_ID),
        ("name", NAME),
        ("description", ANY_STRING),
        ("fcp_devices", ANY_STRING),
        ("host_default", BOOLEAN),
        ("storage_providers", ANY_ARRAY),
        ("min_fcp_paths_count", POSITIVE_INTEGER),
    ]),
    Required(&["fcp_template_id"]),
    NoAdditional,
]);

// vswitch.py

pub(super) const VSWITCH_CREATE: Node = wrapped!(
    "vswitch",
    K(&[
        Type(OBJECT),
        Properties(&[
            ("name", VSWITCH_NAME),
            ("rdev", RDEV_LIST),
            ("controller", CONTROLLER),
            ("persist", BOOLEAN),
            ("connection", CONNECTION_TYPE),
            ("queue_mem", K(&[Type(INTEGER), Minimum(1), Maximum(8)])),
            ("router", ROUTER_TYPE),
            ("network_type", NETWORK_TYPE),
            ("vid", VID_TYPE),
            ("port_type", PORT_TYPE),
            ("gvrp", GVRP_TYPE),
            ("native_vid", NATIVE_VID_TYPE),
        ]),
        Required(&["name"]),
        NoAdditional,
    ])
);

pub(super) const VSWITCH_UPDATE: Node = wrapped!(
    "vswitch",
    K(&[
        Type(OBJECT),
        Properties(&[
            ("grant_userid", USERID),
            ("user_vlan_id", USER_VLAN_ID),
            ("revoke_userid", USERID),
        ]),
        NoAdditional,
    ])
);
