//! Network types of the host-driver interface: bridges, their uplinks, DHCP, guest NICs and the
//! host's own interfaces.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::HostError;

/// Checks that `name` can name a network device: 1-15 bytes of letters, digits, `_`, `-`, `.`.
pub fn check_device_name(name: &str) -> Result<(), HostError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(HostError::NetConfig {
            device: name.into(),
            reason: "a device name is 1-15 letters, digits, '_', '-' or '.'".into(),
        })
    }
}

/// What a host's kernel can do for networks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetCapabilities {
    /// Linux bridges.
    pub bridge: bool,
    /// 802.1Q VLAN sub-interfaces.
    pub vlan_8021q: bool,
    /// VLAN filtering inside a bridge.
    pub vlan_filtering: bool,
    /// Bonding of interfaces.
    pub bonding: bool,
    /// VXLAN overlays.
    pub vxlan: bool,
}

/// How a network's bridge reaches beyond the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Uplink {
    /// The host interface `device` itself is a port of the bridge (untagged traffic).
    Device(String),
    /// An 802.1Q sub-interface of `device` with `tag` is a port of the bridge.
    Vlan {
        /// The tagged interface.
        device: String,
        /// The VLAN id, 1-4094.
        tag: u16,
    },
    /// A VXLAN interface with `vni`, carried over `device`, is a port of the bridge.
    Vxlan {
        /// The interface carrying the overlay's UDP packets (its address is the local end).
        device: String,
        /// The VXLAN network identifier.
        vni: u32,
        /// Addresses of the other hosts on the overlay (unicast flooding list).
        peers: Vec<Ipv4Addr>,
    },
}

/// An address lease a network's DHCP server hands out to one MAC only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    /// The guest NIC's MAC.
    pub mac: String,
    /// Its address.
    pub ip: Ipv4Addr,
}

/// A DHCP service on a network: the host end of the bridge takes `host_address`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DhcpSpec {
    /// The bridge's own address.
    pub host_address: Ipv4Addr,
    /// The netmask of the network.
    pub netmask: Ipv4Addr,
    /// First address handed out.
    pub range_start: Ipv4Addr,
    /// Last address handed out.
    pub range_end: Ipv4Addr,
    /// Fixed addresses by MAC.
    pub reservations: Vec<Reservation>,
}

/// A network as one host makes it: a bridge, an optional uplink, optional DHCP.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkSpec {
    /// The bridge device's name (at most 15 bytes).
    pub bridge: String,
    /// MTU of the bridge and of every port Drover adds to it.
    pub mtu: u32,
    /// How the bridge reaches other hosts, if at all.
    pub uplink: Option<Uplink>,
    /// The DHCP service, if the network hands out addresses.
    pub dhcp: Option<DhcpSpec>,
}

/// A guest network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NicSpec {
    /// Device position (`0`, `1`, ...).
    pub device: String,
    /// The MAC the guest sees.
    pub mac: String,
    /// The bridge the NIC is a port of.
    pub bridge: String,
    /// MTU advertised to the guest and set on the host end.
    pub mtu: u32,
}

/// Traffic of one guest NIC since the previous reading, with its counters.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NicIo {
    /// Device position.
    pub device: String,
    /// KiB per second the guest received.
    pub read_kbs: f64,
    /// KiB per second the guest sent.
    pub write_kbs: f64,
    /// Bytes received so far.
    pub rx_bytes: u64,
    /// Bytes sent so far.
    pub tx_bytes: u64,
    /// Receive errors so far.
    pub rx_errors: u64,
    /// Transmit errors so far.
    pub tx_errors: u64,
    /// Addresses the network's DHCP server leased to the NIC.
    pub leased_ipv4: Vec<Ipv4Addr>,
}

/// How a host interface gets its IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IpConfig {
    /// No address.
    None,
    /// A fixed address with its prefix length.
    Static {
        /// The address.
        address: Ipv4Addr,
        /// The prefix length.
        prefix: u8,
    },
    /// From a DHCP server.
    Dhcp,
}

/// How a bridge of Drover's gets its IPv6 addresses (besides its link-local one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ip6Config {
    /// No global address, router advertisements ignored.
    None,
    /// A fixed address with its prefix length; router advertisements ignored.
    Static {
        /// The address.
        address: Ipv6Addr,
        /// The prefix length.
        prefix: u8,
    },
    /// Stateless autoconfiguration from router advertisements (`accept_ra`, `autoconf`).
    Autoconf,
}

/// A network interface of the host, as `PIF.scan` sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PifInfo {
    /// Interface name.
    pub device: String,
    /// MAC address.
    pub mac: String,
    /// MTU.
    pub mtu: u32,
    /// Whether the link is up with a carrier.
    pub carrier: bool,
    /// Link speed in Mbit/s, 0 if unknown.
    pub speed: u32,
    /// Full duplex.
    pub duplex: bool,
    /// Driver or device kind (`virtio_net`, `veth`, ...).
    pub driver: String,
    /// PCI bus path, if any.
    pub pci_bus_path: String,
    /// IPv4 addresses with prefix (`10.0.0.2/24`).
    pub ipv4: Vec<String>,
    /// The interface holds the host's default route.
    pub default_route: bool,
    /// The IPv4 gateway of the default route through it, if any.
    pub gateway: String,
}

/// Byte and packet counters of a host interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PifCounters {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Whether the link has a carrier.
    pub carrier: bool,
}

/// Bonding mode of a Linux bond, as XenAPI names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BondMode {
    /// Source-load balancing (`balance-slb`): Linux `balance-alb`.
    BalanceSlb,
    /// Active-backup.
    ActiveBackup,
    /// 802.3ad link aggregation (LACP).
    Lacp,
}

/// A bond to make: `name` over `members`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BondSpec {
    /// The bond device's name.
    pub name: String,
    /// The interfaces joined, at least two.
    pub members: Vec<String>,
    /// The mode.
    pub mode: BondMode,
    /// MAC of the bond (empty: the first member's).
    pub mac: String,
    /// MTU.
    pub mtu: u32,
    /// Options of the bond (absent ones: the kernel's defaults).
    #[serde(default)]
    pub options: BondOptions,
}

/// How an LACP bond spreads traffic over its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BondHashing {
    /// By source MAC (XenAPI `src_mac`): Linux `layer2`.
    SrcMac,
    /// By addresses and TCP/UDP ports (XenAPI `tcpudp_ports`): Linux `layer3+4`.
    TcpudpPorts,
}

/// Options of a bond. The LACP ones apply to `Lacp` bonds only.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BondOptions {
    /// Milliseconds a member's link must be up before it is used.
    pub updelay: Option<u32>,
    /// Milliseconds a member's link must be down before it is dropped.
    pub downdelay: Option<u32>,
    /// Transmit hashing (LACP).
    pub hashing: Option<BondHashing>,
    /// LACP partners send every second (`true`) rather than every 30 seconds.
    pub lacp_fast: Option<bool>,
    /// The LACP aggregation (user port) key, 0-1023.
    pub lacp_key: Option<u16>,
    /// Generic receive offload on the bond device.
    pub gro: Option<bool>,
}
