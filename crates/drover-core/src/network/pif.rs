//! PIFs: the host's interfaces as `PIF.scan` finds them (each with a network of its own),
//! plugged into their network's bridge as its uplink or not, their bridges' addresses, and
//! their metrics. The management interface, which holds the host's own traffic, is never
//! changed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use drover_host::{HostDriver, HostError, Ip6Config, IpConfig, PifInfo};
use drover_model::{Value, NULL_REF};

use super::dhcp::{netmask_of, prefix_of};
use super::networks::free_name;
use super::vif::check_mac;
use crate::db::{Obj, Ref, View};
use crate::engine::{now, Engine};
use crate::error::{CoreError, Result};
use crate::txn::{new_ref, Txn};

/// The IPv4 configuration recorded on a PIF, if it has one.
pub(crate) fn ip_config(pif: &Obj) -> Option<IpConfig> {
    match pif.str("ip_configuration_mode") {
        "Static" => Some(IpConfig::Static {
            address: pif.str("IP").parse().ok()?,
            prefix: prefix_of(pif.str("netmask").parse().ok()?)?,
        }),
        "DHCP" => Some(IpConfig::Dhcp),
        _ => None,
    }
}

/// The IPv6 configuration recorded on a PIF, if it has one.
pub(crate) fn ip6_config(pif: &Obj) -> Option<Ip6Config> {
    match pif.str("ipv6_configuration_mode") {
        "Static" => {
            let first = pif.get("IPv6").as_set()?.first()?.as_str()?;
            let (address, prefix) = cidr6(first)?;
            Some(Ip6Config::Static { address, prefix })
        }
        "Autoconf" => Some(Ip6Config::Autoconf),
        _ => None,
    }
}

/// An IPv6 address with its prefix length (`2001:db8::1/64`) that an interface can have.
fn cidr6(text: &str) -> Option<(Ipv6Addr, u8)> {
    let (a, p) = text.trim().split_once('/')?;
    let a: Ipv6Addr = a.parse().ok()?;
    let p: u8 = p.parse().ok().filter(|p| (1..=128).contains(p))?;
    let usable = !(a.is_unspecified() || a.is_loopback() || a.is_multicast());
    usable.then_some((a, p))
}

/// What the host says about an interface, as `PIF_metrics` fields.
fn metrics_fields(info: &PifInfo) -> Vec<(&'static str, Value)> {
    vec![
        ("carrier", Value::Bool(info.carrier)),
        ("speed", Value::Int(i64::from(info.speed))),
        ("duplex", Value::Bool(info.duplex)),
        ("device_name", Value::str(&info.driver)),
        ("pci_bus_path", Value::str(&info.pci_bus_path)),
        ("last_updated", Value::DateTime(now())),
    ]
}

