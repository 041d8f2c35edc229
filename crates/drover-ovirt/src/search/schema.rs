//! The searchable object types and their fields.

use super::error::SearchError;
use super::tables::ALL;

/// What kind of values a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Free-form text.
    Text,
    /// A number, compared numerically.
    Number,
    /// A point in time, compared chronologically.
    Date,
    /// `true` or `false`.
    Bool,
    /// One of a fixed set of lower-case values.
    Enum(&'static [&'static str]),
}

impl FieldKind {
    /// Whether free text searches this kind of field.
    pub fn is_textual(self) -> bool {
        matches!(self, Self::Text | Self::Enum(_))
    }
}

/// One searchable field of an object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// The lower-case field name as written in queries.
    pub name: &'static str,
    /// What kind of values the field holds.
    pub kind: FieldKind,
}

/// A searchable object type: its canonical name as in queries (e.g. "Vms"),
/// aliases accepted as prefix/cross-ref ("vm", "vms"), fields, and the object
/// types it can be joined with.
#[derive(Debug, PartialEq, Eq)]
pub struct ObjectType {
    /// The canonical name, e.g. "Vms".
    pub name: &'static str,
    /// Lower-case names also accepted for it.
    pub aliases: &'static [&'static str],
    /// Its searchable fields.
    pub fields: &'static [FieldDef],
    /// Canonical names of the object types cross-object conditions may use.
    pub joins: &'static [&'static str],
}

impl ObjectType {
    /// The field of that name, case-insensitive.
    pub fn field(&self, name: &str) -> Option<&'static FieldDef> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Whether cross-object conditions may use the object type of that canonical name.
    pub fn joins_with(&self, other: &str) -> bool {
        self.joins.contains(&other)
    }

    fn is_called(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// Lookup by canonical name or any alias, case-insensitive.
pub fn object_type(name: &str) -> Option<&'static ObjectType> {
    ALL.iter().copied().find(|t| t.is_called(name))
}

/// Every searchable object type.
pub fn object_types() -> &'static [&'static ObjectType] {
    ALL
}

/// Where a condition's field lives: on the searched object itself (`join` is
/// `None`) or on related objects of the named type.
#[derive(Debug, Clone, Copy)]
pub(super) struct FieldRef {
    pub(super) join: Option<&'static str>,
    pub(super) def: &'static FieldDef,
}

/// Resolves `field` or `Object.field`, written at `pos`, against `target`.
pub(super) fn resolve_field(
    target: &'static ObjectType,
    word: &str,
    pos: usize,
) -> Result<FieldRef, SearchError> {
    let Some((object, field)) = word.split_once('.') else {
        return match target.field(word) {
            Some(def) => Ok(FieldRef { join: None, def }),
            None => Err(SearchError::UnknownField {
                field: word.to_string(),
                object: target.name,
                pos,
            }),
        };
    };
    let other = object_type(object).ok_or_else(|| SearchError::UnknownObjectType {
        name: object.to_string(),
        pos,
    })?;
    let join = if other.name == target.name {
        None
    } else if target.joins_with(other.name) {
        Some(other.name)
    } else {
        return Err(SearchError::NotJoinable {
            object: other.name,
            target: target.name,
            pos,
        });
    };
    match other.field(field) {
        Some(def) => Ok(FieldRef { join, def }),
        None => Err(SearchError::UnknownField {
            field: field.to_string(),
            object: other.name,
            pos: pos + object.chars().count() + 1,
        }),
    }
}
