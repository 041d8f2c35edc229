//! Volumes on guests: the volume connector (FCP device reservation), attach, detach and the
//! boot map of a SCSI boot volume.

use std::collections::BTreeSet;
use std::sync::Arc;

use drover_core::{Obj, Op, VbdAction};
use drover_model::Value;
use serde_json::{json, Map, Value as Json};

use super::fcp::{fcp_id, hex16, Device, Inventory, Usage};
use super::{FCP_LOCK, V};
use crate::api::args::{py_type, Args};
use crate::api::guest::is_on;
use crate::api::{Backend, NewVbd, VBD_POSITIONS};
use crate::error::{Module, ZvmError, ZvmResult};

/// VDI `other_config` key naming the volume's LUN.
const LUN_KEY: &str = "zvm_lun";
/// SR `other_config` key listing the target ports.
const WWPN_KEY: &str = "zvm_wwpn";
/// VDI and VBD `other_config` key of an attached volume.
const VOLUME_KEY: &str = "zvm_volume";

/// A failed attach (`300/30/300/8`).
fn attach_failed(userid: &str, reason: &str) -> ZvmError {
    ZvmError::Failed {
        module: V,
        rs: 8,
        msg: format!("Failed to attach volume to instance {userid} with reason {reason}"),
    }
}

/// A failed boot map refresh (`300/30/300/5`).
fn bootmap_failed(reason: String) -> ZvmError {
    ZvmError::Failed {
        module: V,
        rs: 5,
        msg: format!("Refresh bootmap fails, error code: 1 and reason: {reason}"),
    }
}

/// A list argument of FCP devices or WWPNs, each read by `parse`; an empty list or an item
/// `parse` refuses is an argument-format error (`<name> must list <what>`).
fn id_list(
    a: &Args,
    name: &str,
    parse: fn(&str) -> Option<String>,
    what: &str,
) -> ZvmResult<Vec<String>> {
    a.list(name)?
        .iter()
        .map(|i| i.as_str().and_then(parse))
        .collect::<Option<Vec<String>>>()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ZvmError::ArgFormat(format!("{name} must list {what}")))
}

/// The `connection_info` of an attach or detach.
pub(super) struct Connection {
    /// The guest, upper-case.
    userid: String,
    /// FCP devices, 4 hex digits.
    fcps: Vec<String>,
    /// Target ports, 16 hex digits.
    wwpns: Vec<String>,
    /// The LUN, 16 hex digits.
    lun: String,
    /// Where the guest mounts it.
    mount_point: String,
    /// `is_root_volume`: the guest boots from the volume.
    root: bool,
    /// `update_connections_only`: only the devices' connections change.
    connections_only: bool,
}

/// Reads and checks `connection_info`.
pub(super) fn connection(a: &Args) -> ZvmResult<Connection> {
    let Json::Object(c) = a.get("connection_info") else {
        return Err(ZvmError::ArgType {
            api: a.api().into(),
            expected: "dict".into(),
            given: format!("connection_info: {}", py_type(a.get("connection_info"))),
        });
    };
    let bad = |key: &str, what: &str| {
        ZvmError::ArgFormat(format!("connection_info {key} must be {what}"))
    };
    let field = |key: &str| {
        c.get(key)
            .ok_or_else(|| ZvmError::ArgFormat(format!("connection_info has no {key}")))
    };
    let text = |key: &str| -> ZvmResult<String> {
        field(key)?
            .as_str()
            .map(String::from)
            .ok_or_else(|| bad(key, "a string"))
    };
    let list = |key: &str, parse: fn(&str) -> Option<String>, what: &str| {
        let items = field(key)?.as_array().ok_or_else(|| bad(key, what))?;
        let parsed: Option<Vec<String>> =
            items.iter().map(|i| i.as_str().and_then(parse)).collect();
        parsed
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad(key, what))
    };
    let flag = |key: &str, given: Option<&Json>| -> ZvmResult<bool> {
        match given {
            None | Some(Json::Null) => Ok(false),
            Some(Json::Bool(b)) => Ok(*b),
            Some(Json::String(s)) => Ok(s.eq_ignore_ascii_case("true")),
            Some(_) => Err(bad(key, "a boolean")),
        }
    };
    let userid = text("assigner_id")?;
    if userid.is_empty()
        || userid.len() > 8
        || !userid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(bad(
            "assigner_id",
            "a userid of 1 to 8 letters, digits or _",
        ));
    }
    text("os_version")?;
    flag("multipath", Some(field("multipath")?))?;
    Ok(Connection {
        userid: userid.to_uppercase(),
        fcps: list(
            "zvm_fcp",
            fcp_id,
            "a list of FCP devices of 1 to 4 hex digits",
        )?,
        wwpns: list(
            "target_wwpn",
            hex16,
            "a list of WWPNs of up to 16 hex digits",
        )?,
        lun: hex16(&text("target_lun")?)
            .ok_or_else(|| bad("target_lun", "a LUN of up to 16 hex digits"))?,
        mount_point: text("mount_point")?,
        root: flag("is_root_volume", c.get("is_root_volume"))?,
        connections_only: flag("update_connections_only", c.get("update_connections_only"))?,
    })
}

