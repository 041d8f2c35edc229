//! The `networks` collection: XenAPI networks as logical networks of the data center, their
//! adds (with a VLAN on the management interface), updates and removal, their vNIC profiles,
//! and the same networks as the data center and the cluster list them.
//!
//! The management network (the network of the management PIF) is oVirt's `ovirtmgmt`: while
//! it keeps the name the engine gave it at its first start ("Pool-wide network associated with
//! eth0", XenAPI's convention, which XenAPI clients keep seeing), oVirt shows it as
//! `ovirtmgmt`; a name given through either API is shown as it is.

use std::sync::Arc;

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{NetOp, Obj, Op};
use drover_model::{Value, NULL_REF};

use crate::api::{collection, entity, no_such_resource, parse_int, with_links, Api, Req, Resp};
use crate::coll::{clusters, datacenters, permissions, vnicprofiles};
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::model::{self, COMMENT_KEY};
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// The name oVirt gives its management network.
pub const MANAGEMENT_NAME: &str = "ovirtmgmt";

/// The start of the names the engine gives the networks of the interfaces it finds.
const BOOTSTRAP_PREFIX: &str = "Pool-wide network associated with ";

/// Sub-collections of a network.
const SUBS: &[&str] = &["permissions", "vnicprofiles"];

/// Handles `/networks/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req, "networks"),
        ([], &Method::POST) => add(api, req, "networks", false).await,
        ([id], &Method::GET) => get(api, id, "networks"),
        ([id], &Method::PUT) => update(api, req, id, "networks").await,
        ([id], &Method::DELETE) => remove(api, req, id).await,
        ([id, sub, tail @ ..], _) if SUBS.contains(sub) => {
            let net = network(api, id)?;
            match *sub {
                "permissions" => permissions::for_object(api, req, "network", &net, tail).await,
                _ => vnicprofiles::for_network(api, req, &net, tail).await,
            }
        }
        _ => Err(no_such_resource(req, "/networks", rest)),
    }
}

/// Handles `/datacenters/{id}/networks/...`: the data center's networks (all of them).
pub async fn for_datacenter(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    let dc = api.engine.read(model::datacenter_id);
    let base = format!("datacenters/{dc}/networks");
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req, &base),
        ([], &Method::POST) => add(api, req, &base, true).await,
        ([id], &Method::GET) => get(api, id, &base),
        ([id], &Method::PUT) => update(api, req, id, &base).await,
        ([id], &Method::DELETE) => remove(api, req, id).await,
        _ => Err(no_such_resource(req, &format!("/{base}"), rest)),
    }
}

/// Handles `/clusters/{id}/networks/...`: every network of the data center is attached to its
/// one cluster, required, and carries VMs.
pub async fn for_cluster(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    let cluster = api.engine.read(model::cluster_id);
    let base = format!("clusters/{cluster}/networks");
    match (rest, &req.method) {
        ([], &Method::GET) => {
            let max = req.max()?;
            let nodes = api.engine.read(|db| {
                sorted(db)
                    .into_iter()
                    .map(|n| render_in_cluster(db, n, &base))
                    .collect::<Vec<_>>()
            });
            Resp::ok(collection("networks", crate::api::limit(nodes, max)))
        }
        ([], &Method::POST) => {
            let body = req.body("network")?;
            let id = body
                .get_attr("id")
                .or_else(|| body.text_at("id"))
                .ok_or_else(|| ApiError::missing("Network", "id"))?;
            network(api, id)?;
            Err(ApiError::Conflict(
                "Logical Network is already attached to Cluster.".into(),
            ))
        }
        ([id], &Method::GET) => {
            let net = network(api, id)?;
            Resp::ok(api.engine.read(|db| render_in_cluster(db, &net, &base)))
        }
        ([id], &Method::DELETE) => {
            network(api, id)?;
            Err(ApiError::Conflict(
                "Cannot detach Network. Every network of this engine's data center belongs to \
                 its one cluster; remove the network instead."
                    .into(),
            ))
        }
        _ => Err(no_such_resource(req, &format!("/{base}"), rest)),
    }
}

/// The network with an oVirt id.
pub fn network(api: &Api, id: &str) -> ApiResult<Arc<Obj>> {
    api.by_id("network", id, "Network")
}

/// The management network: the network of the management interface.
pub fn management_network(db: &Db) -> Option<&Obj> {
    db.all("PIF")
        .filter(|p| p.bool("management"))
        .find_map(|p| db.get("network", p.str("network")))
        .map(|n| &**n)
}

