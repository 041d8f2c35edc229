//! FCP Multipath Templates: listing, details, create, edit and delete, and the usage of a
//! device as set by hand.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use super::fcp::{expand_fcps, shrink, Device, Inventory, Template, Usage};
use super::{FCP_LOCK, V};
use crate::api::args::{py_type, Args};
use crate::api::Backend;
use crate::error::{Module, ZvmError, ZvmResult};

/// Python's text of a list of strings, `['a', 'b']`.
fn py_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Checks that the inventory has every template of `ids` (`404` naming those it lacks).
fn all_known(inv: &Inventory, ids: &[String]) -> ZvmResult<()> {
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !inv.templates.contains_key(*id))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ZvmError::NotExist {
        module: Module::Sdk,
        what: format!("FCP Multipath Templates {}", py_list(&missing)),
    })
}

/// A list of names: a list, or the text of one (`['a', 'b']` or `a,b`) as the REST layer
/// passes query parameters; `null` is empty.
fn names(a: &Args, name: &str) -> ZvmResult<Vec<String>> {
    match a.get(name) {
        Json::Null => Ok(Vec::new()),
        Json::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(String::from)
                    .ok_or_else(|| ZvmError::ArgFormat(format!("{name} must hold strings")))
            })
            .collect(),
        Json::String(s) => Ok(s
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|x| x.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
            .filter(|x| !x.is_empty())
            .collect()),
        v => Err(ZvmError::ArgType {
            api: a.api().into(),
            expected: "list".into(),
            given: format!("{name}: {}", py_type(v)),
        }),
    }
}

/// A boolean argument that may be `null` (not given).
fn opt_bool(a: &Args, name: &str) -> ZvmResult<Option<bool>> {
    match a.get(name) {
        Json::Null => Ok(None),
        _ => a.bool(name).map(Some),
    }
}

/// The `min_fcp_paths_count` argument: `null` or 0 for every path.
fn min_paths_arg(a: &Args) -> ZvmResult<Option<i64>> {
    match a.opt_int("min_fcp_paths_count")? {
        Some(n) if n < 0 => Err(ZvmError::ArgFormat(format!(
            "min_fcp_paths_count {n} must not be negative"
        ))),
        Some(0) | None => Ok(None),
        Some(n) => Ok(Some(n)),
    }
}

/// A conflict of FCP Multipath Templates (`409/30/409/rs`).
fn template_conflict(rs: i64, msg: String) -> ZvmError {
    let what = match rs {
        22 => "delete",
        23 => "create or update",
        _ => "edit",
    };
    ZvmError::Conflict {
        module: V,
        rs,
        msg: format!("Failed to {what} FCP Multipath Template, error: {msg}"),
    }
}

impl Backend {
    /// `get_fcp_templates`: the templates of the given ids, of a guest's devices, of storage
    /// providers, by host default, or all.
    pub(super) fn fcp_templates(&self, a: &Args) -> ZvmResult {
        let ids = names(a, "template_id_list")?;
        let assigner = a.opt_str("assigner_id")?.filter(|s| !s.is_empty());
        let sps = names(a, "default_sp_list")?;
        let host_default = opt_bool(a, "host_default")?;
        let inv = self.inventory()?;
        let chosen: Vec<&Template> = if !ids.is_empty() {
            all_known(&inv, &ids)?;
            inv.sorted()
                .into_iter()
                .filter(|t| ids.contains(&t.id))
                .collect()
        } else if let Some(userid) = assigner {
            let userid = userid.to_uppercase();
            inv.sorted()
                .into_iter()
                .filter(|t| {
                    inv.usage
                        .values()
                        .any(|u| u.userid == userid && u.template == t.id)
                })
                .collect()
        } else if !sps.is_empty() {
            let all = sps.len() == 1 && sps[0].eq_ignore_ascii_case("all");
            inv.sorted()
                .into_iter()
                .filter(|t| t.storage_providers.iter().any(|sp| all || sps.contains(sp)))
                .collect()
        } else if let Some(wanted) = host_default {
            inv.sorted()
                .into_iter()
                .filter(|t| t.host_default == wanted)
                .collect()
        } else {
            inv.sorted()
        };
        let list: Vec<Json> = chosen.into_iter().map(|t| Json::Object(t.base())).collect();
        Ok(json!({"fcp_templates": list}))
    }

    /// `get_fcp_templates_details`: templates with their devices' raw usage and statistics.
    pub(super) fn fcp_templates_details(&self, a: &Args) -> ZvmResult {
        let ids = names(a, "template_id_list")?;
        let raw = a.bool("raw")?;
        let statistics = a.bool("statistics")?;
        a.bool("sync_with_zvm")?;
        let inv = self.inventory()?;
        all_known(&inv, &ids)?;
        let (_, uuid) = self.host_identity()?;
        let mut list = Vec::new();
        for t in inv.sorted() {
            if !ids.is_empty() && !ids.contains(&t.id) {
                continue;
            }
            let mut m = t.base();
            if raw {
                m.insert("raw".into(), raw_usage(t, &inv, &uuid));
            }
            if statistics {
                m.insert("statistics".into(), statistics_usage(t, &inv, &uuid));
            }
            list.push(Json::Object(m));
        }
        Ok(json!({"fcp_templates": list}))
    }