impl Backend {
    /// The volume a LUN names behind the target ports `wwpns`, with the ports that reach it.
    fn volume(&self, lun: &str, wwpns: &[String]) -> Option<(Arc<Obj>, Vec<String>)> {
        self.engine.read(|db| {
            let mut vdis: Vec<&Arc<Obj>> = db
                .all("VDI")
                .filter(|v| {
                    !v.bool("is_a_snapshot")
                        && v.other(LUN_KEY).and_then(hex16).as_deref() == Some(lun)
                })
                .collect();
            vdis.sort_by(|a, b| a.uuid().cmp(b.uuid()));
            vdis.into_iter().find_map(|vdi| {
                let ports = db
                    .get("SR", vdi.str("SR"))
                    .and_then(|sr| sr.other(WWPN_KEY));
                let reach: Vec<String> = match ports {
                    Some(list) => {
                        let ports: Vec<String> =
                            list.split([',', ' ', ';']).filter_map(hex16).collect();
                        wwpns
                            .iter()
                            .filter(|w| ports.contains(w))
                            .cloned()
                            .collect()
                    }
                    None => wwpns.to_vec(),
                };
                (!reach.is_empty()).then(|| (vdi.clone(), reach))
            })
        })
    }

    /// The guest's VBD of a LUN.
    fn volume_vbd(&self, vm: &Obj, lun: &str) -> Option<Arc<Obj>> {
        self.engine.read(|db| {
            vm.refs("VBDs")
                .iter()
                .filter_map(|r| db.get("VBD", r))
                .find(|b| b.other(VOLUME_KEY).and_then(hex16).as_deref() == Some(lun))
                .cloned()
        })
    }

    /// `volume_attach`: gives the guest the volume through its reserved devices.
    pub(super) async fn volume_attach(&self, c: Connection) -> ZvmResult {
        let _guard = FCP_LOCK.lock().await;
        let before = self.inventory()?;
        for fcp in &c.fcps {
            if before.usage.get(fcp).is_none_or(|u| u.userid != c.userid) {
                return Err(ZvmError::NotExist {
                    module: V,
                    what: format!("FCP with id: {fcp}"),
                });
            }
        }
        if !c.root {
            let vm = self.guest(&c.userid).map_err(|_| ZvmError::NotExist {
                module: V,
                what: format!("Guest '{}'", c.userid),
            })?;
            let (vdi, reach) = self.volume(&c.lun, &c.wwpns).ok_or_else(|| {
                attach_failed(
                    &c.userid,
                    &format!(
                        "no volume with LUN 0x{} is reachable through the target WWPNs {}",
                        c.lun,
                        c.wwpns.join(", ")
                    ),
                )
            })?;
            if self.volume_vbd(&vm, &c.lun).is_some() {
                return Err(ZvmError::Failed {
                    module: V,
                    rs: 3,
                    msg: format!(
                        "Volume 0x{} has already been attached on instance {}",
                        c.lun, c.userid
                    ),
                });
            }
            self.attach_vdi(&vm, &vdi, &c, &reach).await?;
        }
        let mut after = before.clone();
        for fcp in &c.fcps {
            if let Some(u) = after.usage.get_mut(fcp) {
                u.connections += 1;
            }
        }
        self.save(&before, &after).await?;
        Ok(Json::Null)
    }

