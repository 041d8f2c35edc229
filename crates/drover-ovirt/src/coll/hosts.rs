//! The `hosts` collection: XenAPI hosts as oVirt hosts, their update, their NICs (PIFs) and
//! statistics, permissions and tags, and their actions.
//!
//! This engine drives its local host only, without power management: adding or removing a
//! host, fencing it, and moving a host with running VMs to maintenance (there is no other host
//! for them) answer oVirt's refusals.

use std::sync::Arc;

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{HostAction, NetOp, Obj, Op, Reply};
use drover_model::{Value, NULL_REF};

use crate::api::{collection, entity, limit, no_such_resource, with_links, Api, Req, Resp};
use crate::coll::vmdevices::{self, Stat};
use crate::coll::vms::VmSubject;
use crate::coll::{clusters, fenceagents, permissions, storagedomains, tags};
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::model::{self, COMMENT_KEY};
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// Actions of a host.
const ACTIONS: &[&str] = &["activate", "deactivate", "fence", "refresh"];

/// Sub-collections of a host.
const SUBS: &[&str] = &["fenceagents", "nics", "permissions", "statistics", "tags"];

/// Handles `/hosts/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req),
        ([], &Method::POST) => add(api, req).await,
        ([id], &Method::GET) => {
            let host = host(api, id)?;
            Resp::ok(api.engine.read(|db| render(db, &host)))
        }
        ([id], &Method::PUT) => update(api, req, id).await,
        ([id], &Method::DELETE) => {
            let host = host(api, id)?;
            if api.engine.read(|db| status(db, &host)) != "maintenance" {
                return Err(ApiError::Conflict(
                    "Cannot remove Host. Host must be in Maintenance mode first.".into(),
                ));
            }
            api.op(
                req,
                Op::Host {
                    host: host.r.to_string(),
                    action: HostAction::Eject,
                },
            )
            .await?;
            Resp::removed()
        }
        ([id, sub, tail @ ..], _) if SUBS.contains(sub) => {
            let host = host(api, id)?;
            match *sub {
                "nics" => nics(api, req, &host, tail),
                "fenceagents" => fenceagents::handle(api, req, &host, tail).await,
                "permissions" => permissions::for_object(api, req, "host", &host, tail).await,
                "statistics" if req.method == Method::GET => {
                    let stats = api.engine.read(|db| statistics(db, &host));
                    vmdevices::statistics_resp(
                        req,
                        &format!("hosts/{id}"),
                        host_ref(&host),
                        stats,
                        tail,
                    )
                }
                "statistics" => Err(no_such_resource(req, "/hosts", rest)),
                _ => tags::for_object(api, req, "host", &host, tail).await,
            }
        }
        ([id, action], &Method::POST) if ACTIONS.contains(action) => {
            let host = host(api, id)?;
            act(api, req, &host, action).await
        }
        _ => Err(no_such_resource(req, "/hosts", rest)),
    }
}

/// The port `drover node` listens on unless the host's address or `port` says otherwise.
const NODE_PORT: u16 = 8443;

/// `POST /hosts`: enrols the host agent (`drover node`) at `address` with its one-time
/// enrolment secret as `root_password`, and names the new host.
async fn add(api: &Api, req: &Req) -> ApiResult<Resp> {
    let body = req.body("host")?;
    let name = body
        .text_at("name")
        .ok_or_else(|| ApiError::missing("Host", "name"))?
        .to_string();
    let address = body
        .text_at("address")
        .ok_or_else(|| ApiError::missing("Host", "address"))?;
    let secret = body
        .text_at("root_password")
        .ok_or_else(|| ApiError::missing("Host", "root_password"))?;
    let taken = api
        .engine
        .read(|db| db.all("host").any(|h| h.str("name_label") == name));
    if taken {
        return Err(ApiError::Conflict(
            "Cannot add Host. The Host name is already in use, please choose a unique name and \
             try again."
                .into(),
        ));
    }
    let address = if address.contains(':') && !address.starts_with('[') {
        address.to_string()
    } else {
        let port = body
            .text_at("port")
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| ApiError::BadRequest(format!("Invalid port {p}")))
            })
            .transpose()?
            .unwrap_or(NODE_PORT);
        format!("{address}:{port}")
    };
    let host = api
        .op_ref(
            req,
            Op::PoolJoin {
                address,
                secret: secret.to_string(),
            },
        )
        .await?;
    api.set(req, "host", &host, "name_label", Value::str(&name))
        .await?;
    let node = api.engine.read(|db| {
        db.get("host", &host)
            .map(|h| render(db, h))
            .ok_or_else(|| ApiError::Internal("the new host vanished".into()))
    })?;
    Resp::created(node)
}