/// Records the interfaces of `host` that have no PIF yet, each with the network (`found`
/// gives its reference) `Pool-wide network associated with <device>` on a bridge `xenbr<N>`.
/// If the host has no management PIF, the interface holding the default route (else the
/// first) becomes it: plugged, never a bridge port. The others are unplugged. Each PIF records
/// the interface's first address. Answers the new PIFs.
pub(crate) fn record_interfaces(
    t: &mut Txn,
    host: &str,
    found: &[(PifInfo, Ref)],
) -> Result<Vec<Ref>> {
    let host_obj = t.must("host", host)?.clone();
    let pifs: Vec<Obj> = t
        .members(&host_obj, "PIFs", "PIF")
        .into_iter()
        .cloned()
        .collect();
    let new: Vec<&(PifInfo, Ref)> = found
        .iter()
        .filter(|(i, _)| {
            !pifs
                .iter()
                .any(|p| p.bool("physical") && p.str("device") == i.device)
        })
        .collect();
    let management = if pifs.iter().any(|p| p.bool("management")) {
        None
    } else {
        new.iter()
            .find(|(i, _)| i.default_route)
            .or(new.first())
            .map(|(i, _)| i.device.clone())
    };
    let mut bridges: Vec<String> = t
        .db()
        .all("network")
        .map(|n| n.str("bridge").to_string())
        .collect();
    let mut made = Vec::new();
    for (info, net) in new {
        let mtu = i64::from(info.mtu);
        let mtu = if (68..=65535).contains(&mtu) {
            mtu
        } else {
            1500
        };
        // Another host's interface of the same name is on the pool-wide network this one joins.
        let pooled = t
            .db()
            .all("PIF")
            .find(|p| {
                p.bool("physical")
                    && p.str("device") == info.device
                    && p.str("host") != host
                    && p.str("VLAN_master_of") == NULL_REF
            })
            .map(|p| Ref::from(p.str("network")));
        let net = match pooled {
            Some(n) if t.get("network", &n).is_some() => n,
            _ => {
                let bridge = free_name("xenbr", &bridges);
                bridges.push(bridge.clone());
                t.create_with_ref(
                    "network",
                    net.clone(),
                    vec![
                        (
                            "name_label",
                            Value::str(format!(
                                "Pool-wide network associated with {}",
                                info.device
                            )),
                        ),
                        ("bridge", Value::str(bridge)),
                        ("MTU", Value::Int(mtu)),
                    ],
                )?;
                net.clone()
            }
        };
        let net = &net;
        let metrics = t.create("PIF_metrics", metrics_fields(info))?;
        let is_management = management.as_deref() == Some(info.device.as_str());
        let address = info.ipv4.first().and_then(|a| {
            let (ip, prefix) = a.split_once('/')?;
            Some((ip.parse::<Ipv4Addr>().ok()?, prefix.parse::<u8>().ok()?))
        });
        let (mode, ip, netmask) = match address {
            Some((ip, prefix)) => (
                "Static",
                ip.to_string(),
                netmask_of(prefix.min(32)).to_string(),
            ),
            None => ("None", String::new(), String::new()),
        };
        let pif = t.create(
            "PIF",
            vec![
                ("device", Value::str(&info.device)),
                ("host", Value::str(host)),
                ("network", Value::str(&**net)),
                ("MAC", Value::str(&info.mac)),
                ("MTU", Value::Int(mtu)),
                ("VLAN", Value::Int(-1)),
                ("physical", Value::Bool(true)),
                ("management", Value::Bool(is_management)),
                ("currently_attached", Value::Bool(is_management)),
                ("ip_configuration_mode", Value::str(mode)),
                ("IP", Value::str(ip)),
                ("netmask", Value::str(netmask)),
                ("gateway", Value::str(&info.gateway)),
                ("metrics", Value::str(&*metrics)),
                ("managed", Value::Bool(true)),
            ],
        )?;
        made.push(pif);
    }
    Ok(made)
}

/// Forgets the PIFs of a host leaving the pool, with their VLANs, bonds and metrics; the
/// networks stay.
pub(crate) fn forget_host_pifs(t: &mut Txn, host: &str) -> Result<()> {
    let pifs: Vec<Obj> = t
        .db()
        .all("PIF")
        .filter(|p| p.str("host") == host)
        .map(|p| (**p).clone())
        .collect();
    for p in &pifs {
        for (class, field) in [("VLAN", "VLAN_master_of"), ("Bond", "bond_master_of")] {
            for r in match t.get("PIF", &p.r) {
                Some(o) if class == "Bond" => o.refs(field),
                Some(o) => vec![Ref::from(o.str(field))],
                None => Vec::new(),
            } {
                if t.get(class, &r).is_some() {
                    t.destroy(class, &r)?;
                }
            }
        }
    }
    for p in pifs {
        let metrics = p.str("metrics");
        if t.get("PIF_metrics", metrics).is_some() {
            t.destroy("PIF_metrics", metrics)?;
        }
        if t.get("PIF", &p.r).is_some() {
            t.destroy("PIF", &p.r)?;
        }
    }
    Ok(())
}

