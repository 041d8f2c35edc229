//! Volumes: FCP (SCSI) volumes, FCP devices and FCP Multipath Templates, mapped onto disk
//! images the host can reach.
//!
//! Mappings:
//! - **Volume (LUN)**: a VDI tagged `other_config:zvm_lun=<LUN>` (an operator or a test tags it,
//!   e.g. with XenAPI `VDI.add_to_other_config`). LUNs compare as 16 hex digits: `0x` dropped,
//!   case ignored, zeros added on the left (`0x4020400100000000`, `4020400100000000` and
//!   `0X40204001` + zeros are one LUN). Snapshots are never volumes.
//! - **Target port (WWPN)**: the storage ports of a volume are those listed in its SR's
//!   `other_config:zvm_wwpn` (WWPNs separated by commas, spaces or semicolons, in the same
//!   16-hex-digit form); an SR without that key answers on every WWPN. A LUN names the first
//!   volume (by VDI uuid) that at least one of the given target WWPNs reaches, so one LUN
//!   number can live behind different ports, as on a SAN.
//! - **FCP device**: a 4-hex-digit device number named by an FCP Multipath Template. The
//!   devices and templates live in the pool object's `other_config`: `zvm_fcp_template:<id>`
//!   holds a template as JSON (`id`, `name`, `description`, `host_default`,
//!   `storage_providers`, `min_fcp_paths_count` or null for "every path", `paths`: the device
//!   numbers of each path), `zvm_fcp:<device>` the usage of a device as JSON (`userid`,
//!   `reserved`, `connections`, `template`). A device exists while a template names it, or
//!   while it is reserved or connected; an idle device no template names is forgotten.
//!   A device is `active` (dedicated to its guest) while it has connections, else `free`;
//!   Drover's devices are never offline or missing, so those statistics stay empty, and
//!   `sync_with_zvm` has nothing to synchronise.
//! - **WWPNs of a device**, synthesised from its number and the host's uuid in IBM's
//!   `c05076` style: the channel path (CHPID) is the device number's high byte; the physical
//!   port of a channel path is `c05076` + 4 hex digits of the host uuid + `00` + CHPID + `00`,
//!   the NPIV port of a device `c05076` + the same 4 digits + `01` + device number.
//! - **Reservation** (`get_volume_connector`): with `reserve`, the template (the given one, the
//!   storage provider's default, else the host default) gives the guest the devices it
//!   already holds from it, else the lowest-numbered idle device of each path, as long as at
//!   least `min_fcp_paths_count` paths have one (else the empty connector). Without
//!   `reserve`, the guest's reserved devices of the template without connections are
//!   released. The answer's `host` is the host's name and the userid (`HOST_USERID`), as the
//!   original joins the LPAR name and the userid.
//! - **Attach** (`volume_attach`): every FCP device must be reserved for the guest. The
//!   volume's VDI gets `other_config:zvm_volume=<LUN>` (so deleting a guest keeps it), and the
//!   guest a `Disk` VBD at its lowest free position with `other_config` `zvm_volume=<LUN>`,
//!   `zvm_fcp` (the devices), `zvm_wwpn` (the target ports that reach it) and
//!   `zvm_mount_point`, hot-plugged when the guest is logged on; each device's connections go
//!   up by one. Attaching a LUN the guest has is `300/30/300/3`; a LUN no given port reaches
//!   is `300/30/300/8`. `is_root_volume` only counts the connections (the boot volume is the
//!   guest's already). `os_version` and `multipath` are checked but change nothing: z/VM
//!   uses them to configure the volume inside the guest's Linux, which a disk QEMU presents
//!   does not need.
//! - **Detach** (`volume_detach`): unplugs and removes the guest's VBD of the LUN (a LUN the
//!   guest does not have is `300/30/300/4`) and takes one connection off each device;
//!   detaching from a guest that no longer exists only counts, as in the original, and so does
//!   `update_connections_only` or `is_root_volume`.
//! - **Boot map** (`volume_refresh_bootmap`): z/VM rewrites the boot record of a SCSI boot
//!   volume; QEMU boots a disk image directly, so nothing is written. The call checks what
//!   the rewrite needs (defined FCP devices, enough paths, the template's devices, an ignition
//!   file for RHCOS networks, a volume behind the LUN: `300/30/300/5` otherwise) and answers
//!   the paths, `{device: [target WWPNs that reach the volume]}`, as the original does. `wwid`
//!   is accepted and not needed: the LUN names the volume.
//! - **Templates** list in name order. A device is in at most one path of a template; a
//!   storage provider has at most one default template, and the host one. Template ids are
//!   uuids. Unknown templates are the SDK's `404/400/404/1`, unknown devices the volume
//!   module's `404/30/404/1`, conflicts with allocated devices `409/30/409/22..24`.
//! - **Arguments**: missing or malformed `connection_info` keys and malformed device lists are
//!   argument-format errors (`100/400/100/3`), where the original fails with internal errors;
//!   list arguments also come as the text of a Python list (`"['id1', 'id2']"`) or as
//!   comma-separated text, as the REST layer passes query parameters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use drover_core::{Obj, Op, VbdAction};
use drover_model::Value;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use super::args::{opt, py_type, req, Args, Param};
use super::guest::{is_on, with};
use super::{other, Backend, Call, Dispatched};
use crate::error::{Module, ZvmError, ZvmResult};

