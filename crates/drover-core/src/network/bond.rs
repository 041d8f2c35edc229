//! Bonds: Linux bonds of a host's physical interfaces where its kernel has bonding. The bond's
//! interface (`bond<N>`, a PIF that is not physical) is the uplink of the bond's network; its
//! members leave their own networks.

use drover_model::{Value, NULL_REF};

use super::distinct;
use super::networks::free_name;
use super::spec::{bond_mode, pif_on};
use super::vif::check_mac;
use crate::db::{Ref, View};
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::ops::FieldChange;
use crate::txn::new_ref;

/// The LACP bond properties with their defaults (none for the aggregation key).
const LACP_DEFAULTS: [(&str, Option<&str>); 4] = [
    ("hashing_algorithm", Some("tcpudp_ports")),
    ("lacp-time", Some("slow")),
    ("lacp-aggregation-key", None),
    ("lacp-fallback-ab", Some("true")),
];

/// Checks a bond property for a bond of `mode`: its name must be one the mode has and its
/// value one the property takes (`INVALID_VALUE`). `lacp-fallback-ab=false` cannot be had
/// from a Linux bond, which always keeps one link working without an LACP partner: that is a
/// `PIF_CONFIGURATION_ERROR` on `pif`.
pub(crate) fn check_bond_property(mode: &str, name: &str, value: &str, pif: &str) -> Result<()> {
    let lacp = mode == "lacp";
    let valid = match name {
        // Milliseconds before a member's link change counts, in every mode.
        "updelay" | "downdelay" => value.parse::<u32>().is_ok_and(|v| v <= i32::MAX as u32),
        "hashing_algorithm" if lacp => matches!(value, "src_mac" | "tcpudp_ports"),
        "lacp-time" if lacp => matches!(value, "fast" | "slow"),
        "lacp-aggregation-key" if lacp => value.parse::<u16>().is_ok_and(|k| k <= 1023),
        "lacp-fallback-ab" if lacp => matches!(value, "true" | "false"),
        _ => false,
    };
    if !valid {
        return Err(CoreError::InvalidValue {
            field: format!("properties:{name}"),
            value: value.into(),
        });
    }
    if name == "lacp-fallback-ab" && value == "false" {
        return Err(CoreError::PifConfigurationError {
            pif: pif.into(),
            msg: "a Linux bond always falls back to one active link without an LACP partner; \
                  lacp-fallback-ab=false cannot be had"
                .into(),
        });
    }
    Ok(())
}

/// The properties a bond of `mode` has: those of `given` it knows (checked), the others
/// dropped when `keep_known_only`, else refused; then the mode's defaults for those missing.
fn bond_properties(
    mode: &str,
    given: &[(String, String)],
    keep_known_only: bool,
    pif: &str,
) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in given {
        match check_bond_property(mode, name, value, pif) {
            Ok(()) => {
                out.retain(|(n, _)| n != name);
                out.push((name.clone(), value.clone()));
            }
            Err(_) if keep_known_only => {}
            Err(e) => return Err(e),
        }
    }
    if mode == "lacp" {
        for (name, default) in LACP_DEFAULTS {
            if let Some(d) = default.filter(|_| !out.iter().any(|(n, _)| n == name)) {
                out.push((name.into(), d.into()));
            }
        }
    }
    Ok(out)
}

/// A string map field as pairs.
fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_map()
        .unwrap_or_default()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
        .collect()
}

