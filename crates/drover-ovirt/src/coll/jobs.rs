//! The `jobs` collection: the engine's tasks as jobs of one step each, and external jobs
//! clients add and end themselves.
//!
//! A job is a core task (id = the task's uuid): its description is the task's name, its status
//! the task's (`pending` started, `success` finished, `failure` failed, `cancelled` aborted),
//! its owner the user of the account in the task's `other_config` `owner`, its correlation id
//! the task's `other_config` `correlation_id`. An external job is a task made with
//! `task.create`, marked `ovirt_external`; ending it sets the task's status and progress and
//! records the time in `ovirt_end_time`, as the task's `finished` is the engine's own.

use std::collections::HashMap;

use axum::http::Method;
use drover_core::{Obj, Op};
use drover_model::Value;

use crate::api::{
    collection, date, entity, no_such_resource, parse_bool, with_links, Api, Req, Resp,
};
use crate::coll::users;
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// `other_config` key (on a task) marking an external job.
pub const EXTERNAL_KEY: &str = "ovirt_external";
/// `other_config` key (on a task) of when an external job ended (unix seconds).
pub const END_TIME_KEY: &str = "ovirt_end_time";
/// `other_config` key (on a task) of whether the job is cleared automatically.
pub const AUTO_CLEARED_KEY: &str = "ovirt_auto_cleared";
/// `other_config` key (on a task) of the client's correlation id.
pub const CORRELATION_KEY: &str = "correlation_id";

/// Actions of a job and of a step.
const ACTIONS: &[&str] = &["clear", "end"];

/// Handles `/jobs/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req),
        ([], &Method::POST) => add(api, req).await,
        ([id], &Method::GET) => {
            let t = task(api, id)?;
            let owners = users::ids_by_name(api);
            Resp::ok(render(&t, &owners))
        }
        ([id, "clear"], &Method::POST) => {
            let t = task(api, id)?;
            clear(api, req, &t).await
        }
        ([id, "end"], &Method::POST) => {
            let t = task(api, id)?;
            end(api, req, &t).await
        }
        ([id, "steps", tail @ ..], _) => {
            let t = task(api, id)?;
            steps(api, req, &t, tail).await
        }
        _ => Err(no_such_resource(req, "/jobs", rest)),
    }
}

fn task(api: &Api, id: &str) -> ApiResult<std::sync::Arc<Obj>> {
    api.by_id("task", id, "Job")
}

fn list(api: &Api, req: &Req) -> ApiResult<Resp> {
    let target = search::object_type("jobs")
        .ok_or_else(|| ApiError::Internal("no Jobs search type".into()))?;
    let owners = users::ids_by_name(api);
    let nodes = api.engine.read(|db| {
        let mut tasks: Vec<&Obj> = db.all("task").map(|t| &**t).collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(time_of(t, "created")));
        let subjects: Vec<JobSubject> = tasks.into_iter().map(|task| JobSubject { task }).collect();
        listing::select(req, target, subjects).map(|list| {
            list.iter()
                .map(|s| render(s.task, &owners))
                .collect::<Vec<_>>()
        })
    })?;
    Resp::ok(collection("jobs", nodes))
}

/// A datetime field of an object, in unix seconds.
fn time_of(obj: &Obj, field: &str) -> i64 {
    match obj.get(field) {
        Value::DateTime(t) => *t,
        _ => 0,
    }
}

/// oVirt's status of a task's job.
fn status(task: &Obj) -> &'static str {
    match task.str("status") {
        "success" => "finished",
        "failure" => "failed",
        "cancelled" => "aborted",
        "pending" | "cancelling" => "started",
        _ => "unknown",
    }
}

fn is_external(task: &Obj) -> bool {
    task.other(EXTERNAL_KEY) == Some("true")
}

/// When the job ended, if it has.
fn end_time(task: &Obj) -> Option<i64> {
    if status(task) == "started" {
        return None;
    }
    task.other(END_TIME_KEY)
        .and_then(|t| t.parse().ok())
        .or_else(|| Some(time_of(task, "finished")).filter(|t| *t > 0))
}