const V: Module = Module::Volume;
/// Pool `other_config` prefix of FCP Multipath Templates.
const TEMPLATE_KEY: &str = "zvm_fcp_template:";
/// Pool `other_config` prefix of FCP device usage.
const FCP_KEY: &str = "zvm_fcp:";
/// VDI `other_config` key naming the volume's LUN.
const LUN_KEY: &str = "zvm_lun";
/// SR `other_config` key listing the target ports.
const WWPN_KEY: &str = "zvm_wwpn";
/// VDI and VBD `other_config` key of an attached volume.
const VOLUME_KEY: &str = "zvm_volume";
/// Positions a guest's disks can take.
const POSITIONS: u32 = 16;

/// Serialises changes of the FCP inventory (reservations, connections, templates).
static FCP_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An optional parameter defaulting to `true`.
const fn opt_true(name: &'static str) -> Param {
    (name, Some(|| Json::Bool(true)))
}

/// Runs the volume, FCP device and FCP Multipath Template calls; answers any other call
/// back.
pub(super) async fn dispatch<'a>(b: &Backend, call: Call<'a>) -> Dispatched<'a> {
    Ok(match call.api {
        "volume_attach" => {
            with(
                call,
                "volume_attach",
                &[req("connection_info")],
                |a| async move { b.volume_attach(connection(&a)?).await },
            )
            .await
        }
        "volume_detach" => {
            with(
                call,
                "volume_detach",
                &[req("connection_info")],
                |a| async move { b.volume_detach(connection(&a)?).await },
            )
            .await
        }
        "volume_refresh_bootmap" => {
            const P: &[Param] = &[
                req("fcpchannels"),
                req("wwpns"),
                req("lun"),
                opt("wwid"),
                opt("transportfiles"),
                opt("guest_networks"),
                opt("fcp_template_id"),
            ];
            with(call, "volume_refresh_bootmap", P, |a| b.refresh_bootmap(a)).await
        }
        "get_volume_connector" => {
            const P: &[Param] = &[
                req("userid"),
                opt("reserve"),
                opt("fcp_template_id"),
                opt("sp_name"),
            ];
            with(call, "get_volume_connector", P, |a| b.volume_connector(a)).await
        }
        "get_fcp_templates" => {
            const P: &[Param] = &[
                opt("template_id_list"),
                opt("assigner_id"),
                opt("default_sp_list"),
                opt("host_default"),
            ];
            with(call, "get_fcp_templates", P, |a| async move {
                b.fcp_templates(&a)
            })
            .await
        }
        "get_fcp_templates_details" => {
            const P: &[Param] = &[
                opt("template_id_list"),
                opt("raw"),
                opt_true("statistics"),
                opt("sync_with_zvm"),
            ];
            with(call, "get_fcp_templates_details", P, |a| async move {
                b.fcp_templates_details(&a)
            })
            .await
        }
        "create_fcp_template" => {
            const P: &[Param] = &[
                req("name"),
                opt("description"),
                opt("fcp_devices"),
                opt("host_default"),
                opt("default_sp_list"),
                opt("min_fcp_paths_count"),
            ];
            with(call, "create_fcp_template", P, |a| b.create_template(a)).await
        }
        "edit_fcp_template" => {
            const P: &[Param] = &[
                req("fcp_template_id"),
                opt("name"),
                opt("description"),
                opt("fcp_devices"),
                opt("host_default"),
                opt("default_sp_list"),
                opt("min_fcp_paths_count"),
            ];
            with(call, "edit_fcp_template", P, |a| b.edit_template(a)).await
        }
        "delete_fcp_template" => {
            with(call, "delete_fcp_template", &[req("template_id")], |a| {
                b.delete_template(a)
            })
            .await
        }
        "get_fcp_usage" => {
            with(call, "get_fcp_usage", &[req("fcp")], |a| async move {
                let inv = b.inventory()?;
                let (_, usage) = inv.device(&a.str("fcp")?)?;
                Ok(json!([
                    usage.userid,
                    usage.reserved,
                    usage.connections,
                    usage.template
                ]))
            })
            .await
        }
        "set_fcp_usage" => {
            const P: &[Param] = &[
                req("fcp"),
                req("userid"),
                req("reserved"),
                req("connections"),
                req("fcp_template_id"),
            ];
            with(call, "set_fcp_usage", P, |a| b.set_fcp_usage(a)).await
        }
        _ => return Err(call),
    })
}

