//! A VM's devices and figures: its CD-ROM, its graphics console and console tickets, the
//! devices its guest reports, its statistics, and the cloud-init drive of `use_initialization`.
//!
//! A console ticket is the caller's own session: the console endpoint of the XenAPI listener
//! (`GET /console?ref=<console>&session_id=<ticket>`, the location of the VM's `rfb` console
//! record) accepts exactly that, with the caller's rights and for the session's lifetime.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{Obj, Op, VbdAction};
use drover_model::Value;
use serde_json::{json, Map, Value as Json};

use crate::api::{
    collection, entity, members_or_one, no_such_resource, with_links, Api, Req, Resp, ZERO_ID,
};
use crate::auth::TOKEN_LIFETIME_SECS;
use crate::coll::diskattachments::free_position;
use crate::fault::{ApiError, ApiResult};
use crate::model::{self, derived_id};
use crate::node::Node;

/// VBD `other_config` key marking the cloud-init drive this facade made for a VM.
pub const CLOUD_INIT_KEY: &str = "ovirt_cloud_init";

/// The id of a VM's one graphics console: the protocol's name in hex, as oVirt makes it.
const CONSOLE_ID: &str = "766e63";

/// The volume label cloud-init looks for on a config drive.
const CONFIG_DRIVE_LABEL: &str = "config-2";

/// The lowest VBD position of a drive this facade adds (below are the first disks').
const FIRST_DRIVE_POSITION: u32 = 3;

/// Whether a VM's guest runs (or is paused): its devices are live.
fn is_live(vm: &Obj) -> bool {
    matches!(vm.str("power_state"), "Running" | "Paused")
}

fn no_such(req: &Req, vm: &Obj, sub: &str, rest: &[&str]) -> ApiError {
    no_such_resource(req, &format!("/vms/{}/{sub}", vm.uuid()), rest)
}

// ---- CD-ROM ----------------------------------------------------------------------------------

/// Whether a VBD is a drive made to carry data to the guest (a cloud-init or z/VM config
/// drive), not the VM's CD-ROM.
fn is_payload_drive(vbd: &Obj) -> bool {
    vbd.other(CLOUD_INIT_KEY).is_some() || vbd.other("zvm_config_drive").is_some()
}

/// The VM's CD-ROM: its first CD drive that is not a payload drive.
fn cd_drive(db: &Db, vm: &Obj) -> Option<Arc<Obj>> {
    vm.refs("VBDs")
        .iter()
        .filter_map(|b| db.get("VBD", b))
        .filter(|b| b.str("type") == "CD" && !is_payload_drive(b))
        .min_by_key(|b| b.str("userdevice").parse::<u32>().unwrap_or(u32::MAX))
        .cloned()
}

/// Handles `/vms/{id}/cdroms/...`: the one CD-ROM, and changing its medium.
pub async fn cdroms(api: &Api, req: &Req, vm: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => Resp::ok(collection(
            "cdroms",
            [api.engine.read(|db| render_cdrom(db, vm))],
        )),
        ([ZERO_ID], &Method::GET) => Resp::ok(api.engine.read(|db| render_cdrom(db, vm))),
        ([ZERO_ID], &Method::PUT) => {
            change_medium(api, req, vm).await?;
            let vm = api
                .obj("VM", &vm.r)
                .ok_or_else(|| ApiError::not_found("VM", vm.uuid()))?;
            Resp::ok(api.engine.read(|db| render_cdrom(db, &vm)))
        }
        _ => Err(no_such(req, vm, "cdroms", rest)),
    }
}

/// The CD-ROM as oVirt shows it: its medium as a `<file>` named by the ISO image's name.
fn render_cdrom(db: &Db, vm: &Obj) -> Node {
    let medium = cd_drive(db, vm)
        .filter(|d| !d.bool("empty"))
        .and_then(|d| db.get("VDI", d.str("VDI")).cloned());
    entity("cdrom", &format!("vms/{}/cdroms", vm.uuid()), ZERO_ID)
        .opt_child(medium.map(|m| Node::new("file").attr("id", m.str("name_label"))))
        .child(entity("vm", "vms", vm.uuid()))
}

/// The ISO image a `<file id>` names: a VDI of an ISO library, by name or uuid.
fn find_iso(api: &Api, id: &str) -> ApiResult<Arc<Obj>> {
    api.engine
        .read(|db| {
            db.all("VDI")
                .filter(|v| v.uuid() == id || v.str("name_label") == id)
                .find(|v| {
                    db.get("SR", v.str("SR"))
                        .is_some_and(|sr| sr.str("content_type") == "iso")
                })
                .cloned()
        })
        .ok_or_else(|| ApiError::NotFound(format!("Entity not found: File: id={id}")))
}

