//! The API root (`GET /ovirt-engine/api`) and the search autocompletion endpoint.

use axum::http::Method;

use crate::api::{date, entity, href, Api, Req, Resp, ZERO_ID};
use crate::fault::{ApiError, ApiResult};
use crate::model;
use crate::node::Node;
use crate::search;

/// Collections listed at the root; those with a search type get a `/search` link too.
const COLLECTIONS: &[(&str, bool)] = &[
    ("clusters", true),
    ("datacenters", true),
    ("disks", true),
    ("events", true),
    ("groups", true),
    ("hosts", true),
    ("jobs", false),
    ("networks", true),
    ("operatingsystems", false),
    ("permissions", false),
    ("roles", false),
    ("schedulingpolicies", false),
    ("schedulingpolicyunits", false),
    ("storagedomains", true),
    ("tags", false),
    ("templates", true),
    ("users", true),
    ("vmpools", true),
    ("vms", true),
    ("vnicprofiles", false),
];

/// The product's version as the root reports it.
const VERSION: (u32, u32, u32, u32) = (4, 5, 0, 0);

/// `GET /ovirt-engine/api`.
pub fn handle(api: &Api, req: &Req) -> ApiResult<Resp> {
    if req.method != Method::GET {
        return Err(ApiError::BadRequest("the API root only answers GET".into()));
    }
    let mut root = Node::new("api");
    for (name, searchable) in COLLECTIONS {
        root.push(Node::new("link").attr("href", href(name)).attr("rel", name));
        if *searchable {
            root.push(
                Node::new("link")
                    .attr("href", format!("{}?search={{query}}", href(name)))
                    .attr("rel", format!("{name}/search")),
            );
        }
    }
    let (major, minor, build, revision) = VERSION;
    let (summary, instance) = api.engine.read(|db| {
        let vms: Vec<_> = db.all("VM").filter(|v| model::is_vm(v)).collect();
        let hosts: Vec<_> = db.all("host").collect();
        let srs: Vec<_> = db
            .all("SR")
            .filter(|s| s.str("content_type") != "iso")
            .collect();
        let summary = Node::new("summary")
            .child(counts(
                "hosts",
                hosts.iter().filter(|h| h.bool("enabled")).count(),
                hosts.len(),
            ))
            .child(counts(
                "storage_domains",
                srs.iter()
                    .filter(|s| {
                        s.refs("PBDs").iter().any(|p| {
                            db.get("PBD", p)
                                .is_some_and(|p| p.bool("currently_attached"))
                        })
                    })
                    .count(),
                srs.len(),
            ))
            .child(counts(
                "users",
                db.all("user").count(),
                db.all("user").count(),
            ))
            .child(counts(
                "vms",
                vms.iter()
                    .filter(|v| v.str("power_state") == "Running")
                    .count(),
                vms.len(),
            ));
        (summary, model::datacenter_id(db))
    });
    let user = api
        .engine
        .accounts()
        .into_iter()
        .find(|a| a.name == req.caller.user)
        .and_then(|a| api.uuid_of("user", &a.user))
        .unwrap_or_default();
    let root = root
        .child(
            Node::new("product_info")
                .text("instance_id", instance)
                .text("name", "oVirt Engine")
                .text("vendor", "Drover")
                .child(
                    Node::new("version")
                        .text("build", build)
                        .text(
                            "full_version",
                            format!(
                                "{major}.{minor}.{build}-drover{}",
                                env!("CARGO_PKG_VERSION")
                            ),
                        )
                        .text("major", major)
                        .text("minor", minor)
                        .text("revision", revision),
                ),
        )
        .child(
            Node::new("special_objects")
                .child(entity("blank_template", "templates", ZERO_ID))
                .child(entity("root_tag", "tags", ZERO_ID)),
        )
        .child(summary)
        .text("time", date(drover_core::now()))
        .child(entity("authenticated_user", "users", &user))
        .child(entity("effective_user", "users", &user));
    Resp::ok(root)
}

fn counts(name: &'static str, active: usize, total: usize) -> Node {
    Node::new(name).text("active", active).text("total", total)
}

/// `GET /ovirt-engine/api/autocomplete?type=vms&search=<partial query>`: the possible
/// continuations of a partial query, for the search bar.
pub fn autocomplete(req: &Req) -> ApiResult<Resp> {
    let kind = req.q("type").unwrap_or("vms");
    let target = search::object_type(kind).ok_or_else(|| {
        ApiError::BadRequest(format!("\"{kind}\" is not a searchable object type"))
    })?;
    let partial = req.q("search").unwrap_or("");
    let list = search::complete(partial, target)
        .into_iter()
        .map(|c| Node::leaf("completion", c));
    Resp::ok(Node::list("completions").children(list))
}