/// Whether a network is the management network.
pub fn is_management(db: &Db, net: &Obj) -> bool {
    management_network(db).is_some_and(|m| m.r == net.r)
}

/// The name oVirt shows for a network (see the module's documentation for `ovirtmgmt`).
pub fn display_name(db: &Db, net: &Obj) -> String {
    let label = net.str("name_label");
    if is_management(db, net) && label.starts_with(BOOTSTRAP_PREFIX) {
        MANAGEMENT_NAME.to_string()
    } else {
        label.to_string()
    }
}

/// The VLAN tag of a network: the tag of its VLAN interfaces, if it has any.
pub fn vlan_tag(db: &Db, net: &Obj) -> Option<i64> {
    net.refs("PIFs")
        .iter()
        .filter_map(|p| db.get("PIF", p))
        .map(|p| p.int("VLAN"))
        .find(|tag| *tag >= 0)
}

/// Every network, by name.
fn sorted(db: &Db) -> Vec<&Obj> {
    let mut nets: Vec<&Obj> = db.all("network").map(|n| &**n).collect();
    nets.sort_by_key(|n| display_name(db, n));
    nets
}

fn list(api: &Api, req: &Req, base: &str) -> ApiResult<Resp> {
    let target = search::object_type("networks")
        .ok_or_else(|| ApiError::Internal("no Networks search type".into()))?;
    let nodes = api.engine.read(|db| {
        listing::select(req, target, subjects(db)).map(|list| {
            list.iter()
                .map(|s| render(db, s.net, base))
                .collect::<Vec<_>>()
        })
    })?;
    Resp::ok(collection("networks", nodes))
}

fn get(api: &Api, id: &str, base: &str) -> ApiResult<Resp> {
    let net = network(api, id)?;
    Resp::ok(api.engine.read(|db| render(db, &net, base)))
}

/// The usages of a network: every network carries VMs; the management network manages too.
fn usages(db: &Db, net: &Obj) -> Node {
    let mut list = Node::list("usages").text("usage", "vm");
    if is_management(db, net) {
        list.push(Node::leaf("usage", "management"));
    }
    list
}

/// A network as oVirt shows it, with its href under `base` (`networks`, or the data center's
/// networks).
pub fn render(db: &Db, net: &Obj, base: &str) -> Node {
    let id = net.uuid();
    let node = entity("network", base, id)
        .text("name", display_name(db, net))
        .text("description", net.str("name_description"))
        .text("comment", net.other(COMMENT_KEY).unwrap_or(""));
    let mut node = with_links(node, &format!("networks/{id}"), &[], SUBS)
        .text("mtu", net.int("MTU"))
        .text("required", true)
        .text("status", "operational")
        .text("stp", false)
        .child(usages(db, net))
        .text("vdsm_name", net.str("bridge"));
    if let Some(tag) = vlan_tag(db, net) {
        node.push(Node::new("vlan").attr("id", tag));
    }
    node.child(datacenters::datacenter_ref(db))
}

/// A network as its cluster lists it: the network with its `<cluster>`.
fn render_in_cluster(db: &Db, net: &Obj, base: &str) -> Node {
    render(db, net, base)
        .text("display", false)
        .child(clusters::cluster_ref(db))
}

/// The network another one already has under `name`, if any.
fn named(db: &Db, name: &str, except: Option<&str>) -> Option<Arc<Obj>> {
    db.all("network")
        .find(|n| display_name(db, n) == name && Some(&*n.r) != except)
        .cloned()
}

fn name_in_use(action: &str, name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "Cannot {action} Network. The name of the logical network '{name}' is already used by an \
         existing logical network in the same data-center.\n-Please choose a different name."
    ))
}

/// The VLAN tag a document asks for (`<vlan id="N"/>` or `<vlan><id>N</id></vlan>`).
fn requested_vlan(body: &Node) -> ApiResult<Option<i64>> {
    body.id_at("vlan")
        .map(|v| parse_int("vlan.id", v))
        .transpose()
}

/// The MTU a document asks for; 0 is the default (left alone).
fn requested_mtu(body: &Node) -> ApiResult<Option<i64>> {
    Ok(body
        .text_at("mtu")
        .map(|m| parse_int("mtu", m))
        .transpose()?
        .filter(|m| *m != 0))
}

