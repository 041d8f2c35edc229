//! The subset of JSON Schema Draft 4 the reference's schemas use, evaluated the way its
//! `jsonschema` 4.x `Draft4Validator.validate` does: keywords in the order the schema lists them,
//! `properties` in schema order, items in array order, and the first error wins.

use std::fmt;

use serde_json::{Map, Number, Value};

use super::pattern::Pattern;
use super::pyrepr::{repr, str_repr};

/// A (sub)schema.
#[derive(Debug)]
pub(super) enum Node {
    /// The `False` schema, which the reference gets by listing `'additionalProperties': False`
    /// inside `properties`: it rejects a member literally named `additionalProperties`.
    Never,
    /// A schema object: its keywords in the reference's order.
    Keywords(&'static [Kw]),
}

/// A JSON type name of the `type` keyword.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ty {
    String,
    Integer,
    Boolean,
    Null,
    Array,
    Object,
}

/// A member of an `enum` list.
#[derive(Debug)]
pub(super) enum Lit {
    Str(&'static str),
    Bool(bool),
}

/// One keyword of a schema object (keywords that cannot fail on any input are left out).
#[derive(Debug)]
pub(super) enum Kw {
    Type(&'static [Ty]),
    Properties(&'static [(&'static str, Node)]),
    Required(&'static [&'static str]),
    /// `additionalProperties: False` (the members allowed are this schema's `properties`).
    NoAdditional,
    Items(&'static Node),
    MinItems(usize),
    MaxItems(usize),
    UniqueItems,
    MinLength(usize),
    MaxLength(usize),
    Pattern(&'static Pattern),
    Enum(&'static [Lit]),
    Minimum(i64),
    Maximum(i64),
    /// `oneOf`; the reference's alternatives never overlap, so "valid under each of" cannot
    /// happen and only "not valid under any" is reported.
    OneOf(&'static [Node]),
    AnyOf(&'static [Node]),
    /// `format: ipv4` (the reference's other formats, `name` and `cidr`, have no checker).
    Ipv4,
    /// `dependencies` with property lists.
    Dependencies(&'static [(&'static str, &'static [&'static str])]),
}

/// The last element of an error's path.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl fmt::Display for Seg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seg::Key(key) => f.write_str(key),
            Seg::Index(index) => write!(f, "{index}"),
        }
    }
}

/// The first error found.
#[derive(Debug)]
pub(super) struct Failure<'a> {
    /// The last element of the error's path; `None` for an empty path.
    pub(super) last: Option<Seg<'a>>,
    /// The value the failing keyword looked at.
    pub(super) instance: &'a Value,
    /// jsonschema's message.
    pub(super) message: String,
}

/// The first error of `value` against `node`.
pub(super) fn first_error<'a>(node: &Node, value: &'a Value) -> Option<Failure<'a>> {
    match node {
        Node::Never => Some(Failure {
            last: None,
            instance: value,
            message: format!("False schema does not allow {}", repr(value)),
        }),
        Node::Keywords(keywords) => keywords.iter().find_map(|kw| keyword(kw, keywords, value)),
    }
}

/// Validates a member or item; the error's path gains `seg` unless it is already deeper (a
/// `False` schema's own error gets no path element, as in jsonschema's `descend`).
fn descend<'a>(node: &Node, value: &'a Value, seg: Seg<'a>) -> Option<Failure<'a>> {
    let mut failure = first_error(node, value)?;
    if matches!(node, Node::Keywords(_)) && failure.last.is_none() {
        failure.last = Some(seg);
    }
    Some(failure)
}

fn fail(value: &Value, message: String) -> Option<Failure<'_>> {
    Some(Failure {
        last: None,
        instance: value,
        message,
    })
}

