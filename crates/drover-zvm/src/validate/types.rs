//! The parameter types the reference's schemas are built from (`validation/parameter_types.py`),
//! keywords in the reference's order.

use super::draft4::Kw::{
    AnyOf, Dependencies, Enum, Ipv4, Items, MaxItems, MaxLength, Maximum, MinItems, MinLength,
    Minimum, NoAdditional, OneOf, Pattern, Properties, Required, Type, UniqueItems,
};
use super::draft4::Lit::{Bool, Str};
use super::draft4::Node::{self, Keywords as K};
use super::draft4::{Lit, Ty};
use super::pattern as p;

pub(super) const STRING: &[Ty] = &[Ty::String];
pub(super) const INTEGER: &[Ty] = &[Ty::Integer];
pub(super) const OBJECT: &[Ty] = &[Ty::Object];
pub(super) const ARRAY: &[Ty] = &[Ty::Array];
const NULL: Node = K(&[Type(&[Ty::Null])]);

/// Any string.
pub(super) const ANY_STRING: Node = K(&[Type(STRING)]);
/// Any integer.
pub(super) const ANY_INTEGER: Node = K(&[Type(INTEGER)]);
/// Any array.
pub(super) const ANY_ARRAY: Node = K(&[Type(ARRAY)]);

/// `name` (its `format: name` has no checker).
pub(super) const NAME: Node = K(&[Type(STRING), MinLength(1), MaxLength(255)]);
pub(super) const ACCOUNT: Node = K(&[Type(STRING), MaxLength(128)]);
/// `ipl_from`, `ipl_param`, `ipl_loadparam`.
pub(super) const IPL: Node = K(&[Type(STRING), MaxLength(255)]);

const HEX16: Node = K(&[
    Type(STRING),
    MinLength(1),
    MaxLength(16),
    Pattern(&p::HEX16),
]);
pub(super) const LOADDEV: Node = K(&[
    Type(OBJECT),
    Properties(&[("portname", HEX16), ("lun", HEX16)]),
    NoAdditional,
]);

const HEX4_ITEM: Node = K(&[Type(STRING), Pattern(&p::HEX4)]);
pub(super) const DEDICATE_VDEVS: Node = K(&[Type(ARRAY), Items(&HEX4_ITEM), UniqueItems]);

pub(super) const POSITIVE_INTEGER: Node = K(&[
    Type(&[Ty::Integer, Ty::String]),
    Pattern(&p::DIGITS),
    Minimum(1),
]);
pub(super) const NON_NEGATIVE_INTEGER: Node = K(&[
    Type(&[Ty::Integer, Ty::String]),
    Pattern(&p::DIGITS),
    Minimum(0),
]);

const IPV4: Node = K(&[Type(STRING), Ipv4]);

const BOOLEANS: &[Lit] = &[
    Bool(true),
    Str("True"),
    Str("TRUE"),
    Str("true"),
    Str("1"),
    Str("ON"),
    Str("On"),
    Str("on"),
    Str("YES"),
    Str("Yes"),
    Str("yes"),
    Bool(false),
    Str("False"),
    Str("FALSE"),
    Str("false"),
    Str("0"),
    Str("OFF"),
    Str("Off"),
    Str("off"),
    Str("NO"),
    Str("No"),
    Str("no"),
];
/// A boolean, or one of its string spellings.
pub(super) const BOOLEAN: Node = K(&[Type(&[Ty::Boolean, Ty::String]), Enum(BOOLEANS)]);

pub(super) const RDEV_LIST: Node = K(&[OneOf(&[NULL, K(&[Type(STRING), Pattern(&p::RDEV_LIST)])])]);

pub(super) const VDEV: Node = K(&[Type(STRING), MinLength(1), MaxLength(4), Pattern(&p::HEX4)]);
pub(super) const VDEV_OR_NONE: Node = K(&[OneOf(&[NULL, VDEV])]);
pub(super) const VDEV_LIST: Node = K(&[Type(ARRAY), MinItems(1), Items(&HEX4_ITEM), UniqueItems]);

pub(super) const URL: Node = K(&[Type(STRING), Pattern(&p::URL)]);
pub(super) const MAC_ADDRESS: Node = K(&[Type(STRING), Pattern(&p::MAC)]);
pub(super) const REMOTEHOST: Node = K(&[Type(STRING), Pattern(&p::REMOTEHOST)]);

/// `userid`; also `cpupool` and `rdomain`.
pub(super) const USERID: Node = K(&[
    Type(STRING),
    MinLength(1),
    MaxLength(8),
    Pattern(&p::USERID),
]);
pub(super) const SHARE: Node = K(&[
    Type(STRING),
    MinLength(1),
    MaxLength(64),
    Pattern(&p::SHARE),
]);
pub(super) const PCIF: Node = K(&[Type(STRING), MinLength(1), MaxLength(9), Pattern(&p::PCIF)]);
pub(super) const USERID_OR_NONE: Node = K(&[OneOf(&[NULL, USERID])]);