    /// Gives the guest a VBD of the volume's VDI, plugged when the guest is logged on.
    async fn attach_vdi(
        &self,
        vm: &Obj,
        vdi: &Obj,
        c: &Connection,
        reach: &[String],
    ) -> ZvmResult<()> {
        if vdi.other(VOLUME_KEY).is_none() {
            self.set_other(V, "VDI", &vdi.r, VOLUME_KEY, Some(&c.lun))
                .await?;
        }
        let position = self
            .free_device_position(vm, "VBD", 0..VBD_POSITIONS)
            .ok_or_else(|| attach_failed(&c.userid, "the guest has no free disk position"))?;
        let fcps = c.fcps.join(",");
        let wwpns = reach.join(",");
        let disk = NewVbd {
            vm: &vm.r,
            vdi: &vdi.r,
            userdevice: &position.to_string(),
            bootable: false,
            cd: false,
            read_only: false,
            other_config: Value::string_map([
                (VOLUME_KEY, c.lun.as_str()),
                ("zvm_fcp", fcps.as_str()),
                (WWPN_KEY, wwpns.as_str()),
                ("zvm_mount_point", c.mount_point.as_str()),
            ]),
        };
        let vbd = self.create_vbd(V, disk).await?;
        if is_on(vm) {
            if let Err(e) = self
                .op(
                    V,
                    Op::Vbd {
                        vbd: vbd.clone(),
                        action: VbdAction::Plug,
                    },
                )
                .await
            {
                let _ = self.destroy(V, "VBD", &vbd).await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// `volume_detach`: takes the volume from the guest and a connection off each device.
    pub(super) async fn volume_detach(&self, c: Connection) -> ZvmResult {
        let _guard = FCP_LOCK.lock().await;
        let before = self.inventory()?;
        if !(c.root || c.connections_only) {
            if let Ok(vm) = self.guest(&c.userid) {
                let vbd = self
                    .volume_vbd(&vm, &c.lun)
                    .ok_or_else(|| ZvmError::Failed {
                        module: V,
                        rs: 4,
                        msg: format!(
                            "Volume 0x{} is not attached on instance {}",
                            c.lun, c.userid
                        ),
                    })?;
                self.remove_vbd(V, &vm, &vbd).await?;
            }
        }
        let mut after = before.clone();
        for fcp in &c.fcps {
            if let Some(u) = after.usage.get_mut(fcp) {
                u.connections = (u.connections - 1).max(0);
            }
        }
        self.save(&before, &after).await?;
        Ok(Json::Null)
    }

    /// `volume_refresh_bootmap`: checks a SCSI boot volume's paths and answers them.
    pub(super) async fn refresh_bootmap(&self, a: Args) -> ZvmResult {
        let fcps = id_list(
            &a,
            "fcpchannels",
            fcp_id,
            "FCP devices of 1 to 4 hex digits",
        )?;
        let wwpns = id_list(&a, "wwpns", hex16, "WWPNs of up to 16 hex digits")?;
        let lun = hex16(&a.str("lun")?)
            .ok_or_else(|| ZvmError::ArgFormat("lun must be up to 16 hex digits".into()))?;
        a.opt_str("wwid")?;
        let transport = a.opt_str("transportfiles")?.unwrap_or_default();
        let networks = a.list("guest_networks")?;
        let template = a.opt_str("fcp_template_id")?.filter(|t| !t.is_empty());
        let inv = self.inventory()?;
        let min = match &template {
            Some(id) => {
                let t = inv.templates.get(id).ok_or_else(|| ZvmError::NotExist {
                    module: Module::Sdk,
                    what: format!("min_fcp_paths_count from fcp_template_id {id}"),
                })?;
                if t.paths.is_empty() {
                    return Err(bootmap_failed(format!(
                        "No FCP devices were found in the FCP Multipath Template {id}, stop \
                         refreshing bootmap."
                    )));
                }
                t.min_paths()
            }
            None => fcps.len() as i64,
        };
        if !networks.is_empty() && transport.is_empty() {
            return Err(ZvmError::Failed {
                module: V,
                rs: 10,
                msg: "Failed to refresh bootmap for RHCOS: transportfiles are required".into(),
            });
        }
        if let Some(f) = fcps.iter().find(|f| !inv.usage.contains_key(*f)) {
            return Err(bootmap_failed(format!("FCP device {f} is not defined")));
        }
        if (fcps.len() as i64) < min {
            return Err(bootmap_failed(format!(
                "{} FCP channels were given, {min} paths are required",
                fcps.len()
            )));
        }
        let (_, reach) = self.volume(&lun, &wwpns).ok_or_else(|| {
            bootmap_failed(format!(
                "no volume with LUN 0x{lun} is reachable through the WWPNs {}",
                wwpns.join(", ")
            ))
        })?;
        Ok(Json::Object(
            fcps.into_iter().map(|f| (f, json!(reach))).collect(),
        ))
    }

    /// `get_volume_connector`: reserves (or releases) a guest's devices of a template and
    /// answers their ports.
    pub(super) async fn volume_connector(&self, a: Args) -> ZvmResult {
        let userid = a.userid("userid")?;
        let reserve = a.bool("reserve")?;
        let template = a.opt_str("fcp_template_id")?.filter(|t| !t.is_empty());
        let sp = a.opt_str("sp_name")?.filter(|s| !s.is_empty());
        let failed = |msg: &str| ZvmError::Failed {
            module: V,
            rs: 11,
            msg: format!("Failed to get volume connector of {userid} because {msg}"),
        };
        let _guard = FCP_LOCK.lock().await;
        let before = self.inventory()?;
        if let Some(id) = &template {
            if !before.templates.contains_key(id) {
                return Err(failed(&format!("fcp_template_id {id} doesn't exist.")));
            }
        }
        let mut after = before.clone();
        let (fcps, template) = if reserve {
            let default = || {
                let sorted = before.sorted();
                sp.as_ref()
                    .and_then(|sp| {
                        sorted
                            .iter()
                            .find(|t| t.storage_providers.contains(sp))
                            .map(|t| t.id.clone())
                    })
                    .or_else(|| sorted.iter().find(|t| t.host_default).map(|t| t.id.clone()))
            };
            let id = template.or_else(default).ok_or_else(|| {
                failed(
                    "No FCP Multipath Template is specified and no default FCP Multipath \
                     Template is found.",
                )
            })?;
            (reserve_fcps(&mut after, &userid, &id), id)
        } else {
            let id = template.ok_or_else(|| {
                failed("fcp_template_id is not specified while releasing FCP devices.")
            })?;
            (release_fcps(&mut after, &userid, &id), id)
        };
        self.save(&before, &after).await?;
        if fcps.is_empty() {
            return Ok(json!({
                "zvm_fcp": [],
                "wwpns": [],
                "host": "",
                "phy_to_virt_initiators": {},
                "fcp_paths": 0,
                "fcp_template_id": template,
            }));
        }
        let (host, uuid) = self.host_identity()?;
        let devices: Vec<Device> = fcps.iter().map(|f| Device::new(f, &uuid)).collect();
        let initiators: Map<String, Json> = devices
            .iter()
            .map(|d| (d.npiv.clone(), json!(d.phy)))
            .collect();
        Ok(json!({
            "zvm_fcp": fcps,
            "wwpns": devices.iter().map(|d| d.npiv.clone()).collect::<Vec<_>>(),
            "phy_to_virt_initiators": initiators,
            "host": format!("{host}_{userid}"),
            "fcp_paths": devices.len(),
            "fcp_template_id": template,
        }))
    }
}

/// Reserves devices of template `id` for `userid`: those it holds already, else an idle one
/// of each path when enough paths have one. Answers the devices (none when too few paths
/// have an idle device).
fn reserve_fcps(inv: &mut Inventory, userid: &str, id: &str) -> Vec<String> {
    let Some(t) = inv.templates.get(id).cloned() else {
        return Vec::new();
    };
    let held: BTreeSet<String> = t
        .paths
        .iter()
        .flatten()
        .filter(|f| {
            inv.usage
                .get(*f)
                .is_some_and(|u| u.userid == userid && u.template == id && !u.idle())
        })
        .cloned()
        .collect();
    if !held.is_empty() {
        return held.into_iter().collect();
    }
    let picks: Vec<String> = t
        .paths
        .iter()
        .filter_map(|path| {
            path.iter()
                .find(|f| inv.usage.get(*f).is_none_or(Usage::idle))
                .cloned()
        })
        .collect();
    if picks.is_empty() || (picks.len() < t.paths.len() && (picks.len() as i64) < t.min_paths()) {
        return Vec::new();
    }
    for fcp in &picks {
        let u = inv.usage.entry(fcp.clone()).or_default();
        u.userid = userid.to_string();
        u.reserved = 1;
        u.template = id.to_string();
    }
    picks
}

/// Releases the devices of template `id` reserved for `userid` that have no connections;
/// answers every device reserved for it there.
fn release_fcps(inv: &mut Inventory, userid: &str, id: &str) -> Vec<String> {
    let mut held = Vec::new();
    for (fcp, u) in inv.usage.iter_mut() {
        if u.userid == userid && u.template == id && u.reserved != 0 {
            held.push(fcp.clone());
            if u.connections == 0 {
                u.reserved = 0;
                u.template = String::new();
            }
        }
    }
    held
}
