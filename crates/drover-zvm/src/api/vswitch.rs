//! Vswitches: a vswitch is a Drover network whose `name_label` is its name.
//!
//! - Every network whose name can name a vswitch (1 to 8 letters, digits, `_`, `@`, `#`, `$`;
//!   shown upper-case, matched ignoring case) is one, so networks made through XenAPI with such
//!   names are listed too; the internal network of uncoupled NICs (`zvm_internal=true`) never
//!   is. `vswitch_create` makes a network marked `other_config:zvm_vswitch=true` with the
//!   vswitch's settings (`zvm_vlan_awareness`, `zvm_vlan_id`, `zvm_port_type`, `zvm_rdev`,
//!   `zvm_controller`, `zvm_connection`, `zvm_network_type`, `zvm_router`, `zvm_gvrp`,
//!   `zvm_queue_mem`, `zvm_native_vid`, `zvm_persist`), no address range, and the bridge
//!   `zvsw-<name>` when that name is free (else the core's `xapi<N>`). Networks without
//!   these keys read as the original's defaults.
//! - Its authorised users are `zvm_grants` (comma-separated userids), their VLANs
//!   `zvm_user_vlans` (`USER1:100,USER2:200`). Drover's network is one layer-2 segment: VLAN
//!   settings are recorded and reported, not enforced. The real devices (`rdev`) are recorded;
//!   the network's uplink is whatever PIF XenAPI gives it (`switch_status` says whether it has
//!   one).
//! - Deleting a vswitch uncouples its NICs first, as z/VM disconnects them; a vswitch with an
//!   uplink PIF is refused.

use std::sync::Arc;

use drover_core::{Obj, Op};
use drover_model::Value;
use serde_json::{json, Map, Value as Json};

use super::args::{req, Args, Param};
use super::guest::with;
use super::nic::NET_CHANGES;
use super::{Backend, Call, Dispatched};
use crate::error::{Module, ZvmError, ZvmResult};

/// The module vswitch errors are raised by.
const N: Module = Module::Network;

/// Runs the vswitch calls.
pub(super) async fn dispatch<'a>(b: &Backend, call: Call<'a>) -> Dispatched<'a> {
    const NAME_USER: &[Param] = &[req("vswitch_name"), req("userid")];
    Ok(match call.api {
        "vswitch_get_list" => {
            with(call, "vswitch_get_list", &[], |_| async move {
                let names: Vec<String> = b.vswitches().into_iter().map(|(n, _)| n).collect();
                Ok(json!(names))
            })
            .await
        }
        "vswitch_create" => {
            const P: &[Param] = &[
                req("name"),
                ("rdev", Some(|| Json::Null)),
                ("controller", Some(|| json!("*"))),
                ("connection", Some(|| json!("CONNECT"))),
                ("network_type", Some(|| json!("ETHERNET"))),
                ("router", Some(|| json!("NONROUTER"))),
                ("vid", Some(|| json!("UNAWARE"))),
                ("port_type", Some(|| json!("ACCESS"))),
                ("gvrp", Some(|| json!("GVRP"))),
                ("queue_mem", Some(|| json!(8))),
                ("native_vid", Some(|| json!(1))),
                ("persist", Some(|| json!(true))),
            ];
            with(call, "vswitch_create", P, |a| b.vswitch_create(a)).await
        }
        "vswitch_delete" => {
            const P: &[Param] = &[req("vswitch_name"), ("persist", Some(|| json!(true)))];
            with(call, "vswitch_delete", P, |a| b.vswitch_delete(a)).await
        }
        "vswitch_query" => {
            with(
                call,
                "vswitch_query",
                &[req("vswitch_name")],
                |a| async move {
                    let name = a.str("vswitch_name")?;
                    let net = b.vswitch(&name).ok_or_else(|| no_vswitch(&name))?;
                    Ok(b.vswitch_info(&net))
                },
            )
            .await
        }
        "vswitch_grant_user" => {
            with(call, "vswitch_grant_user", NAME_USER, |a| async move {
                let name = a.str("vswitch_name")?;
                let userid = a.userid("userid")?;
                b.guest(&userid)?;
                let _held = NET_CHANGES.lock().await;
                let net = b.vswitch(&name).ok_or_else(|| no_vswitch(&name))?;
                b.grant(&net, &userid).await?;
                Ok(Json::Null)
            })
            .await
        }
        "vswitch_revoke_user" => {
            with(call, "vswitch_revoke_user", NAME_USER, |a| async move {
                let name = a.str("vswitch_name")?;
                let userid = a.str("userid")?.to_uppercase();
                let _held = NET_CHANGES.lock().await;
                if let Some(net) = b.vswitch(&name) {
                    b.revoke(&net, &userid).await?;
                }
                Ok(Json::Null)
            })
            .await
        }
        "vswitch_set_vlan_id_for_user" => {
            const P: &[Param] = &[req("vswitch_name"), req("userid"), req("vlan_id")];
            with(call, "vswitch_set_vlan_id_for_user", P, |a| async move {
                b.set_user_vlan(&a).await
            })
            .await
        }
        _ => return Err(call),
    })
}

