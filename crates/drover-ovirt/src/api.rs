//! The facade's context: the engine, the request as the collections see it, the answer, and
//! the helpers every collection shares (references, links, actions, lookups, operations).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use drover_core::{CallOpts, Caller, Engine, Obj, Op, Reply, TaskRender, VmAction};
use drover_model::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::BasicSessions;
use crate::fault::{ApiError, ApiResult};
use crate::model::{self, COMMENT_KEY};
use crate::node::Node;

/// Where the API lives.
pub const API_ROOT: &str = "/ovirt-engine/api";

/// The all-zero id of the `Blank` template and the root tag.
pub const ZERO_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The facade: the engine and the state of authentication.
pub struct Api {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Sessions of HTTP Basic clients.
    pub basic: BasicSessions,
}

/// A request as the collections see it.
pub struct Req {
    /// Who asks.
    pub caller: Caller,
    /// The HTTP method.
    pub method: Method,
    /// Path segments below `/ovirt-engine/api`.
    pub path: Vec<String>,
    /// Query parameters (matrix parameters `;k=v` included).
    pub query: HashMap<String, String>,
    /// The body, if any.
    pub body: Vec<u8>,
    /// Whether the body is JSON.
    pub json_body: bool,
    /// The `Correlation-Id` header or `correlation_id` parameter.
    pub correlation_id: Option<String>,
}

impl Req {
    /// A query parameter.
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    /// A boolean query parameter (`true` / `false`).
    pub fn flag(&self, key: &str) -> ApiResult<Option<bool>> {
        self.q(key).map(parse_bool).transpose()
    }

    /// The options every core call of this request carries.
    pub fn call_opts(&self) -> CallOpts {
        CallOpts {
            correlation_id: self.correlation_id.clone(),
        }
    }

    /// The `max` parameter.
    pub fn max(&self) -> ApiResult<Option<usize>> {
        match self.q("max") {
            None => Ok(None),
            Some(m) => m
                .trim()
                .parse::<i64>()
                .map(|v| (v >= 0).then_some(v as usize))
                .map_err(|_| {
                    ApiError::BadRequest(format!(
                        "Value \"{m}\" of parameter \"max\" isn't a valid integer"
                    ))
                }),
        }
    }

    /// The body read as a document with root element `root`.
    pub fn body(&self, root: &str) -> ApiResult<Node> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Node::new(root.to_string()));
        }
        let node = if self.json_body {
            Node::from_json(root, &self.body)
        } else {
            Node::from_xml(&self.body)
        }
        .map_err(ApiError::BadRequest)?;
        if node.name != root {
            return Err(ApiError::BadRequest(format!(
                "the request body is a <{}>, expected a <{root}>",
                node.name
            )));
        }
        Ok(node)
    }
}

/// Reads a boolean as oVirt writes it.
pub fn parse_bool(v: &str) -> ApiResult<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(ApiError::BadRequest(format!(
            "Value \"{other}\" isn't a valid boolean, it should be \"true\" or \"false\""
        ))),
    }
}

/// Reads an integer of a document.
pub fn parse_int(field: &str, v: &str) -> ApiResult<i64> {
    v.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "Value \"{v}\" of \"{field}\" isn't a valid integer"
        ))
    })
}

/// An answer: a status and a document.
pub struct Resp {
    /// The HTTP status.
    pub status: StatusCode,
    /// The document.
    pub node: Node,
}

impl Resp {
    /// 200 with a document.
    pub fn ok(node: Node) -> ApiResult<Resp> {
        Ok(Resp {
            status: StatusCode::OK,
            node,
        })
    }

    /// 201 with the added entity.
    pub fn created(node: Node) -> ApiResult<Resp> {
        Ok(Resp {
            status: StatusCode::CREATED,
            node,
        })
    }

    /// 200 for a removal (oVirt never answers 204).
    pub fn removed() -> ApiResult<Resp> {
        Resp::ok(Node::new("action").text("status", "complete"))
    }
}