/// The host with an oVirt id.
pub fn host(api: &Api, id: &str) -> ApiResult<Arc<Obj>> {
    api.by_id("host", id, "Host")
}

/// A reference to a host.
pub fn host_ref(host: &Obj) -> Node {
    entity("host", "hosts", host.uuid())
}

/// The host a `<host>` child of a document names by id or name; `entity` names the document
/// for the "required" fault.
pub fn host_of(api: &Api, body: &Node, entity: &str) -> ApiResult<Arc<Obj>> {
    match (body.id_at("host"), body.text_at("host/name")) {
        (Some(id), _) => host(api, id),
        (None, Some(name)) => api
            .engine
            .read(|db| {
                db.all("host")
                    .find(|h| h.str("name_label") == name)
                    .cloned()
            })
            .ok_or_else(|| ApiError::NotFound(format!("Entity not found: Host: name={name}"))),
        (None, None) => Err(ApiError::missing(entity, "host.id|name")),
    }
}

/// The host's metrics, if recorded.
fn metrics<'a>(db: &'a Db, host: &Obj) -> Option<&'a Obj> {
    db.get("host_metrics", host.str("metrics")).map(|m| &**m)
}

/// oVirt's status of a host.
pub fn status(db: &Db, host: &Obj) -> &'static str {
    model::host_status(host, metrics(db, host).is_some_and(|m| m.bool("live")))
}

/// The VMs resident on a host that are not halted.
fn running_vms<'a>(db: &'a Db, host: &Obj) -> Vec<&'a Obj> {
    let mut vms: Vec<&Obj> = host
        .refs("resident_VMs")
        .iter()
        .filter_map(|v| db.get("VM", v))
        .map(|v| &**v)
        .filter(|v| model::is_vm(v) && v.str("power_state") != "Halted")
        .collect();
    vms.sort_by(|a, b| a.str("name_label").cmp(b.str("name_label")));
    vms
}

/// A value of the host's `cpu_info`.
fn cpu_info<'a>(host: &'a Obj, key: &str) -> &'a str {
    host.get("cpu_info")
        .map_get(key)
        .and_then(|v| v.as_str())
        .unwrap_or("")
}

/// The number of CPUs of a host: its `host_cpu` objects, else `cpu_info:cpu_count`.
fn cpu_count(db: &Db, host: &Obj) -> i64 {
    let n = host
        .refs("host_CPUs")
        .iter()
        .filter(|c| db.get("host_cpu", c).is_some())
        .count() as i64;
    if n > 0 {
        n
    } else {
        cpu_info(host, "cpu_count").parse().unwrap_or(1)
    }
}

/// The mean utilisation of a host's CPUs, as a percentage.
fn cpu_usage(db: &Db, host: &Obj) -> f64 {
    let utils: Vec<f64> = host
        .refs("host_CPUs")
        .iter()
        .filter_map(|c| db.get("host_cpu", c))
        .map(|c| vmdevices::float(c.get("utilisation")))
        .collect();
    if utils.is_empty() {
        0.0
    } else {
        100.0 * utils.iter().sum::<f64>() / utils.len() as f64
    }
}

