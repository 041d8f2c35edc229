//! Tags: the catalogue (`/tags`) and the tags of one object (`/vms/{id}/tags`, …).
//!
//! The root tag (id [`ZERO_ID`], `root`) always exists. Tags added here are kept in the
//! pool's `other_config` as `ovirt_tag:<id>` = JSON `{name, description, parent}`. An object's
//! tags are its XenAPI `tags` set, by name; a name a XenAPI client put on an object that the
//! catalogue does not hold is a tag too (under the root, id `uuid5(data center, "tag:<name>")`),
//! so both APIs see the same tags. Tag names are unique.

use axum::http::Method;
use drover_core::db::Db;
use drover_core::Obj;
use drover_model::Value;
use serde::{Deserialize, Serialize};

use crate::api::{
    collection, entity, limit, no_such_resource, pool_records, Api, Req, Resp, ZERO_ID,
};
use crate::fault::{ApiError, ApiResult};
use crate::model;
use crate::node::Node;
use crate::search::FieldValue;

/// `other_config` key prefix (on the pool) of a catalogue tag.
pub const TAG_KEY: &str = "ovirt_tag:";
/// The root tag's name.
const ROOT_NAME: &str = "root";
/// Classes whose objects carry tags.
const TAGGED: &[&str] = &["VM", "host", "SR", "VDI", "network"];

/// A stored tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TagDef {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    parent: Option<String>,
}

/// A tag of the catalogue.
#[derive(Debug, Clone, PartialEq)]
struct Tag {
    id: String,
    def: TagDef,
    /// Whether the catalogue stores it (not the root, not a name found only on objects).
    stored: bool,
}

/// Handles `/tags/...`.
pub async fn handle(api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => {
            let list = api.engine.read(catalogue);
            Resp::ok(collection(
                "tags",
                limit(list.iter().map(render).collect(), req.max()?),
            ))
        }
        ([], &Method::POST) => add(api, req).await,
        ([id], &Method::GET) => Resp::ok(render(&tag(api, id)?)),
        ([id], &Method::PUT) => update(api, req, id).await,
        ([id], &Method::DELETE) => remove(api, req, id).await,
        _ => Err(no_such_resource(req, "/tags", rest)),
    }
}

/// Handles `/<collection>/{id}/tags/...`: the tags of one object of `class` (`VM` — a VM or
/// a template —, `host`, `SR`, `VDI` or `network`).
pub async fn for_object(
    api: &Api,
    req: &Req,
    class: &'static str,
    obj: &Obj,
    rest: &[&str],
) -> ApiResult<Resp> {
    let (elem, coll) = shown_as(class, obj);
    let base = format!("{coll}/{}/tags", obj.uuid());
    let assigned =
        |t: &Tag| tag_node(entity("tag", &base, &t.id), t).child(entity(elem, coll, obj.uuid()));
    match (rest, &req.method) {
        ([], &Method::GET) => {
            let list = api.engine.read(|db| {
                let all = catalogue(db);
                names_on(obj)
                    .iter()
                    .filter_map(|n| all.iter().find(|t| t.def.name == *n).map(assigned))
                    .collect()
            });
            Resp::ok(collection("tags", limit(list, req.max()?)))
        }
        ([], &Method::POST) => {
            let body = req.body("tag")?;
            let t = named_in(api, &body)?;
            let current = api
                .obj(class, &obj.r)
                .ok_or_else(|| ApiError::not_found(class, obj.uuid()))?;
            let mut names = names_on(&current);
            if names.contains(&t.def.name) {
                return Err(ApiError::Conflict(format!(
                    "Cannot attach Tag. Tag \"{}\" is already attached.",
                    t.def.name
                )));
            }
            names.push(t.def.name.clone());
            set_names(api, req, class, &obj.r, names).await?;
            Resp::created(assigned(&t))
        }
        ([id], &Method::GET) => {
            let t = tag(api, id)?;
            if !names_on(obj).contains(&t.def.name) {
                return Err(ApiError::not_found("Tag", id));
            }
            Resp::ok(assigned(&t))
        }
        ([id], &Method::DELETE) => {
            let t = tag(api, id)?;
            let current = api
                .obj(class, &obj.r)
                .ok_or_else(|| ApiError::not_found(class, obj.uuid()))?;
            let mut names = names_on(&current);
            if !names.contains(&t.def.name) {
                return Err(ApiError::not_found("Tag", id));
            }
            names.retain(|n| *n != t.def.name);
            set_names(api, req, class, &obj.r, names).await?;
            Resp::removed()
        }
        _ => Err(no_such_resource(req, &format!("/{base}"), rest)),
    }
}

/// How a tagged object is referred to: element and collection.
fn shown_as(class: &str, obj: &Obj) -> (&'static str, &'static str) {
    match class {
        "VM" if model::is_template(obj) => ("template", "templates"),
        "VM" => ("vm", "vms"),
        "host" => ("host", "hosts"),
        "SR" => ("storage_domain", "storagedomains"),
        "VDI" => ("disk", "disks"),
        _ => ("network", "networks"),
    }
}