/// `PUT /vms/{id}/cdroms/{cd}`: inserts the ISO image `<file id>` names, or ejects when it
/// names none. A running guest sees the change at once (with `current` or not: the engine keeps
/// one configuration); a drive is added to a halted VM that has none.
async fn change_medium(api: &Api, req: &Req, vm: &Obj) -> ApiResult<()> {
    let body = req.body("cdrom")?;
    let iso = body.id_at("file").map(|f| find_iso(api, f)).transpose()?;
    let drive = api.engine.read(|db| cd_drive(db, vm));
    let vbd_op = |vbd: &Obj, action: VbdAction| Op::Vbd {
        vbd: vbd.r.to_string(),
        action,
    };
    match (drive, iso) {
        (Some(d), iso) => {
            if !d.bool("empty") {
                if iso.as_ref().is_some_and(|i| *i.r == *d.str("VDI")) {
                    return Ok(());
                }
                api.op(req, vbd_op(&d, VbdAction::Eject)).await?;
            }
            if let Some(iso) = iso {
                let vdi = iso.r.to_string();
                api.op(req, vbd_op(&d, VbdAction::Insert { vdi })).await?;
            }
            Ok(())
        }
        (None, None) => Ok(()),
        (None, Some(_)) if is_live(vm) => Err(ApiError::Conflict(
            "Cannot change CD. The VM has no CD-ROM drive, and one cannot be added while it \
             runs; add the medium while the VM is down."
                .into(),
        )),
        (None, Some(iso)) => {
            add_cd(api, req, vm, &iso.r, None).await?;
            Ok(())
        }
    }
}

/// Adds a read-only CD drive holding `vdi` to a halted VM, at the first free position from
/// [`FIRST_DRIVE_POSITION`], marked with `other_config` `mark` if given.
async fn add_cd(
    api: &Api,
    req: &Req,
    vm: &Obj,
    vdi: &str,
    mark: Option<&str>,
) -> ApiResult<String> {
    let position = api
        .engine
        .read(|db| free_position(db, vm, FIRST_DRIVE_POSITION).or_else(|| free_position(db, vm, 0)))
        .ok_or_else(|| {
            ApiError::Conflict("Cannot add CD. The VM has no free device position.".into())
        })?;
    let marks: Vec<(&str, &str)> = mark.map(|m| (m, "true")).into_iter().collect();
    api.op_ref(
        req,
        Op::Create {
            class: "VBD".into(),
            fields: vec![
                ("VM".into(), Value::str(&*vm.r)),
                ("VDI".into(), Value::str(vdi)),
                ("userdevice".into(), Value::str(position.to_string())),
                ("bootable".into(), Value::Bool(false)),
                ("mode".into(), Value::str("RO")),
                ("type".into(), Value::str("CD")),
                ("empty".into(), Value::Bool(false)),
                ("other_config".into(), Value::string_map(marks)),
            ],
        },
    )
    .await
}

// ---- Graphics console and tickets ------------------------------------------------------------

/// The VM's graphical (`rfb`) console record, while it runs.
fn rfb_console(db: &Db, vm: &Obj) -> Option<Arc<Obj>> {
    if !is_live(vm) {
        return None;
    }
    vm.refs("consoles")
        .iter()
        .filter_map(|c| db.get("console", c))
        .find(|c| c.str("protocol") == "rfb")
        .cloned()
}

fn render_console(vm: &Obj) -> Node {
    let base = format!("vms/{}/graphicsconsoles/{CONSOLE_ID}", vm.uuid());
    let node = entity(
        "graphics_console",
        &format!("vms/{}/graphicsconsoles", vm.uuid()),
        CONSOLE_ID,
    );
    with_links(node, &base, &["ticket"], &[])
        .text("protocol", "vnc")
        .child(entity("vm", "vms", vm.uuid()))
}

/// Handles `/vms/{id}/graphicsconsoles/...`: the VNC console of a running VM, and its
/// `ticket` action.
pub async fn graphicsconsoles(api: &Api, req: &Req, vm: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    let console = api.engine.read(|db| rfb_console(db, vm));
    match (rest, &req.method) {
        ([], &Method::GET) => Resp::ok(collection(
            "graphics_consoles",
            console.map(|_| render_console(vm)),
        )),
        ([CONSOLE_ID], &Method::GET) if console.is_some() => Resp::ok(render_console(vm)),
        ([CONSOLE_ID, "ticket"], &Method::POST) if console.is_some() => {
            ticket(api, req, vm, &req.body("action")?).await
        }
        _ => Err(no_such(req, vm, "graphicsconsoles", rest)),
    }
}

/// The `ticket` action of a VM or its console: a value the console endpoint accepts (the
/// caller's session) and the seconds it stays valid while unused.
pub async fn ticket(api: &Api, req: &Req, vm: &Obj, _body: &Node) -> ApiResult<Resp> {
    let live = api
        .obj("VM", &vm.r)
        .is_some_and(|v| api.engine.read(|db| rfb_console(db, &v)).is_some());
    if !live {
        return Err(ApiError::Conflict(
            "Cannot set Console Ticket. VM is not running.".into(),
        ));
    }
    Resp::ok(
        Node::new("action")
            .child(
                Node::new("ticket")
                    .text("expiry", TOKEN_LIFETIME_SECS)
                    .text("value", &*req.caller.session),
            )
            .text("status", "complete"),
    )
}

