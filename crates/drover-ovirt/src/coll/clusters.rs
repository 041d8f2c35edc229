//! The `clusters` collection: the pool's one cluster, which holds every host, its update, and
//! its networks and permissions.

use axum::http::Method;
use drover_core::db::Db;
use drover_core::POLICY_KEY;
use drover_sched::PolicyKind;

use crate::api::{
    check_reference, collection, entity, no_such_resource, with_links, Api, Req, Resp,
};
use crate::coll::{datacenters, networks, permissions, storagedomains};
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::model::{self, CLUSTER_NAME_KEY};
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// `other_config` key (on the pool) of the cluster's description.
pub const DESCRIPTION_KEY: &str = "ovirt_cluster_description";
/// `other_config` key (on the pool) of the cluster's comment.
pub const COMMENT_KEY: &str = "ovirt_cluster_comment";

/// Sub-collections of the cluster.
const SUBS: &[&str] = &["networks", "permissions"];

/// Handles `/clusters/...` (and `/datacenters/{id}/clusters/...`).
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req),
        ([], &Method::POST) => Err(ApiError::Conflict(format!(
            "Cannot add Cluster. This engine's data center has one cluster, \"{}\", which holds \
             every host; rename it instead of adding another.",
            api.engine.read(model::cluster_name)
        ))),
        ([id], &Method::GET) => {
            check_id(api, id)?;
            Resp::ok(api.engine.read(render))
        }
        ([id], &Method::PUT) => update(api, req, id).await,
        ([id], &Method::DELETE) => {
            check_id(api, id)?;
            Err(ApiError::Conflict(
                "Cannot remove Cluster. Cluster contains one or more Hosts".into(),
            ))
        }
        ([id, sub, tail @ ..], _) if SUBS.contains(sub) => {
            check_id(api, id)?;
            if *sub == "networks" {
                return networks::for_cluster(api, req, tail).await;
            }
            let pool = api
                .engine
                .read(|db| model::pool(db).cloned())
                .ok_or_else(|| ApiError::not_found("Cluster", id))?;
            permissions::for_object(api, req, "cluster", &pool, tail).await
        }
        _ => Err(no_such_resource(req, "/clusters", rest)),
    }
}

/// Checks that `id` is the cluster's id.
pub fn check_id(api: &Api, id: &str) -> ApiResult<()> {
    if api.engine.read(model::cluster_id) == id {
        Ok(())
    } else {
        Err(ApiError::not_found("Cluster", id))
    }
}

fn list(api: &Api, req: &Req) -> ApiResult<Resp> {
    let target = search::object_type("clusters")
        .ok_or_else(|| ApiError::Internal("no Clusters search type".into()))?;
    let nodes = api.engine.read(|db| {
        let subjects = if model::pool(db).is_some() {
            vec![ClusterSubject { db }]
        } else {
            Vec::new()
        };
        listing::select(req, target, subjects)
            .map(|list| list.iter().map(|s| render(s.db)).collect::<Vec<_>>())
    })?;
    Resp::ok(collection("clusters", nodes))
}

/// A value of the pool's `other_config`, or "".
fn pool_other(db: &Db, key: &str) -> String {
    model::pool(db)
        .and_then(|p| p.other(key))
        .unwrap_or("")
        .to_string()
}

/// Checks that the `<cluster>` reference of an `entity` to add (`Vm`, `VmPool`) names the
/// cluster.
pub fn check_ref(db: &Db, node: &Node, entity: &str) -> ApiResult<()> {
    check_reference(
        node,
        "cluster",
        "Cluster",
        (&model::cluster_id(db), &model::cluster_name(db)),
        ApiError::missing(entity, "cluster.id|name"),
    )
}

/// A reference to the cluster.
pub fn cluster_ref(db: &Db) -> Node {
    crate::api::entity("cluster", "clusters", &model::cluster_id(db))
}