impl Engine {
    /// `Bond.create`: two or more physical PIFs of one host (`PIF_BOND_NEEDS_MORE_MEMBERS`,
    /// `PIF_CANNOT_BOND_CROSS_HOST`, `PIF_IS_NOT_PHYSICAL`), none bonded, the management
    /// interface or carrying VLANs, and a mode of `balance-slb`, `active-backup` or `lacp`. A
    /// host whose kernel has no bonding refuses before anything changes. `properties` are
    /// checked for the mode and completed with its defaults (`check_bond_property`).
    pub(crate) async fn bond_create(
        &self,
        network: &str,
        members: &[String],
        mac: &str,
        mode: &str,
        properties: &[(String, String)],
    ) -> Result<Ref> {
        let mut unique: Vec<&String> = Vec::new();
        for m in members {
            if !unique.contains(&m) {
                unique.push(m);
            }
        }
        if unique.len() < 2 {
            return Err(CoreError::PifBondNeedsMoreMembers);
        }
        if bond_mode(mode).is_none() {
            return Err(CoreError::InvalidValue {
                field: "mode".into(),
                value: mode.into(),
            });
        }
        let properties = bond_properties(mode, properties, false, "")?;
        if !mac.is_empty() {
            check_mac(mac)?;
        }
        let pifs = unique
            .iter()
            .map(|m| self.get("PIF", m))
            .collect::<Result<Vec<_>>>()?;
        let host = pifs[0].str("host").to_string();
        if pifs.iter().any(|p| p.str("host") != host) {
            return Err(CoreError::PifCannotBondCrossHost);
        }
        self.check_host(&host)?;
        if !self.driver(&host)?.net_capabilities().await.bonding {
            return Err(CoreError::OperationNotAllowed(
                "this host's kernel has no bonding".into(),
            ));
        }
        let (bond, master) = (new_ref(), new_ref());
        let nets = distinct(
            std::iter::once(Ref::from(network))
                .chain(pifs.iter().map(|p| Ref::from(p.str("network")))),
        );
        self.net_change(&nets, |t| {
            let net = t.must("network", network)?.clone();
            for m in &unique {
                let p = t.must("PIF", m)?;
                if p.str("bond_slave_of") != NULL_REF {
                    return Err(CoreError::PifAlreadyBonded(m.to_string()));
                }
                if p.bool("management") {
                    return Err(CoreError::PifIsManagementInterface(m.to_string()));
                }
                if !p.bool("physical") {
                    return Err(CoreError::PifIsNotPhysical(m.to_string()));
                }
                if !p.refs("VLAN_slave_of").is_empty() {
                    return Err(CoreError::PifVlanStillExists(m.to_string()));
                }
            }
            if let Some(other) = pif_on(&*t, &net, &host) {
                return Err(CoreError::NetworkAlreadyConnected {
                    network: network.into(),
                    pif: other.r.to_string(),
                });
            }
            let host_obj = t.must("host", &host)?.clone();
            let devices: Vec<String> = t
                .members(&host_obj, "PIFs", "PIF")
                .iter()
                .map(|p| p.str("device").to_string())
                .collect();
            let first = t.must("PIF", unique[0])?.clone();
            let links_up = unique
                .iter()
                .filter_map(|m| t.get("PIF", m))
                .filter(|p| {
                    t.get("PIF_metrics", p.str("metrics"))
                        .is_some_and(|m| m.bool("carrier"))
                })
                .count();
            let metrics = t.create("PIF_metrics", vec![("carrier", Value::Bool(links_up > 0))])?;
            t.create_with_ref(
                "PIF",
                master.clone(),
                vec![
                    ("device", Value::str(free_name("bond", &devices))),
                    ("host", Value::str(&host)),
                    ("network", Value::str(network)),
                    (
                        "MAC",
                        Value::str(if mac.is_empty() {
                            first.str("MAC")
                        } else {
                            mac
                        }),
                    ),
                    ("MTU", net.get("MTU").clone()),
                    ("VLAN", Value::Int(-1)),
                    ("physical", Value::Bool(false)),
                    ("currently_attached", Value::Bool(true)),
                    ("ip_configuration_mode", Value::str("None")),
                    ("metrics", Value::str(&*metrics)),
                    ("managed", Value::Bool(true)),
                ],
            )?;
            t.create_with_ref(
                "Bond",
                bond.clone(),
                vec![
                    ("master", Value::str(&*master)),
                    ("mode", Value::str(mode)),
                    ("primary_slave", Value::str(&*first.r)),
                    ("links_up", Value::Int(links_up as i64)),
                    ("auto_update_mac", Value::Bool(mac.is_empty())),
                    ("properties", Value::string_map(properties.iter().cloned())),
                ],
            )?;
            for m in &unique {
                t.set("PIF", m, "bond_slave_of", Value::str(&*bond))?;
                t.set("PIF", m, "currently_attached", Value::Bool(false))?;
            }
            Ok(bond.clone())
        })
        .await
    }

    /// `Bond.destroy`: refused while VLANs use the bond's interface; the bond's network loses
    /// its uplink, the bond goes from the host, its members are free (and unplugged) again.
    pub(crate) async fn bond_destroy(&self, bond: &str) -> Result<()> {
        let b = self.get("Bond", bond)?;
        let master = self.get("PIF", b.str("master"))?;
        self.check_host(master.str("host"))?;
        if !master.refs("VLAN_slave_of").is_empty() {
            return Err(CoreError::PifVlanStillExists(master.r.to_string()));
        }
        let nets = self.read(|db| {
            distinct(
                std::iter::once(Ref::from(master.str("network"))).chain(
                    db.members(&b, "slaves", "PIF")
                        .iter()
                        .map(|p| Ref::from(p.str("network"))),
                ),
            )
        });
        self.net_change(&nets, |t| {
            let master = t.must("PIF", &master.r)?.clone();
            for slave in t.must("Bond", bond)?.refs("slaves") {
                t.set("PIF", &slave, "bond_slave_of", Value::str(NULL_REF))?;
            }
            if t.get("PIF_metrics", master.str("metrics")).is_some() {
                t.destroy("PIF_metrics", master.str("metrics"))?;
            }
            t.destroy("PIF", &master.r)?;
            t.destroy("Bond", bond)
        })
        .await
    }

    /// `Bond.set_mode`: the bond is made again on the host with the new mode; properties the
    /// new mode does not have are dropped and its defaults added.
    pub(crate) async fn bond_mode_change(&self, bond: &str, change: &FieldChange) -> Result<()> {
        let b = self.get("Bond", bond)?;
        let master = self.get("PIF", b.str("master"))?;
        self.check_host(master.str("host"))?;
        self.net_change(&[Ref::from(master.str("network"))], |t| {
            change.apply(t, "Bond", bond, "mode")?;
            let b = t.must("Bond", bond)?;
            let mode = b.str("mode").to_string();
            if bond_mode(&mode).is_none() {
                return Err(CoreError::InvalidValue {
                    field: "mode".into(),
                    value: mode,
                });
            }
            let kept = bond_properties(&mode, &pairs(b.get("properties")), true, "")?;
            t.set("Bond", bond, "properties", Value::string_map(kept))
        })
        .await
    }

    /// `Bond.set_property`: checks the property for the bond's mode, records it in the bond's
    /// `properties` and makes the bond again on its host with it.
    pub(crate) async fn bond_set_property(
        &self,
        bond: &str,
        name: &str,
        value: &str,
    ) -> Result<()> {
        let b = self.get("Bond", bond)?;
        let master = self.get("PIF", b.str("master"))?;
        self.check_host(master.str("host"))?;
        check_bond_property(b.str("mode"), name, value, &master.r)?;
        self.net_change(&[Ref::from(master.str("network"))], |t| {
            let b = t.must("Bond", bond)?;
            check_bond_property(b.str("mode"), name, value, &master.r)?;
            let mut properties = b.get("properties").clone();
            properties.map_insert(Value::str(name), Value::str(value));
            t.set("Bond", bond, "properties", properties)
        })
        .await
    }
}