// ---- Reported devices ------------------------------------------------------------------------

/// The addresses a guest reports per NIC position, from its guest metrics' `networks`
/// (`<n>/ip`, `<n>/ipv4/<i>`, `<n>/ipv6/<i>`): (address, is IPv6), without repeats.
pub fn guest_ips(networks: &Value) -> BTreeMap<String, Vec<(String, bool)>> {
    let mut out: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for (k, v) in networks.as_map().unwrap_or(&[]) {
        let (Some(key), Some(ip)) = (k.as_str(), v.as_str()) else {
            continue;
        };
        let Some((device, kind)) = key.split_once('/') else {
            continue;
        };
        let v6 = kind.starts_with("ipv6");
        if !(kind == "ip" || kind.starts_with("ipv4/") || kind.starts_with("ipv6/"))
            || ip.is_empty()
        {
            continue;
        }
        let ips = out.entry(device.to_string()).or_default();
        if !ips.iter().any(|(a, _)| a == ip) {
            ips.push((ip.to_string(), v6));
        }
    }
    out
}

/// The devices a VM's guest reports, by NIC position: one `<reported_device>` per NIC with
/// its MAC and addresses.
pub fn reported_devices(db: &Db, vm: &Obj) -> Vec<(String, Node)> {
    let Some(guest) = db.get("VM_guest_metrics", vm.str("guest_metrics")) else {
        return Vec::new();
    };
    let vifs: Vec<&Arc<Obj>> = vm
        .refs("VIFs")
        .iter()
        .filter_map(|v| db.get("VIF", v))
        .collect();
    guest_ips(guest.get("networks"))
        .into_iter()
        .map(|(device, ips)| {
            let vif = vifs.iter().find(|v| v.str("device") == device);
            let id = derived_id(vm.uuid(), &format!("reported_device/{device}"));
            let name = vif
                .and_then(|v| v.other(crate::coll::nics::NAME_KEY))
                .map(String::from)
                .unwrap_or_else(|| format!("eth{device}"));
            let mut list = Node::list("ips");
            for (address, v6) in ips {
                list.push(
                    Node::new("ip")
                        .text("address", address)
                        .text("version", if v6 { "v6" } else { "v4" }),
                );
            }
            let node = entity(
                "reported_device",
                &format!("vms/{}/reporteddevices", vm.uuid()),
                &id,
            )
            .text("name", name)
            .text("description", "guest network interface")
            .child(list)
            .opt_child(vif.map(|v| Node::new("mac").text("address", v.str("MAC"))))
            .text("type", "network")
            .child(entity("vm", "vms", vm.uuid()));
            (device, node)
        })
        .collect()
}

/// Answers a list of reported devices or the one of them `rest` names.
pub fn reported_resp(req: &Req, devices: Vec<Node>, rest: &[&str]) -> ApiResult<Resp> {
    let unknown = ApiError::NotFound(format!("no such resource: {}", rest.join("/")));
    members_or_one(
        req,
        "reported_devices",
        "ReportedDevice",
        devices,
        true,
        rest,
        unknown,
    )
}

/// Handles `/vms/{id}/reporteddevices/...`.
pub async fn reporteddevices(api: &Api, req: &Req, vm: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    if req.method != Method::GET {
        return Err(no_such(req, vm, "reporteddevices", rest));
    }
    let devices = api.engine.read(|db| reported_devices(db, vm));
    reported_resp(req, devices.into_iter().map(|(_, n)| n).collect(), rest)
}

// ---- Statistics ------------------------------------------------------------------------------

/// One statistic: a named figure with its kind, value type and unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    /// oVirt's name, e.g. `memory.used`.
    pub name: &'static str,
    /// What it measures.
    pub description: &'static str,
    /// `gauge` or `counter`.
    pub kind: &'static str,
    /// `integer` or `decimal`.
    pub value_type: &'static str,
    /// The unit (`bytes`, `percent`, `seconds`, `bytes_per_second`...).
    pub unit: &'static str,
    /// The value.
    pub datum: String,
}

impl Stat {
    /// A gauge of whole bytes.
    pub fn bytes(name: &'static str, description: &'static str, n: i64) -> Stat {
        Stat::new(
            name,
            description,
            "gauge",
            "integer",
            "bytes",
            n.to_string(),
        )
    }

    /// A gauge of a percentage.
    pub fn percent(name: &'static str, description: &'static str, p: f64) -> Stat {
        Stat::new(name, description, "gauge", "decimal", "percent", decimal(p))
    }

    /// A gauge of a data rate in bytes per second.
    pub fn rate(name: &'static str, description: &'static str, bps: f64) -> Stat {
        Stat::new(
            name,
            description,
            "gauge",
            "decimal",
            "bytes_per_second",
            decimal(bps),
        )
    }