/// A host's refusal to configure the bridge of `pif`.
fn config_error(pif: &str, e: HostError) -> CoreError {
    match e {
        e @ (HostError::NoSuchDevice(_)
        | HostError::DeviceTaken(_)
        | HostError::DeviceInUse(_)
        | HostError::NetConfig { .. }) => CoreError::PifConfigurationError {
            pif: pif.into(),
            msg: e.to_string(),
        },
        e => e.into(),
    }
}

/// A parameter that must be an IPv4 address.
fn address(param: &str, text: &str) -> Result<Ipv4Addr> {
    text.trim()
        .parse()
        .map_err(|_| CoreError::InvalidIpAddress(param.into()))
}

impl Engine {
    /// `PIF.scan`: PIFs (and networks) for the host's interfaces that have none yet.
    pub(crate) async fn pif_scan(&self, host: &str) -> Result<()> {
        self.check_host(host)?;
        let found: Vec<(PifInfo, Ref)> = self
            .driver(host)?
            .pif_scan()
            .await?
            .into_iter()
            .map(|info| (info, new_ref()))
            .collect();
        let nets: Vec<Ref> = found.iter().map(|(_, n)| n.clone()).collect();
        self.net_change(&nets, |t| record_interfaces(t, host, &found).map(drop))
            .await
    }

    /// A PIF of this host, with its host checked.
    fn local_pif(&self, pif: &str) -> Result<std::sync::Arc<Obj>> {
        let o = self.get("PIF", pif)?;
        self.check_host(o.str("host"))?;
        Ok(o)
    }

    /// A PIF of this host that Drover manages (`PIF_UNMANAGED` for one introduced as not).
    fn managed_pif(&self, pif: &str) -> Result<std::sync::Arc<Obj>> {
        let o = self.local_pif(pif)?;
        if !o.bool("managed") {
            return Err(CoreError::PifUnmanaged(pif.into()));
        }
        Ok(o)
    }

    /// A PIF of this host whose addresses Drover may set: managed, and not the management
    /// interface (`PIF_IS_MANAGEMENT_INTERFACE`), which is the host's own.
    fn configurable_pif(&self, pif: &str) -> Result<std::sync::Arc<Obj>> {
        let o = self.local_pif(pif)?;
        if o.bool("management") {
            return Err(CoreError::PifIsManagementInterface(pif.into()));
        }
        if !o.bool("managed") {
            return Err(CoreError::PifUnmanaged(pif.into()));
        }
        Ok(o)
    }

    /// `PIF.introduce`: a PIF (with a network of its own, as `PIF.scan` makes them) for the
    /// host's interface `device`, which must exist (`PIF_DEVICE_NOT_FOUND`), have `MAC` if one
    /// is given (`COULD_NOT_FIND_NETWORK_INTERFACE_WITH_SPECIFIED_DEVICE_NAME_AND_MAC_ADDRESS`)
    /// and have no PIF yet (`DUPLICATE_PIF_DEVICE_NAME`). An unmanaged PIF is only recorded:
    /// Drover neither plugs nor configures it.
    pub(crate) async fn pif_introduce(
        &self,
        host: &str,
        mac: &str,
        device: &str,
        managed: bool,
    ) -> Result<Ref> {
        self.check_host(host)?;
        let mac = mac.trim().to_ascii_lowercase();
        if !mac.is_empty() {
            check_mac(&mac)?;
        }
        let has_pif = |db: &crate::db::Db| {
            db.all("PIF").any(|p| {
                p.str("host") == host
                    && p.str("device") == device
                    && p.str("VLAN_master_of") == NULL_REF
            })
        };
        if self.read(has_pif) {
            return Err(CoreError::DuplicatePifDeviceName(device.into()));
        }
        let found = self.driver(host)?.pif_scan().await?;
        let other_mac = || CoreError::NoInterfaceWithDeviceAndMac {
            device: device.into(),
            mac: mac.clone(),
        };
        let info = match found.iter().find(|i| i.device == device) {
            None if !mac.is_empty() && found.iter().any(|i| i.mac.eq_ignore_ascii_case(&mac)) => {
                return Err(other_mac())
            }
            None => return Err(CoreError::PifDeviceNotFound(device.into())),
            Some(i) if !mac.is_empty() && !i.mac.eq_ignore_ascii_case(&mac) => {
                return Err(other_mac())
            }
            Some(i) => i.clone(),
        };
        let net = new_ref();
        self.net_change(std::slice::from_ref(&net), |t| {
            let pif = record_interfaces(t, host, &[(info.clone(), net.clone())])?
                .into_iter()
                .next()
                .ok_or_else(|| CoreError::DuplicatePifDeviceName(device.into()))?;
            if !managed {
                t.set("PIF", &pif, "managed", Value::Bool(false))?;
            }
            Ok(pif)
        })
        .await
    }