/// The software version of a host as oVirt's `<version>`.
fn version(host: &Obj) -> Node {
    let text = host
        .get("software_version")
        .map_get("product_version")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let parts = version_parts(text);
    Node::new("version")
        .text("build", parts[2])
        .text("full_version", format!("drover-{text}"))
        .text("major", parts[0])
        .text("minor", parts[1])
        .text("revision", parts[3])
}

/// Major, minor, build and revision of a version text (`0.3.1` is 0, 3, 1, 0).
fn version_parts(text: &str) -> [i64; 4] {
    let mut parts = [0; 4];
    for (slot, p) in parts.iter_mut().zip(text.split(['.', '-'])) {
        *slot = p.trim().parse().unwrap_or(0);
    }
    parts
}

/// Whether a host is the pool's master, oVirt's storage pool manager.
fn is_spm(db: &Db, host: &Obj) -> bool {
    model::pool(db).is_some_and(|p| p.str("master") == &*host.r)
}

/// A host as oVirt shows it.
pub fn render(db: &Db, host: &Obj) -> Node {
    let pm = !host.str("power_on_mode").is_empty();
    let id = host.uuid();
    let m = metrics(db, host);
    let total = m.map_or(0, |m| m.int("memory_total"));
    let free = m.map_or(0, |m| m.int("memory_free"));
    let vms = running_vms(db, host);
    let active = vms
        .iter()
        .filter(|v| v.str("power_state") == "Running")
        .count();
    let node = entity("host", "hosts", id)
        .text("name", host.str("name_label"))
        .text("description", host.str("name_description"))
        .text("comment", host.other(COMMENT_KEY).unwrap_or(""));
    with_links(node, &format!("hosts/{id}"), ACTIONS, SUBS)
        .text("address", host.str("address"))
        .child(
            Node::new("cpu")
                .text("name", cpu_info(host, "modelname"))
                .text("speed", cpu_info(host, "speed").parse::<i64>().unwrap_or(0))
                .child(
                    Node::new("topology")
                        .text("cores", cpu_count(db, host))
                        .text("sockets", 1)
                        .text("threads", 1),
                ),
        )
        .text("external_status", "ok")
        .child(Node::new("ksm").text("enabled", false))
        .text("max_scheduling_memory", free)
        .text("memory", total)
        .child(
            Node::new("power_management")
                .text("automatic_pm_enabled", pm)
                .text("enabled", pm)
                .text("kdump_detection", false),
        )
        .child(
            Node::new("spm")
                .text("priority", 5)
                .text("status", if is_spm(db, host) { "spm" } else { "none" }),
        )
        .text("status", status(db, host))
        .child(
            Node::new("summary")
                .text("active", active)
                .text("migrating", 0)
                .text("total", vms.len()),
        )
        .text("type", "rhel")
        .text("update_available", false)
        .child(version(host))
        .child(clusters::cluster_ref(db))
}

async fn update(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let host = host(api, id)?;
    let body = req.body("host")?;
    let r = host.r.to_string();
    if body
        .text_at("address")
        .is_some_and(|a| a != host.str("address"))
    {
        return Err(ApiError::Conflict(
            "Cannot edit Host. Host parameters cannot be modified while Host is operational.\n\
             Please switch Host to Maintenance mode first."
                .into(),
        ));
    }
    if let Some(name) = body
        .text_at("name")
        .filter(|n| *n != host.str("name_label"))
    {
        if !model::VM_NAMES.accepts(name) {
            return Err(ApiError::BadRequest(
                "Host name must be formed of alphanumeric characters, numbers or \"-_.\"".into(),
            ));
        }
        let taken = api.engine.read(|db| {
            db.all("host")
                .any(|h| h.str("name_label") == name && *h.r != *r)
        });
        if taken {
            return Err(ApiError::Conflict(
                "Cannot edit Host. The Host name is already in use, please choose a unique name \
                 and try again."
                    .into(),
            ));
        }
        api.set(req, "host", &r, "name_label", Value::str(name))
            .await?;
    }
    api.update_description_comment(req, "host", &host, &body)
        .await?;
    Resp::ok(api.engine.read(|db| {
        db.get("host", &r)
            .map(|h| render(db, h))
            .ok_or_else(|| ApiError::not_found("Host", id))
    })?)
}