    /// The receive and transmit data rates of an interface, from its metrics' `io_read_kbs`
    /// and `io_write_kbs` (0 without metrics).
    pub fn data_rates(metrics: Option<&Obj>) -> [Stat; 2] {
        let rate = |field: &str| metrics.map_or(0.0, |m| float(m.get(field)) * 1024.0);
        [
            Stat::rate("data.current.rx", "Receive data rate", rate("io_read_kbs")),
            Stat::rate(
                "data.current.tx",
                "Transmit data rate",
                rate("io_write_kbs"),
            ),
        ]
    }

    /// A counter.
    pub fn counter(
        name: &'static str,
        description: &'static str,
        unit: &'static str,
        n: i64,
    ) -> Stat {
        Stat::new(name, description, "counter", "integer", unit, n.to_string())
    }

    fn new(
        name: &'static str,
        description: &'static str,
        kind: &'static str,
        value_type: &'static str,
        unit: &'static str,
        datum: String,
    ) -> Stat {
        Stat {
            name,
            description,
            kind,
            value_type,
            unit,
            datum,
        }
    }

    /// The `<statistic>` of an entity at `base` (e.g. `vms/<id>`) that `owner` references.
    fn render(&self, base: &str, owner: &Node) -> Node {
        let owner_id = owner.get_attr("id").unwrap_or_default();
        let id = derived_id(owner_id, &format!("statistic/{}", self.name));
        entity("statistic", &format!("{base}/statistics"), &id)
            .text("name", self.name)
            .text("description", self.description)
            .text("kind", self.kind)
            .text("type", self.value_type)
            .text("unit", self.unit)
            .child(Node::list("values").child(Node::new("value").text("datum", &self.datum)))
            .child(owner.clone())
    }
}

/// A decimal figure with two places at most.
fn decimal(x: f64) -> String {
    let x = if x.is_finite() { x.max(0.0) } else { 0.0 };
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Answers the statistics of an entity at `base` whose reference is `owner`, or the one
/// `rest` names.
pub fn statistics_resp(
    req: &Req,
    base: &str,
    owner: Node,
    stats: Vec<Stat>,
    rest: &[&str],
) -> ApiResult<Resp> {
    let nodes = stats.iter().map(|s| s.render(base, &owner)).collect();
    let unknown = ApiError::NotFound(format!(
        "no such resource: {base}/statistics/{}",
        rest.join("/")
    ));
    members_or_one(req, "statistics", "Statistic", nodes, true, rest, unknown)
}

/// A time field's seconds.
pub fn secs(v: &Value) -> i64 {
    match v {
        Value::DateTime(t) | Value::Int(t) => *t,
        _ => 0,
    }
}

/// A number field's value.
pub fn float(v: &Value) -> f64 {
    match v {
        Value::Float(f) => *f,
        Value::Int(i) => *i as f64,
        _ => 0.0,
    }
}

/// A figure of the guest agent's `memory` report, in bytes.
fn agent_memory(guest: Option<&Arc<Obj>>, key: &str) -> Option<i64> {
    guest?
        .get("memory")
        .map_get(key)
        .and_then(|v| v.as_str())
        .and_then(|kb| kb.trim().parse::<i64>().ok())
        .map(|kb| kb * 1024)
}

/// The nominal speed of a guest NIC, for network usage as a percentage: 1 Gbit/s.
const NIC_BYTES_PER_SECOND: f64 = 1e9 / 8.0;

/// A VM's statistics from its metrics, its NICs' metrics and its guest's reports.
fn vm_statistics(db: &Db, vm: &Obj) -> Vec<Stat> {
    let live = is_live(vm);
    let metrics = db.get("VM_metrics", vm.str("metrics"));
    let guest = db.get("VM_guest_metrics", vm.str("guest_metrics"));
    let installed = vm.int("memory_dynamic_max");
    let total = agent_memory(guest, "total_kb");
    let free = agent_memory(guest, "free_kb");
    let used = match (total, free) {
        (Some(t), Some(f)) if live => (t - f).max(0),
        _ if live => metrics.map(|m| m.int("memory_actual")).unwrap_or(0),
        _ => 0,
    };
    let cpu = metrics
        .filter(|_| live)
        .and_then(|m| m.get("VCPUs_utilisation").as_map().map(|u| u.to_vec()))
        .filter(|u| !u.is_empty())
        .map(|u| u.iter().map(|(_, x)| float(x)).sum::<f64>() / u.len() as f64 * 100.0)
        .unwrap_or(0.0);
    let net: f64 = if live {
        vm.refs("VIFs")
            .iter()
            .filter_map(|v| db.get("VIF", v))
            .filter_map(|v| db.get("VIF_metrics", v.str("metrics")))
            .map(|m| (float(m.get("io_read_kbs")) + float(m.get("io_write_kbs"))) * 1024.0)
            .sum()
    } else {
        0.0
    };
    let elapsed = match metrics.filter(|_| live) {
        Some(m) => (drover_core::now() - secs(m.get("start_time"))).max(0),
        None => 0,
    };
    let mut stats = vec![
        Stat::bytes("memory.installed", "Total memory configured", installed),
        Stat::bytes("memory.used", "Memory used (agent)", used),
    ];
    if let (Some(f), true) = (free, live) {
        stats.push(Stat::bytes("memory.free", "Memory free (agent)", f));
    }
    stats.extend([
        Stat::percent("cpu.current.guest", "CPU used by guest", cpu),
        Stat::percent("cpu.current.hypervisor", "CPU overhead", 0.0),
        Stat::percent("cpu.current.total", "Total CPU used", cpu),
        Stat::percent(
            "network.current.total",
            "Total network used",
            net / NIC_BYTES_PER_SECOND * 100.0,
        ),
        Stat::new(
            "elapsed.time",
            "Elapsed VM runtime",
            "gauge",
            "integer",
            "seconds",
            elapsed.to_string(),
        ),
    ]);
    stats
}

/// Handles `/vms/{id}/statistics/...`.
pub async fn statistics(api: &Api, req: &Req, vm: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    if req.method != Method::GET {
        return Err(no_such(req, vm, "statistics", rest));
    }
    let stats = api.engine.read(|db| vm_statistics(db, vm));
    statistics_resp(
        req,
        &format!("vms/{}", vm.uuid()),
        entity("vm", "vms", vm.uuid()),
        stats,
        rest,
    )
}

// ---- cloud-init ------------------------------------------------------------------------------

/// A NIC's configuration for the guest (`<nic_configuration>`).
#[derive(Debug, Clone, Default, PartialEq)]
struct NicInit {
    name: String,
    mac: Option<String>,
    v4: Option<IpInit>,
    v6: Option<IpInit>,
}

/// One address family's configuration of a NIC.
#[derive(Debug, Clone, PartialEq)]
enum IpInit {
    /// Configured by the network (DHCP or autoconfiguration).
    Dynamic(&'static str),
    /// A fixed address.
    Static {
        address: String,
        netmask: String,
        gateway: Option<String>,
    },
}

/// What an `<initialization>` asks of the guest.
#[derive(Debug, Clone, Default, PartialEq)]
struct Init {
    host_name: Option<String>,
    user_name: Option<String>,
    root_password: Option<String>,
    keys: Vec<String>,
    timezone: Option<String>,
    custom_script: Option<String>,
    dns_servers: Vec<String>,
    nics: Vec<NicInit>,
}

/// The text of a leaf, untrimmed inside but without surrounding blank lines.
fn raw_text<'a>(n: &'a Node, name: &str) -> Option<&'a str> {
    n.get(name)
        .and_then(|c| c.text.as_deref())
        .filter(|t| !t.trim().is_empty())
}

