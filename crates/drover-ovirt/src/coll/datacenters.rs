//! The `datacenters` collection: the pool as the engine's one data center, its update, and its
//! sub-collections (its cluster, its attached storage domains, its networks, permissions).

use axum::http::Method;
use drover_core::db::Db;
use drover_core::Obj;

use crate::api::{
    check_reference, collection, entity, no_such_resource, with_links, Api, Req, Resp,
};
use crate::coll::{clusters, networks, permissions, storagedomains};
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::model::{self, COMMENT_KEY, DC_NAME_KEY};
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// The compatibility version of the data center and its cluster.
pub const VERSION: (u32, u32) = (4, 7);

/// Sub-collections of the data center.
const SUBS: &[&str] = &["clusters", "networks", "permissions", "storagedomains"];

/// Handles `/datacenters/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req),
        ([], &Method::POST) => Err(ApiError::Conflict(format!(
            "Cannot add Data Center. This engine manages one data center, the pool of its hosts \
             (\"{}\"); rename it instead of adding another.",
            api.engine.read(model::datacenter_name)
        ))),
        ([id], &Method::GET) => {
            let pool = pool(api, id)?;
            Resp::ok(api.engine.read(|db| render(db, &pool)))
        }
        ([id], &Method::PUT) => update(api, req, id).await,
        ([id], &Method::DELETE) => {
            pool(api, id)?;
            Err(ApiError::Conflict(
                "Cannot remove Data Center. This engine manages one data center, the pool of its \
                 hosts, and it cannot be removed."
                    .into(),
            ))
        }
        ([id, sub, tail @ ..], _) if SUBS.contains(sub) => {
            let pool = pool(api, id)?;
            match *sub {
                "clusters" => clusters::handle(api, req, tail).await,
                "networks" => networks::for_datacenter(api, req, tail).await,
                "permissions" => permissions::for_object(api, req, "pool", &pool, tail).await,
                _ => storagedomains::attached(api, req, tail).await,
            }
        }
        _ => Err(no_such_resource(req, "/datacenters", rest)),
    }
}

/// The pool, when `id` is the data center's id.
fn pool(api: &Api, id: &str) -> ApiResult<std::sync::Arc<Obj>> {
    api.engine
        .read(|db| {
            model::pool(db)
                .filter(|p| p.uuid() == id)
                .and_then(|p| db.get("pool", &p.r).cloned())
        })
        .ok_or_else(|| ApiError::not_found("DataCenter", id))
}

fn list(api: &Api, req: &Req) -> ApiResult<Resp> {
    let target = search::object_type("datacenters")
        .ok_or_else(|| ApiError::Internal("no DataCenter search type".into()))?;
    let nodes = api.engine.read(|db| {
        let subjects: Vec<DcSubject> = model::pool(db)
            .map(|pool| DcSubject { pool, db })
            .into_iter()
            .collect();
        listing::select(req, target, subjects)
            .map(|list| list.iter().map(|s| render(db, s.pool)).collect::<Vec<_>>())
    })?;
    Resp::ok(collection("data_centers", nodes))
}

/// A `<version>` of `major.minor`.
pub fn version_node((major, minor): (u32, u32)) -> Node {
    Node::new("version")
        .text("major", major)
        .text("minor", minor)
}

/// A reference to the data center.
pub fn datacenter_ref(db: &Db) -> Node {
    entity("data_center", "datacenters", &model::datacenter_id(db))
}

/// oVirt's status of the data center: `up` while a data domain is active, `maintenance` when
/// its data domains are all in maintenance, `uninitialized` without any, and
/// `not_operational` while its host does not respond.
pub fn status(db: &Db) -> &'static str {
    let host_live = db.all("host").any(|h| {
        db.get("host_metrics", h.str("metrics"))
            .is_some_and(|m| m.bool("live"))
    });
    let data: Vec<&'static str> = db
        .all("SR")
        .filter(|sr| !storagedomains::is_iso(sr))
        .map(|sr| storagedomains::status(db, sr))
        .filter(|s| *s != "unattached")
        .collect();
    if !host_live {
        "not_operational"
    } else if data.contains(&"active") {
        "up"
    } else if data.is_empty() {
        "uninitialized"
    } else {
        "maintenance"
    }
}