/// The href of a path below the API root.
pub fn href(path: &str) -> String {
    format!("{API_ROOT}/{path}")
}

/// An entity element with its `id` and `href` (`path` is the collection path, e.g. `vms`); alone,
/// it is a reference to that entity.
pub fn entity(elem: &'static str, path: &str, id: &str) -> Node {
    Node::new(elem)
        .attr("href", href(&format!("{path}/{id}")))
        .attr("id", id)
}

/// Adds `<actions>` and sub-collection `<link>`s to an entity whose href is `base`.
pub fn with_links(mut node: Node, base: &str, actions: &[&str], subs: &[&str]) -> Node {
    if !actions.is_empty() {
        let mut list = Node::list("actions");
        for a in actions {
            list.push(link(&format!("{base}/{a}"), a));
        }
        node.children.insert(0, list);
    }
    for s in subs {
        node.push(link(&format!("{base}/{s}"), s));
    }
    node
}

/// A `<link href rel>`.
pub fn link(path: &str, rel: &str) -> Node {
    Node::new("link").attr("href", href(path)).attr("rel", rel)
}

/// A collection document.
pub fn collection(name: &'static str, items: impl IntoIterator<Item = Node>) -> Node {
    Node::list(name).children(items)
}

/// The 404 for a path below `base` (with its leading `/`, e.g. `/vms`) that names nothing.
pub fn no_such_resource(req: &Req, base: &str, rest: &[&str]) -> ApiError {
    ApiError::NotFound(format!(
        "no such resource: {} {base}/{}",
        req.method,
        rest.join("/")
    ))
}

/// Answers a sub-collection `name` of ready-made members: all of them for `[]` (the first
/// `max` when `limited`), the one whose `id` `[id]` names (else a 404 for a `what`), and
/// `unknown` for a longer path.
pub fn members_or_one(
    req: &Req,
    name: &'static str,
    what: &str,
    members: Vec<Node>,
    limited: bool,
    rest: &[&str],
    unknown: ApiError,
) -> ApiResult<Resp> {
    match rest {
        [] if limited => Resp::ok(collection(name, limit(members, req.max()?))),
        [] => Resp::ok(collection(name, members)),
        [id] => members
            .into_iter()
            .find(|n| n.get_attr("id") == Some(*id))
            .map(Resp::ok)
            .unwrap_or_else(|| Err(ApiError::not_found(what, id))),
        _ => Err(unknown),
    }
}

/// Checks that the reference at `path` of a document names the one entity of its kind
/// (`what`: `Cluster`, `DataCenter`) by id or name; `missing` is the fault when it names none.
pub fn check_reference(
    node: &Node,
    path: &str,
    what: &str,
    (id, name): (&str, &str),
    missing: ApiError,
) -> ApiResult<()> {
    match (node.id_at(path), node.text_at(&format!("{path}/name"))) {
        (Some(i), _) if i == id => Ok(()),
        (Some(i), _) => Err(ApiError::not_found(what, i)),
        (None, Some(n)) if n == name => Ok(()),
        (None, Some(n)) => Err(ApiError::NotFound(format!(
            "Entity not found: {what}: name={n}"
        ))),
        (None, None) => Err(missing),
    }
}

/// Keeps the first `max` items when a `max` is given.
pub fn limit<T>(mut items: Vec<T>, max: Option<usize>) -> Vec<T> {
    if let Some(m) = max {
        items.truncate(m);
    }
    items
}

impl Api {
    /// The object of a class with an oVirt id (the object's uuid).
    pub fn by_id(&self, class: &str, id: &str, what: &str) -> ApiResult<Arc<Obj>> {
        self.engine
            .read(|db| db.by_uuid(class, id).cloned())
            .ok_or_else(|| ApiError::not_found(what, id))
    }

    /// An object by reference.
    pub fn obj(&self, class: &str, r: &str) -> Option<Arc<Obj>> {
        self.engine.read(|db| db.get(class, r).cloned())
    }