    /// `PIF.plug`: a physical interface becomes its network's uplink, a VLAN its VLAN's, a
    /// bond's interface the bond (the host refuses an interface with addresses of its own:
    /// `PIF_CONFIGURATION_ERROR`). A bond member is `CANNOT_PLUG_BOND_SLAVE`.
    pub(crate) async fn pif_plug(&self, pif: &str) -> Result<()> {
        let o = self.managed_pif(pif)?;
        if o.str("bond_slave_of") != NULL_REF {
            return Err(CoreError::CannotPlugBondSlave(pif.into()));
        }
        if o.bool("currently_attached") {
            return Ok(());
        }
        self.set_attached(&o, true).await
    }

    /// `PIF.unplug`: the PIF's network loses its uplink. Never the management interface.
    pub(crate) async fn pif_unplug(&self, pif: &str) -> Result<()> {
        let o = self.local_pif(pif)?;
        if o.bool("management") {
            return Err(CoreError::PifIsManagementInterface(pif.into()));
        }
        if o.bool("disallow_unplug") {
            return Err(CoreError::PifDoesNotAllowUnplug(pif.into()));
        }
        if !o.bool("currently_attached") {
            return Ok(());
        }
        self.set_attached(&o, false).await
    }

    async fn set_attached(&self, pif: &Obj, attached: bool) -> Result<()> {
        let r = pif.r.clone();
        self.net_change(&[Ref::from(pif.str("network"))], |t| {
            t.must("PIF", &r)?;
            t.set("PIF", &r, "currently_attached", Value::Bool(attached))
        })
        .await
    }

    /// `PIF.forget`: forgets a physical interface (not the management one, not one with
    /// VLANs or in a bond); a plugged one leaves its network's bridge first.
    pub(crate) async fn pif_forget(&self, pif: &str) -> Result<()> {
        let o = self.local_pif(pif)?;
        if o.bool("management") {
            return Err(CoreError::PifIsManagementInterface(pif.into()));
        }
        if !o.bool("physical") {
            return Err(CoreError::PifIsNotPhysical(pif.into()));
        }
        if !o.refs("VLAN_slave_of").is_empty() {
            return Err(CoreError::PifVlanStillExists(pif.into()));
        }
        if o.str("bond_slave_of") != NULL_REF {
            return Err(CoreError::PifAlreadyBonded(pif.into()));
        }
        self.net_change(&[Ref::from(o.str("network"))], |t| {
            let metrics = t.must("PIF", pif)?.str("metrics").to_string();
            if t.get("PIF_metrics", &metrics).is_some() {
                t.destroy("PIF_metrics", &metrics)?;
            }
            t.destroy("PIF", pif)
        })
        .await
    }