/// One address family of a `<nic_configuration>`.
fn ip_init(nic: &Node, protocol_elem: &str, ip_elem: &str, v6: bool) -> ApiResult<Option<IpInit>> {
    let protocol = nic.text_at(protocol_elem);
    Ok(match protocol {
        None | Some("none") => None,
        Some("dhcp") => Some(IpInit::Dynamic(if v6 { "ipv6_dhcp" } else { "ipv4_dhcp" })),
        Some("autoconf") if v6 => Some(IpInit::Dynamic("ipv6_slaac")),
        Some("static") => {
            let address = nic.text_at(&format!("{ip_elem}/address")).ok_or_else(|| {
                ApiError::missing("NicConfiguration", &format!("{ip_elem}.address"))
            })?;
            Some(IpInit::Static {
                address: address.to_string(),
                netmask: nic
                    .text_at(&format!("{ip_elem}/netmask"))
                    .unwrap_or(if v6 { "64" } else { "255.255.255.0" })
                    .to_string(),
                gateway: nic.text_at(&format!("{ip_elem}/gateway")).map(String::from),
            })
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "\"{other}\" is not a boot protocol this engine configures; use none, dhcp, \
                 static{}",
                if v6 { " or autoconf" } else { "" }
            )))
        }
    })
}

/// Reads an `<initialization>`; `macs` gives the MAC of a guest NIC name (`eth0`, or the NIC's
/// oVirt name).
fn read_init(init: &Node, macs: &dyn Fn(&str) -> Option<String>) -> ApiResult<Init> {
    let text = |name: &str| init.text_at(name).map(String::from);
    let mut nics = Vec::new();
    if let Some(list) = init.get("nic_configurations") {
        for nic in list.all("nic_configuration") {
            let name = nic
                .text_at("name")
                .ok_or_else(|| ApiError::missing("NicConfiguration", "name"))?;
            nics.push(NicInit {
                name: name.to_string(),
                mac: macs(name),
                v4: ip_init(nic, "boot_protocol", "ip", false)?,
                v6: ip_init(nic, "ipv6_boot_protocol", "ipv6", true)?,
            });
        }
    }
    Ok(Init {
        host_name: text("host_name"),
        user_name: text("user_name"),
        root_password: text("root_password"),
        keys: init
            .text_at("authorized_ssh_keys")
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(String::from)
            .collect(),
        timezone: text("timezone"),
        custom_script: raw_text(init, "custom_script").map(String::from),
        dns_servers: init
            .text_at("dns_servers")
            .unwrap_or("")
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|d| !d.is_empty())
            .map(String::from)
            .collect(),
        nics,
    })
}