/// The task's progress as a whole percentage.
fn progress(task: &Obj) -> i64 {
    match task.get("progress") {
        Value::Float(p) => (p.clamp(0.0, 1.0) * 100.0).round() as i64,
        _ => 0,
    }
}

/// A job as oVirt shows it; `owners` maps account names to user ids.
fn render(task: &Obj, owners: &HashMap<String, String>) -> Node {
    let owner = task.other("owner").and_then(|name| owners.get(name));
    let id = task.uuid();
    let start = time_of(task, "created");
    let end = end_time(task);
    let node = entity("job", "jobs", id).text("description", task.str("name_label"));
    let mut node = with_links(node, &format!("jobs/{id}"), ACTIONS, &["steps"]).text(
        "auto_cleared",
        task.other(AUTO_CLEARED_KEY).unwrap_or("true"),
    );
    if let Some(e) = end {
        node = node.text("end_time", date(e));
    }
    node.text("external", is_external(task))
        .text("last_updated", date(end.unwrap_or(start)))
        .text("start_time", date(start))
        .text("status", status(task))
        .opt_child(owner.map(|o| entity("owner", "users", o)))
}

/// The one step of a job.
fn step(task: &Obj) -> Node {
    let job = task.uuid();
    let id = step_id(job);
    let node = entity("step", &format!("jobs/{job}/steps"), &id)
        .text("description", task.str("name_label"));
    let mut node = with_links(node, &format!("jobs/{job}/steps/{id}"), &["end"], &[]);
    if let Some(e) = end_time(task) {
        node = node.text("end_time", date(e));
    }
    node.text("external", is_external(task))
        .text("number", 1)
        .text("progress", progress(task))
        .text("start_time", date(time_of(task, "created")))
        .text("status", status(task))
        .text("type", "executing")
        .child(entity("job", "jobs", job))
}

/// The id of a job's step.
fn step_id(job: &str) -> String {
    crate::model::derived_id(job, "step")
}

/// `POST /jobs`: an external job, a task the client tracks itself.
async fn add(api: &Api, req: &Req) -> ApiResult<Resp> {
    let body = req.body("job")?;
    let description = body
        .text_at("description")
        .ok_or_else(|| ApiError::missing("Job", "description"))?;
    let auto_cleared = body
        .text_at("auto_cleared")
        .map(parse_bool)
        .transpose()?
        .unwrap_or(true);
    let r = api
        .op_ref(
            req,
            Op::TaskCreate {
                label: description.to_string(),
                description: String::new(),
            },
        )
        .await?;
    let auto = auto_cleared.to_string();
    let mut changes = vec![
        (EXTERNAL_KEY, Some("true")),
        (AUTO_CLEARED_KEY, Some(auto.as_str())),
    ];
    if let Some(c) = req.correlation_id.as_deref() {
        changes.push((CORRELATION_KEY, Some(c)));
    }
    api.set_other(req, "task", &r, &changes).await?;
    let t = api
        .obj("task", &r)
        .ok_or_else(|| ApiError::Internal("the new job vanished".into()))?;
    Resp::created(render(&t, &users::ids_by_name(api)))
}

/// `end`: ends an external job as succeeded or failed; `force` aborts an engine task.
async fn end(api: &Api, req: &Req, task: &Obj) -> ApiResult<Resp> {
    let body = req.body("action")?;
    let flag = |name: &str| body.text_at(name).map(parse_bool).transpose();
    let succeeded = flag("succeeded")?.unwrap_or(true);
    let force = flag("force")?.unwrap_or(false);
    if status(task) != "started" {
        return Err(ApiError::Conflict(
            "Cannot end Job. The job has already ended.".into(),
        ));
    }
    if !is_external(task) {
        if !force {
            return Err(ApiError::Conflict(
                "Cannot end Job. The job is not external; only its own operation ends it \
                 (use force to abort it)."
                    .into(),
            ));
        }
        api.op(
            req,
            Op::TaskCancel {
                task: task.r.to_string(),
            },
        )
        .await?;
        return Resp::ok(Node::new("action").text("status", "complete"));
    }
    let r = task.r.to_string();
    api.set(req, "task", &r, "progress", Value::Float(1.0))
        .await?;
    let outcome = if succeeded { "success" } else { "failure" };
    api.set(req, "task", &r, "status", Value::str(outcome))
        .await?;
    let now = drover_core::now().to_string();
    api.set_other(req, "task", &r, &[(END_TIME_KEY, Some(&now))])
        .await?;
    Resp::ok(Node::new("action").text("status", "complete"))
}