fn list(api: &Api, req: &Req) -> ApiResult<Resp> {
    let target = search::object_type("hosts")
        .ok_or_else(|| ApiError::Internal("no Hosts search type".into()))?;
    let nodes = api.engine.read(|db| {
        let mut subjects: Vec<HostSubject> = db
            .all("host")
            .map(|h| HostSubject { host: h, db })
            .collect();
        subjects.sort_by(|a, b| a.host.str("name_label").cmp(b.host.str("name_label")));
        listing::select(req, target, subjects)
            .map(|list| list.iter().map(|s| render(db, s.host)).collect::<Vec<_>>())
    })?;
    Resp::ok(collection("hosts", nodes))
}

/// A host's statistics: memory from its metrics, CPU from its CPUs' utilisation (the host
/// reports busy time as a whole, so it is all `user`).
fn statistics(db: &Db, host: &Obj) -> Vec<Stat> {
    let m = metrics(db, host);
    let total = m.map_or(0, |m| m.int("memory_total"));
    let free = m.map_or(0, |m| m.int("memory_free"));
    let busy = cpu_usage(db, host);
    vec![
        Stat::bytes("memory.total", "Total memory", total),
        Stat::bytes("memory.used", "Used memory", (total - free).max(0)),
        Stat::bytes("memory.free", "Free memory", free),
        Stat::percent("cpu.current.user", "User CPU usage", busy),
        Stat::percent("cpu.current.idle", "Idle CPU usage", 100.0 - busy),
    ]
}

/// The name oVirt gives an interface: a VLAN's is its device and tag (`eth0.100`).
fn nic_name(pif: &Obj) -> String {
    let device = pif.str("device");
    let tag = pif.int("VLAN");
    if tag >= 0 && !device.ends_with(&format!(".{tag}")) {
        format!("{device}.{tag}")
    } else {
        device.to_string()
    }
}

/// oVirt's boot protocol of an interface's IPv4 configuration.
fn boot_protocol(mode: &str) -> &'static str {
    match mode {
        "DHCP" => "dhcp",
        "Static" => "static",
        _ => "none",
    }
}

/// A host's interface (a PIF) as oVirt's `<host_nic>`.
pub fn render_nic(db: &Db, host: &Obj, pif: &Obj) -> Node {
    let base = format!("hosts/{}/nics", host.uuid());
    let id = pif.uuid();
    let m = db.get("PIF_metrics", pif.str("metrics"));
    let up = m.map_or(pif.bool("currently_attached"), |m| {
        m.bool("carrier") || pif.bool("currently_attached")
    });
    let node = entity("host_nic", &base, id).text("name", nic_name(pif));
    let mut node = with_links(node, &format!("{base}/{id}"), &[], &["statistics"])
        .text(
            "boot_protocol",
            boot_protocol(pif.str("ip_configuration_mode")),
        )
        .text("bridged", true);
    if !pif.str("IP").is_empty() {
        node.push(
            Node::new("ip")
                .text("address", pif.str("IP"))
                .text("gateway", pif.str("gateway"))
                .text("netmask", pif.str("netmask"))
                .text("version", "v4"),
        );
    }
    node = node
        .child(Node::new("mac").text("address", pif.str("MAC")))
        .text("mtu", pif.int("MTU"));
    if let Some(speed) = m.map(|m| m.int("speed")).filter(|s| *s > 0) {
        node = node.text("speed", speed.saturating_mul(1_000_000));
    }
    node = node.text("status", if up { "up" } else { "down" });
    if let Some(tagged) = db
        .get("VLAN", pif.str("VLAN_master_of"))
        .and_then(|v| db.get("PIF", v.str("tagged_PIF")))
    {
        node = node
            .text("base_interface", nic_name(tagged))
            .child(Node::new("vlan").attr("id", pif.int("VLAN")));
    }
    if let Some(bond) = pif
        .refs("bond_master_of")
        .iter()
        .find_map(|b| db.get("Bond", b))
    {
        node.push(bonding(db, &base, bond));
    }
    node = node.child(host_ref(host));
    match db.get("network", pif.str("network")) {
        Some(net) if pif.str("network") != NULL_REF => {
            node.child(entity("network", "networks", net.uuid()))
        }
        _ => node,
    }
}