/// The cloud-config the settings make (JSON, which YAML reads), if they say anything.
fn cloud_config(init: &Init) -> Option<String> {
    let mut c = Map::new();
    if let Some(pw) = &init.root_password {
        c.insert(
            "user".into(),
            json!(init.user_name.as_deref().unwrap_or("root")),
        );
        c.insert("password".into(), json!(pw));
        c.insert("chpasswd".into(), json!({"expire": false}));
        c.insert("ssh_pwauth".into(), json!(true));
    } else if let Some(user) = &init.user_name {
        c.insert("user".into(), json!(user));
    }
    if init.user_name.as_deref().unwrap_or("root") == "root" && !c.is_empty() {
        c.insert("disable_root".into(), json!(false));
    }
    if !init.keys.is_empty() {
        c.insert("ssh_authorized_keys".into(), json!(init.keys));
    }
    if let Some(tz) = &init.timezone {
        c.insert("timezone".into(), json!(tz));
    }
    (!c.is_empty()).then(|| format!("#cloud-config\n{}\n", Json::Object(c)))
}

/// The MIME type cloud-init gives a user-data part from its first line.
fn part_type(script: &str) -> &'static str {
    let first = script.lines().next().unwrap_or("").trim();
    match first {
        f if f.starts_with("#cloud-config") => "text/cloud-config",
        f if f.starts_with("#cloud-boothook") => "text/cloud-boothook",
        f if f.starts_with("#include") => "text/x-include-url",
        f if f.starts_with("#!") => "text/x-shellscript",
        _ => "text/plain",
    }
}

/// The user data: the settings' cloud-config, the custom script, or both as a multipart
/// document (cloud-init merges cloud-config parts and runs scripts).
fn user_data(init: &Init) -> String {
    match (cloud_config(init), &init.custom_script) {
        (None, None) => "#cloud-config\n{}\n".into(),
        (Some(c), None) => c,
        (None, Some(s)) => s.clone(),
        (Some(c), Some(s)) => {
            let mut boundary = "==drover-cloud-init==".to_string();
            while c.contains(&boundary) || s.contains(&boundary) {
                boundary.push('=');
            }
            let mut out = format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n"
            );
            for (ty, body) in [
                ("text/cloud-config", c.as_str()),
                (part_type(s), s.as_str()),
            ] {
                out.push_str(&format!(
                    "--{boundary}\nContent-Type: {ty}; charset=\"utf-8\"\nMIME-Version: 1.0\n\
                     Content-Transfer-Encoding: 8bit\n\n{body}\n"
                ));
            }
            out.push_str(&format!("--{boundary}--\n"));
            out
        }
    }
}

/// `openstack/latest/network_data.json`, if there are NICs or DNS servers to configure.
fn network_data(init: &Init) -> Option<Json> {
    if init.nics.is_empty() && init.dns_servers.is_empty() {
        return None;
    }
    let links: Vec<Json> = init
        .nics
        .iter()
        .map(|n| {
            let mut l = json!({"id": n.name, "name": n.name, "type": "vif"});
            if let Some(mac) = &n.mac {
                l["ethernet_mac_address"] = json!(mac);
            }
            l
        })
        .collect();
    let mut networks = Vec::new();
    for n in &init.nics {
        for (family, ip) in [("ipv4", &n.v4), ("ipv6", &n.v6)] {
            let id = format!("{}-{family}", n.name);
            match ip {
                None => {}
                Some(IpInit::Dynamic(kind)) => {
                    networks.push(json!({"id": id, "link": n.name, "type": kind}));
                }
                Some(IpInit::Static {
                    address,
                    netmask,
                    gateway,
                }) => {
                    let default = if family == "ipv6" { "::" } else { "0.0.0.0" };
                    let routes: Vec<Json> = gateway
                        .iter()
                        .map(|g| json!({"network": default, "netmask": default, "gateway": g}))
                        .collect();
                    networks.push(json!({
                        "id": id, "link": n.name, "type": family,
                        "ip_address": address, "netmask": netmask, "routes": routes,
                    }));
                }
            }
        }
    }
    let services: Vec<Json> = init
        .dns_servers
        .iter()
        .map(|d| json!({"type": "dns", "address": d}))
        .collect();
    Some(json!({"links": links, "networks": networks, "services": services}))
}