    /// `PIF.destroy`: a VLAN's PIF goes with its VLAN; a physical one is `PIF_IS_PHYSICAL`.
    pub(crate) async fn pif_destroy(&self, pif: &str) -> Result<()> {
        let o = self.get("PIF", pif)?;
        if o.bool("physical") {
            return Err(CoreError::PifIsPhysical(pif.into()));
        }
        match o.str("VLAN_master_of") {
            NULL_REF => Err(CoreError::OperationNotAllowed(format!(
                "PIF {pif} is a bond's interface: destroy the bond"
            ))),
            vlan => self.vlan_destroy(vlan).await,
        }
    }

    /// The non-VLAN PIF of `host` named `device` (`PIF_DEVICE_NOT_FOUND` if none).
    pub(crate) fn tagged_pif(&self, host: &str, device: &str) -> Result<String> {
        self.get("host", host)?;
        self.read(|db| {
            db.all("PIF")
                .find(|p| {
                    p.str("host") == host
                        && p.str("device") == device
                        && p.str("VLAN_master_of") == NULL_REF
                })
                .map(|p| p.r.to_string())
        })
        .ok_or_else(|| CoreError::PifDeviceNotFound(device.into()))
    }

    /// `PIF.reconfigure_ip`: sets the address of the PIF's network bridge (`None`, `DHCP` or
    /// `Static` with IP and netmask) and records it with the gateway and DNS servers, which
    /// are not applied: Drover never changes the host's routes or resolver. The management
    /// interface is `PIF_IS_MANAGEMENT_INTERFACE`; a malformed address
    /// `INVALID_IP_ADDRESS_SPECIFIED` naming the parameter.
    pub(crate) async fn pif_reconfigure_ip(
        &self,
        pif: &str,
        mode: &str,
        ip: &str,
        netmask: &str,
        gateway: &str,
        dns: &str,
    ) -> Result<()> {
        self.configurable_pif(pif)?;
        let config = match mode {
            "None" => IpConfig::None,
            "DHCP" => IpConfig::Dhcp,
            "Static" => {
                let a = address("IP", ip)?;
                if a.is_unspecified() || a.is_multicast() || a.is_broadcast() {
                    return Err(CoreError::InvalidIpAddress("IP".into()));
                }
                let prefix = prefix_of(address("netmask", netmask)?)
                    .filter(|p| *p > 0)
                    .ok_or_else(|| CoreError::InvalidIpAddress("netmask".into()))?;
                IpConfig::Static { address: a, prefix }
            }
            other => {
                return Err(CoreError::InvalidValue {
                    field: "mode".into(),
                    value: other.into(),
                })
            }
        };
        if !gateway.trim().is_empty() {
            address("gateway", gateway)?;
        }
        for server in dns.split(',').filter(|s| !s.trim().is_empty()) {
            address("DNS", server)?;
        }
        let _held = self.net_lock.lock().await;
        let o = self.get("PIF", pif)?;
        let bridge = self
            .get("network", o.str("network"))?
            .str("bridge")
            .to_string();
        let before = ip_config(&o).unwrap_or(IpConfig::None);
        let failed = |e: HostError| config_error(pif, e);
        let driver = self.driver(o.str("host"))?;
        driver
            .pif_configure_ip(&bridge, &config)
            .await
            .map_err(failed)?;
        let (ip, netmask, gateway) = match &config {
            IpConfig::Static { .. } => (ip.trim(), netmask.trim(), gateway.trim()),
            _ => ("", "", ""),
        };
        let dns = if matches!(config, IpConfig::None) {
            ""
        } else {
            dns.trim()
        };
        let recorded = self.write(|t| {
            for (field, v) in [
                ("ip_configuration_mode", mode),
                ("IP", ip),
                ("netmask", netmask),
                ("gateway", gateway),
                ("DNS", dns),
            ] {
                t.set("PIF", pif, field, Value::str(v))?;
            }
            Ok(())
        });
        if let Err(e) = recorded {
            if let Err(undo) = driver.pif_configure_ip(&bridge, &before).await {
                tracing::warn!(pif, error = %undo, "could not give a bridge its address back");
            }
            return Err(e);
        }
        Ok(())
    }