/// A bond's `<bonding>`: its mode and its member interfaces.
fn bonding(db: &Db, base: &str, bond: &Obj) -> Node {
    let members = bond.refs("slaves");
    let slaves = members
        .iter()
        .filter_map(|s| db.get("PIF", s))
        .map(|s| entity("host_nic", base, s.uuid()));
    Node::new("bonding")
        .child(
            Node::list("options").child(
                Node::new("option")
                    .text("name", "mode")
                    .text("value", bond.str("mode")),
            ),
        )
        .child(Node::list("slaves").children(slaves))
}

/// The PIFs of a host, by name.
fn host_pifs<'a>(db: &'a Db, host: &Obj) -> Vec<&'a Obj> {
    let mut pifs: Vec<&Obj> = host
        .refs("PIFs")
        .iter()
        .filter_map(|p| db.get("PIF", p))
        .map(|p| &**p)
        .collect();
    pifs.sort_by_key(|p| nic_name(p));
    pifs
}

/// Handles `/hosts/{id}/nics/...`: the host's interfaces and their statistics.
fn nics(api: &Api, req: &Req, host: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    if req.method != Method::GET {
        return Err(no_such_resource(
            req,
            &format!("/hosts/{}/nics", host.uuid()),
            rest,
        ));
    }
    let Some((nic, tail)) = rest.split_first() else {
        let nodes = api.engine.read(|db| {
            host_pifs(db, host)
                .into_iter()
                .map(|p| render_nic(db, host, p))
                .collect::<Vec<_>>()
        });
        return Resp::ok(collection("host_nics", limit(nodes, req.max()?)));
    };
    let pif = api.by_id("PIF", nic, "HostNic")?;
    if pif.str("host") != &*host.r {
        return Err(ApiError::not_found("HostNic", nic));
    }
    match tail {
        [] => Resp::ok(api.engine.read(|db| render_nic(db, host, &pif))),
        ["statistics", rest @ ..] => {
            let stats = api.engine.read(|db| nic_statistics(db, &pif));
            let base = format!("hosts/{}/nics/{nic}", host.uuid());
            let owner = entity("host_nic", &format!("hosts/{}/nics", host.uuid()), nic);
            vmdevices::statistics_resp(req, &base, owner, stats, rest)
        }
        _ => Err(no_such_resource(
            req,
            &format!("/hosts/{}/nics", host.uuid()),
            rest,
        )),
    }
}

/// An interface's statistics: its data rates from its metrics.
fn nic_statistics(db: &Db, pif: &Obj) -> Vec<Stat> {
    Stat::data_rates(db.get("PIF_metrics", pif.str("metrics")).map(|m| &**m)).to_vec()
}

async fn act(api: &Api, req: &Req, host: &Obj, action: &str) -> ApiResult<Resp> {
    let body = req.body("action")?;
    match action {
        "activate" => activate(api, req, host, &body).await,
        "deactivate" => deactivate(api, req, host, &body).await,
        "fence" => fence(api, req, host, &body).await,
        _ => {
            api.action(
                req,
                &body,
                Op::Net(NetOp::PifScan {
                    host: host.r.to_string(),
                }),
                "Refreshing host capabilities",
            )
            .await
        }
    }
}

/// `activate`: takes a host in maintenance back (the core's `host.enable`).
async fn activate(api: &Api, req: &Req, host: &Obj, body: &Node) -> ApiResult<Resp> {
    match api.engine.read(|db| status(db, host)) {
        "up" => Err(ApiError::Conflict(
            "Cannot activate Host. Host in Up status.".into(),
        )),
        "non_responsive" => Err(ApiError::Conflict(
            "Cannot activate Host. Host is in non responsive state.".into(),
        )),
        _ => {
            let op = Op::Host {
                host: host.r.to_string(),
                action: HostAction::Enable,
            };
            api.action(req, body, op, "Activating host").await
        }
    }
}

