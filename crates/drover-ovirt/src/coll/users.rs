//! The `users` collection: the engine's login accounts as users of the `internal-authz`
//! directory (id = the uuid of the account's XenAPI `user` object), and the empty `groups`
//! collection (the engine has no directory groups).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::Method;
use drover_core::{AccountInfo, Obj};

use crate::api::{collection, entity, href, limit, no_such_resource, with_links, Api, Req, Resp};
use crate::coll::{permissions, roles};
use crate::fault::{ApiError, ApiResult};
use crate::listing;
use crate::node::Node;
use crate::search::{self, FieldValue, Subject};

/// The directory (authorization extension) of the engine's accounts.
pub const DOMAIN: &str = "internal-authz";
/// The login profile of the engine's accounts (`admin@internal`).
pub const PROFILE: &str = "internal";
/// `other_config` key (on the `user` object) of a user's department.
pub const DEPARTMENT_KEY: &str = "ovirt_department";
/// `other_config` key (on the `user` object) of a user's e-mail address.
pub const EMAIL_KEY: &str = "ovirt_email";

/// Sub-collections of a user.
const SUBS: &[&str] = &["groups", "permissions", "roles", "sshpublickeys", "tags"];

/// Handles `/users/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => list(api, req),
        ([], &Method::POST) => add(api, req),
        ([id], &Method::GET) => {
            let (account, user) = account(api, id)?;
            Resp::ok(render(&account, &user))
        }
        ([id], &Method::DELETE) => {
            let (account, _) = account(api, id)?;
            Err(ApiError::Conflict(format!(
                "Cannot remove User. \"{}\" is a login account of the engine, and the engine \
                 offers no way to remove accounts.",
                account.name
            )))
        }
        ([id, sub, tail @ ..], _) if SUBS.contains(sub) => {
            let (account, user) = account(api, id)?;
            sub_collection(api, req, &account, user.uuid(), sub, tail).await
        }
        _ => Err(no_such_resource(req, "/users", rest)),
    }
}

/// Handles `/groups/...`: the engine has no directory groups.
pub async fn handle_groups(_api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => Resp::ok(collection("groups", [])),
        ([], &Method::POST) => Err(ApiError::NotFound(
            "Entity not found: Group: the engine's directory (internal-authz) has no groups".into(),
        )),
        ([id, ..], _) => Err(ApiError::not_found("Group", id)),
        _ => Err(ApiError::NotFound(format!(
            "no such resource: {} /groups",
            req.method
        ))),
    }
}

/// The account whose `user` object has the oVirt id `id`, with that object.
pub fn account(api: &Api, id: &str) -> ApiResult<(AccountInfo, Arc<Obj>)> {
    let user = api.by_id("user", id, "User")?;
    api.engine
        .accounts()
        .into_iter()
        .find(|a| *a.user == *user.r)
        .map(|a| (a, user))
        .ok_or_else(|| ApiError::not_found("User", id))
}

/// The oVirt id of the user behind an account name, if the account exists.
pub fn id_of(api: &Api, name: &str) -> Option<String> {
    let account = api.engine.accounts().into_iter().find(|a| a.name == name)?;
    api.uuid_of("user", &account.user)
}

/// Account names to the oVirt ids of their users.
pub fn ids_by_name(api: &Api) -> HashMap<String, String> {
    api.engine
        .accounts()
        .into_iter()
        .filter_map(|a| Some((a.name.clone(), api.uuid_of("user", &a.user)?)))
        .collect()
}

/// The user name oVirt shows for an account: `name@internal-authz`.
pub fn user_name(name: &str) -> String {
    format!("{name}@{DOMAIN}")
}

/// The account name a user name (`name@internal-authz`, `name@internal` or `name`) means,
/// or `None` for another directory.
fn principal_of(user_name: &str) -> Option<&str> {
    match user_name.rsplit_once('@') {
        Some((name, DOMAIN | PROFILE)) => Some(name),
        Some(_) => None,
        None => Some(user_name),
    }
}