/// Adds a network; `in_datacenter` when the request names the data center by its path, so
/// the document needs no `<data_center>`.
async fn add(api: &Api, req: &Req, base: &str, in_datacenter: bool) -> ApiResult<Resp> {
    let body = req.body("network")?;
    let name = body
        .text_at("name")
        .ok_or_else(|| ApiError::missing("Network", "name"))?
        .to_string();
    if !in_datacenter || body.get("data_center").is_some() {
        api.engine
            .read(|db| datacenters::check_ref(db, &body, "data_center", "Network"))?;
    }
    let vlan = requested_vlan(&body)?;
    let mtu = requested_mtu(&body)?;
    if api.engine.read(|db| named(db, &name, None)).is_some() {
        return Err(name_in_use("add", &name));
    }
    let uplink = match vlan {
        Some(tag) => Some(vlan_uplink(api, tag)?),
        None => None,
    };
    let mut fields = vec![
        ("name_label".to_string(), Value::str(&name)),
        (
            "name_description".to_string(),
            Value::str(body.text_at("description").unwrap_or("")),
        ),
    ];
    if let Some(m) = mtu {
        fields.push(("MTU".into(), Value::Int(m)));
    }
    if let Some(c) = body.text_at("comment") {
        fields.push(("other_config".into(), Value::string_map([(COMMENT_KEY, c)])));
    }
    let r = api
        .op_ref(
            req,
            Op::Create {
                class: "network".into(),
                fields,
            },
        )
        .await?;
    if let (Some(tag), Some(pif)) = (vlan, uplink) {
        let made = api
            .op(
                req,
                Op::Net(NetOp::VlanCreate {
                    pif,
                    tag,
                    network: r.clone(),
                }),
            )
            .await;
        if let Err(e) = made {
            let _ = api.destroy(req, "network", &r).await;
            return Err(e);
        }
    }
    let node = api.engine.read(|db| {
        db.get("network", &r)
            .map(|n| render(db, n, base))
            .ok_or_else(|| ApiError::Internal("the new network vanished".into()))
    })?;
    Resp::created(node)
}

/// The interface a new VLAN goes on: the management interface's untagged device. Refuses a
/// tag another network of the data center has.
fn vlan_uplink(api: &Api, tag: i64) -> ApiResult<String> {
    api.engine.read(|db| {
        if db.all("network").any(|n| vlan_tag(db, n) == Some(tag)) {
            return Err(ApiError::Conflict(format!(
                "Cannot add Network. The specified VLAN ID ({tag}) is already in use."
            )));
        }
        let mgmt = db
            .all("PIF")
            .find(|p| p.bool("management"))
            .ok_or_else(|| {
                ApiError::Conflict(
                    "Cannot add Network. The host has no management interface to carry the VLAN."
                        .into(),
                )
            })?;
        db.all("PIF")
            .find(|p| {
                p.str("host") == mgmt.str("host")
                    && p.str("device") == mgmt.str("device")
                    && p.int("VLAN") < 0
            })
            .map(|p| p.r.to_string())
            .ok_or_else(|| {
                ApiError::Conflict(
                    "Cannot add Network. The management interface has no untagged device to \
                     carry the VLAN."
                        .into(),
                )
            })
    })
}

async fn update(api: &Api, req: &Req, id: &str, base: &str) -> ApiResult<Resp> {
    let net = network(api, id)?;
    let body = req.body("network")?;
    let r = net.r.to_string();
    if let Some(tag) = requested_vlan(&body)? {
        if api.engine.read(|db| vlan_tag(db, &net)) != Some(tag) {
            return Err(ApiError::Conflict(
                "Cannot edit Network. Its VLAN cannot change; add a network with the new VLAN \
                 instead."
                    .into(),
            ));
        }
    }
    if let Some(name) = body.text_at("name") {
        let current = api.engine.read(|db| display_name(db, &net));
        if name != current {
            if api.engine.read(|db| named(db, name, Some(&r))).is_some() {
                return Err(name_in_use("edit", name));
            }
            api.set(req, "network", &r, "name_label", Value::str(name))
                .await?;
        }
    }
    api.update_description_comment(req, "network", &net, &body)
        .await?;
    if let Some(mtu) = requested_mtu(&body)? {
        if mtu != net.int("MTU") {
            api.set(req, "network", &r, "MTU", Value::Int(mtu)).await?;
        }
    }
    Resp::ok(api.engine.read(|db| {
        db.get("network", &r)
            .map(|n| render(db, n, base))
            .ok_or_else(|| ApiError::not_found("Network", id))
    })?)
}

