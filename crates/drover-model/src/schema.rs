//! The class schemas of the inventory, loaded from the embedded datamodel.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use crate::{Type, Value, NULL_REF};

const MODEL_JSON: &str = include_str!("../data/xenapi-model.json");

/// Who may write a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    /// Read/write by clients.
    Rw,
    /// Given at creation, read-only afterwards.
    RoConstructor,
    /// Computed by the server.
    RoRuntime,
}

/// A field of a class.
#[derive(Debug, Clone)]
pub struct Field {
    /// Field name as on the wire.
    pub name: Arc<str>,
    /// Its type.
    pub ty: Type,
    /// Who may write it.
    pub qualifier: Qualifier,
    /// Value of a new object when none is given; `None` when a constructor must supply it.
    pub default: Option<Value>,
}

impl Field {
    /// The value of a new object: the datamodel default or the zero of the type.
    pub fn initial(&self, schema: &Schema) -> Value {
        self.default
            .clone()
            .unwrap_or_else(|| schema.zero(&self.ty))
    }
}

/// A message (RPC) of a class.
#[derive(Debug, Clone)]
pub struct Message {
    /// Message name.
    pub name: Arc<str>,
    /// Parameters, with their names and types, including the leading `session_id` if any.
    pub params: Vec<(Arc<str>, Type)>,
    /// How many leading parameters a caller must give (the rest have defaults).
    pub required: usize,
    /// Result type.
    pub result: Type,
    /// Roles allowed to call it.
    pub roles: Vec<Arc<str>>,
    /// Generated from the fields (getters, setters, create, destroy, ...).
    pub implicit: bool,
}

/// A class of objects.
#[derive(Debug)]
pub struct Class {
    /// Class name.
    pub name: Arc<str>,
    /// Fields in datamodel order; records list them in this order.
    pub fields: Vec<Field>,
    /// Field positions by name. Every field access of the engine goes through it, so it uses a
    /// fast hasher rather than SipHash (the names are the datamodel's, not an attacker's).
    index: HashMap<Arc<str>, usize, foldhash::fast::FixedState>,
    /// Messages by name.
    pub messages: HashMap<Arc<str>, Message>,
}

impl Class {
    /// Position of a field in a record.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.field_index(name).map(|i| &self.fields[i])
    }

    /// Whether objects of this class have a `name_label`.
    pub fn has_name_label(&self) -> bool {
        self.index.contains_key("name_label")
    }
}

/// All classes and enums of the inventory.
#[derive(Debug)]
pub struct Schema {
    classes: Vec<Class>,
    by_name: HashMap<Arc<str>, usize>,
    /// Enumerations by name, values in datamodel order.
    pub enums: HashMap<Arc<str>, Vec<Arc<str>>>,
}

