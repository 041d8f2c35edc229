//! The route table: the first path segment below `/ovirt-engine/api` names the collection
//! whose module handles the rest.

use crate::api::{Api, Req, Resp};
use crate::coll::{
    clusters, datacenters, disks, events, hosts, jobs, networks, operatingsystems, permissions,
    roles, root, schedulingpolicies, storagedomains, tags, templates, users, vmpools, vms,
    vnicprofiles,
};
use crate::fault::{ApiError, ApiResult};

/// Hands a request to the module of its collection.
pub async fn dispatch(api: &Api, req: &Req) -> ApiResult<Resp> {
    let segments: Vec<&str> = req.path.iter().map(String::as_str).collect();
    let Some((first, rest)) = segments.split_first() else {
        return root::handle(api, req);
    };
    match *first {
        "autocomplete" => root::autocomplete(req),
        "clusters" => clusters::handle(api, req, rest).await,
        "datacenters" => datacenters::handle(api, req, rest).await,
        "disks" => disks::handle(api, req, rest).await,
        "events" => events::handle(api, req, rest).await,
        "groups" => users::handle_groups(api, req, rest).await,
        "hosts" => hosts::handle(api, req, rest).await,
        "jobs" => jobs::handle(api, req, rest).await,
        "networks" => networks::handle(api, req, rest).await,
        "operatingsystems" => operatingsystems::handle(api, req, rest).await,
        "permissions" => permissions::handle_system(api, req, rest).await,
        "roles" => roles::handle(api, req, rest).await,
        "schedulingpolicies" => schedulingpolicies::handle(api, req, rest).await,
        "schedulingpolicyunits" => schedulingpolicies::handle_units(api, req, rest).await,
        "storagedomains" => storagedomains::handle(api, req, rest).await,
        "tags" => tags::handle(api, req, rest).await,
        "templates" => templates::handle(api, req, rest).await,
        "users" => users::handle(api, req, rest).await,
        "vmpools" => vmpools::handle(api, req, rest).await,
        "vms" => vms::handle(api, req, rest).await,
        "vnicprofiles" => vnicprofiles::handle(api, req, rest).await,
        other => Err(ApiError::NotFound(format!(
            "there is no collection \"{other}\" in this API"
        ))),
    }
}
