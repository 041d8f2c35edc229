//! The `events` collection: the engine's audit log, newest first, with the references of the
//! objects each entry involves, and external events clients add.

use std::collections::HashMap;

use axum::http::Method;
use drover_core::db::Db;
use drover_core::{AuditEntry, Obj, Severity};

use crate::api::{collection, date_ms, entity, no_such_resource, parse_int, Api, Req, Resp};
use crate::coll::users;
use crate::coll::vms::NamedSubject;
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::model;
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// oVirt's `AuditLogType` codes of external events, by severity.
const EXTERNAL_EVENT_NORMAL: u32 = 9801;
const EXTERNAL_EVENT_WARNING: u32 = 9802;
const EXTERNAL_EVENT_ERROR: u32 = 9803;
const EXTERNAL_ALERT: u32 = 9804;

/// Where the engine's own events come from.
const ORIGIN: &str = "oVirt";
/// The custom id of events that have none.
const NO_CUSTOM_ID: i64 = -1;
/// oVirt's default flood rate, in seconds.
const FLOOD_RATE: u32 = 30;

/// Handles `/events/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req),
        ([], &Method::POST) => add(api, req),
        (["undelete"], &Method::POST) => {
            // Nothing is ever deleted from the audit log, so there is nothing to bring back.
            Resp::ok(Node::new("action").text("status", "complete"))
        }
        ([id], &Method::GET) => {
            let entry = entry(api, id)?;
            let users = users::ids_by_name(api);
            Resp::ok(api.engine.read(|db| render(db, &users, &entry)))
        }
        ([id], &Method::DELETE) => {
            entry(api, id)?;
            Err(ApiError::Conflict(
                "Cannot remove Event. The engine's audit log keeps its entries until they age \
                 out."
                    .into(),
            ))
        }
        _ => Err(no_such_resource(req, "/events", rest)),
    }
}

fn entry(api: &Api, id: &str) -> ApiResult<AuditEntry> {
    id.parse::<u64>()
        .ok()
        .and_then(|n| api.engine.audit_entry(n))
        .ok_or_else(|| ApiError::not_found("Event", id))
}

fn list(api: &Api, req: &Req) -> ApiResult<Resp> {
    let target = search::object_type("events")
        .ok_or_else(|| ApiError::Internal("no Events search type".into()))?;
    let from = req
        .q("from")
        .map(|f| {
            f.trim().parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "Value \"{f}\" of parameter \"from\" isn't a valid integer"
                ))
            })
        })
        .transpose()?;
    let searching = req.q("search").is_some_and(|s| !s.trim().is_empty());
    let entries = api
        .engine
        .audit_log(from, if searching { None } else { req.max()? });
    let users = users::ids_by_name(api);
    let nodes = api.engine.read(|db| {
        let subjects: Vec<EventSubject> = entries
            .iter()
            .map(|e| EventSubject {
                entry: e,
                db,
                users: &users,
            })
            .collect();
        listing::select(req, target, subjects).map(|list| {
            list.iter()
                .map(|s| render(db, &users, s.entry))
                .collect::<Vec<_>>()
        })
    })?;
    Resp::ok(collection("events", nodes))
}

/// oVirt's name of a severity.
fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Normal => "normal",
        Severity::Warning => "warning",
        Severity::Error => "error",
        Severity::Alert => "alert",
    }
}

fn parse_severity(s: &str) -> ApiResult<Severity> {
    match s {
        "normal" => Ok(Severity::Normal),
        "warning" => Ok(Severity::Warning),
        "error" => Ok(Severity::Error),
        "alert" => Ok(Severity::Alert),
        other => Err(ApiError::BadRequest(format!(
            "\"{other}\" is not a severity; use normal, warning, error or alert"
        ))),
    }
}

/// The references an entry's subjects become: (element, collection, id).
fn refs(db: &Db, entry: &AuditEntry) -> Vec<(&'static str, &'static str, String)> {
    let mut out: Vec<(&'static str, &'static str, String)> = Vec::new();
    let mut push = |elem: &'static str, coll: &'static str, id: &str| {
        if !out.iter().any(|(e, _, _)| *e == elem) {
            out.push((elem, coll, id.to_string()));
        }
    };
    let mut placed = false;
    for (class, uuid) in &entry.subjects {
        match class.as_str() {
            "VM" => match object(db, "VM", uuid) {
                Some(v) if model::is_template(v) => push("template", "templates", uuid),
                Some(v) if v.bool("is_a_snapshot") => {
                    if let Some(of) = db.get("VM", v.str("snapshot_of")) {
                        push("vm", "vms", of.uuid());
                        placed = true;
                    }
                }
                _ => {
                    push("vm", "vms", uuid);
                    placed = true;
                }
            },
            "host" => {
                push("host", "hosts", uuid);
                placed = true;
            }
            "SR" => push("storage_domain", "storagedomains", uuid),
            "pool" => push("data_center", "datacenters", uuid),
            _ => {}
        }
    }
    if placed {
        push("cluster", "clusters", &model::cluster_id(db));
        push("data_center", "datacenters", &model::datacenter_id(db));
    }
    out
}