pub(super) const VSWITCH_NAME: Node = K(&[Type(STRING), MinLength(1), MaxLength(8)]);
pub(super) const CONTROLLER: Node = K(&[
    Type(STRING),
    AnyOf(&[K(&[Pattern(&p::STAR)]), K(&[MinLength(1), MaxLength(8)])]),
]);

pub(super) const USERID_LIST: Node = K(&[Type(STRING), Pattern(&p::USERID_LIST)]);
const USERID_LIST_ITEM: Node = K(&[Type(STRING), MinLength(1), Pattern(&p::USERID_LIST)]);
pub(super) const USERID_LIST_ARRAY: Node = K(&[Items(&USERID_LIST_ITEM), Type(ARRAY)]);

pub(super) const FCP_TEMPLATE_ID: Node = K(&[OneOf(&[NULL, K(&[Type(STRING), MaxLength(36)])])]);
pub(super) const FCP_TEMPLATE_ID_LIST: Node = K(&[Items(&ANY_STRING), Type(ARRAY)]);

const FILE_TYPE: Node = K(&[
    Type(STRING),
    Enum(&[
        Str("ext2"),
        Str("ext3"),
        Str("ext4"),
        Str("xfs"),
        Str("swap"),
        Str("none"),
    ]),
]);

const VOLUME_ITEM: Node = K(&[Type(STRING), MinLength(1), Pattern(&p::VOLUME)]);
pub(super) const VOLUME_LIST: Node = K(&[MaxItems(1), Items(&VOLUME_ITEM), Type(ARRAY)]);

const DISK_POOL: Node = K(&[Type(STRING), Pattern(&p::DISK_POOL)]);
pub(super) const DISK_POOL_LIST: Node = K(&[MaxItems(1), Items(&DISK_POOL), Type(ARRAY)]);

const IMAGE_ITEM: Node = K(&[MaxLength(255), MinLength(1), Type(STRING)]);
pub(super) const IMAGE_LIST: Node = K(&[MaxItems(1), Items(&IMAGE_ITEM), Type(ARRAY)]);

const DISK: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("size", ANY_STRING),
        ("format", FILE_TYPE),
        ("is_boot_disk", BOOLEAN),
        ("vdev", VDEV),
        ("disk_pool", DISK_POOL),
    ]),
    Required(&["size"]),
    NoAdditional,
]);
pub(super) const DISK_LIST: Node = K(&[Type(ARRAY), Items(&DISK)]);

pub(super) const COMMENT_LIST: Node = K(&[Type(ARRAY), Items(&ANY_STRING)]);

pub(super) const LIVE_MIGRATE_PARMS: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("maxtotal", ANY_INTEGER),
        ("maxquiesce", ANY_INTEGER),
        ("immediate", ANY_STRING),
        ("forcearch", ANY_STRING),
        ("forcedomain", ANY_STRING),
        ("forcestorage", ANY_STRING),
    ]),
    NoAdditional,
]);

const DISK_CONF_ITEM: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("vdev", VDEV),
        ("format", FILE_TYPE),
        ("mntdir", ANY_STRING),
        ("size", ANY_STRING),
    ]),
    Required(&["format"]),
    NoAdditional,
]);
pub(super) const DISK_CONF: Node = K(&[Type(ARRAY), Items(&DISK_CONF_ITEM)]);

pub(super) const OS_VERSION: Node = K(&[OneOf(&[
    K(&[Type(STRING), Pattern(&p::OS_RHEL)]),
    K(&[Type(STRING), Pattern(&p::OS_REDHAT)]),
    K(&[Type(STRING), Pattern(&p::OS_SLES)]),
    K(&[Type(STRING), Pattern(&p::OS_SUSE)]),
    K(&[Type(STRING), Pattern(&p::OS_UBUNTU)]),
    K(&[Type(STRING), Pattern(&p::OS_RHCOS)]),
])]);

pub(super) const IMAGE_META: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("os_version", OS_VERSION),
        ("md5sum", K(&[Type(STRING), Pattern(&p::MD5)])),
        (
            "disk_type",
            K(&[
                Type(STRING),
                Enum(&[Str("DASD"), Str("dasd"), Str("SCSI"), Str("scsi")]),
            ]),
        ),
    ]),
    Required(&["os_version"]),
    NoAdditional,
]);

pub(super) const HOSTNAME: Node = K(&[OneOf(&[
    NULL,
    K(&[
        Type(STRING),
        MinLength(1),
        MaxLength(255),
        Pattern(&p::HOSTNAME),
    ]),
])]);