/// The tag names an object carries.
fn names_on(obj: &Obj) -> Vec<String> {
    if obj.class.field_index("tags").is_none() {
        return Vec::new();
    }
    obj.get("tags")
        .as_set()
        .unwrap_or(&[])
        .iter()
        .filter_map(|v| v.as_str())
        .map(str::to_string)
        .collect()
}

/// The tags an object carries, as the search language sees them.
pub fn tag_values(obj: &Obj) -> Vec<FieldValue> {
    names_on(obj).into_iter().map(FieldValue::Text).collect()
}

async fn set_names(
    api: &Api,
    req: &Req,
    class: &str,
    r: &str,
    names: Vec<String>,
) -> ApiResult<()> {
    api.set(
        req,
        class,
        r,
        "tags",
        Value::Set(names.into_iter().map(Value::Str).collect()),
    )
    .await
}

/// The whole catalogue: the root, the stored tags, and the names only objects carry.
fn catalogue(db: &Db) -> Vec<Tag> {
    let mut list = vec![Tag {
        id: ZERO_ID.into(),
        def: TagDef {
            name: ROOT_NAME.into(),
            description: ROOT_NAME.into(),
            parent: None,
        },
        stored: false,
    }];
    let mut stored: Vec<Tag> = pool_records(db, TAG_KEY)
        .into_iter()
        .map(|(id, def)| Tag {
            id,
            def,
            stored: true,
        })
        .collect();
    stored.sort_by(|a, b| a.def.name.cmp(&b.def.name));
    list.extend(stored);
    let dc = model::datacenter_id(db);
    let mut found: Vec<String> = TAGGED
        .iter()
        .flat_map(|c| db.all(c))
        .flat_map(|o| names_on(o))
        .collect();
    found.sort();
    found.dedup();
    for name in found {
        if !list.iter().any(|t| t.def.name == name) {
            list.push(Tag {
                id: model::derived_id(&dc, &format!("tag:{name}")),
                def: TagDef {
                    name,
                    description: String::new(),
                    parent: Some(ZERO_ID.into()),
                },
                stored: false,
            });
        }
    }
    list
}

fn tag(api: &Api, id: &str) -> ApiResult<Tag> {
    api.engine
        .read(catalogue)
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ApiError::not_found("Tag", id))
}

/// The tag a `<tag>` document names by `id` or `<name>`.
fn named_in(api: &Api, body: &Node) -> ApiResult<Tag> {
    if let Some(id) = body.get_attr("id").or_else(|| body.text_at("id")) {
        return tag(api, id);
    }
    let name = body
        .text_at("name")
        .ok_or_else(|| ApiError::missing("Tag", "id|name"))?;
    api.engine
        .read(catalogue)
        .into_iter()
        .find(|t| t.def.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("Entity not found: Tag: name={name}")))
}

/// The parent a document names (`<parent id>` or `<parent><name>`), if any.
fn parent_in(list: &[Tag], body: &Node) -> ApiResult<Option<String>> {
    if let Some(id) = body.id_at("parent") {
        return list
            .iter()
            .find(|t| t.id == id)
            .map(|t| Some(t.id.clone()))
            .ok_or_else(|| ApiError::not_found("Tag", id));
    }
    match body.text_at("parent/name") {
        Some(name) => list
            .iter()
            .find(|t| t.def.name == name)
            .map(|t| Some(t.id.clone()))
            .ok_or_else(|| ApiError::NotFound(format!("Entity not found: Tag: name={name}"))),
        None => Ok(None),
    }
}

fn check_name_free(list: &[Tag], name: &str, except: Option<&str>) -> ApiResult<()> {
    if list
        .iter()
        .any(|t| t.def.name == name && Some(t.id.as_str()) != except)
    {
        return Err(ApiError::Conflict(format!(
            "Cannot add or update Tag. The tag name \"{name}\" is already in use."
        )));
    }
    Ok(())
}

async fn add(api: &Api, req: &Req) -> ApiResult<Resp> {
    let body = req.body("tag")?;
    let name = body
        .text_at("name")
        .ok_or_else(|| ApiError::missing("Tag", "name"))?;
    let list = api.engine.read(catalogue);
    check_name_free(&list, name, None)?;
    let t = Tag {
        id: uuid::Uuid::new_v4().to_string(),
        def: TagDef {
            name: name.to_string(),
            description: body.text_at("description").unwrap_or("").to_string(),
            parent: Some(parent_in(&list, &body)?.unwrap_or_else(|| ZERO_ID.into())),
        },
        stored: true,
    };
    store(api, req, &t).await?;
    Resp::created(render(&t))
}