/// The cluster as oVirt shows it.
pub fn render(db: &Db) -> Node {
    let id = model::cluster_id(db);
    let node = entity("cluster", "clusters", &id)
        .text("name", model::cluster_name(db))
        .text("description", pool_other(db, DESCRIPTION_KEY))
        .text("comment", pool_other(db, COMMENT_KEY));
    let mut node = with_links(node, &format!("clusters/{id}"), &[], SUBS)
        .text("ballooning_enabled", false)
        .child(Node::new("cpu").text("architecture", "x86_64"))
        .child(Node::new("error_handling").text("on_error", "do_not_migrate"))
        .child(Node::new("fencing_policy").text("enabled", false))
        .text("ha_reservation", false)
        .child(Node::new("ksm").text("enabled", false))
        .child(Node::new("memory_policy").child(Node::new("over_commit").text("percent", 100)))
        .child(
            Node::list("supported_versions").child(datacenters::version_node(datacenters::VERSION)),
        )
        .text("threads_as_cores", false)
        .child(datacenters::version_node(datacenters::VERSION))
        .child(datacenters::datacenter_ref(db))
        .child(crate::api::entity(
            "scheduling_policy",
            "schedulingpolicies",
            pool_policy(db).id(),
        ))
        .child(
            Node::list("custom_scheduling_policy_properties").children(
                policy_properties(db)
                    .into_iter()
                    .map(|(k, v)| Node::new("property").text("name", k).text("value", v)),
            ),
        );
    if let Some(net) = networks::management_network(db) {
        node.push(crate::api::entity(
            "management_network",
            "networks",
            net.uuid(),
        ));
    }
    node
}

/// The pool's scheduling policy (`pool.other_config:scheduling_policy`).
fn pool_policy(db: &Db) -> PolicyKind {
    model::pool(db)
        .and_then(|p| p.other(POLICY_KEY))
        .and_then(PolicyKind::from_name)
        .unwrap_or(PolicyKind::None)
}

/// The policy's parameters set on the pool (`scheduling_policy:<name>` keys).
fn policy_properties(db: &Db) -> Vec<(String, String)> {
    let Some(pool) = model::pool(db) else {
        return Vec::new();
    };
    pool.get("other_config")
        .as_map()
        .unwrap_or(&[])
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str()?.strip_prefix(PARAM_PREFIX)?;
            Some((name.to_string(), v.as_str()?.to_string()))
        })
        .collect()
}

/// `pool.other_config` prefix of the scheduling policy's parameters.
const PARAM_PREFIX: &str = "scheduling_policy:";

/// The pool changes a cluster update's `scheduling_policy` (by id or name) and
/// `custom_scheduling_policy_properties` ask for; each parameter is checked by the scheduler.
fn policy_changes(body: &Node) -> ApiResult<Vec<(String, Option<String>)>> {
    let mut changes = Vec::new();
    if let Some(p) = body.get("scheduling_policy") {
        let kind = match (body.id_at("scheduling_policy"), p.text_at("name")) {
            (Some(id), _) => PolicyKind::ALL.iter().copied().find(|k| k.id() == id),
            (None, Some(name)) => PolicyKind::from_name(name),
            (None, None) => None,
        }
        .ok_or_else(|| {
            ApiError::BadRequest(
                "Cannot edit Cluster. The scheduling policy does not exist.".into(),
            )
        })?;
        changes.push((POLICY_KEY.to_string(), Some(kind.name().to_string())));
    }
    if let Some(props) = body.get("custom_scheduling_policy_properties") {
        let mut params = drover_sched::PolicyParams::default();
        for prop in props.all("property") {
            let (Some(name), Some(value)) = (prop.text_at("name"), prop.text_at("value")) else {
                return Err(ApiError::missing("Property", "name, value"));
            };
            params
                .set(name, value)
                .map_err(|e| ApiError::BadRequest(format!("Cannot edit Cluster. {e}")))?;
            changes.push((format!("{PARAM_PREFIX}{name}"), Some(value.to_string())));
        }
    }
    Ok(changes)
}