fn object<'a>(db: &'a Db, class: &str, uuid: &str) -> Option<&'a Obj> {
    db.by_uuid(class, uuid).map(|o| &**o)
}

/// An event as oVirt shows it.
fn render(db: &Db, users: &HashMap<String, String>, entry: &AuditEntry) -> Node {
    let id = entry.id.to_string();
    let mut node = entity("event", "events", &id)
        .text("description", &entry.message)
        .text("code", entry.code);
    if let Some(c) = &entry.correlation_id {
        node = node.text("correlation_id", c);
    }
    node = node
        .text("custom_id", NO_CUSTOM_ID)
        .text("flood_rate", FLOOD_RATE)
        .text("index", &id)
        .text("origin", ORIGIN)
        .text("severity", severity_name(entry.severity))
        .text("time", date_ms(entry.time));
    for (elem, coll, oid) in refs(db, entry) {
        node = node.child(entity(elem, coll, &oid));
    }
    node.opt_child(users.get(&entry.user).map(|u| entity("user", "users", u)))
}

/// `POST /events`: an external event.
fn add(api: &Api, req: &Req) -> ApiResult<Resp> {
    let body = req.body("event")?;
    let missing: Vec<&str> = ["origin", "severity", "custom_id", "description"]
        .into_iter()
        .filter(|f| body.text_at(f).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::missing("Event", &missing.join(", ")));
    }
    let text = |f: &str| body.text_at(f).unwrap_or_default();
    parse_int("custom_id", text("custom_id"))?;
    let severity = parse_severity(text("severity"))?;
    let code = match severity {
        Severity::Normal => EXTERNAL_EVENT_NORMAL,
        Severity::Warning => EXTERNAL_EVENT_WARNING,
        Severity::Error => EXTERNAL_EVENT_ERROR,
        Severity::Alert => EXTERNAL_ALERT,
    };
    let subjects = subjects_in(api, &body)?;
    let id = api.engine.audit_record(
        &req.caller,
        code,
        severity,
        text("description"),
        subjects,
        req.correlation_id.clone(),
    )?;
    let entry = api
        .engine
        .audit_entry(id)
        .ok_or_else(|| ApiError::Internal(format!("event {id} vanished")))?;
    let users = users::ids_by_name(api);
    Resp::created(api.engine.read(|db| render(db, &users, &entry)))
}

/// The objects an event document refers to, as audit subjects.
fn subjects_in(api: &Api, body: &Node) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (elem, class, what) in [
        ("vm", "VM", "VM"),
        ("template", "VM", "Template"),
        ("host", "host", "Host"),
        ("storage_domain", "SR", "Storage domain"),
        ("data_center", "pool", "Data center"),
    ] {
        if let Some(id) = body.id_at(elem) {
            let obj = api.by_id(class, id, what)?;
            out.push((class.to_string(), obj.uuid().to_string()));
        }
    }
    if let Some(id) = body.id_at("cluster") {
        let (cluster, dc) = api
            .engine
            .read(|db| (model::cluster_id(db), model::datacenter_id(db)));
        if id != cluster {
            return Err(ApiError::not_found("Cluster", id));
        }
        let entry = ("pool".to_string(), dc);
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// An audit entry as the search language sees it.
struct EventSubject<'a> {
    entry: &'a AuditEntry,
    db: &'a Db,
    users: &'a HashMap<String, String>,
}

impl<'a> EventSubject<'a> {
    /// The subjects of a class, as objects still in the inventory.
    fn objects(&self, class: &'a str) -> impl Iterator<Item = &'a Obj> + 'a {
        let db = self.db;
        self.entry
            .subjects
            .iter()
            .filter(move |(c, _)| c == class)
            .filter_map(move |(_, u)| object(db, class, u))
    }

    fn vms(&self) -> impl Iterator<Item = &'a Obj> + 'a {
        self.objects("VM").filter(|v| model::is_vm(v))
    }

