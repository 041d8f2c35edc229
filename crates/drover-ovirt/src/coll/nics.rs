//! NICs of a VM or template: its VIFs, on the network of their vNIC profile. The oVirt name
//! and interface model live in the VIF's `other_config` (the engine's guests get virtio-net
//! NICs whatever the model says); a NIC added to a running VM is hot-plugged when `plugged`.

use std::sync::Arc;

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{NetOp, Obj, Op};
use drover_model::Value;

use crate::api::{
    collection, entity, limit, no_such_resource, parse_bool, with_links, Api, Req, Resp,
};
use crate::coll::diskattachments::{owner_path, owner_ref};
use crate::coll::vmdevices::{self, Stat};
use crate::fault::{ApiError, ApiResult};
use crate::model;
use crate::node::Node;

/// VIF `other_config` key of a NIC's oVirt name.
pub const NAME_KEY: &str = "ovirt_name";
/// VIF `other_config` key of a NIC's interface model.
pub const INTERFACE_KEY: &str = "ovirt_interface";

/// The interface models a NIC may name.
const INTERFACES: &[&str] = &["virtio", "e1000", "e1000e", "rtl8139"];

/// Device positions of a VM's VIFs.
const VIF_POSITIONS: u32 = 7;

/// Sub-collections of a VM's NIC.
const SUBS: &[&str] = &["reporteddevices", "statistics"];

/// Handles `/vms/{id}/nics/...` and `/templates/{id}/nics/...`.
pub async fn handle(api: &Api, req: &Req, owner: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    let is_vm = !model::is_template(owner);
    match (rest, &req.method) {
        ([], &Method::GET) => {
            let nodes = api.engine.read(|db| {
                vifs(db, owner)
                    .iter()
                    .map(|v| render(db, owner, v))
                    .collect::<Vec<_>>()
            });
            Resp::ok(collection("nics", limit(nodes, req.max()?)))
        }
        ([], &Method::POST) => add(api, req, owner).await,
        ([id], &Method::GET) => {
            let vif = nic(api, owner, id)?;
            Resp::ok(api.engine.read(|db| render(db, owner, &vif)))
        }
        ([id], &Method::PUT) => update(api, req, owner, id).await,
        ([id], &Method::DELETE) => remove(api, req, owner, id).await,
        ([id, "statistics", tail @ ..], &Method::GET) if is_vm => {
            let vif = nic(api, owner, id)?;
            let stats = api.engine.read(|db| statistics(db, &vif));
            let base = format!("{}/nics/{id}", owner_path(owner).1);
            let nic_ref = entity("nic", &format!("{}/nics", owner_path(owner).1), id);
            vmdevices::statistics_resp(req, &base, nic_ref, stats, tail)
        }
        ([id, "reporteddevices", tail @ ..], &Method::GET) if is_vm => {
            let vif = nic(api, owner, id)?;
            let devices = api.engine.read(|db| {
                vmdevices::reported_devices(db, owner)
                    .into_iter()
                    .filter(|(device, _)| device == vif.str("device"))
                    .map(|(_, n)| n)
                    .collect()
            });
            vmdevices::reported_resp(req, devices, tail)
        }
        _ => Err(no_such_resource(
            req,
            &format!("{}/nics", owner_path(owner).1),
            rest,
        )),
    }
}

/// The VIFs of a VM, by position.
fn vifs(db: &Db, owner: &Obj) -> Vec<Arc<Obj>> {
    let mut out: Vec<Arc<Obj>> = owner
        .refs("VIFs")
        .iter()
        .filter_map(|v| db.get("VIF", v).cloned())
        .collect();
    out.sort_by_key(|v| position(v));
    out
}

fn position(vif: &Obj) -> u32 {
    vif.str("device").parse().unwrap_or(u32::MAX)
}