    /// `PIF.reconfigure_ipv6`: sets the IPv6 configuration of the PIF's network bridge: `None`
    /// (no global address, router advertisements ignored), `Static` with `IPv6` as
    /// `address/prefix` (`INVALID_CIDR_ADDRESS_SPECIFIED`), or `Autoconf` (SLAAC from router
    /// advertisements on that bridge only). `DHCP` is refused: the hosts have no DHCPv6
    /// client. The gateway (recorded with a static address) and DNS servers are checked and
    /// recorded, never applied. The management interface is `PIF_IS_MANAGEMENT_INTERFACE`.
    pub(crate) async fn pif_reconfigure_ipv6(
        &self,
        pif: &str,
        mode: &str,
        ipv6: &str,
        gateway: &str,
        dns: &str,
    ) -> Result<()> {
        self.configurable_pif(pif)?;
        let config = match mode {
            "None" => Ip6Config::None,
            "Autoconf" => Ip6Config::Autoconf,
            "Static" => {
                let (address, prefix) =
                    cidr6(ipv6).ok_or_else(|| CoreError::InvalidCidrAddress("IPv6".into()))?;
                Ip6Config::Static { address, prefix }
            }
            "DHCP" => {
                return Err(CoreError::OperationNotAllowed(
                    "Drover's hosts have no DHCPv6 client; use Autoconf or Static".into(),
                ))
            }
            other => {
                return Err(CoreError::InvalidValue {
                    field: "mode".into(),
                    value: other.into(),
                })
            }
        };
        if !gateway.trim().is_empty() && gateway.trim().parse::<Ipv6Addr>().is_err() {
            return Err(CoreError::InvalidIpAddress("gateway".into()));
        }
        for server in dns.split(',').filter(|s| !s.trim().is_empty()) {
            if server.trim().parse::<IpAddr>().is_err() {
                return Err(CoreError::InvalidIpAddress("DNS".into()));
            }
        }
        let _held = self.net_lock.lock().await;
        let o = self.get("PIF", pif)?;
        let bridge = self
            .get("network", o.str("network"))?
            .str("bridge")
            .to_string();
        let before = ip6_config(&o).unwrap_or(Ip6Config::None);
        let driver = self.driver(o.str("host"))?;
        driver
            .pif_configure_ipv6(&bridge, &config)
            .await
            .map_err(|e| config_error(pif, e))?;
        let (addresses, gateway) = match &config {
            Ip6Config::Static { address, prefix } => (
                Value::Set(vec![Value::str(format!("{address}/{prefix}"))]),
                gateway.trim(),
            ),
            _ => (Value::empty_set(), ""),
        };
        let recorded = self.write(|t| {
            t.set("PIF", pif, "ipv6_configuration_mode", Value::str(mode))?;
            t.set("PIF", pif, "IPv6", addresses.clone())?;
            t.set("PIF", pif, "ipv6_gateway", Value::str(gateway))?;
            if !dns.trim().is_empty() && !matches!(config, Ip6Config::None) {
                t.set("PIF", pif, "DNS", Value::str(dns.trim()))?;
            }
            Ok(())
        });
        if let Err(e) = recorded {
            if let Err(undo) = driver.pif_configure_ipv6(&bridge, &before).await {
                tracing::warn!(pif, error = %undo, "could not give a bridge its IPv6 setup back");
            }
            return Err(e);
        }
        Ok(())
    }