    /// The uuid of the object a reference names, if it exists.
    pub fn uuid_of(&self, class: &str, r: &str) -> Option<String> {
        self.engine
            .read(|db| db.get(class, r).map(|o| o.uuid().to_string()))
    }

    /// Runs an operation of the core for the request's caller.
    pub async fn op(&self, req: &Req, op: Op) -> ApiResult<Reply> {
        Ok(self
            .engine
            .call_with(&req.caller, op, req.call_opts())
            .await?)
    }

    /// Runs an operation that answers a reference.
    pub async fn op_ref(&self, req: &Req, op: Op) -> ApiResult<String> {
        match self.op(req, op).await? {
            Reply::Ref(r) => Ok(r.to_string()),
            other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
        }
    }

    /// Sets one field.
    pub async fn set(
        &self,
        req: &Req,
        class: &str,
        r: &str,
        field: &str,
        value: Value,
    ) -> ApiResult<()> {
        self.op(
            req,
            Op::SetField {
                class: class.into(),
                r: r.into(),
                field: field.into(),
                value,
            },
        )
        .await
        .map(|_| ())
    }

    /// Sets (`Some`) or removes (`None`) `other_config` keys of an object in one change.
    pub async fn set_other(
        &self,
        req: &Req,
        class: &str,
        r: &str,
        changes: &[(&str, Option<&str>)],
    ) -> ApiResult<()> {
        let obj = self
            .obj(class, r)
            .ok_or_else(|| ApiError::not_found(class, r))?;
        match obj.map_with("other_config", changes) {
            Some(map) => self.set(req, class, r, "other_config", map).await,
            None => Ok(()),
        }
    }

    /// Runs an operation on a VM.
    pub async fn vm_op(&self, req: &Req, vm: &str, action: VmAction) -> ApiResult<Reply> {
        self.op(
            req,
            Op::Vm {
                vm: vm.to_string(),
                action,
            },
        )
        .await
    }

    /// Removes a VM with its disks, ignoring a failure: the undo of an add that failed half
    /// way.
    pub async fn discard_vm(&self, req: &Req, vm: &str) {
        let _ = self
            .vm_op(req, vm, VmAction::Remove { keep_disks: false })
            .await;
    }

    /// Destroys an object.
    pub async fn destroy(&self, req: &Req, class: &str, r: &str) -> ApiResult<()> {
        self.op(
            req,
            Op::Destroy {
                class: class.into(),
                r: r.into(),
            },
        )
        .await
        .map(|_| ())
    }

    /// Applies a document's `<description>` (to `name_description`, when it differs) and
    /// `<comment>` (to the [`COMMENT_KEY`] of `other_config`, removed when empty) to an object.
    pub async fn update_description_comment(
        &self,
        req: &Req,
        class: &str,
        obj: &Obj,
        body: &Node,
    ) -> ApiResult<()> {
        if let Some(d) = body.get("description") {
            let text = d.text.as_deref().unwrap_or("").trim();
            if text != obj.str("name_description") {
                self.set(req, class, &obj.r, "name_description", Value::str(text))
                    .await?;
            }
        }
        if let Some(c) = body.get("comment") {
            let text = c.text.as_deref().unwrap_or("").trim();
            let value = (!text.is_empty()).then_some(text);
            self.set_other(req, class, &obj.r, &[(COMMENT_KEY, value)])
                .await?;
        }
        Ok(())
    }

    /// The reference of the pool object, which keeps the records of entities XenAPI has no
    /// object for.
    pub fn pool_ref(&self) -> ApiResult<String> {
        self.engine
            .read(|db| model::pool(db).map(|p| p.r.to_string()))
            .ok_or_else(|| ApiError::Internal("the inventory has no pool".into()))
    }