async fn update(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    check_id(api, id)?;
    let body = req.body("cluster")?;
    refuse_changes(&body)?;
    let pool = api
        .engine
        .read(|db| model::pool(db).map(|p| p.r.to_string()))
        .ok_or_else(|| ApiError::not_found("Cluster", id))?;
    if let Some(name) = body.text_at("name") {
        if !model::CLUSTER_NAMES.accepts(name) {
            return Err(ApiError::BadRequest(
                "Cluster names may only contain letters, numbers, '-', or '_'.".into(),
            ));
        }
    }
    let text = |elem: &str| {
        body.get(elem)
            .map(|n| n.text.as_deref().unwrap_or("").trim().to_string())
    };
    let mut changes: Vec<(String, Option<String>)> = policy_changes(&body)?;
    if let Some(name) = body.text_at("name") {
        changes.push((CLUSTER_NAME_KEY.to_string(), Some(name.to_string())));
    }
    for (elem, key) in [("description", DESCRIPTION_KEY), ("comment", COMMENT_KEY)] {
        if let Some(t) = text(elem) {
            changes.push((key.to_string(), (!t.is_empty()).then_some(t)));
        }
    }
    let changes: Vec<(&str, Option<&str>)> = changes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    api.set_other(req, "pool", &pool, &changes).await?;
    Resp::ok(api.engine.read(render))
}

/// Refuses an update that asks for a cluster this engine does not have (another architecture
/// or compatibility version, another data center); the values it has are accepted.
fn refuse_changes(body: &Node) -> ApiResult<()> {
    if body
        .text_at("cpu/architecture")
        .is_some_and(|a| a != "x86_64")
    {
        return Err(ApiError::Conflict(
            "Cannot edit Cluster. Its hosts are x86_64 hosts.".into(),
        ));
    }
    let (major, minor) = datacenters::VERSION;
    let differs =
        |path: &str, value: u32| body.text_at(path).is_some_and(|v| v != value.to_string());
    if differs("version/major", major) || differs("version/minor", minor) {
        return Err(ApiError::Conflict(format!(
            "Cannot edit Cluster. The only compatibility version is {major}.{minor}."
        )));
    }
    Ok(())
}

/// The cluster as the search language sees it.
pub struct ClusterSubject<'a> {
    /// The working set it lives in.
    pub db: &'a Db,
}

impl Subject for ClusterSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let (major, minor) = datacenters::VERSION;
        let value = match field {
            "name" => model::cluster_name(self.db),
            "id" => model::cluster_id(self.db),
            "description" => pool_other(self.db, DESCRIPTION_KEY),
            "comment" => pool_other(self.db, COMMENT_KEY),
            "architecture" => "x86_64".into(),
            "compatibility_level" => format!("{major}.{minor}"),
            _ => return Vec::new(),
        };
        vec![FieldValue::Text(value)]
    }

    fn related(&self, object: &str) -> Vec<Box<dyn Subject + '_>> {
        match object {
            "DataCenter" => model::pool(self.db)
                .map(|pool| {
                    Box::new(datacenters::DcSubject { pool, db: self.db }) as Box<dyn Subject>
                })
                .into_iter()
                .collect(),
            "Storage" => storagedomains::related_subjects(self.db, |s| s.attached()),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_architectures_and_versions_are_refused() {
        let same = Node::new("cluster").child(Node::new("cpu").text("architecture", "x86_64"));
        assert!(refuse_changes(&same).is_ok());
        let arm = Node::new("cluster").child(Node::new("cpu").text("architecture", "aarch64"));
        assert!(refuse_changes(&arm).is_err());
        let old = Node::new("cluster").child(datacenters::version_node((4, 6)));
        assert!(refuse_changes(&old).is_err());
    }
}