fn keyword<'a>(kw: &Kw, siblings: &[Kw], value: &'a Value) -> Option<Failure<'a>> {
    match (kw, value) {
        (Kw::Type(types), _) => {
            if types.iter().any(|ty| has_type(*ty, value)) {
                return None;
            }
            let names: Vec<&str> = types.iter().map(|ty| type_name(*ty)).collect();
            let names = names.join("', '");
            fail(value, format!("{} is not of type '{names}'", repr(value)))
        }
        (Kw::Properties(properties), Value::Object(map)) => {
            properties.iter().find_map(|(name, node)| {
                let (key, member) = map.get_key_value(*name)?;
                descend(node, member, Seg::Key(key))
            })
        }
        (Kw::Required(names), Value::Object(map)) => {
            let missing = names.iter().find(|name| !map.contains_key(**name))?;
            fail(
                value,
                format!("{} is a required property", str_repr(missing)),
            )
        }
        (Kw::NoAdditional, Value::Object(map)) => no_additional(siblings, map, value),
        (Kw::Items(node), Value::Array(items)) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| descend(node, item, Seg::Index(index))),
        (Kw::MinItems(min), Value::Array(items)) if items.len() < *min => {
            fail(value, format!("{} {}", repr(value), too_short(*min)))
        }
        (Kw::MaxItems(max), Value::Array(items)) if items.len() > *max => {
            fail(value, format!("{} {}", repr(value), too_long(*max)))
        }
        (Kw::UniqueItems, Value::Array(items))
            if items
                .iter()
                .enumerate()
                .any(|(i, a)| items[i + 1..].iter().any(|b| py_equal(a, b))) =>
        {
            fail(value, format!("{} has non-unique elements", repr(value)))
        }
        (Kw::MinLength(min), Value::String(s)) if s.chars().count() < *min => {
            fail(value, format!("{} {}", repr(value), too_short(*min)))
        }
        (Kw::MaxLength(max), Value::String(s)) if s.chars().count() > *max => {
            fail(value, format!("{} {}", repr(value), too_long(*max)))
        }
        (Kw::Pattern(pattern), Value::String(s)) if !pattern.is_match(s) => fail(
            value,
            format!(
                "{} does not match {}",
                repr(value),
                str_repr(pattern.source)
            ),
        ),
        (Kw::Enum(members), _) if !members.iter().any(|m| lit_equal(m, value)) => {
            let members: Vec<String> = members.iter().map(lit_repr).collect();
            fail(
                value,
                format!("{} is not one of [{}]", repr(value), members.join(", ")),
            )
        }
        (Kw::Minimum(min), Value::Number(n)) if compare(n, *min).is_lt() => fail(
            value,
            format!("{} is less than the minimum of {min}", repr(value)),
        ),
        (Kw::Maximum(max), Value::Number(n)) if compare(n, *max).is_gt() => fail(
            value,
            format!("{} is greater than the maximum of {max}", repr(value)),
        ),
        (Kw::OneOf(options) | Kw::AnyOf(options), _)
            if options
                .iter()
                .all(|node| first_error(node, value).is_some()) =>
        {
            fail(
                value,
                format!(
                    "{} is not valid under any of the given schemas",
                    repr(value)
                ),
            )
        }
        (Kw::Ipv4, Value::String(s)) if !is_ipv4(s) => {
            fail(value, format!("{} is not a 'ipv4'", repr(value)))
        }
        (Kw::Dependencies(dependencies), Value::Object(map)) => {
            dependencies.iter().find_map(|(property, needed)| {
                if !map.contains_key(*property) {
                    return None;
                }
                let missing = needed.iter().find(|each| !map.contains_key(**each))?;
                fail(
                    value,
                    format!(
                        "{} is a dependency of {}",
                        str_repr(missing),
                        str_repr(property)
                    ),
                )
            })
        }
        _ => None,
    }
}

/// `additionalProperties: False`: every unexpected member, sorted, in one message.
fn no_additional<'a>(
    siblings: &[Kw],
    map: &Map<String, Value>,
    value: &'a Value,
) -> Option<Failure<'a>> {
    let allowed = siblings.iter().find_map(|kw| match kw {
        Kw::Properties(properties) => Some(*properties),
        _ => None,
    });
    let allowed = allowed.unwrap_or_default();
    let mut extras: Vec<&String> = map
        .keys()
        .filter(|key| !allowed.iter().any(|(name, _)| name == key))
        .collect();
    if extras.is_empty() {
        return None;
    }
    extras.sort();
    let verb = if extras.len() == 1 { "was" } else { "were" };
    let extras: Vec<String> = extras.iter().map(|key| str_repr(key)).collect();
    fail(
        value,
        format!(
            "Additional properties are not allowed ({} {verb} unexpected)",
            extras.join(", ")
        ),
    )
}

fn has_type(ty: Ty, value: &Value) -> bool {
    match (ty, value) {
        (Ty::String, Value::String(_))
        | (Ty::Boolean, Value::Bool(_))
        | (Ty::Null, Value::Null)
        | (Ty::Array, Value::Array(_))
        | (Ty::Object, Value::Object(_)) => true,
        // Draft 4: floats such as `1.0` are not integers; Python's bools are not either.
        (Ty::Integer, Value::Number(n)) => !n.is_f64(),
        _ => false,
    }
}

fn type_name(ty: Ty) -> &'static str {
    match ty {
        Ty::String => "string",
        Ty::Integer => "integer",
        Ty::Boolean => "boolean",
        Ty::Null => "null",
        Ty::Array => "array",
        Ty::Object => "object",
    }
}

fn too_short(min: usize) -> &'static str {
    if min == 1 {
        "should be non-empty"
    } else {
        "is too short"
    }
}

fn too_long(max: usize) -> &'static str {
    if max == 0 {
        "is expected to be empty"
    } else {
        "is too long"
    }
}

fn compare(n: &Number, bound: i64) -> std::cmp::Ordering {
    if let Some(i) = n.as_i64() {
        i.cmp(&bound)
    } else if n.is_u64() {
        std::cmp::Ordering::Greater
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        f.partial_cmp(&(bound as f64))
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

fn lit_equal(lit: &Lit, value: &Value) -> bool {
    match (lit, value) {
        (Lit::Str(a), Value::String(b)) => a == b,
        (Lit::Bool(a), Value::Bool(b)) => a == b,
        _ => false,
    }
}

fn lit_repr(lit: &Lit) -> String {
    match lit {
        Lit::Str(s) => str_repr(s),
        Lit::Bool(true) => "True".into(),
        Lit::Bool(false) => "False".into(),
    }
}

/// jsonschema's `equal`: Python equality, except that booleans never equal numbers.
fn py_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| py_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| py_equal(x, y)))
        }
        _ => a == b,
    }
}

/// Python's `ipaddress.IPv4Address(text)` accepts it: four dot-separated decimal octets of at
/// most three ASCII digits, no leading zeros, each at most 255.
fn is_ipv4(text: &str) -> bool {
    let octets: Vec<&str> = text.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|octet| {
            (1..=3).contains(&octet.len())
                && octet.bytes().all(|b| b.is_ascii_digit())
                && (*octet == "0" || !octet.starts_with('0'))
                && octet.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}