/// Guest networks; their items allow unknown members (only the list carries
/// `additionalProperties`, which does nothing there).
const NETWORK: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("ip_addr", IPV4),
        ("dns_addr", K(&[Type(ARRAY), Items(&IPV4)])),
        ("gateway_addr", IPV4),
        ("mac_addr", MAC_ADDRESS),
        ("cidr", ANY_STRING),
        ("nic_vdev", VDEV),
        ("nic_id", ANY_STRING),
        ("osa_device", VDEV),
        ("hostname", HOSTNAME),
    ]),
    Dependencies(&[("ip_addr", &["cidr"])]),
]);
pub(super) const NETWORK_LIST: Node = K(&[Type(ARRAY), Items(&NETWORK)]);

pub(super) const CAPTURE_TYPE: Node = K(&[Type(STRING), Enum(&[Str("rootonly"), Str("alldisks")])]);

pub(super) const USER_VLAN_ID: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("userid", USERID),
        ("vlanid", K(&[Type(INTEGER), Minimum(1), Maximum(4094)])),
    ]),
    Required(&["userid", "vlanid"]),
    NoAdditional,
]);

const FCP_ITEM: Node = K(&[Type(STRING), MinLength(4), MaxLength(4), Pattern(&p::FCP)]);
const WWPN_ITEM: Node = K(&[
    Type(STRING),
    MinLength(18),
    MaxLength(18),
    Pattern(&p::WWPN),
]);
/// One FCP device number.
pub(super) const FCP_ID: Node = FCP_ITEM;

pub(super) const CONNECTION_INFO: Node = K(&[
    Type(OBJECT),
    Properties(&[
        ("assigner_id", USERID),
        ("zvm_fcp", K(&[Type(ARRAY), Items(&FCP_ITEM)])),
        ("target_wwpn", K(&[Type(ARRAY), Items(&WWPN_ITEM)])),
        ("target_lun", WWPN_ITEM),
        ("os_version", OS_VERSION),
        ("multipath", BOOLEAN),
        ("mount_point", ANY_STRING),
        ("is_root_volume", BOOLEAN),
        ("update_connections_only", BOOLEAN),
    ]),
    Required(&[
        "assigner_id",
        "zvm_fcp",
        "target_wwpn",
        "target_lun",
        "multipath",
        "os_version",
        "mount_point",
    ]),
    NoAdditional,
]);

pub(super) const CONNECTION_TYPE: Node = K(&[
    Type(STRING),
    Enum(&[
        Str("CONnect"),
        Str("CONNECT"),
        Str("connect"),
        Str("DISCONnect"),
        Str("DISCONNECT"),
        Str("disconnect"),
        Str("NOUPLINK"),
        Str("nouplink"),
    ]),
]);
pub(super) const ROUTER_TYPE: Node = K(&[
    Type(STRING),
    Enum(&[
        Str("NONrouter"),
        Str("NONROUTER"),
        Str("nonrouter"),
        Str("PRIrouter"),
        Str("PRIROUTER"),
        Str("prirouter"),
    ]),
]);
pub(super) const NETWORK_TYPE: Node = K(&[
    Type(STRING),
    Enum(&[
        Str("IP"),
        Str("ip"),
        Str("ETHernet"),
        Str("ethernet"),
        Str("ETHERNET"),
    ]),
]);
const VLAN_ID: Node = K(&[Type(INTEGER), Minimum(1), Maximum(4094)]);
pub(super) const VID_TYPE: Node = K(&[OneOf(&[
    K(&[
        Type(STRING),
        Enum(&[Str("UNAWARE"), Str("unaware"), Str("AWARE"), Str("aware")]),
    ]),
    VLAN_ID,
])]);
pub(super) const PORT_TYPE: Node = K(&[
    Type(STRING),
    Enum(&[Str("ACCESS"), Str("access"), Str("TRUNK"), Str("trunk")]),
]);
pub(super) const GVRP_TYPE: Node = K(&[
    Type(STRING),
    Enum(&[Str("GVRP"), Str("gvrp"), Str("NOGVRP"), Str("nogvrp")]),
]);
pub(super) const NATIVE_VID_TYPE: Node = K(&[OneOf(&[NULL, VLAN_ID])]);

/// `max_cpu`, `cpu_cnt`.
pub(super) const MAX_CPU: Node = K(&[Type(INTEGER), Minimum(1), Maximum(64)]);
/// `max_mem`, resize `size`.
pub(super) const MAX_MEM: Node = K(&[Type(STRING), Pattern(&p::MEMORY)]);
pub(super) const VLAN_ID_OR_MINUS_1: Node = K(&[Type(INTEGER), Minimum(-1), Maximum(4094)]);

/// `single_param(USERID)` of the FCP template queries.
pub(super) const SINGLE_USERID: Node = K(&[Type(ARRAY), Items(&USERID), MaxItems(1)]);
/// `single_param(BOOLEAN)` of the FCP template queries.
pub(super) const SINGLE_BOOLEAN: Node = K(&[Type(ARRAY), Items(&BOOLEAN), MaxItems(1)]);
