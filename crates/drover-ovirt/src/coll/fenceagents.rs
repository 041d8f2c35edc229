//! `/hosts/{id}/fenceagents`: a host's power-management agent, XenAPI's `power_on_mode` (the
//! agent type) and `power_on_config` (its options).
//!
//! A host has at most one agent, whose id is derived from the host's. Its `address` is the
//! option `ip`, `username` and `password` are `username` and `password`, `port` is `ipport`
//! (the fence-agents names), and each of its `options` is an option of its own. The password is
//! never shown: the core keeps it as a secret.

use axum::http::Method;
use drover_core::{HostAction, Obj, Op};

use crate::api::{collection, entity, no_such_resource, Api, Req, Resp};
use crate::fault::{ApiError, ApiResult};
use crate::model;
use crate::node::Node;

/// Options of `power_on_config` that are fields of the agent, not `options` (the password is
/// kept by the core as a secret, named by `password_secret`).
const FIELDS: &[&str] = &["ip", "username", "password_secret", "ipport"];

/// Handles `/hosts/{id}/fenceagents/...`.
pub async fn handle(api: &Api, req: &Req, host: &Obj, rest: &[&str]) -> ApiResult<Resp> {
    let base = format!("hosts/{}/fenceagents", host.uuid());
    let id = agent_id(host);
    let has = !host.str("power_on_mode").is_empty();
    match (rest, &req.method) {
        ([], &Method::GET) => Resp::ok(collection("agents", has.then(|| render(host, &base)))),
        ([], &Method::POST) => {
            if has {
                return Err(ApiError::Conflict(
                    "Cannot add Fence Agent. This host has its fence agent; update it instead."
                        .into(),
                ));
            }
            let body = req.body("agent")?;
            let kind = body
                .text_at("type")
                .ok_or_else(|| ApiError::missing("Agent", "type"))?;
            let address = body
                .text_at("address")
                .ok_or_else(|| ApiError::missing("Agent", "address"))?;
            let mut config = vec![("ip".to_string(), address.to_string())];
            config.extend(fields(&body)?);
            set(api, req, host, kind, config).await?;
            let host = api.by_id("host", host.uuid(), "Host")?;
            Resp::created(render(&host, &base))
        }
        ([aid], &Method::GET) if *aid == id && has => Resp::ok(render(host, &base)),
        ([aid], &Method::PUT) if *aid == id && has => {
            let body = req.body("agent")?;
            let kind = body
                .text_at("type")
                .unwrap_or(host.str("power_on_mode"))
                .to_string();
            let mut config: Vec<(String, String)> = current(host)
                .into_iter()
                .filter(|(k, _)| FIELDS.contains(&k.as_str()) || body.get("options").is_none())
                .collect();
            if let Some(address) = body.text_at("address") {
                config.retain(|(k, _)| k != "ip");
                config.push(("ip".into(), address.into()));
            }
            for (k, v) in fields(&body)? {
                let secret = format!("{k}_secret");
                config.retain(|(x, _)| *x != k && *x != secret);
                config.push((k, v));
            }
            set(api, req, host, &kind, config).await?;
            let host = api.by_id("host", host.uuid(), "Host")?;
            Resp::ok(render(&host, &base))
        }
        ([aid], &Method::DELETE) if *aid == id && has => {
            set(api, req, host, "", Vec::new()).await?;
            Resp::removed()
        }
        ([_], _) => Err(ApiError::NotFound(format!(
            "Fence agent not found for host {}",
            host.uuid()
        ))),
        _ => Err(no_such_resource(req, "/hosts", rest)),
    }
}

/// The id of a host's agent.
fn agent_id(host: &Obj) -> String {
    model::derived_id(host.uuid(), "fence-agent")
}

/// The host's `power_on_config`.
fn current(host: &Obj) -> Vec<(String, String)> {
    host.get("power_on_config")
        .as_map()
        .unwrap_or(&[])
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
        .collect()
}

/// The options an agent element gives: username, password, port and its options.
fn fields(body: &Node) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (elem, key) in [
        ("username", "username"),
        ("password", "password"),
        ("port", "ipport"),
    ] {
        if let Some(v) = body.text_at(elem) {
            out.push((key.to_string(), v.to_string()));
        }
    }
    if let Some(options) = body.get("options") {
        for o in options.all("option") {
            let (Some(name), Some(value)) = (o.text_at("name"), o.text_at("value")) else {
                return Err(ApiError::missing("Option", "name, value"));
            };
            if name.contains(['=', '\n']) || value.contains('\n') {
                return Err(ApiError::BadRequest(format!(
                    "Invalid fence agent option {name:?}"
                )));
            }
            out.push((name.to_string(), value.to_string()));
        }
    }
    Ok(out)
}

async fn set(
    api: &Api,
    req: &Req,
    host: &Obj,
    kind: &str,
    config: Vec<(String, String)>,
) -> ApiResult<()> {
    api.op(
        req,
        Op::Host {
            host: host.r.to_string(),
            action: HostAction::SetPowerOnMode {
                mode: kind.into(),
                config,
            },
        },
    )
    .await?;
    Ok(())
}

/// The host's agent.
pub fn render(host: &Obj, base: &str) -> Node {
    let config = current(host);
    let get = |k: &str| config.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    let mut node = entity("agent", base, &agent_id(host))
        .text("type", host.str("power_on_mode"))
        .text("address", get("ip").unwrap_or_default())
        .text("order", 1)
        .text("concurrent", false)
        .text("encrypt_options", false);
    if let Some(u) = get("username") {
        node = node.text("username", u);
    }
    if let Some(p) = get("ipport").and_then(|p| p.parse::<u16>().ok()) {
        node = node.text("port", p);
    }
    node.child(
        Node::list("options").children(
            config
                .iter()
                .filter(|(k, _)| !FIELDS.contains(&k.as_str()))
                .map(|(k, v)| Node::new("option").text("name", k).text("value", v)),
        ),
    )
    .child(crate::coll::hosts::host_ref(host))
}