/// The NIC with an oVirt id.
fn nic(api: &Api, owner: &Obj, id: &str) -> ApiResult<Arc<Obj>> {
    let vif = api.by_id("VIF", id, "Nic")?;
    if vif.str("VM") == &*owner.r {
        Ok(vif)
    } else {
        Err(ApiError::not_found("Nic", id))
    }
}

/// A NIC's oVirt name: the one it was given, else `nic<position + 1>`.
pub fn name(vif: &Obj) -> String {
    vif.other(NAME_KEY)
        .map(String::from)
        .unwrap_or_else(|| format!("nic{}", position(vif).saturating_add(1)))
}

/// Whether the NIC is in the guest: plugged into a running, paused or suspended VM; a halted
/// VM's NICs are all plugged when it starts.
fn plugged(owner: &Obj, vif: &Obj) -> bool {
    owner.str("power_state") == "Halted" || vif.bool("currently_attached")
}

/// A NIC as oVirt shows it.
pub fn render(db: &Db, owner: &Obj, vif: &Obj) -> Node {
    let (_, path) = owner_path(owner);
    let id = vif.uuid();
    let mut node = entity("nic", &format!("{path}/nics"), id).text("name", name(vif));
    if !model::is_template(owner) {
        node = with_links(node, &format!("{path}/nics/{id}"), &[], SUBS);
    }
    let profile = db.get("network", vif.str("network")).map(|n| {
        entity(
            "vnic_profile",
            "vnicprofiles",
            &model::vnic_profile_id(n.uuid()),
        )
    });
    node.text("interface", vif.other(INTERFACE_KEY).unwrap_or("virtio"))
        .text("linked", true)
        .child(Node::new("mac").text("address", vif.str("MAC")))
        .text("plugged", plugged(owner, vif))
        .text("synced", true)
        .child(owner_ref(owner))
        .opt_child(profile)
}