/// An FCP Multipath Template as the pool keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Template {
    /// Its uuid.
    id: String,
    /// Its name.
    name: String,
    /// Its description.
    #[serde(default)]
    description: String,
    /// Whether it is the host's default template.
    #[serde(default)]
    host_default: bool,
    /// The storage providers whose default template it is.
    #[serde(default)]
    storage_providers: Vec<String>,
    /// Paths a reservation needs at least; `None` for every path.
    #[serde(default)]
    min_fcp_paths_count: Option<i64>,
    /// The device numbers of each path.
    #[serde(default)]
    paths: Vec<Vec<String>>,
}

impl Template {
    /// Paths a reservation needs at least.
    fn min_paths(&self) -> i64 {
        self.min_fcp_paths_count.unwrap_or(self.paths.len() as i64)
    }

    /// Whether a path of the template has the device.
    fn has(&self, fcp: &str) -> bool {
        self.paths.iter().flatten().any(|f| f == fcp)
    }

    /// The template's basic information, as `get_fcp_templates` lists it.
    fn base(&self) -> Map<String, Json> {
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
    fn answer(&self) -> Json {
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
struct Usage {
    /// The guest the device was last assigned to (empty if none).
    #[serde(default)]
    userid: String,
    /// Non-zero while reserved for the guest.
    #[serde(default)]
    reserved: i64,
    /// Volumes attached through the device.
    #[serde(default)]
    connections: i64,
    /// The template it is allocated from (empty if none).
    #[serde(default)]
    template: String,
}

impl Usage {
    /// Neither reserved nor connected.
    fn idle(&self) -> bool {
        self.reserved == 0 && self.connections == 0
    }
}

/// The FCP inventory: templates and device usage, as read from the pool.
#[derive(Debug, Clone)]
struct Inventory {
    /// The pool object that keeps it.
    pool: String,
    /// Templates by id.
    templates: BTreeMap<String, Template>,
    /// Device usage by device number.
    usage: BTreeMap<String, Usage>,
}

impl Inventory {
    /// A template, or `404`.
    fn template(&self, id: &str) -> ZvmResult<&Template> {
        self.templates.get(id).ok_or_else(|| ZvmError::NotExist {
            module: Module::Sdk,
            what: format!("FCP Multipath Template {id}"),
        })
    }

    /// The templates in name order.
    fn sorted(&self) -> Vec<&Template> {
        let mut all: Vec<&Template> = self.templates.values().collect();
        all.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        all
    }

    /// A device by its number as given, or `404`.
    fn device(&self, given: &str) -> ZvmResult<(String, &Usage)> {
        fcp_id(given)
            .and_then(|id| self.usage.get(&id).map(|u| (id, u)))
            .ok_or_else(|| ZvmError::NotExist {
                module: V,
                what: format!("FCP '{given}'"),
            })
    }

    /// The devices allocated from a template.
    fn in_use(&self, template: &str) -> Vec<String> {
        self.usage
            .iter()
            .filter(|(_, u)| u.template == template)
            .map(|(f, _)| f.clone())
            .collect()
    }

    /// Adds or replaces a template; a host default or a storage provider's default takes the
    /// role from every other template.
    fn put_template(&mut self, t: Template) {
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
    fn sync_devices(&mut self) {
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
struct Device {
    /// NPIV port name.
    npiv: String,
    /// Physical port name of its channel path.
    phy: String,
    /// Channel path, two hex digits, upper-case.
    chpid: String,
}

impl Device {
    /// The identity of device `fcp` (4 hex digits) on the host with uuid `host_uuid`.
    fn new(fcp: &str, host_uuid: &str) -> Device {
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
fn fcp_id(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= 4)
        .then(|| u16::from_str_radix(s, 16).ok())
        .flatten()
        .map(|n| format!("{n:04x}"))
}

/// A LUN or WWPN (1 to 16 hex digits, `0x` allowed) as 16 lower-case hex digits.
fn hex16(s: &str) -> Option<String> {
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
fn expand_fcps(spec: &str) -> ZvmResult<Vec<Vec<String>>> {
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
fn shrink(fcps: &[String]) -> String {
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

/// Python's text of a list of strings, `['a', 'b']`.
fn py_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
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

/// A failed boot map refresh (`300/30/300/5`).
fn bootmap_failed(reason: String) -> ZvmError {
    ZvmError::Failed {
        module: V,
        rs: 5,
        msg: format!("Refresh bootmap fails, error code: 1 and reason: {reason}"),
    }
}

/// The `connection_info` of an attach or detach.
struct Connection {
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
fn connection(a: &Args) -> ZvmResult<Connection> {
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
    /// The FCP inventory kept in the pool's `other_config`.
    fn inventory(&self) -> ZvmResult<Inventory> {
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
    async fn save(&self, before: &Inventory, after: &Inventory) -> ZvmResult<()> {
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
    fn host_identity(&self) -> ZvmResult<(String, String)> {
        let host = self.local_host()?;
        Ok((
            host.str("name_label").to_uppercase(),
            host.uuid().to_string(),
        ))
    }

    /// The volume a LUN names behind the target ports `wwpns`, with the ports that reach it.
    fn volume(&self, lun: &str, wwpns: &[String]) -> Option<(Arc<Obj>, Vec<String>)> {
        self.engine.read(|db| {
            let mut vdis: Vec<&Arc<Obj>> = db
                .all("VDI")
                .filter(|v| {
                    !v.bool("is_a_snapshot")
                        && other(v, LUN_KEY).and_then(hex16).as_deref() == Some(lun)
                })
                .collect();
            vdis.sort_by(|a, b| a.uuid().cmp(b.uuid()));
            vdis.into_iter().find_map(|vdi| {
                let ports = db
                    .get("SR", vdi.str("SR"))
                    .and_then(|sr| other(sr, WWPN_KEY));
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
                .find(|b| other(b, VOLUME_KEY).and_then(hex16).as_deref() == Some(lun))
                .cloned()
        })
    }

    /// `volume_attach`: gives the guest the volume through its reserved devices.
    async fn volume_attach(&self, c: Connection) -> ZvmResult {
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
            let (vdi, reach) = self
                .volume(&c.lun, &c.wwpns)
                .ok_or_else(|| ZvmError::Failed {
                    module: V,
                    rs: 8,
                    msg: format!(
                        "Failed to attach volume to instance {} with reason no volume with LUN \
                     0x{} is reachable through the target WWPNs {}",
                        c.userid,
                        c.lun,
                        c.wwpns.join(", ")
                    ),
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
        if other(vdi, VOLUME_KEY).is_none() {
            self.set_other(V, "VDI", &vdi.r, VOLUME_KEY, Some(&c.lun))
                .await?;
        }
        let used: Vec<String> = self.engine.read(|db| {
            vm.refs("VBDs")
                .iter()
                .filter_map(|b| db.get("VBD", b))
                .map(|b| b.str("userdevice").to_string())
                .collect()
        });
        let position = (0..POSITIONS)
            .map(|p| p.to_string())
            .find(|p| !used.contains(p))
            .ok_or_else(|| ZvmError::Failed {
                module: V,
                rs: 8,
                msg: format!(
                    "Failed to attach volume to instance {} with reason the guest has no free \
                     disk position",
                    c.userid
                ),
            })?;
        let fcps = c.fcps.join(",");
        let wwpns = reach.join(",");
        let vbd = self
            .op_ref(
                V,
                Op::Create {
                    class: "VBD".into(),
                    fields: vec![
                        ("VM".into(), Value::str(&*vm.r)),
                        ("VDI".into(), Value::str(&*vdi.r)),
                        ("userdevice".into(), Value::str(position)),
                        ("bootable".into(), Value::Bool(false)),
                        ("mode".into(), Value::str("RW")),
                        ("type".into(), Value::str("Disk")),
                        ("empty".into(), Value::Bool(false)),
                        (
                            "other_config".into(),
                            Value::string_map([
                                (VOLUME_KEY, c.lun.as_str()),
                                ("zvm_fcp", fcps.as_str()),
                                (WWPN_KEY, wwpns.as_str()),
                                ("zvm_mount_point", c.mount_point.as_str()),
                            ]),
                        ),
                    ],
                },
            )
            .await?;
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
                let _ = self
                    .op(
                        V,
                        Op::Destroy {
                            class: "VBD".into(),
                            r: vbd,
                        },
                    )
                    .await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// `volume_detach`: takes the volume from the guest and a connection off each device.
    async fn volume_detach(&self, c: Connection) -> ZvmResult {
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
                if vbd.bool("currently_attached") && is_on(&vm) {
                    self.op(
                        V,
                        Op::Vbd {
                            vbd: vbd.r.to_string(),
                            action: VbdAction::Unplug,
                        },
                    )
                    .await?;
                }
                self.op(
                    V,
                    Op::Destroy {
                        class: "VBD".into(),
                        r: vbd.r.to_string(),
                    },
                )
                .await?;
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
    async fn refresh_bootmap(&self, a: Args) -> ZvmResult {
        let fcps: Vec<String> = a
            .list("fcpchannels")?
            .iter()
            .map(|f| f.as_str().and_then(fcp_id))
            .collect::<Option<_>>()
            .filter(|f: &Vec<String>| !f.is_empty())
            .ok_or_else(|| {
                ZvmError::ArgFormat("fcpchannels must list FCP devices of 1 to 4 hex digits".into())
            })?;
        let wwpns: Vec<String> = a
            .list("wwpns")?
            .iter()
            .map(|w| w.as_str().and_then(hex16))
            .collect::<Option<_>>()
            .filter(|w: &Vec<String>| !w.is_empty())
            .ok_or_else(|| {
                ZvmError::ArgFormat("wwpns must list WWPNs of up to 16 hex digits".into())
            })?;
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
    async fn volume_connector(&self, a: Args) -> ZvmResult {
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

    /// `get_fcp_templates`: the templates of the given ids, of a guest's devices, of storage
    /// providers, by host default, or all.
    fn fcp_templates(&self, a: &Args) -> ZvmResult {
        let ids = names(a, "template_id_list")?;
        let assigner = a.opt_str("assigner_id")?.filter(|s| !s.is_empty());
        let sps = names(a, "default_sp_list")?;
        let host_default = opt_bool(a, "host_default")?;
        let inv = self.inventory()?;
        let chosen: Vec<&Template> = if !ids.is_empty() {
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| !inv.templates.contains_key(*id))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(ZvmError::NotExist {
                    module: Module::Sdk,
                    what: format!("FCP Multipath Templates {}", py_list(&missing)),
                });
            }
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
    fn fcp_templates_details(&self, a: &Args) -> ZvmResult {
        let ids = names(a, "template_id_list")?;
        let raw = a.bool("raw")?;
        let statistics = a.bool("statistics")?;
        a.bool("sync_with_zvm")?;
        let inv = self.inventory()?;
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !inv.templates.contains_key(*id))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(ZvmError::NotExist {
                module: Module::Sdk,
                what: format!("FCP Multipath Templates {}", py_list(&missing)),
            });
        }
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
    async fn create_template(&self, a: Args) -> ZvmResult {
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
        let mut after = before.clone();
        after.put_template(t.clone());
        self.save(&before, &after).await?;
        Ok(t.answer())
    }

    /// `edit_fcp_template`: changes what is given, keeping allocated devices in place.
    async fn edit_template(&self, a: Args) -> ZvmResult {
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
        let mut after = before.clone();
        after.put_template(t.clone());
        self.save(&before, &after).await?;
        Ok(t.answer())
    }

    /// `delete_fcp_template`, refused while devices are allocated from the template.
    async fn delete_template(&self, a: Args) -> ZvmResult {
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

    /// `set_fcp_usage`: overwrites a device's usage.
    async fn set_fcp_usage(&self, a: Args) -> ZvmResult {
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
