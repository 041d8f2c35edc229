//! The `schedulingpolicies` and `schedulingpolicyunits` collections: the scheduler's built-in
//! policies (none, evenly_distributed, vm_evenly_distributed, power_saving,
//! cluster_maintenance) with their filters, weights and balancer, and every unit, under
//! oVirt's ids. The built-in policies are locked, as in oVirt.

use axum::http::Method;
use drover_sched::{all_units, Policy, UnitInfo};

use crate::api::{collection, entity, limit, no_such_resource, with_links, Api, Req, Resp};
use crate::fault::{ApiError, ApiResult};
use crate::node::Node;

/// Sub-collections of a policy.
const SUBS: &[&str] = &["balances", "filters", "weights"];

/// The policy a cluster uses unless told otherwise (oVirt's default).
pub fn default_policy() -> Policy {
    Policy::none()
}

/// Handles `/schedulingpolicies/...`.
pub async fn handle(_api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    if req.method != Method::GET {
        return Err(ApiError::Conflict(
            "Cannot change scheduling policies: the built-in policies are locked.".into(),
        ));
    }
    match rest {
        [] => {
            let items = Policy::builtins().iter().map(render).collect();
            Resp::ok(collection("scheduling_policies", limit(items, req.max()?)))
        }
        [id] => Resp::ok(render(&policy(id)?)),
        [id, sub] if SUBS.contains(sub) => {
            let p = policy(id)?;
            Resp::ok(collection(plural(sub), members(&p, sub)))
        }
        [id, sub, member] if SUBS.contains(sub) => {
            let p = policy(id)?;
            members(&p, sub)
                .into_iter()
                .find(|n| n.get_attr("id") == Some(*member))
                .map(Resp::ok)
                .unwrap_or_else(|| Err(ApiError::not_found("SchedulingPolicyUnit", member)))
        }
        _ => Err(no_such_resource(req, "schedulingpolicies", rest)),
    }
}

/// Handles `/schedulingpolicyunits/...`.
pub async fn handle_units(_api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    if req.method != Method::GET {
        return Err(ApiError::Conflict(
            "Cannot change scheduling policy units: they are built in.".into(),
        ));
    }
    match rest {
        [] => {
            let items = all_units().into_iter().map(render_unit).collect();
            Resp::ok(collection(
                "scheduling_policy_units",
                limit(items, req.max()?),
            ))
        }
        [id] => drover_sched::units::unit_by_id(id)
            .map(|u| Resp::ok(render_unit(u)))
            .unwrap_or_else(|| Err(ApiError::not_found("SchedulingPolicyUnit", id))),
        _ => Err(no_such_resource(req, "schedulingpolicyunits", rest)),
    }
}

/// The built-in policy with an id.
fn policy(id: &str) -> ApiResult<Policy> {
    Policy::builtins()
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::not_found("SchedulingPolicy", id))
}

/// A policy as oVirt shows it.
pub fn render(p: &Policy) -> Node {
    let base = format!("schedulingpolicies/{}", p.id);
    let mut props = Node::list("properties");
    for (param, value) in p.params.properties() {
        props.push(
            Node::new("property")
                .text("name", param.name())
                .text("value", value),
        );
    }
    let node = entity("scheduling_policy", "schedulingpolicies", &p.id)
        .text("name", &p.name)
        .text("description", &p.description)
        .text("default_policy", p.id == default_policy().id)
        .text("locked", p.locked)
        .child(props);
    with_links(node, &base, &[], SUBS)
}

/// The element name of a sub-collection's list.
fn plural(sub: &str) -> &'static str {
    match sub {
        "balances" => "balances",
        "filters" => "filters",
        _ => "weights",
    }
}

/// A policy's filters, weights (with factors) or balancer; each member's id is its unit's.
fn members(p: &Policy, sub: &str) -> Vec<Node> {
    let base = format!("schedulingpolicies/{}/{sub}", p.id);
    let member = |elem: &'static str, unit: &UnitInfo| {
        entity(elem, &base, unit.id)
            .text("name", unit.name)
            .child(entity("scheduling_policy", "schedulingpolicies", &p.id))
            .child(entity(
                "scheduling_policy_unit",
                "schedulingpolicyunits",
                unit.id,
            ))
    };
    match sub {
        "filters" => p
            .filters
            .iter()
            .map(|f| member("filter", f.info()))
            .collect(),
        "weights" => p
            .weights
            .iter()
            .map(|(w, factor)| member("weight", w.info()).text("factor", factor))
            .collect(),
        _ => vec![member("balance", p.balancer.info())],
    }
}

/// A unit as oVirt shows it.
fn render_unit(u: &UnitInfo) -> Node {
    let mut props = Node::list("properties");
    for param in u.parameters {
        props.push(Node::new("property").text("name", param.name()));
    }
    entity("scheduling_policy_unit", "schedulingpolicyunits", u.id)
        .text("name", u.name)
        .text("description", u.description)
        .text("enabled", true)
        .text("internal", true)
        .text("type", u.unit_type.as_str())
        .child(props)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_policy_renders_with_its_units() {
        let policies = Policy::builtins();
        assert_eq!(policies.len(), 5);
        for p in &policies {
            let n = render(p);
            assert_eq!(n.text_at("name"), Some(p.name.as_str()));
            let filters = members(p, "filters");
            assert_eq!(filters.len(), p.filters.len());
            let weights = members(p, "weights");
            assert!(weights.iter().all(|w| w.text_at("factor").is_some()));
            assert_eq!(members(p, "balances").len(), 1);
        }
        let defaults = policies
            .iter()
            .filter(|p| render(p).text_at("default_policy") == Some("true"))
            .count();
        assert_eq!(defaults, 1);
    }

    #[test]
    fn units_have_ovirt_types() {
        for u in all_units() {
            let n = render_unit(u);
            assert!(matches!(
                n.text_at("type"),
                Some("filter" | "weight" | "load_balancing")
            ));
        }
    }
}