    /// Stores a record as JSON in the pool's `other_config` under `<prefix><id>`.
    pub async fn store_pool_record<T: Serialize>(
        &self,
        req: &Req,
        prefix: &str,
        id: &str,
        record: &T,
    ) -> ApiResult<()> {
        let json = serde_json::to_string(record).map_err(|e| ApiError::Internal(e.to_string()))?;
        let pool = self.pool_ref()?;
        let key = format!("{prefix}{id}");
        self.set_other(req, "pool", &pool, &[(&key, Some(&json))])
            .await
    }

    /// Removes keys from the pool's `other_config` in one change.
    pub async fn remove_pool_keys(&self, req: &Req, keys: &[String]) -> ApiResult<()> {
        let pool = self.pool_ref()?;
        let changes: Vec<(&str, Option<&str>)> = keys.iter().map(|k| (k.as_str(), None)).collect();
        self.set_other(req, "pool", &pool, &changes).await
    }

    /// Runs an action: synchronously answering `<action><status>complete</status>`, or, when
    /// the request asks for `async`, as a core task answered 202 with its job.
    pub async fn action(&self, req: &Req, body: &Node, op: Op, label: &str) -> ApiResult<Resp> {
        let wants_async = match body.text_at("async") {
            Some(v) => parse_bool(v)?,
            None => req.flag("async")?.unwrap_or(false),
        };
        if wants_async {
            let task = self
                .engine
                .submit_with(&req.caller, op, label, Arc::new(JobRender), req.call_opts())
                .await?;
            let job = self.uuid_of("task", &task).unwrap_or_default();
            return Ok(Resp {
                status: StatusCode::ACCEPTED,
                node: Node::new("action")
                    .text("async", "true")
                    .text("status", "in_progress")
                    .child(entity("job", "jobs", &job)),
            });
        }
        self.op(req, op).await?;
        Resp::ok(Node::new("action").text("status", "complete"))
    }
}

/// What a job's task records: the outcome in words.
struct JobRender;

impl TaskRender for JobRender {
    fn result(&self, reply: &Reply) -> String {
        match reply {
            Reply::Ref(r) => r.to_string(),
            _ => String::new(),
        }
    }

    fn error(&self, error: &drover_core::CoreError) -> Vec<String> {
        vec![error.to_string()]
    }
}

/// The `other_config` entries of an object whose keys start with `prefix`: each as the key,
/// the key without the prefix, and the value.
pub fn others_under<'a>(
    obj: &'a Obj,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> + 'a {
    obj.get("other_config")
        .as_map()
        .unwrap_or(&[])
        .iter()
        .filter_map(move |(k, v)| {
            let key = k.as_str()?;
            let rest = key.strip_prefix(prefix)?;
            Some((key, rest, v.as_str()?))
        })
}

/// The records kept as JSON in the pool's `other_config` under `prefix`, with their ids.
pub fn pool_records<T: DeserializeOwned>(
    db: &drover_core::db::Db,
    prefix: &str,
) -> Vec<(String, T)> {
    model::pool(db)
        .map(|pool| {
            others_under(pool, prefix)
                .filter_map(|(_, id, json)| {
                    Some((id.to_string(), serde_json::from_str(json).ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Formats a time (unix seconds) as oVirt does.
pub fn date(secs: i64) -> String {
    date_ms(secs.saturating_mul(1000))
}

/// Formats a time (unix milliseconds) as oVirt does: `2024-01-02T08:00:05.123+00:00`.
pub fn date_ms(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+00:00"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000+00:00".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(date_ms(1_704_189_605_123), "2024-01-02T10:00:05.123+00:00");
    }

    #[test]
    fn links_and_actions() {
        let n = with_links(entity("vm", "vms", "1"), "vms/1", &["start"], &["nics"]);
        assert_eq!(n.children[0].name, "actions");
        assert_eq!(
            n.children[0].children[0].get_attr("href"),
            Some("/ovirt-engine/api/vms/1/start")
        );
        assert_eq!(n.children[1].get_attr("rel"), Some("nics"));
    }
}