    fn templates(&self) -> impl Iterator<Item = &'a Obj> + 'a {
        self.objects("VM").filter(|v| model::is_template(v))
    }

    fn ids(&self, class: &str, keep: fn(&Obj) -> bool) -> Vec<FieldValue> {
        self.entry
            .subjects
            .iter()
            .filter(|(c, _)| c == class)
            .filter(|(_, u)| object(self.db, class, u).is_none_or(keep))
            .map(|(_, u)| FieldValue::Text(u.clone()))
            .collect()
    }
}

fn names<'a>(objs: impl Iterator<Item = &'a Obj>) -> Vec<FieldValue> {
    objs.map(|o| FieldValue::Text(o.str("name_label").to_string()))
        .collect()
}

impl Subject for EventSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let e = self.entry;
        let text = |s: &str| vec![FieldValue::Text(s.to_string())];
        match field {
            "id" => text(&e.id.to_string()),
            "message" => text(&e.message),
            "severity" => text(severity_name(e.severity)),
            "time" => vec![FieldValue::Date(e.time.div_euclid(1000))],
            "type" => vec![FieldValue::Number(f64::from(e.code))],
            "custom_event_id" => vec![FieldValue::Number(NO_CUSTOM_ID as f64)],
            "deleted" => vec![FieldValue::Bool(false)],
            "origin" => text(ORIGIN),
            "correlation_id" => e.correlation_id.as_deref().map(text).unwrap_or_default(),
            "usrname" => text(&users::user_name(&e.user)),
            "usrid" => self.users.get(&e.user).map(|u| text(u)).unwrap_or_default(),
            "event_vm" => names(self.vms()),
            "event_template" => names(self.templates()),
            "event_host" => names(self.objects("host")),
            "event_storage" => names(self.objects("SR")),
            "event_datacenter" => text(&model::datacenter_name(self.db)),
            "_event_vm_id" => self.ids("VM", model::is_vm),
            "_event_template_id" => self.ids("VM", model::is_template),
            "_event_host_id" => self.ids("host", |_| true),
            "_event_storage_id" => self.ids("SR", |_| true),
            "_event_datacenter_id" => text(&model::datacenter_id(self.db)),
            _ => Vec::new(),
        }
    }

    fn related(&self, object: &str) -> Vec<Box<dyn Subject + '_>> {
        fn boxed(o: &Obj) -> Box<dyn Subject + '_> {
            Box::new(NamedSubject(o))
        }
        match object {
            "Vms" => self.vms().map(boxed).collect(),
            "Templates" => self.templates().map(boxed).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        AuditEntry {
            id: 7,
            time: 1_704_189_605_123,
            severity: Severity::Warning,
            code: 32,
            message: "VM web1 started".into(),
            user: "admin".into(),
            correlation_id: Some("c1".into()),
            subjects: vec![("VM".into(), "v1".into()), ("task".into(), "t1".into())],
        }
    }

    #[test]
    fn rendering_without_inventory() {
        let db = Db::default();
        let users = HashMap::from([("admin".to_string(), "u1".to_string())]);
        let n = render(&db, &users, &entry());
        assert_eq!(n.get_attr("href"), Some("/ovirt-engine/api/events/7"));
        assert_eq!(n.text_at("severity"), Some("warning"));
        assert_eq!(n.text_at("index"), Some("7"));
        assert_eq!(n.text_at("correlation_id"), Some("c1"));
        assert_eq!(n.text_at("time"), Some("2024-01-02T10:00:05.123+00:00"));
        assert_eq!(n.id_at("vm"), Some("v1"));
        assert_eq!(n.id_at("user"), Some("u1"));
        assert!(n.get("cluster").is_some());
    }

    #[test]
    fn search_values() {
        let db = Db::default();
        let users = HashMap::new();
        let e = entry();
        let s = EventSubject {
            entry: &e,
            db: &db,
            users: &users,
        };
        assert_eq!(s.values("type"), vec![FieldValue::Number(32.0)]);
        assert_eq!(s.values("time"), vec![FieldValue::Date(1_704_189_605)]);
        assert_eq!(
            s.values("usrname"),
            vec![FieldValue::Text("admin@internal-authz".into())]
        );
        assert_eq!(
            s.values("_event_vm_id"),
            vec![FieldValue::Text("v1".into())]
        );
        assert!(s.values("usrid").is_empty());
    }

    #[test]
    fn severities() {
        for s in ["normal", "warning", "error", "alert"] {
            assert_eq!(parse_severity(s).map(severity_name), Ok(s));
        }
        assert!(parse_severity("info").is_err());
    }
}
