//! The `vnicprofiles` collection: one vNIC profile per network, named as its network, with the
//! id [`model::vnic_profile_id`] of the network's uuid. A profile comes and goes with its
//! network, so adding a second profile or removing one answers 409.

use std::sync::Arc;

use axum::http::Method;
use drover_core::db::Db;
use drover_core::Obj;

use crate::api::{collection, entity, no_such_resource, with_links, Api, Req, Resp};
use crate::coll::{networks, permissions};
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::model;
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// `other_config` key (on the network) of its profile's description.
pub const DESCRIPTION_KEY: &str = "ovirt_vnic_profile_description";
/// `other_config` key (on the network) of its profile's comment.
pub const COMMENT_KEY: &str = "ovirt_vnic_profile_comment";

/// Sub-collections of a profile.
const SUBS: &[&str] = &["permissions"];

/// Handles `/vnicprofiles/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req, None),
        ([], &Method::POST) => add(api, req, None),
        ([id], &Method::GET) => {
            let net = profile_network(api, id)?;
            Resp::ok(api.engine.read(|db| render(db, &net)))
        }
        ([id], &Method::PUT) => update(api, req, id).await,
        ([id], &Method::DELETE) => remove(api, id),
        ([id, "permissions", tail @ ..], _) => {
            let net = profile_network(api, id)?;
            permissions::for_object(api, req, "network", &net, tail).await
        }
        _ => Err(no_such_resource(req, "/vnicprofiles", rest)),
    }
}

/// Handles `/networks/{id}/vnicprofiles/...`: the network's one profile.
pub async fn for_network(api: &Api, req: &Req, net: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    let own = |id: &str| {
        if model::vnic_profile_id(net.uuid()) == id {
            Ok(())
        } else {
            Err(ApiError::not_found("VnicProfile", id))
        }
    };
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req, Some(net)),
        ([], &Method::POST) => add(api, req, Some(net)),
        ([id], &Method::GET) => {
            own(id)?;
            Resp::ok(api.engine.read(|db| render(db, net)))
        }
        ([id], &Method::DELETE) => {
            own(id)?;
            remove(api, id)
        }
        _ => Err(no_such_resource(
            req,
            &format!("/networks/{}/vnicprofiles", net.uuid()),
            rest,
        )),
    }
}

/// The network whose profile has this id, in a working set.
pub fn network_of<'a>(db: &'a Db, profile_id: &str) -> Option<&'a Arc<Obj>> {
    db.all("network")
        .find(|n| model::vnic_profile_id(n.uuid()) == profile_id)
}

/// The network of the profile with an oVirt id; 404 when there is none.
pub fn profile_network(api: &Api, id: &str) -> ApiResult<Arc<Obj>> {
    api.engine
        .read(|db| network_of(db, id).cloned())
        .ok_or_else(|| ApiError::not_found("VnicProfile", id))
}

fn list(api: &Api, req: &Req, only: Option<&Obj>) -> ApiResult<Resp> {
    let target = search::object_type("vnicprofiles")
        .ok_or_else(|| ApiError::Internal("no VnicProfiles search type".into()))?;
    let nodes = api.engine.read(|db| {
        let subjects: Vec<ProfileSubject> = networks::subjects(db)
            .into_iter()
            .filter(|s| only.is_none_or(|o| o.r == s.net.r))
            .map(|s| ProfileSubject { net: s.net, db })
            .collect();
        listing::select(req, target, subjects)
            .map(|list| list.iter().map(|s| render(db, s.net)).collect::<Vec<_>>())
    })?;
    Resp::ok(collection("vnic_profiles", nodes))
}

/// The profile of a network as oVirt shows it.
pub fn render(db: &Db, net: &Obj) -> Node {
    let id = model::vnic_profile_id(net.uuid());
    let node = entity("vnic_profile", "vnicprofiles", &id)
        .text("name", networks::display_name(db, net))
        .text("description", net.other(DESCRIPTION_KEY).unwrap_or(""))
        .text("comment", net.other(COMMENT_KEY).unwrap_or(""));
    with_links(node, &format!("vnicprofiles/{id}"), &[], SUBS)
        .child(Node::new("pass_through").text("mode", "disabled"))
        .text("port_mirroring", false)
        .child(entity("network", "networks", net.uuid()))
}

