//! The FCP inventory: FCP Multipath Templates and the usage of FCP devices, kept as JSON in
//! the pool's `other_config`; device lists, LUNs and WWPNs as text; the WWPNs of a device.

use std::collections::{BTreeMap, BTreeSet};

use drover_model::Value;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use super::V;
use crate::api::Backend;
use crate::error::{Module, ZvmError, ZvmResult};

/// Pool `other_config` prefix of FCP Multipath Templates.
const TEMPLATE_KEY: &str = "zvm_fcp_template:";
/// Pool `other_config` prefix of FCP device usage.
const FCP_KEY: &str = "zvm_fcp:";

/// An FCP Multipath Template as the pool keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Template {
    /// Its uuid.
    pub(super) id: String,
    /// Its name.
    pub(super) name: String,
    /// Its description.
    #[serde(default)]
    pub(super) description: String,
    /// Whether it is the host's default template.
    #[serde(default)]
    pub(super) host_default: bool,
    /// The storage providers whose default template it is.
    #[serde(default)]
    pub(super) storage_providers: Vec<String>,
    /// Paths a reservation needs at least; `None` for every path.
    #[serde(default)]
    pub(super) min_fcp_paths_count: Option<i64>,
    /// The device numbers of each path.
    #[serde(default)]
    pub(super) paths: Vec<Vec<String>>,
}

impl Template {
    /// Paths a reservation needs at least.
    pub(super) fn min_paths(&self) -> i64 {
        self.min_fcp_paths_count.unwrap_or(self.paths.len() as i64)
    }

    /// Whether a path of the template has the device.
    pub(super) fn has(&self, fcp: &str) -> bool {
        self.paths.iter().flatten().any(|f| f == fcp)
    }

    /// The template's basic information, as `get_fcp_templates` lists it.
    pub(super) fn base(&self) -> Map<String, Json> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("description".into(), json!(self.description));
        m.insert("host_default".into(), json!(self.host_default));
        m.insert("storage_providers".into(), json!(self.storage_providers));
        m.insert("min_fcp_paths_count".into(), json!(self.min_paths()));
        m
    }

    /// The answer of create and edit.
    pub(super) fn answer(&self) -> Json {
        json!({"fcp_template": {
            "name": self.name,
            "id": self.id,
            "description": self.description,
            "host_default": self.host_default,
            "storage_providers": self.storage_providers,
            "min_fcp_paths_count": self.min_paths(),
        }})
    }
}

/// The usage of an FCP device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Usage {
    /// The guest the device was last assigned to (empty if none).
    #[serde(default)]
    pub(super) userid: String,
    /// Non-zero while reserved for the guest.
    #[serde(default)]
    pub(super) reserved: i64,
    /// Volumes attached through the device.
    #[serde(default)]
    pub(super) connections: i64,
    /// The template it is allocated from (empty if none).
    #[serde(default)]
    pub(super) template: String,
}

impl Usage {
    /// Neither reserved nor connected.
    pub(super) fn idle(&self) -> bool {
        self.reserved == 0 && self.connections == 0
    }
}

/// The FCP inventory: templates and device usage, as read from the pool.
#[derive(Debug, Clone)]
pub(super) struct Inventory {
    /// The pool object that keeps it.
    pub(super) pool: String,
    /// Templates by id.
    pub(super) templates: BTreeMap<String, Template>,
    /// Device usage by device number.
    pub(super) usage: BTreeMap<String, Usage>,
}

impl Inventory {
    /// A template, or `404`.
    pub(super) fn template(&self, id: &str) -> ZvmResult<&Template> {
        self.templates.get(id).ok_or_else(|| ZvmError::NotExist {
            module: Module::Sdk,
            what: format!("FCP Multipath Template {id}"),
        })
    }

    /// The templates in name order.
    pub(super) fn sorted(&self) -> Vec<&Template> {
        let mut all: Vec<&Template> = self.templates.values().collect();
        all.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        all
    }

    /// A device by its number as given, or `404`.
    pub(super) fn device(&self, given: &str) -> ZvmResult<(String, &Usage)> {
        fcp_id(given)
            .and_then(|id| self.usage.get(&id).map(|u| (id, u)))
            .ok_or_else(|| ZvmError::NotExist {
                module: V,
                what: format!("FCP '{given}'"),
            })
    }

    /// The devices allocated from a template.
    pub(super) fn in_use(&self, template: &str) -> Vec<String> {
        self.usage
            .iter()
            .filter(|(_, u)| u.template == template)
            .map(|(f, _)| f.clone())
            .collect()
    }