/// oVirt's refusal to remove a network some VMs or templates use.
fn in_use(entity: (&str, &str), names: &[String]) -> ApiError {
    let (one, many) = entity;
    ApiError::Conflict(match names {
        [name] => format!(
            "Cannot remove Network. This logical network is used by {one}: {name}\n - Please \
             remove it from this {one} and try again."
        ),
        _ => format!(
            "Cannot remove Network. This logical network is used by {many}: ({}): {}\n - Please \
             detach {many} using this logical network and try again.",
            names.len(),
            names.join(", ")
        ),
    })
}

/// Names of the VMs (or templates) with a NIC on a network.
fn users(db: &Db, net: &Obj, templates: bool) -> Vec<String> {
    let mut names: Vec<String> = net
        .refs("VIFs")
        .iter()
        .filter_map(|v| db.get("VIF", v))
        .filter_map(|v| db.get("VM", v.str("VM")))
        .filter(|vm| {
            if templates {
                model::is_template(vm)
            } else {
                model::is_vm(vm)
            }
        })
        .map(|vm| vm.str("name_label").to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn remove(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let net = network(api, id)?;
    let (management, vms, templates, vlans) = api.engine.read(|db| {
        let vlans: Vec<String> = net
            .refs("PIFs")
            .iter()
            .filter_map(|p| db.get("PIF", p))
            .map(|p| p.str("VLAN_master_of").to_string())
            .filter(|v| v != NULL_REF && !v.is_empty())
            .collect();
        (
            is_management(db, &net).then(|| display_name(db, &net)),
            users(db, &net, false),
            users(db, &net, true),
            vlans,
        )
    });
    if let Some(name) = management {
        return Err(ApiError::Conflict(format!(
            "The Management Network ('{name}') is mandatory and cannot be removed."
        )));
    }
    if !vms.is_empty() {
        return Err(in_use(("virtual machine", "virtual machines"), &vms));
    }
    if !templates.is_empty() {
        return Err(in_use(("template", "templates"), &templates));
    }
    for vlan in vlans {
        api.destroy(req, "VLAN", &vlan).await?;
    }
    api.destroy(req, "network", &net.r).await?;
    Resp::removed()
}

/// Every network as the search language sees it, by name.
pub fn subjects(db: &Db) -> Vec<NetSubject<'_>> {
    sorted(db)
        .into_iter()
        .map(|net| NetSubject { net, db })
        .collect()
}

/// A network as the search language sees it.
pub struct NetSubject<'a> {
    /// The network.
    pub net: &'a Obj,
    /// The working set it lives in.
    pub db: &'a Db,
}

impl Subject for NetSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let net = self.net;
        let text = |s: &str| vec![FieldValue::Text(s.to_string())];
        match field {
            "name" => text(&display_name(self.db, net)),
            "id" => text(net.uuid()),
            "description" => text(net.str("name_description")),
            "comment" => text(net.other(COMMENT_KEY).unwrap_or("")),
            "datacenter" => text(&model::datacenter_name(self.db)),
            "mtu" => vec![FieldValue::Number(net.int("MTU") as f64)],
            "stp" => vec![FieldValue::Bool(false)],
            "vmnetwork" => vec![FieldValue::Bool(true)],
            "vlanid" => vlan_tag(self.db, net)
                .map(|t| vec![FieldValue::Number(t as f64)])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_and_mtu_of_documents() {
        let n = Node::new("network")
            .child(Node::new("vlan").attr("id", "100"))
            .text("mtu", "0");
        assert_eq!(requested_vlan(&n).unwrap(), Some(100));
        assert_eq!(requested_mtu(&n).unwrap(), None);
        let n = Node::new("network")
            .child(Node::new("vlan").text("id", "7"))
            .text("mtu", "9000");
        assert_eq!(requested_vlan(&n).unwrap(), Some(7));
        assert_eq!(requested_mtu(&n).unwrap(), Some(9000));
        let bad = Node::new("network").child(Node::new("vlan").attr("id", "x"));
        assert!(requested_vlan(&bad).is_err());
    }

    #[test]
    fn in_use_messages() {
        let one = in_use(("virtual machine", "virtual machines"), &["a".into()]);
        assert!(one.detail().contains("used by virtual machine: a"));
        let two = in_use(
            ("virtual machine", "virtual machines"),
            &["a".into(), "b".into()],
        );
        assert!(two.detail().contains("virtual machines: (2): a, b"));
    }
}