async fn update(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    if id == ZERO_ID {
        return Err(ApiError::Conflict(
            "Cannot update Tag. The root tag cannot be changed.".into(),
        ));
    }
    let body = req.body("tag")?;
    let list = api.engine.read(catalogue);
    let old = list
        .iter()
        .find(|t| t.id == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Tag", id))?;
    let mut t = old.clone();
    if let Some(name) = body.text_at("name") {
        check_name_free(&list, name, Some(id))?;
        t.def.name = name.to_string();
    }
    if let Some(d) = body.get("description") {
        t.def.description = d.text.as_deref().unwrap_or("").trim().to_string();
    }
    if let Some(parent) = parent_in(&list, &body)? {
        if subtree(&list, id).contains(&parent) {
            return Err(ApiError::Conflict(
                "Cannot update Tag. A tag cannot be moved under itself or its descendants.".into(),
            ));
        }
        t.def.parent = Some(parent);
    }
    if t == old {
        return Resp::ok(render(&t));
    }
    if t.def.name != old.def.name {
        rename_on_objects(api, req, &old.def.name, Some(&t.def.name)).await?;
    }
    t.stored = true;
    store(api, req, &t).await?;
    Resp::ok(render(&t))
}

async fn remove(api: &Api, req: &Req, id: &str) -> ApiResult<Resp> {
    if id == ZERO_ID {
        return Err(ApiError::Conflict(
            "Cannot remove Tag. The root tag cannot be removed.".into(),
        ));
    }
    let list = api.engine.read(catalogue);
    if !list.iter().any(|t| t.id == id) {
        return Err(ApiError::not_found("Tag", id));
    }
    let doomed: Vec<&Tag> = subtree(&list, id)
        .iter()
        .filter_map(|i| list.iter().find(|t| t.id == *i))
        .collect();
    for t in &doomed {
        rename_on_objects(api, req, &t.def.name, None).await?;
    }
    let keys: Vec<String> = doomed
        .iter()
        .filter(|t| t.stored)
        .map(|t| format!("{TAG_KEY}{}", t.id))
        .collect();
    api.remove_pool_keys(req, &keys).await?;
    Resp::removed()
}

/// The ids of a tag and all its descendants.
fn subtree(list: &[Tag], id: &str) -> Vec<String> {
    let mut out = vec![id.to_string()];
    let mut i = 0;
    while i < out.len() {
        let children: Vec<String> = list
            .iter()
            .filter(|t| t.def.parent.as_deref() == Some(out[i].as_str()))
            .map(|t| t.id.clone())
            .filter(|c| !out.contains(c))
            .collect();
        out.extend(children);
        i += 1;
    }
    out
}

/// Renames a tag on every object that carries it (`None`: takes it off).
async fn rename_on_objects(api: &Api, req: &Req, old: &str, new: Option<&str>) -> ApiResult<()> {
    let carriers: Vec<(&'static str, String, Vec<String>)> = api.engine.read(|db| {
        TAGGED
            .iter()
            .flat_map(|c| db.all(c).map(move |o| (*c, o)))
            .map(|(c, o)| (c, o.r.to_string(), names_on(o)))
            .filter(|(_, _, names)| names.iter().any(|n| n == old))
            .collect()
    });
    for (class, r, names) in carriers {
        let mut renamed: Vec<String> = Vec::new();
        for n in names {
            let n = if n == old {
                new.map(str::to_string)
            } else {
                Some(n)
            };
            if let Some(n) = n.filter(|n| !renamed.contains(n)) {
                renamed.push(n);
            }
        }
        set_names(api, req, class, &r, renamed).await?;
    }
    Ok(())
}

async fn store(api: &Api, req: &Req, t: &Tag) -> ApiResult<()> {
    api.store_pool_record(req, TAG_KEY, &t.id, &t.def).await
}

/// A tag as oVirt shows it.
fn render(t: &Tag) -> Node {
    tag_node(entity("tag", "tags", &t.id), t)
}

fn tag_node(node: Node, t: &Tag) -> Node {
    node.text("name", &t.def.name)
        .text("description", &t.def.description)
        .opt_child(t.def.parent.as_deref().map(|p| entity("parent", "tags", p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, parent: Option<&str>) -> Tag {
        Tag {
            id: id.into(),
            def: TagDef {
                name: format!("n{id}"),
                description: String::new(),
                parent: parent.map(str::to_string),
            },
            stored: true,
        }
    }

    #[test]
    fn subtrees() {
        let list = vec![
            t("r", None),
            t("a", Some("r")),
            t("b", Some("a")),
            t("c", Some("r")),
        ];
        assert_eq!(subtree(&list, "a"), vec!["a", "b"]);
        assert_eq!(subtree(&list, "r").len(), 4);
        assert!(check_name_free(&list, "na", None).is_err());
        assert!(check_name_free(&list, "na", Some("a")).is_ok());
    }

    #[test]
    fn parents_and_rendering() {
        let list = vec![t("r", None), t("a", Some("r"))];
        let body = Node::new("tag").child(Node::new("parent").text("name", "na"));
        assert_eq!(parent_in(&list, &body), Ok(Some("a".to_string())));
        let n = render(&list[1]);
        assert_eq!(n.id_at("parent"), Some("r"));
        assert_eq!(n.text_at("name"), Some("na"));
        assert!(render(&list[0]).get("parent").is_none());
    }

    #[test]
    fn stored_form() {
        let def: TagDef = serde_json::from_str(r#"{"name":"x"}"#).expect("json");
        assert_eq!(def.parent, None);
        assert_eq!(def.description, "");
    }
}