/// `Vswitch <name> does not exist.`
fn no_vswitch(name: &str) -> ZvmError {
    ZvmError::NotExist {
        module: N,
        what: format!("Vswitch {name}"),
    }
}

/// Whether `name` can name a vswitch: 1 to 8 letters, digits, `_`, `@`, `#` or `$`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 8
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@' | b'#' | b'$'))
}

/// The vswitch a network is (its upper-case name), if it is one.
pub(super) fn vswitch_name_of(net: &Obj) -> Option<String> {
    let name = net.str("name_label");
    (net.other("zvm_internal") != Some("true") && valid_name(name)).then(|| name.to_uppercase())
}

/// A comma-separated `other_config` list, without empty items.
fn list(net: &Obj, key: &str) -> Vec<String> {
    net.other(key)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The userids a vswitch authorises.
pub(super) fn grants(net: &Obj) -> Vec<String> {
    list(net, "zvm_grants")
        .into_iter()
        .map(|u| u.to_uppercase())
        .collect()
}

/// The VLANs set for users of a vswitch, as `(USERID, vlan)`.
fn user_vlans(net: &Obj) -> Vec<(String, String)> {
    list(net, "zvm_user_vlans")
        .iter()
        .filter_map(|item| {
            let (user, vlan) = item.split_once(':')?;
            Some((user.trim().to_uppercase(), vlan.trim().to_string()))
        })
        .collect()
}

/// A setting of a vswitch, or the original's default.
fn setting<'a>(net: &'a Obj, key: &str, default: &'a str) -> &'a str {
    net.other(key).unwrap_or(default)
}

impl Backend {
    /// Every vswitch by name; of networks sharing a name, one the connector made comes first.
    pub(super) fn vswitches(&self) -> Vec<(String, Arc<Obj>)> {
        let mut all: Vec<(String, Arc<Obj>)> = self.engine.read(|db| {
            db.all("network")
                .filter_map(|n| Some((vswitch_name_of(n)?, n.clone())))
                .collect()
        });
        // `false` (the connector's) sorts first.
        let foreign = |n: &Obj| n.other("zvm_vswitch") != Some("true");
        all.sort_by(|a, b| (&a.0, foreign(&a.1), &a.1.r).cmp(&(&b.0, foreign(&b.1), &b.1.r)));
        all.dedup_by(|a, b| a.0 == b.0);
        all
    }

    /// The vswitch `name` (ignoring case).
    pub(super) fn vswitch(&self, name: &str) -> Option<Arc<Obj>> {
        self.vswitches()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, net)| net)
    }

    /// `vswitch_create`: a network with the vswitch's settings; a taken name is `8/1/212/36`.
    async fn vswitch_create(&self, a: Args) -> ZvmResult {
        let given = a.str("name")?;
        if !valid_name(&given) {
            return Err(ZvmError::ArgFormat(format!(
                "vswitch name {given:?} should be 1 to 8 letters, digits, _, @, # or $"
            )));
        }
        let name = given.to_uppercase();
        let rdev = a.opt_str("rdev")?.map(|r| r.replace(',', " "));
        let controller = a.str("controller")?;
        let connection = a.str("connection")?.to_uppercase();
        let network_type = a.str("network_type")?.to_uppercase();
        let mut router = a.opt_str("router")?.map(|r| r.to_uppercase());
        let (awareness, vlan_id) =
            match a.get("vid") {
                Json::String(s) if s.eq_ignore_ascii_case("UNAWARE") => ("UNAWARE", None),
                Json::String(s) if s.eq_ignore_ascii_case("AWARE") => ("AWARE", None),
                _ => match a.int("vid") {
                    Ok(n) if (1..=4094).contains(&n) => ("AWARE", Some(n.to_string())),
                    _ => return Err(ZvmError::ArgFormat(
                        "API vswitch_create: Invalid \"vid\" input, it should be UNAWARE, AWARE \
                         or 1-4094"
                            .into(),
                    )),
                },
            };
        let port_type = a.str("port_type")?.to_uppercase();
        if !matches!(port_type.as_str(), "ACCESS" | "TRUNK") {
            return Err(ZvmError::ArgFormat(format!(
                "API vswitch_create: Invalid \"port_type\" input {port_type}, it should be \
                 ACCESS or TRUNK"
            )));
        }
        let gvrp = a.str("gvrp")?.to_uppercase();
        let queue_mem = a.int("queue_mem")?;
        if !(1..=8).contains(&queue_mem) {
            return Err(ZvmError::ArgFormat(
                "API vswitch_create: Invalid \"queue_mem\" input, it should be 1-8".into(),
            ));
        }
        let native_vid = a.opt_int("native_vid")?;
        if awareness == "AWARE" && native_vid.is_some_and(|v| !(1..=4094).contains(&v)) {
            return Err(ZvmError::ArgFormat(
                "API vswitch_create: Invalid \"native_vid\" input, it should be 1-4094 or None"
                    .into(),
            ));
        }
        let persist = a.bool("persist")?;
        if network_type == "ETHERNET" {
            router = None;
        }
        let _held = NET_CHANGES.lock().await;
        if self.vswitch(&name).is_some() {
            return Err(ZvmError::Smt {
                rc: 212,
                rs: 36,
                msg: format!(
                    "SMT error: Failed to create vswitch {name}: the vswitch already exists"
                ),
            });
        }
        let native = native_vid.map(|v| v.to_string());
        let queue = queue_mem.to_string();
        let mut settings: Vec<(&str, &str)> = vec![
            ("zvm_vswitch", "true"),
            ("zvm_vlan_awareness", awareness),
            ("zvm_port_type", &port_type),
            ("zvm_controller", &controller),
            ("zvm_connection", &connection),
            ("zvm_network_type", &network_type),
            ("zvm_gvrp", &gvrp),
            ("zvm_queue_mem", &queue),
            ("zvm_persist", if persist { "true" } else { "false" }),
        ];
        for (key, value) in [
            ("zvm_vlan_id", &vlan_id),
            ("zvm_rdev", &rdev),
            ("zvm_router", &router),
            ("zvm_native_vid", &native),
        ] {
            if let Some(v) = value {
                settings.push((key, v));
            }
        }
        let mut fields = vec![
            ("name_label".to_string(), Value::str(&name)),
            (
                "name_description".to_string(),
                Value::str(format!("z/VM vswitch {name}")),
            ),
            ("other_config".to_string(), Value::string_map(settings)),
        ];
        let bridge = format!("zvsw-{}", name.to_lowercase());
        let bridge_free = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && self
                .engine
                .read(|db| db.all("network").all(|n| n.str("bridge") != bridge));
        if bridge_free {
            fields.push(("bridge".to_string(), Value::str(bridge)));
        }
        self.op_ref(
            N,
            Op::Create {
                class: "network".into(),
                fields,
            },
        )
        .await?;
        Ok(Json::Null)
    }

    /// `vswitch_delete`: uncouples the vswitch's NICs and destroys its network; an unknown
    /// vswitch is no error, as on z/VM.
    async fn vswitch_delete(&self, a: Args) -> ZvmResult {
        let name = a.str("vswitch_name")?;
        a.bool("persist")?;
        let _held = NET_CHANGES.lock().await;
        let Some(net) = self.vswitch(&name) else {
            return Ok(Json::Null);
        };
        if !net.refs("PIFs").is_empty() {
            return Err(ZvmError::Failed {
                module: N,
                rs: 2,
                msg: format!(
                    "ZVMSDK network error: vswitch {} has an uplink PIF; remove it first",
                    name.to_uppercase()
                ),
            });
        }
        for vif in net.refs("VIFs") {
            self.uncouple_vif(&vif).await?;
        }
        self.destroy(N, "network", &net.r).await?;
        Ok(Json::Null)
    }

    /// Adds a user to a vswitch's grants. The caller holds [`NET_CHANGES`].
    async fn grant(&self, net: &Obj, userid: &str) -> ZvmResult<()> {
        let mut users = grants(net);
        if users.iter().any(|u| u == userid) {
            return Ok(());
        }
        users.push(userid.to_string());
        self.set_other(N, "network", &net.r, "zvm_grants", Some(&users.join(",")))
            .await
    }

    /// Takes a user and its VLAN off a vswitch. The caller holds [`NET_CHANGES`].
    async fn revoke(&self, net: &Obj, userid: &str) -> ZvmResult<()> {
        let users: Vec<String> = grants(net).into_iter().filter(|u| u != userid).collect();
        let vlans = vlan_list(user_vlans(net).into_iter().filter(|(u, _)| u != userid));
        let users = users.join(",");
        self.set_others(
            N,
            "network",
            &net.r,
            &[
                ("zvm_grants", (!users.is_empty()).then_some(users.as_str())),
                (
                    "zvm_user_vlans",
                    (!vlans.is_empty()).then_some(vlans.as_str()),
                ),
            ],
        )
        .await
    }

    /// `vswitch_set_vlan_id_for_user`: grants the user with that VLAN, on a VLAN-aware vswitch.
    async fn set_user_vlan(&self, a: &Args) -> ZvmResult {
        let name = a.str("vswitch_name")?;
        let userid = a.userid("userid")?;
        let vlan = a.int("vlan_id")?;
        self.guest(&userid)?;
        let _held = NET_CHANGES.lock().await;
        let net = self.vswitch(&name).ok_or_else(|| no_vswitch(&name))?;
        let conflict = |msg: String| ZvmError::Conflict {
            module: N,
            rs: 5,
            msg: format!("Failed to set vswitch {name}, error: {msg}"),
        };
        if setting(&net, "zvm_vlan_awareness", "UNAWARE") != "AWARE" {
            return Err(conflict(
                "Operation is not allowed for a VLAN UNAWARE vswitch".into(),
            ));
        }
        if !(1..=4094).contains(&vlan) {
            return Err(conflict(format!("VLAN ID {vlan} is not within 1-4094")));
        }
        let mut users = grants(&net);
        if !users.contains(&userid) {
            users.push(userid.clone());
        }
        let vlan = vlan.to_string();
        let vlans = vlan_list(
            user_vlans(&net)
                .into_iter()
                .filter(|(u, _)| *u != userid)
                .chain([(userid.clone(), vlan)]),
        );
        self.set_others(
            N,
            "network",
            &net.r,
            &[
                ("zvm_grants", Some(&users.join(","))),
                ("zvm_user_vlans", Some(&vlans)),
            ],
        )
        .await?;
        Ok(Json::Null)
    }

    /// `vswitch_query`: the original's parse of `Virtual_Network_Vswitch_Query_Extended`.
    fn vswitch_info(&self, net: &Obj) -> Json {
        let name = vswitch_name_of(net).unwrap_or_default();
        let aware = setting(net, "zvm_vlan_awareness", "UNAWARE") == "AWARE";
        let vlan_id = net.other("zvm_vlan_id");
        let native = net.other("zvm_native_vid");
        let four = |v: Option<&str>| format!("{:0>4}", v.unwrap_or("0"));
        let gvrp = setting(net, "zvm_gvrp", "GVRP");
        let uplinked = !net.refs("PIFs").is_empty();
        let status = if uplinked {
            "OSA device ready."
        } else {
            "Virtual switch defined."
        };
        // A locally administered MAC from the network's uuid.
        let tail: String = net.uuid().chars().filter(|c| *c != '-').take(8).collect();
        let mac = dashed(&format!("0200{}", tail.to_uppercase()));
        let mut info = Map::new();
        for (key, value) in [
            ("switch_name", name.clone()),
            (
                "transport_type",
                setting(net, "zvm_network_type", "ETHERNET").into(),
            ),
            ("port_type", setting(net, "zvm_port_type", "ACCESS").into()),
            (
                "queue_memory_limit",
                setting(net, "zvm_queue_mem", "8").into(),
            ),
            ("routing_value", setting(net, "zvm_router", "NA").into()),
            (
                "vlan_awareness",
                if aware { "AWARE" } else { "UNAWARE" }.into(),
            ),
            ("vlan_id", four(vlan_id)),
            ("native_vlan_id", four(native.filter(|_| aware))),
            ("mac_address", mac),
            ("gvrp_request_attribute", gvrp.into()),
            ("gvrp_enabled_attribute", gvrp.into()),
            ("switch_status", status.into()),
            ("link_ag", "NO".into()),
            ("lag_interval", "0".into()),
            ("lag_group", "(NONE)".into()),
            ("IP_timeout", "5".into()),
            ("switch_type", "QDIO".into()),
            ("isolation_status", "OFF".into()),
            ("MAC_protect", "UNSPECIFIED".into()),
            ("user_port_based", "USERBASED".into()),
            ("VLAN_counters", "OFF".into()),
        ] {
            info.insert(key.into(), json!(value));
        }
        let active = setting(net, "zvm_connection", "CONNECT").starts_with("CON");
        let mut devices = Map::new();
        for rdev in net.other("zvm_rdev").unwrap_or_default().split_whitespace() {
            if rdev.eq_ignore_ascii_case("NONE") {
                continue;
            }
            devices.insert(
                rdev.to_uppercase(),
                json!({
                    "vdev": "NONE",
                    "controller": setting(net, "zvm_controller", "*"),
                    "port_name": "NONE",
                    "dev_status": if active && uplinked {
                        "Device is active."
                    } else {
                        "Device is not active."
                    },
                    "dev_err": "No error.",
                }),
            );
        }
        info.insert("real_devices".into(), Json::Object(devices));
        let vlans = user_vlans(net);
        let mut users = Map::new();
        for (i, user) in grants(net).into_iter().enumerate() {
            let ids: Vec<String> = if aware {
                let own: Vec<String> = vlans
                    .iter()
                    .filter(|(u, _)| *u == user)
                    .map(|(_, v)| v.clone())
                    .collect();
                if own.is_empty() {
                    vlan_id.or(native).map(String::from).into_iter().collect()
                } else {
                    own
                }
            } else {
                Vec::new()
            };
            // The original reports the count as the text z/VM gives, or 0 when VLAN-unaware.
            let count = if aware {
                json!(ids.len().to_string())
            } else {
                json!(0)
            };
            users.insert(
                user,
                json!({
                    "port_num": format!("{:04}", i + 1),
                    "prom_mode": "NO",
                    "osd_sim": "NO",
                    "vlan_count": count,
                    "vlan_ids": ids,
                }),
            );
        }
        info.insert("authorized_users".into(), Json::Object(users));
        let mut adapters = Map::new();
        for (userid, vm) in self.guests() {
            for nic in self.nic_list(&vm) {
                if nic.network == *net.r {
                    adapters.insert(
                        format!("{userid}_{}", nic.info.vdev.to_uppercase()),
                        json!({
                            "mac": dashed(&nic.info.mac.replace(':', "").to_uppercase()),
                            "type": "QDIO",
                        }),
                    );
                }
            }
        }
        info.insert("adapters".into(), Json::Object(adapters));
        Json::Object(info)
    }
}

/// `USER1:100,USER2:200`.
fn vlan_list(items: impl Iterator<Item = (String, String)>) -> String {
    items
        .map(|(u, v)| format!("{u}:{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Twelve hex digits as z/VM shows a MAC address: `02-00-0E-00-00-1A`.
fn dashed(hex: &str) -> String {
    hex.chars()
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vswitch_names_are_short_words() {
        for ok in ["VSW1", "xcatvsw2", "A", "SW_1@#$"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "TOOLONGNAME", "zvm-uncoupled", "a b"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(dashed("02000E00001A"), "02-00-0E-00-00-1A");
    }
}