    /// `PIF.set_property`: `gro` (`on`/`off`) is the one property a PIF has (`INVALID_VALUE`
    /// otherwise); bond members and VLANs have none (`CANNOT_CHANGE_PIF_PROPERTIES`). It is
    /// applied only to a bond's interface, which Drover made (the bond is made again with it);
    /// the host's own interfaces are never changed (`PIF_CONFIGURATION_ERROR`).
    pub(crate) async fn pif_set_property(&self, pif: &str, name: &str, value: &str) -> Result<()> {
        if name != "gro" || !matches!(value, "on" | "off") {
            return Err(CoreError::InvalidValue {
                field: format!("properties:{name}"),
                value: value.into(),
            });
        }
        let o = self.local_pif(pif)?;
        if o.str("bond_slave_of") != NULL_REF || o.str("VLAN_master_of") != NULL_REF {
            return Err(CoreError::CannotChangePifProperties(pif.into()));
        }
        if !o.bool("managed") {
            return Err(CoreError::PifUnmanaged(pif.into()));
        }
        if o.refs("bond_master_of").is_empty() {
            return Err(CoreError::PifConfigurationError {
                pif: pif.into(),
                msg: format!(
                    "{} is an interface of the host's own; Drover does not change host \
                     interfaces it did not make",
                    o.str("device")
                ),
            });
        }
        self.net_change(&[Ref::from(o.str("network"))], |t| {
            t.update("PIF", pif, "properties", |m| {
                m.map_insert(Value::str(name), Value::str(value));
            })
        })
        .await
    }

    /// Refreshes the `PIF_metrics` of the hosts' PIFs from the interfaces' counters: carrier
    /// and traffic since the previous reading (a VLAN's PIF is counted on its bridge), all in
    /// one change.
    pub(crate) async fn refresh_pif_metrics(&self, hosts: &[(Ref, Arc<dyn HostDriver>)]) {
        let mut pifs: HashMap<String, Vec<(String, String)>> = self.read(|db| {
            let mut by_host: HashMap<String, Vec<(String, String)>> = HashMap::new();
            for p in db.all("PIF") {
                let device = match p.str("VLAN_master_of") {
                    NULL_REF => p.str("device"),
                    _ => match db.get("network", p.str("network")) {
                        Some(n) => n.str("bridge"),
                        None => continue,
                    },
                };
                by_host
                    .entry(p.str("host").to_string())
                    .or_default()
                    .push((p.str("metrics").to_string(), device.to_string()));
            }
            by_host
        });
        let mut readings = Vec::new();
        for (host, driver) in hosts {
            for (metrics, device) in pifs.remove(&**host).unwrap_or_default() {
                if let Ok(c) = driver.pif_counters(&device).await {
                    readings.push((metrics, c));
                }
            }
        }
        let at = Instant::now();
        let figures: Vec<(String, bool, f64, f64)> = {
            let mut previous = self.pif_counters.lock().unwrap_or_else(|e| e.into_inner());
            readings
                .into_iter()
                .map(|(metrics, c)| {
                    let (read, write) = match previous.insert(metrics.clone(), (at, c)) {
                        Some((then, old)) => {
                            let secs = at.duration_since(then).as_secs_f64().max(1e-3);
                            let kbs =
                                |new: u64, old: u64| new.saturating_sub(old) as f64 / 1024.0 / secs;
                            (kbs(c.rx_bytes, old.rx_bytes), kbs(c.tx_bytes, old.tx_bytes))
                        }
                        None => (0.0, 0.0),
                    };
                    (metrics, c.carrier, read, write)
                })
                .collect()
        };
        let _ = self.write_volatile(|t| {
            for (metrics, carrier, read, write) in &figures {
                if t.get("PIF_metrics", metrics).is_none() {
                    continue;
                }
                for (field, v) in [
                    ("carrier", Value::Bool(*carrier)),
                    ("io_read_kbs", Value::Float(*read)),
                    ("io_write_kbs", Value::Float(*write)),
                    ("last_updated", Value::DateTime(now())),
                ] {
                    t.set("PIF_metrics", metrics, field, v)?;
                }
            }
            Ok(())
        });
    }
}