    /// Adds or replaces a template; a host default or a storage provider's default takes the
    /// role from every other template.
    pub(super) fn put_template(&mut self, t: Template) {
        for other in self.templates.values_mut().filter(|o| o.id != t.id) {
            if t.host_default {
                other.host_default = false;
            }
            other
                .storage_providers
                .retain(|sp| !t.storage_providers.contains(sp));
        }
        self.templates.insert(t.id.clone(), t);
        self.sync_devices();
    }

    /// Gives every device a template names a usage record, and forgets idle devices no
    /// template names.
    pub(super) fn sync_devices(&mut self) {
        let named: BTreeSet<String> = self
            .templates
            .values()
            .flat_map(|t| t.paths.iter().flatten().cloned())
            .collect();
        self.usage.retain(|fcp, u| named.contains(fcp) || !u.idle());
        for fcp in named {
            self.usage.entry(fcp).or_default();
        }
    }

    /// The `other_config` entries of the inventory.
    fn entries(&self) -> ZvmResult<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (id, t) in &self.templates {
            out.insert(format!("{TEMPLATE_KEY}{id}"), text(t)?);
        }
        for (fcp, u) in &self.usage {
            out.insert(format!("{FCP_KEY}{fcp}"), text(u)?);
        }
        Ok(out)
    }
}

/// A record's JSON text.
fn text<T: Serialize>(record: &T) -> ZvmResult<String> {
    serde_json::to_string(record).map_err(|e| ZvmError::internal(V, e.to_string()))
}

/// The physical and virtual identity of an FCP device.
pub(super) struct Device {
    /// NPIV port name.
    pub(super) npiv: String,
    /// Physical port name of its channel path.
    pub(super) phy: String,
    /// Channel path, two hex digits, upper-case.
    pub(super) chpid: String,
}

impl Device {
    /// The identity of device `fcp` (4 hex digits) on the host with uuid `host_uuid`.
    pub(super) fn new(fcp: &str, host_uuid: &str) -> Device {
        let number = u16::from_str_radix(fcp, 16).unwrap_or(0);
        let mut machine: String = host_uuid
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(4)
            .collect::<String>()
            .to_lowercase();
        while machine.len() < 4 {
            machine.push('0');
        }
        let chpid = number >> 8;
        Device {
            npiv: format!("c05076{machine}01{number:04x}"),
            phy: format!("c05076{machine}00{chpid:02x}00"),
            chpid: format!("{chpid:02X}"),
        }
    }
}

/// A device number of 1 to 4 hex digits as 4 lower-case digits.
pub(super) fn fcp_id(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= 4)
        .then(|| u16::from_str_radix(s, 16).ok())
        .flatten()
        .map(|n| format!("{n:04x}"))
}

/// A LUN or WWPN (1 to 16 hex digits, `0x` allowed) as 16 lower-case hex digits.
pub(super) fn hex16(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    (!s.is_empty() && s.len() <= 16 && s.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| format!("{:0>16}", s.to_ascii_lowercase()))
}

/// Expands an FCP device list (`1a00-1a0f;1b00,1b03`: paths separated by `;`, devices and
/// ranges by `,`) into the devices of each path.
pub(super) fn expand_fcps(spec: &str) -> ZvmResult<Vec<Vec<String>>> {
    let spec: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    let bad = || ZvmError::ArgFormat(format!("Invalid FCP address {spec}"));
    let body = spec.strip_suffix(';').unwrap_or(&spec);
    let mut seen = BTreeSet::new();
    let mut paths = Vec::new();
    for path in body.split(';') {
        let mut devices = BTreeSet::new();
        for item in path.split(',').filter(|i| !i.is_empty()) {
            let (lo, hi) = item.split_once('-').unwrap_or((item, item));
            let number = |s: &str| fcp_id(s).and_then(|f| u16::from_str_radix(&f, 16).ok());
            let (lo, hi) = (number(lo).ok_or_else(bad)?, number(hi).ok_or_else(bad)?);
            if lo > hi {
                return Err(bad());
            }
            devices.extend((lo..=hi).map(|n| format!("{n:04x}")));
        }
        if devices.is_empty() {
            return Err(bad());
        }
        if let Some(twice) = devices.iter().find(|d| !seen.insert((*d).clone())) {
            return Err(ZvmError::ArgFormat(format!(
                "FCP device {twice} is in two paths of {spec}"
            )));
        }
        paths.push(devices.into_iter().collect());
    }
    Ok(paths)
}

/// A device list as ranges, `1A00 - 1A03, 1A05`.
pub(super) fn shrink(fcps: &[String]) -> String {
    let mut numbers: Vec<u16> = fcps
        .iter()
        .filter_map(|f| u16::from_str_radix(f, 16).ok())
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end + 1 {
            i += 1;
            end = numbers[i];
        }
        parts.push(if start == end {
            format!("{start:04X}")
        } else {
            format!("{start:04X} - {end:04X}")
        });
        i += 1;
    }
    parts.join(", ")
}