/// `deactivate` (maintenance): the core's `host.disable`, then `host.evacuate`, which moves
/// the host's VMs where the scheduler places them; refused as oVirt refuses it when the VMs
/// running on the host have no other host of the cluster to go to. A VM that cannot move
/// keeps the host preparing for maintenance, with an event saying why.
async fn deactivate(api: &Api, req: &Req, host: &Obj, body: &Node) -> ApiResult<Resp> {
    let (status, running) = api
        .engine
        .read(|db| (status(db, host), running_vms(db, host).len()));
    if status == "maintenance" {
        return Err(ApiError::Conflict(
            "Cannot switch Host to Maintenance mode. Host is already in Maintenance mode.".into(),
        ));
    }
    if running > 0 && status == "non_responsive" {
        return Err(ApiError::Conflict(
            "Cannot switch Host to Maintenance mode.\nHost still has running VMs on it and is in \
             Non Responsive state."
                .into(),
        ));
    }
    let others_up = api.engine.read(|db| {
        db.all("host")
            .any(|h| h.r != host.r && self::status(db, h) == "up")
    });
    if running > 0 && !others_up {
        let cluster = api.engine.read(model::cluster_name);
        return Err(ApiError::Conflict(format!(
            "The following Hosts have running VMs and cannot be switched to maintenance mode: \
             {}.\nPlease ensure that the following Clusters have at least one Host in UP state: \
             {cluster}.",
            host.str("name_label")
        )));
    }
    api.op(
        req,
        Op::Host {
            host: host.r.to_string(),
            action: HostAction::Disable,
        },
    )
    .await?;
    let op = Op::Host {
        host: host.r.to_string(),
        action: HostAction::Evacuate,
    };
    api.action(req, body, op, "Switching host to maintenance")
        .await
}

/// The fence types oVirt knows.
const FENCE_TYPES: &[&str] = &["manual", "restart", "start", "status", "stop"];

/// `fence`: through the host's fence agent (see `fenceagents`), `status` reports its power,
/// `start` switches it on, `stop` fences it (switched off, then its VMs are down and its highly
/// available VMs restart elsewhere) and `restart` does both. Without an agent these answer as
/// oVirt does. `manual` confirms that a host that does not respond was rebooted by hand: its
/// VMs are then down and its highly available VMs restart elsewhere.
async fn fence(api: &Api, req: &Req, host: &Obj, body: &Node) -> ApiResult<Resp> {
    let kind = body
        .text_at("fence_type")
        .ok_or_else(|| ApiError::BadRequest("Action [fenceType] required for fence".into()))?
        .to_ascii_lowercase();
    if !FENCE_TYPES.contains(&kind.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "\"{kind}\" is not a fence type; use one of {}",
            FENCE_TYPES.join(", ")
        )));
    }
    let op = |action: HostAction| Op::Host {
        host: host.r.to_string(),
        action,
    };
    let has_agent = !host.str("power_on_mode").is_empty();
    match kind.as_str() {
        "status" if !has_agent => Resp::ok(
            Node::new("action")
                .child(Node::new("fault").text(
                    "reason",
                    format!(
                        "Invalid fence agents defined for host '{}'.",
                        host.str("hostname")
                    ),
                ))
                .text("fence_type", "status")
                .text("status", "failed"),
        ),
        "status" => {
            let power = match api.op(req, op(HostAction::PowerStatus)).await? {
                Reply::Value(v) => v.as_str().unwrap_or("unknown").to_string(),
                _ => "unknown".into(),
            };
            Resp::ok(
                Node::new("action")
                    .child(Node::new("power_management").text("status", power))
                    .text("fence_type", "status")
                    .text("status", "complete"),
            )
        }
        "manual" => {
            let (status, running) = api
                .engine
                .read(|db| (status(db, host), running_vms(db, host).len()));
            if !matches!(status, "maintenance" | "non_responsive" | "down") {
                return Err(ApiError::Conflict(
                    "Cannot confirm 'Host has been rebooted' Host. Valid Host statuses are \"Non \
                     operational\", \"Maintenance\" or \"Connecting\"."
                        .into(),
                ));
            }
            if running > 0 {
                api.op(req, op(HostAction::ConfirmFenced)).await?;
            }
            Resp::ok(Node::new("action").text("status", "complete"))
        }
        _ if !has_agent => Err(ApiError::Conflict(
            "Cannot fence Host, Host fence is disabled.".into(),
        )),
        "start" => {
            api.op(req, op(HostAction::PowerOn)).await?;
            Resp::ok(Node::new("action").text("status", "complete"))
        }
        _ => {
            api.op(req, op(HostAction::PowerOff)).await?;
            if kind == "restart" {
                api.op(req, op(HostAction::PowerOn)).await?;
            }
            Resp::ok(Node::new("action").text("status", "complete"))
        }
    }
}

