//! Network interfaces: a guest's NICs with their static IPv4 configuration, which the guest
//! learns from its config drive.

use std::net::Ipv4Addr;

use drover_core::{valid_mac, NetOp, Op};
use serde_json::{json, Map, Value as Json};

use super::{not_active, NicRequest, N, NET_CHANGES};
use crate::api::args::{py_type, Args};
use crate::api::disk::parse_vdev;
use crate::api::guest::is_on;
use crate::api::Backend;
use crate::error::{Module, ZvmError, ZvmResult};

/// One item of `guest_create_network_interface`'s `guest_networks`, checked.
struct Interface {
    vdev: Option<String>,
    nic_id: Option<String>,
    mac: Option<String>,
    ip: Option<String>,
    cidr: Option<String>,
    gateway: Option<String>,
    dns: Vec<String>,
    osa: Option<String>,
    hostname: Option<String>,
}

/// Checks an `os_version` as the original's distribution table does: `rhel`/`redhat`/`red hat`
/// 6-9, `sles`/`suse` 11, 12, 15, `ubuntu` 16, 20, 22, `rhcos`/`coreos` 4.
fn check_os(os: &str) -> ZvmResult<()> {
    const DISTROS: &[(&[&str], &[&str])] = &[
        (&["rhel", "redhat", "red hat"], &["6", "7", "8", "9"]),
        (&["suse", "sles"], &["11", "12", "15"]),
        (&["ubuntu"], &["16", "20", "22"]),
        (&["rhcos", "coreos", "red hat coreos"], &["4"]),
    ];
    let lower = os.to_lowercase();
    for (names, releases) in DISTROS {
        if let Some(name) = names.iter().find(|n| lower.starts_with(**n)) {
            let rest = lower[name.len()..].split(name).next().unwrap_or_default();
            if releases.iter().any(|r| rest.starts_with(r)) {
                return Ok(());
            }
            break;
        }
    }
    Err(ZvmError::internal(
        Module::Sdk,
        format!("Can not handle os: {lower}"),
    ))
}

/// A string member of a `guest_networks` item (`null` or missing is `None`).
fn member(item: &Map<String, Json>, key: &str) -> ZvmResult<Option<String>> {
    match item.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ZvmError::ArgFormat(format!(
            "API guest_create_network_interface: {key} {v} should be a string"
        ))),
    }
}

/// An IPv4 address member, refused with the original's message for `what` when malformed.
fn ipv4_member(item: &Map<String, Json>, key: &str, what: &str) -> ZvmResult<Option<String>> {
    let value = member(item, key)?;
    if let Some(ip) = &value {
        if ip.parse::<Ipv4Addr>().is_err() {
            return Err(invalid_ip(what));
        }
    }
    Ok(value)
}

/// The original's refusal of a malformed `what` (`management`, `dns`, `gateway`) address.
fn invalid_ip(what: &str) -> ZvmError {
    ZvmError::ArgFormat(format!(
        "API guest_create_network_interface: Invalid {what} IP address, it should be the value \
         between 0.0.0.0 and 255.255.255.255"
    ))
}

/// The prefix length of `a.b.c.d/n`, if it is one.
pub(in crate::api) fn cidr_prefix(cidr: &str) -> Option<u8> {
    let (address, prefix) = cidr.split_once('/')?;
    address.parse::<Ipv4Addr>().ok()?;
    let ok = !prefix.is_empty() && prefix.len() <= 2 && prefix.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| prefix.parse::<u8>().ok())
        .flatten()
        .filter(|p| *p <= 32)
}

/// Checks one `guest_networks` item as the original does.
fn interface(item: &Json) -> ZvmResult<Interface> {
    let Json::Object(item) = item else {
        return Err(ZvmError::ArgFormat(
            "API guest_create_network_interface: each network should be a dictionary".into(),
        ));
    };
    let mac = member(item, "mac_addr")?;
    if mac.as_deref().is_some_and(|m| !valid_mac(m)) {
        return Err(ZvmError::ArgFormat(
            "API guest_create_network_interface: Invalid mac address, format should be \
             xx:xx:xx:xx:xx:xx, and x is a hexadecimal digit"
                .into(),
        ));
    }
    let ip = ipv4_member(item, "ip_addr", "management")?;
    let dns = match item.get("dns_addr") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(list)) => list
            .iter()
            .map(|d| match d.as_str() {
                Some(s) if s.parse::<Ipv4Addr>().is_ok() => Ok(s.to_string()),
                _ => Err(invalid_ip("dns")),
            })
            .collect::<ZvmResult<_>>()?,
        Some(v) => {
            return Err(ZvmError::ArgType {
                api: "guest_config_network".into(),
                expected: "<class 'list'>".into(),
                given: format!("<class '{}'>", py_type(v)),
            })
        }
    };
    let gateway = ipv4_member(item, "gateway_addr", "gateway")?;
    let cidr = member(item, "cidr")?;
    if cidr.as_deref().is_some_and(|c| cidr_prefix(c).is_none()) {
        return Err(ZvmError::ArgFormat(
            "API guest_create_network_interface: Invalid CIDR, format should be a.b.c.d/n, and \
             a.b.c.d is IP address, n is the value between 0-32"
                .into(),
        ));
    }
    Ok(Interface {
        vdev: member(item, "nic_vdev")?,
        nic_id: member(item, "nic_id")?,
        mac,
        ip,
        cidr,
        gateway,
        dns,
        osa: member(item, "osa_device")?,
        hostname: member(item, "hostname")?,
    })
}