    /// `create_fcp_template`.
    pub(super) async fn create_template(&self, a: Args) -> ZvmResult {
        let paths = expand_fcps(&a.opt_str("fcp_devices")?.unwrap_or_default())?;
        let min = min_paths_arg(&a)?;
        if let Some(m) = min.filter(|m| *m > paths.len() as i64) {
            return Err(template_conflict(
                23,
                format!(
                    "min_fcp_paths_count {m} is larger than fcp device path count {}, adjust \
                     fcp_devices or min_fcp_paths_count.",
                    paths.len()
                ),
            ));
        }
        let t = Template {
            id: drover_core::txn::new_uuid(),
            name: a.str("name")?,
            description: a.opt_str("description")?.unwrap_or_default(),
            host_default: a.bool("host_default")?,
            storage_providers: names(&a, "default_sp_list")?,
            min_fcp_paths_count: min,
            paths,
        };
        let _guard = FCP_LOCK.lock().await;
        let before = self.inventory()?;
        self.save_template(&before, t).await
    }

    /// `edit_fcp_template`: changes what is given, keeping allocated devices in place.
    pub(super) async fn edit_template(&self, a: Args) -> ZvmResult {
        let id = a.str("fcp_template_id")?;
        let name = a.opt_str("name")?;
        let description = a.opt_str("description")?;
        let paths = match a.opt_str("fcp_devices")? {
            Some(spec) => Some(expand_fcps(&spec)?),
            None => None,
        };
        let host_default = opt_bool(&a, "host_default")?;
        let sps = match a.get("default_sp_list") {
            Json::Null => None,
            _ => Some(names(&a, "default_sp_list")?),
        };
        let min = min_paths_arg(&a)?;
        let _guard = FCP_LOCK.lock().await;
        let before = self.inventory()?;
        let mut t = before.template(&id)?.clone();
        let in_use = before.in_use(&id);
        if let Some(paths) = &paths {
            if paths.len() != t.paths.len() && !in_use.is_empty() {
                return Err(template_conflict(
                    24,
                    format!(
                        "The FCP devices ({}) are allocated to virtual machines by the FCP \
                         Multipath Template (id={id}). Adding or deleting a FCP device path \
                         from a FCP Multipath Template is not allowed if there is any FCP \
                         device allocated from the template. You must deallocate those FCP \
                         devices before adding or deleting a path from the template.",
                        shrink(&in_use)
                    ),
                ));
            }
            let kept = Template {
                paths: paths.clone(),
                ..t.clone()
            };
            let dropped: Vec<String> = in_use
                .iter()
                .filter(|f| !kept.has(f) && !before.usage[*f].idle())
                .cloned()
                .collect();
            if !dropped.is_empty() {
                return Err(template_conflict(
                    24,
                    format!(
                        "The FCP devices ({}) are missing from the FCP device list. These FCP \
                         devices are allocated to virtual machines from the FCP Multipath \
                         Template (id={id}). Deleting the allocated FCP devices from this \
                         template is not allowed. You must ensure those FCP devices are \
                         included in the FCP device list.",
                        shrink(&dropped)
                    ),
                ));
            }
        }
        let path_count = paths.as_ref().map_or(t.paths.len(), Vec::len) as i64;
        if let Some(m) = min.or(t.min_fcp_paths_count).filter(|m| *m > path_count) {
            return Err(template_conflict(
                23,
                format!(
                    "min_fcp_paths_count {m} is larger than fcp device path count \
                     {path_count}. Adjust the fcp_devices setting or min_fcp_paths_count."
                ),
            ));
        }
        if let Some(name) = name {
            t.name = name;
        }
        if let Some(description) = description {
            t.description = description;
        }
        if let Some(paths) = paths {
            t.paths = paths;
        }
        if let Some(host_default) = host_default {
            t.host_default = host_default;
        }
        if let Some(sps) = sps {
            t.storage_providers = sps;
        }
        if min.is_some() {
            t.min_fcp_paths_count = min;
        }
        self.save_template(&before, t).await
    }

    /// Adds or replaces template `t` in the inventory read as `before`; answers it as create
    /// and edit do.
    async fn save_template(&self, before: &Inventory, t: Template) -> ZvmResult {
        let mut after = before.clone();
        after.put_template(t.clone());
        self.save(before, &after).await?;
        Ok(t.answer())
    }