/// The files of the config drive.
fn drive_files(vm: &Obj, init: &Init) -> Vec<(String, Vec<u8>)> {
    let mut meta = json!({
        "uuid": vm.uuid(),
        "name": vm.str("name_label"),
        "hostname": init.host_name.as_deref().unwrap_or(vm.str("name_label")),
        "launch_index": 0,
        "availability_zone": "nova",
    });
    if !init.keys.is_empty() {
        let keys: Map<String, Json> = init
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("key{i}"), json!(k)))
            .collect();
        meta["public_keys"] = Json::Object(keys);
    }
    let mut files = vec![
        (
            "openstack/latest/meta_data.json".to_string(),
            meta.to_string().into_bytes(),
        ),
        (
            "openstack/latest/user_data".to_string(),
            user_data(init).into_bytes(),
        ),
    ];
    if let Some(net) = network_data(init) {
        files.push((
            "openstack/latest/network_data.json".to_string(),
            net.to_string().into_bytes(),
        ));
    }
    files
}

/// The MAC of a guest NIC name: a NIC whose oVirt name it is, else `eth<N>` as the guest
/// numbers its NICs, in the order of their positions.
fn mac_of(db: &Db, vm: &Obj, name: &str) -> Option<String> {
    let mut vifs: Vec<&Arc<Obj>> = vm
        .refs("VIFs")
        .iter()
        .filter_map(|v| db.get("VIF", v))
        .collect();
    vifs.sort_by_key(|v| v.str("device").parse::<u32>().unwrap_or(u32::MAX));
    if let Some(v) = vifs
        .iter()
        .find(|v| v.other(crate::coll::nics::NAME_KEY) == Some(name))
    {
        return Some(v.str("MAC").to_string());
    }
    let n: usize = name.strip_prefix("eth")?.parse().ok()?;
    vifs.get(n).map(|v| v.str("MAC").to_string())
}

/// Attaches a config drive (cloud-init `config-2`) made from an `<initialization>` to a
/// halted VM before a start with `use_initialization`: the drive this facade made before gets
/// the new contents, else a new one is added as a CD drive.
pub async fn attach_initialization(api: &Api, req: &Req, vm: &Obj, init: &Node) -> ApiResult<()> {
    if vm.str("power_state") != "Halted" {
        return Err(ApiError::Conflict(
            "Cannot run VM with initialization. The VM is not down.".into(),
        ));
    }
    let settings = api
        .engine
        .read(|db| read_init(init, &|name| mac_of(db, vm, name)))?;
    let files = drive_files(vm, &settings);
    let name = format!("{} cloud-init", vm.str("name_label"));
    let (drive, sr) = api.engine.read(|db| {
        let drive = vm
            .refs("VBDs")
            .iter()
            .filter_map(|b| db.get("VBD", b))
            .find(|b| b.other(CLOUD_INIT_KEY).is_some())
            .cloned();
        (drive, drive_sr(db, vm))
    });
    let sr = sr.ok_or_else(|| {
        ApiError::Conflict("Cannot run VM with initialization. There is no storage domain for its cloud-init drive.".into())
    })?;
    // The drive's image is refilled in place when this VM alone has it (a VM made from a
    // template shares the template's until it gets its own).
    let own = drive.as_ref().and_then(|d| {
        api.engine.read(|db| {
            let vdi = db.get("VDI", d.str("VDI")).filter(|_| !d.bool("empty"))?;
            let alone = vdi
                .refs("VBDs")
                .iter()
                .filter_map(|b| db.get("VBD", b))
                .all(|b| b.str("VM") == &*vm.r);
            (alone && vdi.other("config_drive") == Some("true")).then(|| vdi.r.to_string())
        })
    });
    let target_sr = own
        .as_ref()
        .and_then(|v| api.obj("VDI", v))
        .map(|v| v.str("SR").to_string())
        .unwrap_or(sr);
    let vdi = api
        .engine
        .vdi_from_files(
            &req.caller,
            &target_sr,
            &name,
            CONFIG_DRIVE_LABEL,
            files,
            own.as_deref(),
        )
        .await?
        .to_string();
    if own.is_some() {
        return Ok(());
    }
    let placed = match &drive {
        Some(d) => {
            let vbd = d.r.to_string();
            if !d.bool("empty") {
                api.op(
                    req,
                    Op::Vbd {
                        vbd: vbd.clone(),
                        action: VbdAction::Eject,
                    },
                )
                .await?;
            }
            api.op(
                req,
                Op::Vbd {
                    vbd,
                    action: VbdAction::Insert { vdi: vdi.clone() },
                },
            )
            .await
            .map(|_| ())
        }
        None => add_cd(api, req, vm, &vdi, Some(CLOUD_INIT_KEY))
            .await
            .map(|_| ()),
    };
    if let Err(e) = placed {
        let _ = api.destroy(req, "VDI", &vdi).await;
        return Err(e);
    }
    Ok(())
}