/// `clear`: removes an ended job.
async fn clear(api: &Api, req: &Req, task: &Obj) -> ApiResult<Resp> {
    req.body("action")?;
    if status(task) == "started" {
        return Err(ApiError::Conflict(
            "Cannot clear Job. The job is still running.".into(),
        ));
    }
    api.destroy(req, "task", &task.r).await?;
    Resp::ok(Node::new("action").text("status", "complete"))
}

/// `/jobs/{id}/steps/...`: the job's one step.
async fn steps(api: &Api, req: &Req, task: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    let id = step_id(task.uuid());
    let known = |sid: &str| {
        if sid == id {
            Ok(())
        } else {
            Err(ApiError::not_found("Step", sid))
        }
    };
    match (rest, &req.method) {
        ([], &Method::GET) => Resp::ok(collection("steps", [step(task)])),
        ([], &Method::POST) => Err(ApiError::Conflict(
            "Cannot add Step. The engine records one step per job; an external job ends as a \
             whole with its end action."
                .into(),
        )),
        ([sid], &Method::GET) => {
            known(sid)?;
            Resp::ok(step(task))
        }
        ([sid, "end"], &Method::POST) => {
            known(sid)?;
            end(api, req, task).await
        }
        _ => Err(no_such_resource(
            req,
            &format!("/jobs/{}/steps", task.uuid()),
            rest,
        )),
    }
}

/// A task as the search language sees it.
struct JobSubject<'a> {
    task: &'a Obj,
}

impl Subject for JobSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let text = |s: &str| vec![FieldValue::Text(s.to_string())];
        match field {
            "id" => text(self.task.uuid()),
            "status" => text(status(self.task)),
            "correlation_id" => self
                .task
                .other(CORRELATION_KEY)
                .map(text)
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(fields: &[(&str, Value)]) -> Obj {
        let class = drover_model::Schema::get()
            .class("task")
            .expect("task class");
        let mut t = Obj::new(class, "OpaqueRef:t".into());
        for (f, v) in fields {
            let i = class.field_index(f).expect("field");
            t.fields[i] = v.clone();
        }
        t
    }

    #[test]
    fn statuses_times_and_progress() {
        let running = task(&[
            ("status", Value::str("pending")),
            ("created", Value::DateTime(100)),
            ("progress", Value::Float(0.426)),
        ]);
        assert_eq!(status(&running), "started");
        assert_eq!(progress(&running), 43);
        assert_eq!(end_time(&running), None);
        let failed = task(&[
            ("status", Value::str("failure")),
            ("finished", Value::DateTime(200)),
        ]);
        assert_eq!(status(&failed), "failed");
        assert_eq!(end_time(&failed), Some(200));
        let ended = task(&[
            ("status", Value::str("success")),
            (
                "other_config",
                Value::string_map([(EXTERNAL_KEY, "true"), (END_TIME_KEY, "300")]),
            ),
        ]);
        assert!(is_external(&ended));
        assert_eq!(end_time(&ended), Some(300));
        let n = render(&ended, &HashMap::new());
        assert_eq!(n.text_at("status"), Some("finished"));
        assert_eq!(n.text_at("external"), Some("true"));
        assert!(n.get("owner").is_none());
        assert_eq!(step(&ended).text_at("progress"), Some("0"));
        assert_eq!(
            status(&task(&[("status", Value::str("cancelled"))])),
            "aborted"
        );
    }

    #[test]
    fn step_ids_are_stable() {
        let j = "2ae8a1a6-0000-0000-0000-000000000000";
        assert_eq!(step_id(j), step_id(j));
        assert_ne!(step_id(j), j);
    }
}
