//! XenAPI type expressions such as `(string -> VDI ref) map` or `enum vm_operations set`.

use std::sync::Arc;

/// A field, parameter or result type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// Text.
    String,
    /// 64-bit integer.
    Int,
    /// Double-precision float.
    Float,
    /// Boolean.
    Bool,
    /// Date and time.
    DateTime,
    /// A value of the named enumeration.
    Enum(Arc<str>),
    /// A reference to an object of the named class.
    Ref(Arc<str>),
    /// A set of values.
    Set(Box<Type>),
    /// A map from keys to values.
    Map(Box<Type>, Box<Type>),
    /// A whole record of the named class (`<class>` for event snapshots).
    Record(Arc<str>),
    /// An optional value.
    Option(Box<Type>),
    /// No value.
    Void,
    /// A structure the datamodel describes only in prose (`an event batch`).
    Opaque(Arc<str>),
}

/// A type expression that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("unknown type expression `{0}`")]
pub struct TypeError(pub String);

impl Type {
    /// Parses a datamodel type expression.
    pub fn parse(s: &str) -> Result<Type, TypeError> {
        let s = s.trim();
        if let Some(inner) = s.strip_suffix(" map") {
            let inner = inner
                .trim()
                .strip_prefix('(')
                .and_then(|x| x.strip_suffix(')'))
                .ok_or_else(|| TypeError(s.to_string()))?;
            let (k, v) = inner
                .split_once(" -> ")
                .ok_or_else(|| TypeError(s.to_string()))?;
            return Ok(Type::Map(
                Box::new(Type::parse(k)?),
                Box::new(Type::parse(v)?),
            ));
        }
        if let Some(inner) = s.strip_suffix(" set") {
            return Ok(Type::Set(Box::new(Type::parse(inner)?)));
        }
        if let Some(inner) = s.strip_suffix(" option") {
            return Ok(Type::Option(Box::new(Type::parse(inner)?)));
        }
        if let Some(class) = s.strip_suffix(" ref") {
            return Ok(Type::Ref(class.into()));
        }
        if let Some(class) = s.strip_suffix(" record") {
            return Ok(Type::Record(class.into()));
        }
        if let Some(name) = s.strip_prefix("enum ") {
            return Ok(Type::Enum(name.into()));
        }
        Ok(match s {
            "string" => Type::String,
            "int" => Type::Int,
            "float" => Type::Float,
            "bool" => Type::Bool,
            "datetime" => Type::DateTime,
            "void" => Type::Void,
            other if other.contains(' ') => Type::Opaque(other.into()),
            other => return Err(TypeError(other.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_types() {
        assert_eq!(
            Type::parse("(string -> VDI ref) map").unwrap(),
            Type::Map(Box::new(Type::String), Box::new(Type::Ref("VDI".into())))
        );
        assert_eq!(
            Type::parse("(int -> string set) map").unwrap(),
            Type::Map(
                Box::new(Type::Int),
                Box::new(Type::Set(Box::new(Type::String)))
            )
        );
        assert_eq!(
            Type::parse("enum vm_operations set").unwrap(),
            Type::Set(Box::new(Type::Enum("vm_operations".into())))
        );
        assert_eq!(Type::parse("VM record").unwrap(), Type::Record("VM".into()));
        assert!(Type::parse("banana").is_err());
    }
}
