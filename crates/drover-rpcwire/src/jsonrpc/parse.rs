use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{JsonCall, Version};
use crate::{Call, Limits, WireError, WireValue};

/// Parses a JSON-RPC request object.
///
/// `method` must be a string, `params` an array (absent means none), `id` any
/// value (absent means `null`); `"jsonrpc": "2.0"` selects [`Version::V2`], its
/// absence [`Version::V1`], and anything else is rejected. Integers that fit an
/// `i64` become [`WireValue::Int`], other numbers [`WireValue::Double`].
pub fn parse_call(body: &[u8], limits: &Limits) -> Result<JsonCall, WireError> {
    if body.len() > limits.max_body {
        return Err(WireError::TooLarge);
    }
    let depth = DepthGuard {
        max_depth: limits.max_depth,
        exceeded: Cell::new(false),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let envelope = RequestVisitor { depth: &depth }
        .deserialize(&mut de)
        .and_then(|envelope| de.end().map(|()| envelope));
    match envelope {
        Ok(envelope) => envelope.into_call(),
        Err(_) if depth.exceeded.get() => Err(WireError::TooDeep),
        // serde_json's own nesting limit (128 levels), hit by deep `id` values
        // or ignored members before ours applies; it has no error category.
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => Err(WireError::TooDeep),
        Err(e) => Err(WireError::Malformed(e.to_string())),
    }
}

/// The request members this parser understands, as found.
#[derive(Default)]
struct Request {
    method: Option<String>,
    params: Option<Vec<WireValue>>,
    id: Option<serde_json::Value>,
    jsonrpc: Option<serde_json::Value>,
}

impl Request {
    fn into_call(self) -> Result<JsonCall, WireError> {
        let version = match self.jsonrpc {
            None => Version::V1,
            Some(serde_json::Value::String(v)) if v == "2.0" => Version::V2,
            Some(_) => return Err(WireError::malformed("unsupported \"jsonrpc\" version")),
        };
        let method = self
            .method
            .ok_or_else(|| WireError::malformed("missing \"method\""))?;
        Ok(JsonCall {
            call: Call {
                method,
                params: self.params.unwrap_or_default(),
            },
            id: self.id.unwrap_or(serde_json::Value::Null),
            version,
        })
    }
}

/// Tracks `Limits::max_depth` for one parse and records whether it was hit.
struct DepthGuard {
    max_depth: usize,
    exceeded: Cell<bool>,
}

struct RequestVisitor<'g> {
    depth: &'g DepthGuard,
}

impl<'de> DeserializeSeed<'de> for RequestVisitor<'_> {
    type Value = Request;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Request, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequestVisitor<'_> {
    type Value = Request;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Request, A::Error> {
        let mut request = Request::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "method" => set_once(&mut request.method, "method", map.next_value()?)?,
                "params" => {
                    let params = map.next_value_seed(ParamsVisitor { depth: self.depth })?;
                    set_once(&mut request.params, "params", params)?;
                }
                "id" => set_once(&mut request.id, "id", map.next_value()?)?,
                "jsonrpc" => set_once(&mut request.jsonrpc, "jsonrpc", map.next_value()?)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(request)
    }
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), E> {
    match slot.replace(value) {
        Some(_) => Err(E::duplicate_field(name)),
        None => Ok(()),
    }
}

struct ParamsVisitor<'g> {
    depth: &'g DepthGuard,
}

impl<'de> DeserializeSeed<'de> for ParamsVisitor<'_> {
    type Value = Vec<WireValue>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ParamsVisitor<'_> {
    type Value = Vec<WireValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of parameters")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let seed = ValueVisitor {
            level: 0,
            depth: self.depth,
        };
        let mut params = Vec::new();
        while let Some(param) = seq.next_element_seed(seed)? {
            params.push(param);
        }
        Ok(params)
    }
}

/// Builds a [`WireValue`] at `level` enclosing array/object levels.
#[derive(Clone, Copy)]
struct ValueVisitor<'g> {
    level: usize,
    depth: &'g DepthGuard,
}

impl ValueVisitor<'_> {
    /// The visitor for the members of an array or object at this level.
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        let level = self.level + 1;
        if level > self.depth.max_depth {
            self.depth.exceeded.set(true);
            return Err(E::custom("nested too deeply"));
        }
        Ok(ValueVisitor { level, ..self })
    }
}

impl<'de> DeserializeSeed<'de> for ValueVisitor<'_> {
    type Value = WireValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<WireValue, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = WireValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<WireValue, E> {
        Ok(WireValue::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<WireValue, E> {
        Ok(WireValue::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<WireValue, E> {
        Ok(i64::try_from(v).map_or(WireValue::Double(v as f64), WireValue::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<WireValue, E> {
        Ok(WireValue::Double(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<WireValue, E> {
        Ok(WireValue::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<WireValue, E> {
        Ok(WireValue::Str(v))
    }

    fn visit_unit<E>(self) -> Result<WireValue, E> {
        Ok(WireValue::Nil)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireValue, A::Error> {
        let seed = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(seed)? {
            items.push(item);
        }
        Ok(WireValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireValue, A::Error> {
        let seed = self.nested()?;
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            members.push((key, map.next_value_seed(seed)?));
        }
        Ok(WireValue::Struct(members))
    }
}