/// A host as the search language sees it.
pub struct HostSubject<'a> {
    /// The host.
    pub host: &'a Obj,
    /// The working set it lives in.
    pub db: &'a Db,
}

impl Subject for HostSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let (host, db) = (self.host, self.db);
        let text = |s: &str| vec![FieldValue::Text(s.to_string())];
        let num = |n: f64| vec![FieldValue::Number(n)];
        let m = metrics(db, host);
        let total = m.map_or(0, |m| m.int("memory_total"));
        let free = m.map_or(0, |m| m.int("memory_free"));
        match field {
            "name" => text(host.str("name_label")),
            "id" => text(host.uuid()),
            "address" => text(host.str("address")),
            "comment" => text(host.other(COMMENT_KEY).unwrap_or("")),
            "status" => text(status(db, host)),
            "type" => text("rhel"),
            "architecture" => text("x86_64"),
            "cluster" => text(&model::cluster_name(db)),
            "datacenter" => text(&model::datacenter_name(db)),
            "cpu_model" => text(cpu_info(host, "modelname")),
            "cpu_speed" => num(cpu_info(host, "speed").parse().unwrap_or(0.0)),
            "cpus" => num(cpu_count(db, host) as f64),
            "cpu_usage" => num(cpu_usage(db, host).round()),
            "memory" => num((total >> 20) as f64),
            "mem_usage" if total > 0 => num((100 * (total - free) / total) as f64),
            "active_vms" => num(running_vms(db, host).len() as f64),
            "migrating_vms" => num(0.0),
            "version" => version(host)
                .text_at("full_version")
                .map(text)
                .unwrap_or_default(),
            "external_status" => text("ok"),
            "update_available" => vec![FieldValue::Bool(false)],
            "tag" => tags::tag_values(host),
            _ => Vec::new(),
        }
    }

    fn related(&self, object: &str) -> Vec<Box<dyn Subject + '_>> {
        match object {
            "Vms" => running_vms(self.db, self.host)
                .into_iter()
                .map(|vm| Box::new(VmSubject { vm, db: self.db }) as Box<dyn Subject>)
                .collect(),
            "Storage" => storagedomains::related_subjects(self.db, |s| {
                s.sr.refs("PBDs").iter().any(|p| {
                    self.db
                        .get("PBD", p)
                        .is_some_and(|p| p.str("host") == &*self.host.r)
                })
            }),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_protocols() {
        assert_eq!(boot_protocol("DHCP"), "dhcp");
        assert_eq!(boot_protocol("Static"), "static");
        assert_eq!(boot_protocol("None"), "none");
    }

    #[test]
    fn versions() {
        assert_eq!(version_parts("0.3.1"), [0, 3, 1, 0]);
        assert_eq!(version_parts("4.50.3-4"), [4, 50, 3, 4]);
        assert_eq!(version_parts(""), [0, 0, 0, 0]);
    }
}