#[derive(Deserialize)]
struct RawModel {
    classes: Vec<RawClass>,
    enums: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct RawClass {
    name: String,
    fields: Vec<RawField>,
    messages: Vec<RawMessage>,
}

#[derive(Deserialize)]
struct RawField {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    qualifier: String,
    default: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    name: String,
    params: Vec<(String, String, bool)>,
    result: String,
    roles: Vec<String>,
    implicit: bool,
}

impl Schema {
    /// The embedded datamodel, parsed once.
    pub fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::parse(MODEL_JSON).expect("embedded datamodel is valid"))
    }

    fn parse(json: &str) -> Result<Schema, String> {
        let raw: RawModel = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut schema = Schema {
            classes: Vec::new(),
            by_name: HashMap::new(),
            enums: raw
                .enums
                .into_iter()
                .map(|(k, v)| (k.into(), v.into_iter().map(Into::into).collect()))
                .collect(),
        };
        for rc in raw.classes {
            let mut fields = Vec::new();
            for rf in rc.fields {
                let ty = Type::parse(&rf.ty).map_err(|e| e.to_string())?;
                let qualifier = match rf.qualifier.as_str() {
                    "RW" => Qualifier::Rw,
                    "RO/constructor" => Qualifier::RoConstructor,
                    _ => Qualifier::RoRuntime,
                };
                let default = rf.default.as_deref().map(|d| parse_default(&ty, d));
                fields.push(Field {
                    name: rf.name.into(),
                    ty,
                    qualifier,
                    default,
                });
            }
            let index = fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.clone(), i))
                .collect();
            let mut messages = HashMap::new();
            for m in rc.messages {
                let params = m
                    .params
                    .iter()
                    .map(|(n, t, _)| Ok((n.as_str().into(), Type::parse(t)?)))
                    .collect::<Result<Vec<_>, crate::TypeError>>()
                    .map_err(|e| e.to_string())?;
                let result = Type::parse(&m.result).map_err(|e| e.to_string())?;
                let required = m.params.iter().filter(|(_, _, r)| *r).count();
                let name: Arc<str> = m.name.into();
                messages.insert(
                    name.clone(),
                    Message {
                        name,
                        params,
                        required,
                        result,
                        roles: m.roles.into_iter().map(Into::into).collect(),
                        implicit: m.implicit,
                    },
                );
            }
            let name: Arc<str> = rc.name.into();
            schema.by_name.insert(name.clone(), schema.classes.len());
            schema.classes.push(Class {
                name,
                fields,
                index,
                messages,
            });
        }
        Ok(schema)
    }

    /// A class by name (exact case, as on the wire).
    pub fn class(&self, name: &str) -> Option<&Class> {
        self.by_name.get(name).map(|&i| &self.classes[i])
    }

    /// All classes.
    pub fn classes(&self) -> &[Class] {
        &self.classes
    }

    /// The zero value of a type: empty text, 0, false, the null reference, the first enum value.
    pub fn zero(&self, ty: &Type) -> Value {
        match ty {
            Type::String | Type::Void | Type::Opaque(_) | Type::Record(_) => {
                Value::Str(String::new())
            }
            Type::Int => Value::Int(0),
            Type::Float => Value::Float(0.0),
            Type::Bool => Value::Bool(false),
            Type::DateTime => Value::DateTime(0),
            Type::Ref(_) => Value::str(NULL_REF),
            Type::Enum(e) => Value::str(
                self.enums
                    .get(e)
                    .and_then(|v| v.first())
                    .map(|s| &**s)
                    .unwrap_or(""),
            ),
            Type::Set(_) | Type::Option(_) => Value::empty_set(),
            Type::Map(..) => Value::empty_map(),
        }
    }
}

/// Parses a datamodel default such as `{}`, `"UTC"`, `OpaqueRef:NULL`, `0.` or `{"a" -> "b"}`.
fn parse_default(ty: &Type, text: &str) -> Value {
    let text = text.trim();
    match ty {
        Type::String => Value::str(text.trim_matches('"')),
        Type::Int => Value::Int(text.parse().unwrap_or(0)),
        Type::Float => Value::Float(text.parse().unwrap_or(0.0)),
        Type::Bool => Value::Bool(text == "true"),
        Type::DateTime => Value::DateTime(0),
        Type::Ref(_) => Value::str(NULL_REF),
        Type::Enum(_) => Value::str(text.trim_matches('"')),
        Type::Set(inner) => {
            let body = text.trim_start_matches('{').trim_end_matches('}').trim();
            if body.is_empty() {
                return Value::empty_set();
            }
            Value::Set(body.split(',').map(|x| parse_default(inner, x)).collect())
        }
        Type::Map(k, v) => {
            let body = text.trim_start_matches('{').trim_end_matches('}').trim();
            if body.is_empty() {
                return Value::empty_map();
            }
            Value::Map(
                body.split(',')
                    .filter_map(|pair| pair.split_once("->"))
                    .map(|(a, b)| (parse_default(k, a), parse_default(v, b)))
                    .collect(),
            )
        }
        _ => Value::str(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_every_class_of_the_inventory() {
        let s = Schema::get();
        for name in [
            "session", "task", "VM", "host", "SR", "VDI", "VBD", "PBD", "network", "VIF", "PIF",
            "console", "user",
        ] {
            assert!(s.class(name).is_some(), "{name}");
        }
        let vm = s.class("VM").unwrap();
        assert_eq!(vm.fields[0].name.as_ref(), "uuid");
        assert_eq!(
            vm.field("power_state").unwrap().ty,
            Type::Enum("vm_power_state".into())
        );
        assert!(vm.messages.contains_key("start"));
        assert!(vm.has_name_label());
    }

    #[test]
    fn defaults_parse() {
        let s = Schema::get();
        let pool = s.class("pool").unwrap();
        let f = pool.field("other_config").unwrap();
        assert_eq!(f.initial(s), Value::empty_map());
        let vm = s.class("VM").unwrap();
        assert_eq!(
            vm.field("suspend_VDI").unwrap().initial(s),
            Value::str(NULL_REF)
        );
    }
}