    /// `delete_fcp_template`, refused while devices are allocated from the template.
    pub(super) async fn delete_template(&self, a: Args) -> ZvmResult {
        let id = a.str("template_id")?;
        let _guard = FCP_LOCK.lock().await;
        let before = self.inventory()?;
        before.template(&id)?;
        let in_use = before.in_use(&id);
        if !in_use.is_empty() {
            return Err(template_conflict(
                22,
                format!(
                    "The FCP devices ({}) are allocated to virtual machines by the FCP \
                     Multipath Template (id={id}). Deleting a FCP Multipath Template is not \
                     allowed if there is any FCP device allocated from the template. You must \
                     deallocate those FCP devices before deleting the template.",
                    shrink(&in_use)
                ),
            ));
        }
        let mut after = before.clone();
        after.templates.remove(&id);
        after.sync_devices();
        self.save(&before, &after).await?;
        Ok(Json::Null)
    }

    /// `get_fcp_usage`: a device's userid, reservation, connections and template.
    pub(super) fn fcp_usage(&self, a: &Args) -> ZvmResult {
        let inv = self.inventory()?;
        let (_, usage) = inv.device(&a.str("fcp")?)?;
        Ok(json!([
            usage.userid,
            usage.reserved,
            usage.connections,
            usage.template
        ]))
    }

    /// `set_fcp_usage`: overwrites a device's usage.
    pub(super) async fn set_fcp_usage(&self, a: Args) -> ZvmResult {
        let userid = match a.str("userid")?.as_str() {
            "" => String::new(),
            _ => a.userid("userid")?,
        };
        let reserved = a.int("reserved")?;
        let connections = a.int("connections")?;
        if reserved < 0 || connections < 0 {
            return Err(ZvmError::ArgFormat(
                "reserved and connections must not be negative".into(),
            ));
        }
        let template = a.opt_str("fcp_template_id")?.unwrap_or_default();
        let _guard = FCP_LOCK.lock().await;
        let before = self.inventory()?;
        let (fcp, _) = before.device(&a.str("fcp")?)?;
        let mut after = before.clone();
        after.usage.insert(
            fcp,
            Usage {
                userid,
                reserved,
                connections,
                template,
            },
        );
        self.save(&before, &after).await?;
        Ok(Json::Null)
    }
}

/// A template's devices with their usage and identity, by path: `[device, template,
/// userid, connections, reserved, NPIV WWPN, physical WWPN, CHPID, state, owner, template
/// the device is allocated from]`.
fn raw_usage(t: &Template, inv: &Inventory, host_uuid: &str) -> Json {
    let mut out = Map::new();
    for (i, path) in t.paths.iter().enumerate() {
        let rows: Vec<Json> = path
            .iter()
            .map(|fcp| {
                let u = inv.usage.get(fcp).cloned().unwrap_or_default();
                let d = Device::new(fcp, host_uuid);
                let active = u.connections > 0;
                json!([
                    fcp,
                    t.id,
                    u.userid,
                    u.connections,
                    u.reserved,
                    d.npiv,
                    d.phy,
                    d.chpid,
                    if active { "active" } else { "free" },
                    if active { u.userid.as_str() } else { "none" },
                    u.template,
                ])
            })
            .collect();
        out.insert(i.to_string(), Json::Array(rows));
    }
    Json::Object(out)
}

/// A template's device statistics by path, device lists as ranges.
fn statistics_usage(t: &Template, inv: &Inventory, host_uuid: &str) -> Json {
    let mut out = Map::new();
    for (i, path) in t.paths.iter().enumerate() {
        let mut available = Vec::new();
        let mut allocated = Vec::new();
        let mut reserve_only = Vec::new();
        let mut connection_only = Vec::new();
        let mut chpids: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for fcp in path {
            let u = inv.usage.get(fcp).cloned().unwrap_or_default();
            let list = match (u.connections, u.reserved) {
                (0, 0) => &mut available,
                (0, _) => &mut reserve_only,
                (_, 0) => &mut connection_only,
                _ => &mut allocated,
            };
            list.push(fcp.clone());
            chpids
                .entry(Device::new(fcp, host_uuid).chpid)
                .or_default()
                .push(fcp.clone());
        }
        let total = shrink(path);
        let (ranges, singles): (Vec<&str>, Vec<&str>) = total
            .split(", ")
            .filter(|s| !s.is_empty())
            .partition(|s| s.contains('-'));
        let chpids: Map<String, Json> = chpids
            .into_iter()
            .map(|(c, fcps)| (c, json!(shrink(&fcps))))
            .collect();
        out.insert(
            i.to_string(),
            json!({
                "total": total,
                "total_count": path.len(),
                "single_fcp": singles.join(", "),
                "range_fcp": ranges.join(", "),
                "available": shrink(&available),
                "available_count": available.len(),
                "allocated": shrink(&allocated),
                "reserve_only": shrink(&reserve_only),
                "connection_only": shrink(&connection_only),
                "unallocated_but_active": {},
                "allocated_but_free": "",
                "notfound": "",
                "offline": "",
                "CHPIDs": chpids,
            }),
        );
    }
    Json::Object(out)
}
