//! Typed values of object fields, independent of any wire format.

use serde::{Deserialize, Serialize};

/// The null reference of XenAPI.
pub const NULL_REF: &str = "OpaqueRef:NULL";

/// A field value. Strings, enums and references are all `Str`; the schema says which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
pub enum Value {
    /// Text, an enum value or an object reference.
    Str(String),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// Seconds since the Unix epoch, UTC.
    DateTime(i64),
    /// A set, without duplicates.
    Set(Vec<Value>),
    /// A map with unique keys, in insertion order.
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// An empty map.
    pub fn empty_map() -> Value {
        Value::Map(Vec::new())
    }

    /// An empty set.
    pub fn empty_set() -> Value {
        Value::Set(Vec::new())
    }

    /// A string map from pairs.
    pub fn string_map<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::Str(k.into()), Value::Str(v.into())))
                .collect(),
        )
    }

    /// The text of a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer of an `Int`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean of a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The members of a `Set`.
    pub fn as_set(&self) -> Option<&[Value]> {
        match self {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }

    /// The pairs of a `Map`.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Looks a key up in a map value.
    pub fn map_get(&self, key: &str) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Inserts or replaces a key in a map value; returns false if this is not a map.
    pub fn map_insert(&mut self, key: Value, value: Value) -> bool {
        match self {
            Value::Map(m) => {
                match m.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => m.push((key, value)),
                }
                true
            }
            _ => false,
        }
    }

    /// Removes a key from a map value.
    pub fn map_remove(&mut self, key: &Value) {
        if let Value::Map(m) = self {
            m.retain(|(k, _)| k != key);
        }
    }

    /// Adds a member to a set value unless present.
    pub fn set_add(&mut self, v: Value) {
        if let Value::Set(s) = self {
            if !s.contains(&v) {
                s.push(v);
            }
        }
    }

    /// Removes a member from a set value.
    pub fn set_remove(&mut self, v: &Value) {
        if let Value::Set(s) = self {
            s.retain(|x| x != v);
        }
    }
}