/// The SR of a VM's config drive: its first disk's, else the pool's default SR.
fn drive_sr(db: &Db, vm: &Obj) -> Option<String> {
    let disk_sr = vm
        .refs("VBDs")
        .iter()
        .filter_map(|b| db.get("VBD", b))
        .filter(|b| b.str("type") == "Disk" && !b.bool("empty"))
        .filter_map(|b| db.get("VDI", b.str("VDI")))
        .filter_map(|v| db.get("SR", v.str("SR")))
        .find(|sr| sr.str("content_type") != "iso")
        .map(|sr| sr.r.to_string());
    disk_sr.or_else(|| {
        model::pool(db)
            .map(|p| p.str("default_SR").to_string())
            .filter(|sr| db.get("SR", sr).is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_addresses_by_nic() {
        let networks = Value::string_map([
            ("0/ip", "10.0.0.5"),
            ("0/ipv4/0", "10.0.0.5"),
            ("0/ipv4/1", "10.0.1.5"),
            ("0/ipv6/0", "fd00::5"),
            ("2/ip", "10.9.9.9"),
            ("junk", "x"),
        ]);
        let ips = guest_ips(&networks);
        assert_eq!(
            ips["0"],
            vec![
                ("10.0.0.5".to_string(), false),
                ("10.0.1.5".to_string(), false),
                ("fd00::5".to_string(), true)
            ]
        );
        assert_eq!(ips["2"], vec![("10.9.9.9".to_string(), false)]);
        assert_eq!(ips.len(), 2);
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal(3.5), "3.5");
        assert_eq!(decimal(2.0), "2");
        assert_eq!(decimal(0.123), "0.12");
        assert_eq!(decimal(f64::NAN), "0");
    }

    fn init(xml: &str) -> Init {
        let node = Node::from_xml(xml.as_bytes()).unwrap();
        read_init(&node, &|name| {
            (name == "eth0").then(|| "02:00:00:00:00:01".to_string())
        })
        .unwrap()
    }

    #[test]
    fn cloud_config_from_settings() {
        let i = init(
            "<initialization><host_name>h1</host_name><root_password>p\"w</root_password>\
             <authorized_ssh_keys>ssh-rsa AAA a\nssh-ed25519 BBB b\n</authorized_ssh_keys>\
             </initialization>",
        );
        assert_eq!(i.keys.len(), 2);
        let c = cloud_config(&i).unwrap();
        assert!(c.starts_with("#cloud-config\n"));
        let j: Json = serde_json::from_str(c.trim_start_matches("#cloud-config\n")).unwrap();
        assert_eq!(j["user"], "root");
        assert_eq!(j["password"], "p\"w");
        assert_eq!(j["disable_root"], false);
        assert_eq!(j["ssh_authorized_keys"][1], "ssh-ed25519 BBB b");
        assert_eq!(user_data(&i), c);
    }

    #[test]
    fn custom_scripts_alone_or_with_settings() {
        let alone = init(
            "<initialization><custom_script>#!/bin/sh\necho hi\n</custom_script></initialization>",
        );
        assert_eq!(user_data(&alone), "#!/bin/sh\necho hi\n");
        let both = init(
            "<initialization><user_name>u</user_name><root_password>x</root_password>\
             <custom_script>#!/bin/sh\necho hi\n</custom_script></initialization>",
        );
        let d = user_data(&both);
        assert!(d.starts_with("Content-Type: multipart/mixed; boundary=\"==drover-cloud-init==\""));
        assert!(d.contains("Content-Type: text/cloud-config"));
        assert!(d.contains("Content-Type: text/x-shellscript"));
        assert!(d.trim_end().ends_with("--==drover-cloud-init==--"));
        assert!(!d.contains("disable_root"));
    }

    #[test]
    fn network_configuration() {
        let i = init(
            "<initialization><dns_servers>1.1.1.1 8.8.8.8</dns_servers><nic_configurations>\
             <nic_configuration><name>eth0</name><boot_protocol>static</boot_protocol>\
             <ip><address>10.0.0.5</address><netmask>255.255.255.0</netmask>\
             <gateway>10.0.0.1</gateway></ip></nic_configuration>\
             <nic_configuration><name>eth1</name><boot_protocol>dhcp</boot_protocol>\
             <ipv6_boot_protocol>autoconf</ipv6_boot_protocol></nic_configuration>\
             </nic_configurations></initialization>",
        );
        let n = network_data(&i).unwrap();
        assert_eq!(n["links"][0]["ethernet_mac_address"], "02:00:00:00:00:01");
        assert!(n["links"][1].get("ethernet_mac_address").is_none());
        assert_eq!(n["networks"][0]["ip_address"], "10.0.0.5");
        assert_eq!(n["networks"][0]["routes"][0]["gateway"], "10.0.0.1");
        assert_eq!(n["networks"][1]["type"], "ipv4_dhcp");
        assert_eq!(n["networks"][2]["type"], "ipv6_slaac");
        assert_eq!(n["services"][1]["address"], "8.8.8.8");
        assert!(network_data(&init("<initialization/>")).is_none());
    }

    #[test]
    fn bad_nic_configurations() {
        let node = Node::from_xml(
            b"<initialization><nic_configurations><nic_configuration><name>eth0</name>\
              <boot_protocol>static</boot_protocol></nic_configuration></nic_configurations>\
              </initialization>",
        )
        .unwrap();
        assert!(matches!(
            read_init(&node, &|_| None),
            Err(ApiError::BadRequest(_))
        ));
    }
}