/// The statistics of a NIC from its VIF's metrics.
fn statistics(db: &Db, vif: &Obj) -> Vec<Stat> {
    let m = db.get("VIF_metrics", vif.str("metrics"));
    let count = |key: &str| {
        m.and_then(|m| m.other(key))
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let mut stats = Stat::data_rates(m.map(|m| &**m)).to_vec();
    stats.extend([
        Stat::counter(
            "data.total.rx",
            "Total received data",
            "bytes",
            count("rx_bytes"),
        ),
        Stat::counter(
            "data.total.tx",
            "Total transmitted data",
            "bytes",
            count("tx_bytes"),
        ),
        Stat::counter(
            "errors.total.rx",
            "Total receive errors",
            "none",
            count("rx_errors"),
        ),
        Stat::counter(
            "errors.total.tx",
            "Total transmit errors",
            "none",
            count("tx_errors"),
        ),
    ]);
    stats
}

/// The network of a `<vnic_profile>` (by id or name), or of a `<network>` as API v3 clients
/// send it; `None` when the document names neither.
fn network_of(api: &Api, body: &Node) -> ApiResult<Option<Arc<Obj>>> {
    let by = |pred: &dyn Fn(&Obj) -> bool| {
        api.engine
            .read(|db| db.all("network").find(|n| pred(n)).cloned())
    };
    if let Some(id) = body.id_at("vnic_profile") {
        return by(&|n| model::vnic_profile_id(n.uuid()) == id)
            .map(Some)
            .ok_or_else(|| ApiError::not_found("VnicProfile", id));
    }
    if let Some(name) = body.text_at("vnic_profile/name") {
        return by(&|n| n.str("name_label") == name)
            .map(Some)
            .ok_or_else(|| {
                ApiError::NotFound(format!("Entity not found: VnicProfile: name={name}"))
            });
    }
    if let Some(id) = body.id_at("network") {
        return api.by_id("network", id, "Network").map(Some);
    }
    if let Some(name) = body.text_at("network/name") {
        return by(&|n| n.str("name_label") == name)
            .map(Some)
            .ok_or_else(|| ApiError::NotFound(format!("Entity not found: Network: name={name}")));
    }
    Ok(None)
}

/// Checks an interface model.
fn interface(name: &str) -> ApiResult<&str> {
    if INTERFACES.contains(&name) {
        Ok(name)
    } else {
        Err(ApiError::BadRequest(format!(
            "\"{name}\" is not a NIC interface; use one of {}",
            INTERFACES.join(", ")
        )))
    }
}

fn flag(body: &Node, name: &str) -> ApiResult<Option<bool>> {
    body.text_at(name).map(parse_bool).transpose()
}

/// Refuses a NIC name the VM already has.
fn check_name(db: &Db, owner: &Obj, name: &str, except: Option<&str>) -> ApiResult<()> {
    if vifs(db, owner)
        .iter()
        .any(|v| self::name(v) == name && Some(&*v.r) != except)
    {
        return Err(ApiError::Conflict(format!(
            "Cannot add Interface. The VM Network Interface name \"{name}\" is already in use."
        )));
    }
    Ok(())
}

/// Refuses a link state the engine cannot give a NIC.
fn check_linked(body: &Node) -> ApiResult<()> {
    if flag(body, "linked")? == Some(false) {
        return Err(ApiError::Conflict(
            "Cannot edit Interface. This engine cannot take a NIC's link down; unplug it instead."
                .into(),
        ));
    }
    Ok(())
}

async fn add(api: &Api, req: &Req, owner: &Obj) -> ApiResult<Resp> {
    let body = req.body("nic")?;
    let name = body
        .text_at("name")
        .ok_or_else(|| ApiError::missing("Nic", "name"))?;
    let iface = interface(body.text_at("interface").unwrap_or("virtio"))?;
    let network =
        network_of(api, &body)?.ok_or_else(|| ApiError::missing("Nic", "vnic_profile.id"))?;
    check_linked(&body)?;
    let owner = api
        .obj("VM", &owner.r)
        .ok_or_else(|| ApiError::not_found("VM", owner.uuid()))?;
    let live = matches!(owner.str("power_state"), "Running" | "Paused");
    let plug = flag(&body, "plugged")?.unwrap_or(true);
    if !plug && !live {
        return Err(ApiError::Conflict(
            "Cannot add Interface. This engine plugs every NIC of a VM when it starts; add the \
             NIC while the VM runs to keep it unplugged."
                .into(),
        ));
    }
    let device = api.engine.read(|db| -> ApiResult<u32> {
        check_name(db, &owner, name, None)?;
        let used: Vec<u32> = vifs(db, &owner).iter().map(|v| position(v)).collect();
        (0..VIF_POSITIONS).find(|p| !used.contains(p)).ok_or_else(|| {
            ApiError::Conflict(format!(
                "Cannot add Interface. The VM has its maximum of {VIF_POSITIONS} network interfaces."
            ))
        })
    })?;
    let mut fields = vec![
        ("VM".to_string(), Value::str(&*owner.r)),
        ("network".into(), Value::str(&*network.r)),
        ("device".into(), Value::str(device.to_string())),
        (
            "other_config".into(),
            Value::string_map([(NAME_KEY, name), (INTERFACE_KEY, iface)]),
        ),
    ];
    if let Some(mac) = body.text_at("mac/address") {
        fields.push(("MAC".into(), Value::str(mac.to_ascii_lowercase())));
    }
    let vif = api
        .op_ref(
            req,
            Op::Create {
                class: "VIF".into(),
                fields,
            },
        )
        .await?;
    if live && plug {
        if let Err(e) = api
            .op(req, Op::Net(NetOp::VifPlug { vif: vif.clone() }))
            .await
        {
            let _ = api.destroy(req, "VIF", &vif).await;
            return Err(e);
        }
    }
    Resp::created(rendered(api, &owner, &vif)?)
}

/// A NIC of a VM rendered again after a change.
fn rendered(api: &Api, owner: &Obj, vif: &str) -> ApiResult<Node> {
    api.engine
        .read(|db| match (db.get("VM", &owner.r), db.get("VIF", vif)) {
            (Some(o), Some(v)) => Ok(render(db, o, v)),
            _ => Err(ApiError::Internal("the NIC vanished".into())),
        })
}

async fn update(api: &Api, req: &Req, owner: &Obj, id: &str) -> ApiResult<Resp> {
    let vif = nic(api, owner, id)?;
    let body = req.body("nic")?;
    let r = vif.r.to_string();
    let owner = api
        .obj("VM", &owner.r)
        .ok_or_else(|| ApiError::not_found("VM", owner.uuid()))?;
    check_linked(&body)?;
    if let Some(mac) = body.text_at("mac/address") {
        if !mac.eq_ignore_ascii_case(vif.str("MAC")) {
            return Err(ApiError::Conflict(
                "Cannot edit Interface. This engine keeps a NIC's MAC address for its life; \
                 remove the NIC and add one with the new address."
                    .into(),
            ));
        }
    }
    let mut others: Vec<(&str, Option<&str>)> = Vec::new();
    if let Some(n) = body.text_at("name").filter(|n| *n != name(&vif)) {
        api.engine.read(|db| check_name(db, &owner, n, Some(&r)))?;
        others.push((NAME_KEY, Some(n)));
    }
    if let Some(i) = body.text_at("interface") {
        others.push((INTERFACE_KEY, Some(interface(i)?)));
    }
    if !others.is_empty() {
        api.set_other(req, "VIF", &r, &others).await?;
    }
    if let Some(net) = network_of(api, &body)? {
        if *net.r != *vif.str("network") {
            api.op(
                req,
                Op::Net(NetOp::VifMove {
                    vif: r.clone(),
                    network: net.r.to_string(),
                }),
            )
            .await?;
        }
    }
    if let Some(p) = flag(&body, "plugged")? {
        set_plugged(api, req, &owner, &vif, p).await?;
    }
    Resp::ok(rendered(api, &owner, &r)?)
}

/// Plugs or unplugs a NIC of a running VM; a halted VM's NICs are all plugged when it starts.
async fn set_plugged(api: &Api, req: &Req, owner: &Obj, vif: &Obj, on: bool) -> ApiResult<()> {
    if plugged(owner, vif) == on {
        return Ok(());
    }
    if !matches!(owner.str("power_state"), "Running" | "Paused") {
        return Err(ApiError::Conflict(
            "Cannot edit Interface. This engine plugs every NIC of a VM when it starts; unplug \
             it while the VM runs, or remove it."
                .into(),
        ));
    }
    let vif = vif.r.to_string();
    let op = if on {
        NetOp::VifPlug { vif }
    } else {
        NetOp::VifUnplug { vif, force: false }
    };
    api.op(req, Op::Net(op)).await.map(|_| ())
}

/// Removes a NIC, unplugging it from a running VM first.
async fn remove(api: &Api, req: &Req, owner: &Obj, id: &str) -> ApiResult<Resp> {
    let vif = nic(api, owner, id)?;
    let r = vif.r.to_string();
    if vif.bool("currently_attached") {
        api.op(
            req,
            Op::Net(NetOp::VifUnplug {
                vif: r.clone(),
                force: false,
            }),
        )
        .await?;
    }
    api.destroy(req, "VIF", &r).await?;
    Resp::removed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_and_links() {
        assert_eq!(interface("e1000"), Ok("e1000"));
        assert!(interface("pci_passthrough").is_err());
        let down = Node::from_xml(b"<nic><linked>false</linked></nic>").unwrap();
        assert!(matches!(check_linked(&down), Err(ApiError::Conflict(_))));
        let up = Node::from_xml(b"<nic><linked>true</linked></nic>").unwrap();
        assert!(check_linked(&up).is_ok());
    }
}