/// The id oVirt gives the directory: its name in hexadecimal.
fn domain_id() -> String {
    hex(DOMAIN)
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn list(api: &Api, req: &Req) -> ApiResult<Resp> {
    let target = search::object_type("users")
        .ok_or_else(|| ApiError::Internal("no Users search type".into()))?;
    let accounts = api.engine.accounts();
    let nodes = api.engine.read(|db| {
        let subjects: Vec<UserSubject> = accounts
            .iter()
            .filter_map(|a| {
                db.get("user", &a.user).map(|u| UserSubject {
                    account: a,
                    user: u,
                })
            })
            .collect();
        listing::select(req, target, subjects).map(|list| {
            list.iter()
                .map(|s| render(s.account, s.user))
                .collect::<Vec<_>>()
        })
    })?;
    Resp::ok(collection("users", nodes))
}

/// A user as oVirt shows it.
pub fn render(account: &AccountInfo, user: &Obj) -> Node {
    let id = user.uuid();
    let node = entity("user", "users", id).text("name", &account.name);
    let node = match user.str("fullname") {
        "" => node,
        full => node.text("description", full),
    };
    with_links(node, &format!("users/{id}"), &[], SUBS)
        .text("department", user.other(DEPARTMENT_KEY).unwrap_or(""))
        .text("domain_entry_id", hex(&account.name).to_ascii_uppercase())
        .text("email", user.other(EMAIL_KEY).unwrap_or(""))
        .text("last_name", "")
        .text("namespace", "*")
        .text("principal", &account.name)
        .text("user_name", user_name(&account.name))
        .child(
            Node::new("domain")
                .attr("href", href(&format!("domains/{}", domain_id())))
                .attr("id", domain_id())
                .text("name", DOMAIN),
        )
}

/// `POST /users`: oVirt adds users found in a directory; the engine's directory is its own
/// accounts, which are all users already, and it offers no way to create one.
fn add(api: &Api, req: &Req) -> ApiResult<Resp> {
    let body = req.body("user")?;
    let given = body
        .text_at("user_name")
        .or_else(|| body.text_at("principal"))
        .ok_or_else(|| ApiError::missing("User", "user_name|principal"))?;
    if let Some(domain) = body.text_at("domain/name").filter(|d| *d != DOMAIN) {
        return Err(ApiError::NotFound(format!(
            "Entity not found: Domain: name={domain}"
        )));
    }
    let Some(name) = principal_of(given) else {
        return Err(ApiError::NotFound(format!(
            "Entity not found: Domain: the user name \"{given}\" is not of {DOMAIN}"
        )));
    };
    if api.engine.accounts().iter().any(|a| a.name == name) {
        return Err(ApiError::Conflict(format!(
            "Cannot add User. User \"{}\" already exists.",
            user_name(name)
        )));
    }
    Err(ApiError::Conflict(format!(
        "User must exist in the directory ({PROFILE}): create it with the engine's account \
         tooling. There is no account \"{name}\"."
    )))
}

async fn sub_collection(
    api: &Api,
    req: &Req,
    account: &AccountInfo,
    id: &str,
    sub: &str,
    rest: &[&str],
) -> ApiResult<Resp> {
    match (sub, rest, &req.method) {
        ("permissions", _, _) => permissions::for_user(api, req, account, id, rest).await,
        ("roles", [], &Method::GET) => {
            let list = permissions::roles_of(api, id)
                .into_iter()
                .map(roles::render)
                .collect();
            Resp::ok(collection("roles", limit(list, req.max()?)))
        }
        ("roles", [rid], &Method::GET) => permissions::roles_of(api, id)
            .into_iter()
            .find(|r| r.id.eq_ignore_ascii_case(rid))
            .map(roles::render)
            .map_or_else(|| Err(ApiError::not_found("Role", rid)), Resp::ok),
        ("groups", [], &Method::GET) => Resp::ok(collection("groups", [])),
        ("tags", [], &Method::GET) => Resp::ok(collection("tags", [])),
        ("sshpublickeys", [], &Method::GET) => Resp::ok(collection("ssh_public_keys", [])),
        ("tags" | "sshpublickeys", [], &Method::POST) => Err(ApiError::Conflict(format!(
            "Cannot add to the {sub} of User {}: the engine keeps no {sub} for its accounts.",
            user_name(&account.name)
        ))),
        (_, [item, ..], _) => Err(ApiError::NotFound(format!(
            "Entity not found: {sub}: id={item}"
        ))),
        _ => Err(ApiError::NotFound(format!(
            "no such resource: {} /users/{id}/{sub}",
            req.method
        ))),
    }
}

/// A user as the search language sees it.
struct UserSubject<'a> {
    account: &'a AccountInfo,
    user: &'a Obj,
}

impl Subject for UserSubject<'_> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        let name = self.account.name.as_str();
        let text = |s: &str| vec![FieldValue::Text(s.to_string())];
        match field {
            "name" | "login" => text(name),
            "usrname" | "user_and_domain" => text(&user_name(name)),
            "id" => text(self.user.uuid()),
            "directory" => text(DOMAIN),
            "department" => text(self.user.other(DEPARTMENT_KEY).unwrap_or("")),
            "lastname" => text(""),
            "type" => text("user"),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert_eq!(user_name("admin"), "admin@internal-authz");
        assert_eq!(principal_of("bob@internal-authz"), Some("bob"));
        assert_eq!(principal_of("bob@internal"), Some("bob"));
        assert_eq!(principal_of("bob"), Some("bob"));
        assert_eq!(principal_of("bob@example.com"), None);
    }

    #[test]
    fn domain_ids_are_hex_names() {
        assert_eq!(domain_id(), "696e7465726e616c2d617574687a");
        assert_eq!(hex("admin").to_ascii_uppercase(), "61646D696E");
    }
}