impl Backend {
    /// `guest_delete_network_interface`: deletes the NIC, then rebuilds the config drive.
    pub(super) async fn delete_network_interface(&self, a: Args) -> ZvmResult {
        let userid = a.userid("userid")?;
        let os = a.str("os_version")?;
        let vdev = a.str("vdev")?;
        let active = a.bool("active")?;
        let vm = self.guest(&userid)?;
        check_os(&os)?;
        {
            let _held = NET_CHANGES.lock().await;
            self.delete_nic(&userid, &vdev, active).await?;
        }
        self.refresh_config_drive(&vm.r).await?;
        Ok(Json::Null)
    }

    /// `guest_create_network_interface`: each network's NIC (made unless `nic_vdev` names one
    /// the guest has) with its static configuration, then the config drive; answers the
    /// networks with their `nic_vdev`.
    pub(super) async fn create_network_interface(&self, a: Args) -> ZvmResult {
        let userid = a.userid("userid")?;
        let os = a.str("os_version")?;
        let given = a.list("guest_networks")?;
        let active = a.bool("active")?;
        if given.is_empty() {
            return Err(ZvmError::ArgFormat(
                "API guest_create_network_interface: Network information is required but not \
                 provided"
                    .into(),
            ));
        }
        let wanted = given.iter().map(interface).collect::<ZvmResult<Vec<_>>>()?;
        let vm = self.guest(&userid)?;
        check_os(&os)?;
        if active && !is_on(&vm) {
            return Err(not_active(&userid));
        }
        let held = NET_CHANGES.lock().await;
        let mut out = Vec::new();
        for (want, mut item) in wanted.iter().zip(given) {
            if let Some(osa) = &want.osa {
                return Err(ZvmError::Conflict {
                    module: N,
                    rs: 14,
                    msg: format!(
                        "Failed to dedicate OSA {osa} to guest {userid} error: The specified \
                         OSA device number {osa} is not free"
                    ),
                });
            }
            let now = self.guest(&userid)?;
            let existing = want
                .vdev
                .as_deref()
                .and_then(parse_vdev)
                .and_then(|n| self.nic_list(&now).into_iter().find(|nic| nic.number == n));
            let (vdev, vif) = match existing {
                Some(nic) => (nic.info.vdev, nic.info.vif),
                None => {
                    let request = NicRequest {
                        vdev: want.vdev.clone(),
                        nic_id: want.nic_id.clone(),
                        mac: want.mac.clone(),
                    };
                    self.create_nic(&userid, &request, active).await?
                }
            };
            self.configure_nic(&vif, want).await?;
            if let Json::Object(m) = &mut item {
                m.insert("nic_vdev".into(), json!(vdev));
            }
            out.push(item);
        }
        drop(held);
        let hostname = wanted.iter().find_map(|w| w.hostname.as_deref());
        let mut changes = vec![("zvm_os_version", Some(os.as_str()))];
        if hostname.is_some() {
            changes.push(("zvm_hostname", hostname));
        }
        self.set_others(Module::Guest, "VM", &vm.r, &changes)
            .await?;
        self.refresh_config_drive(&vm.r).await?;
        Ok(Json::Array(out))
    }

    /// Records a NIC's static configuration on its VIF, for the config drive and for XenAPI
    /// clients (`VIF.configure_ipv4`).
    async fn configure_nic(&self, vif: &str, want: &Interface) -> ZvmResult<()> {
        let dns = want.dns.join(",");
        self.set_others(
            N,
            "VIF",
            vif,
            &[
                ("zvm_ip", want.ip.as_deref()),
                ("zvm_cidr", want.cidr.as_deref()),
                ("zvm_gateway", want.gateway.as_deref()),
                ("zvm_dns", (!dns.is_empty()).then_some(dns.as_str())),
            ],
        )
        .await?;
        let (mode, address) = match &want.ip {
            Some(ip) => {
                let prefix = want.cidr.as_deref().and_then(cidr_prefix).unwrap_or(32);
                ("Static", format!("{ip}/{prefix}"))
            }
            None => ("None", String::new()),
        };
        self.op(
            N,
            Op::Net(NetOp::VifConfigureIp {
                vif: vif.into(),
                ipv6: false,
                mode: mode.into(),
                address,
                gateway: want.gateway.clone().unwrap_or_default(),
            }),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_versions_follow_the_distribution_table() {
        for ok in [
            "rhel8",
            "RHEL7.9",
            "redhat9",
            "red hat8",
            "sles15sp2",
            "suse12",
            "ubuntu22",
            "rhcos4",
        ] {
            assert!(check_os(ok).is_ok(), "{ok}");
        }
        for bad in ["rhel5", "debian12", "ubuntu18", "red hat 8", ""] {
            let e = check_os(bad).unwrap_err();
            assert_eq!(e.codes().0, 500, "{bad}");
            assert!(e
                .message()
                .ends_with(&format!("Can not handle os: {}", bad.to_lowercase())));
        }
    }

    #[test]
    fn cidrs_have_prefixes_up_to_32() {
        assert_eq!(cidr_prefix("192.168.95.0/24"), Some(24));
        assert_eq!(cidr_prefix("10.0.0.0/0"), Some(0));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
        ] {
            assert_eq!(cidr_prefix(bad), None, "{bad}");
        }
    }
}