fn add(api: &Api, req: &Req, under: Option<&Obj>) -> ApiResult<Resp> {
    let body = req.body("vnic_profile")?;
    body.text_at("name")
        .ok_or_else(|| ApiError::missing("VnicProfile", "name"))?;
    let net = match (under, body.id_at("network")) {
        (Some(n), _) => Arc::new(n.clone()),
        (None, Some(id)) => networks::network(api, id)?,
        (None, None) => return Err(ApiError::missing("VnicProfile", "network.id")),
    };
    let name = api.engine.read(|db| networks::display_name(db, &net));
    Err(ApiError::Conflict(format!(
        "Cannot add VM network interface profile. This engine keeps one profile per network, \
         and network '{name}' has its profile '{name}' (id {}).",
        model::vnic_profile_id(net.uuid())
    )))
}

async fn update(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let net = profile_network(api, id)?;
    let body = req.body("vnic_profile")?;
    let name = api.engine.read(|db| networks::display_name(db, &net));
    refuse_changes(&body, &name, net.uuid())?;
    let text = |elem: &str| {
        body.get(elem)
            .map(|n| n.text.as_deref().unwrap_or("").trim().to_string())
    };
    let mut changes: Vec<(&str, Option<String>)> = Vec::new();
    for (elem, key) in [("description", DESCRIPTION_KEY), ("comment", COMMENT_KEY)] {
        if let Some(t) = text(elem) {
            changes.push((key, (!t.is_empty()).then_some(t)));
        }
    }
    let changes: Vec<(&str, Option<&str>)> =
        changes.iter().map(|(k, v)| (*k, v.as_deref())).collect();
    api.set_other(req, "network", &net.r, &changes).await?;
    let node = api.engine.read(|db| {
        db.get("network", &net.r)
            .map(|n| render(db, n))
            .ok_or_else(|| ApiError::not_found("VnicProfile", id))
    })?;
    Resp::ok(node)
}

/// Refuses an update of what a profile takes from its network (its name and network) or of
/// what this engine's profiles do not have (port mirroring, pass-through).
fn refuse_changes(body: &Node, name: &str, network: &str) -> ApiResult<()> {
    let refuse = |what: &str| {
        Err(ApiError::Conflict(format!(
            "Cannot edit VM network interface profile. {what}"
        )))
    };
    if body.text_at("name").is_some_and(|n| n != name) {
        return refuse("Its name is its network's name; rename the network instead.");
    }
    if body.id_at("network").is_some_and(|n| n != network) {
        return refuse("It belongs to its network and cannot move to another one.");
    }
    if body.text_at("port_mirroring") == Some("true") {
        return refuse("Port mirroring is not supported by this engine.");
    }
    if body.text_at("pass_through/mode") == Some("enabled") {
        return refuse("Pass-through is not supported by this engine.");
    }
    Ok(())
}

fn remove(api: &Api, id: &str) -> ApiResult<Resp> {
    let net = profile_network(api, id)?;
    let name = api.engine.read(|db| networks::display_name(db, &net));
    Err(ApiError::Conflict(format!(
        "Cannot remove VM network interface profile. It is the one profile of network '{name}' \
         and goes with it; remove the network instead."
    )))
}

/// A profile as the search language sees it.
pub struct ProfileSubject<'a> {
    /// The profile's network.
    pub net: &'a Obj,
    /// The working set it lives in.
    pub db: &'a Db,
}

impl Subject for ProfileSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let net = self.net;
        let value = match field {
            "name" | "network_name" => networks::display_name(self.db, net),
            "id" => model::vnic_profile_id(net.uuid()),
            "description" => net.other(DESCRIPTION_KEY).unwrap_or("").to_string(),
            "datacenter" => model::datacenter_name(self.db),
            "passthrough" => "disabled".into(),
            "port_mirroring" => return vec![FieldValue::Bool(false)],
            _ => return Vec::new(),
        };
        vec![FieldValue::Text(value)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_a_profile_cannot_take() {
        let same = Node::new("vnic_profile")
            .text("name", "ovirtmgmt")
            .child(Node::new("network").attr("id", "n1"))
            .text("port_mirroring", "false");
        assert!(refuse_changes(&same, "ovirtmgmt", "n1").is_ok());
        let renamed = Node::new("vnic_profile").text("name", "other");
        assert!(refuse_changes(&renamed, "ovirtmgmt", "n1").is_err());
        let moved = Node::new("vnic_profile").child(Node::new("network").attr("id", "n2"));
        assert!(refuse_changes(&moved, "ovirtmgmt", "n1").is_err());
        let mirrored = Node::new("vnic_profile").text("port_mirroring", "true");
        assert!(refuse_changes(&mirrored, "ovirtmgmt", "n1").is_err());
    }
}