impl Backend {
    /// The FCP inventory kept in the pool's `other_config`.
    pub(super) fn inventory(&self) -> ZvmResult<Inventory> {
        let pool = self
            .engine
            .read(|db| db.all("pool").next().cloned())
            .ok_or_else(|| ZvmError::internal(V, "the inventory has no pool"))?;
        let mut inv = Inventory {
            pool: pool.r.to_string(),
            templates: BTreeMap::new(),
            usage: BTreeMap::new(),
        };
        let corrupt = |key: &str, e: serde_json::Error| {
            ZvmError::internal(V, format!("pool other_config:{key} is not valid: {e}"))
        };
        for (k, v) in pool.get("other_config").as_map().unwrap_or(&[]) {
            let (Some(key), Some(text)) = (k.as_str(), v.as_str()) else {
                continue;
            };
            if let Some(id) = key.strip_prefix(TEMPLATE_KEY) {
                let t: Template = serde_json::from_str(text).map_err(|e| corrupt(key, e))?;
                inv.templates.insert(id.to_string(), t);
            } else if let Some(fcp) = key.strip_prefix(FCP_KEY) {
                let u: Usage = serde_json::from_str(text).map_err(|e| corrupt(key, e))?;
                inv.usage.insert(fcp.to_string(), u);
            }
        }
        Ok(inv)
    }

    /// Writes the entries of `after` that differ from `before` into the pool's `other_config`
    /// in one change.
    pub(super) async fn save(&self, before: &Inventory, after: &Inventory) -> ZvmResult<()> {
        let (old, new) = (before.entries()?, after.entries()?);
        if old == new {
            return Ok(());
        }
        let pool = self.obj(V, "pool", &after.pool)?;
        let mut map: Vec<(String, String)> = pool
            .get("other_config")
            .as_map()
            .unwrap_or(&[])
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
            .filter(|(k, _)| new.contains_key(k) || !old.contains_key(k))
            .collect();
        for (k, v) in &new {
            if old.get(k) == Some(v) {
                continue;
            }
            match map.iter_mut().find(|(key, _)| key == k) {
                Some(entry) => entry.1 = v.clone(),
                None => map.push((k.clone(), v.clone())),
            }
        }
        self.set(V, "pool", &pool.r, "other_config", Value::string_map(map))
            .await
    }

    /// The local host's name (upper-case) and uuid.
    pub(super) fn host_identity(&self) -> ZvmResult<(String, String)> {
        let host = self.local_host()?;
        Ok((
            host.str("name_label").to_uppercase(),
            host.uuid().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_expand_by_path() {
        let paths = expand_fcps("1a00-1a02; 1b00,1B03;").unwrap();
        assert_eq!(
            paths,
            vec![
                vec!["1a00".to_string(), "1a01".into(), "1a02".into()],
                vec!["1b00".to_string(), "1b03".into()],
            ]
        );
        assert!(expand_fcps("").unwrap().is_empty());
        for bad in ["1a02-1a00", "xyz", "1a00;;1b00", "12345", "1a00;1a00"] {
            assert_eq!(expand_fcps(bad).unwrap_err().codes().3, 3, "{bad}");
        }
    }

    #[test]
    fn device_lists_shrink_to_ranges() {
        let list: Vec<String> = ["1a01", "1a02", "1a03", "1a05", "1aff", "1b00", "1b04"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(shrink(&list), "1A01 - 1A03, 1A05, 1AFF - 1B00, 1B04");
        assert_eq!(shrink(&[]), "");
    }

    #[test]
    fn luns_and_wwpns_normalise() {
        assert_eq!(
            hex16("0x4020400100000000").as_deref(),
            Some("4020400100000000")
        );
        assert_eq!(hex16("0X1").as_deref(), Some("0000000000000001"));
        assert_eq!(hex16("0x"), None);
        assert_eq!(hex16("12345678901234567"), None);
        assert_eq!(fcp_id("1FC5").as_deref(), Some("1fc5"));
        assert_eq!(fcp_id("5").as_deref(), Some("0005"));
        assert_eq!(fcp_id("1fc5a"), None);
    }

    #[test]
    fn device_wwpns_are_deterministic() {
        let d = Device::new("1a0f", "de33aa00-0000-0000-0000-000000000000");
        assert_eq!(d.npiv, "c05076de33011a0f");
        assert_eq!(d.phy, "c05076de33001a00");
        assert_eq!(d.chpid, "1A");
        assert_eq!(d.npiv.len(), 16);
    }
}