/// The data center as oVirt shows it.
pub fn render(db: &Db, pool: &Obj) -> Node {
    let id = pool.uuid();
    let node = entity("data_center", "datacenters", id)
        .text("name", model::datacenter_name(db))
        .text("description", pool.str("name_description"))
        .text("comment", pool.other(COMMENT_KEY).unwrap_or(""));
    with_links(node, &format!("datacenters/{id}"), &[], SUBS)
        .text("local", false)
        .text("quota_mode", "disabled")
        .text("status", status(db))
        .text("storage_format", "v5")
        .child(Node::list("supported_versions").child(version_node(VERSION)))
        .child(version_node(VERSION))
}

async fn update(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    let pool = pool(api, id)?;
    let body = req.body("data_center")?;
    refuse_changes(&body)?;
    let r = pool.r.to_string();
    if let Some(name) = body.text_at("name") {
        if !model::CLUSTER_NAMES.accepts(name) {
            return Err(ApiError::BadRequest(
                "Data Center name may only contain letters, numbers, '-', or '_'.".into(),
            ));
        }
        api.set_other(req, "pool", &r, &[(DC_NAME_KEY, Some(name))])
            .await?;
    }
    api.update_description_comment(req, "pool", &pool, &body)
        .await?;
    let node = api.engine.read(|db| {
        model::pool(db)
            .map(|p| render(db, p))
            .ok_or_else(|| ApiError::not_found("DataCenter", id))
    })?;
    Resp::ok(node)
}

/// Refuses an update that asks for a data center this engine does not have (a local one,
/// quotas, another compatibility version); the values it has are accepted.
fn refuse_changes(body: &Node) -> ApiResult<()> {
    let differs = |path: &str, value: &str| body.text_at(path).is_some_and(|v| v != value);
    if differs("local", "false") {
        return Err(ApiError::Conflict(
            "Cannot edit Data Center. Its storage is shared by its cluster; it cannot become a \
             local data center."
                .into(),
        ));
    }
    if differs("quota_mode", "disabled") {
        return Err(ApiError::Conflict(
            "Cannot edit Data Center. This engine has no quotas; quota_mode stays disabled.".into(),
        ));
    }
    let (major, minor) = VERSION;
    if differs("version/major", &major.to_string()) || differs("version/minor", &minor.to_string())
    {
        return Err(ApiError::Conflict(format!(
            "Cannot edit Data Center. The only compatibility version is {major}.{minor}."
        )));
    }
    Ok(())
}

/// Checks that a `<data_center>` reference at `path` names the data center; `entity` names
/// the document for the "required" fault.
pub fn check_ref(db: &Db, node: &Node, path: &str, entity: &str) -> ApiResult<()> {
    check_reference(
        node,
        path,
        "DataCenter",
        (&model::datacenter_id(db), &model::datacenter_name(db)),
        ApiError::missing(entity, "dataCenter.name|id"),
    )
}

/// The data center as the search language sees it.
pub struct DcSubject<'a> {
    /// The pool.
    pub pool: &'a Obj,
    /// The working set it lives in.
    pub db: &'a Db,
}

impl Subject for DcSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let text = |s: &str| vec![FieldValue::Text(s.to_string())];
        let (major, minor) = VERSION;
        match field {
            "name" => text(&model::datacenter_name(self.db)),
            "id" => text(self.pool.uuid()),
            "description" => text(self.pool.str("name_description")),
            "comment" => text(self.pool.other(COMMENT_KEY).unwrap_or("")),
            "status" => text(status(self.db)),
            "local" => vec![FieldValue::Bool(false)],
            "compatibility_version" => text(&format!("{major}.{minor}")),
            _ => Vec::new(),
        }
    }

    fn related(&self, object: &str) -> Vec<Box<dyn Subject + '_>> {
        match object {
            "Clusters" => vec![Box::new(clusters::ClusterSubject { db: self.db })],
            "Storage" => storagedomains::related_subjects(self.db, |s| s.attached()),
            "Networks" => networks::subjects(self.db)
                .into_iter()
                .map(|s| Box::new(s) as Box<dyn Subject>)
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_the_engine_cannot_make_are_refused() {
        let ok = Node::new("data_center")
            .text("local", "false")
            .child(version_node(VERSION));
        assert!(refuse_changes(&ok).is_ok());
        let local = Node::new("data_center").text("local", "true");
        assert!(matches!(refuse_changes(&local), Err(ApiError::Conflict(_))));
        let old = Node::new("data_center").child(version_node((4, 2)));
        assert!(matches!(refuse_changes(&old), Err(ApiError::Conflict(_))));
    }
}
