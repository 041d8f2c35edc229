//! The oVirt search language: parsing, evaluation, sorting, paging and
//! autocompletion, independent of any wire format.
//!
//! A query such as `Vms: name = my* and status = up sortby name desc page 2`
//! is parsed once against the searched collection's [`ObjectType`] with
//! [`Query::parse`], then evaluated against any number of [`Subject`]s.
//!
//! The language: an optional object-type prefix (`Vms:`), then conditions
//! `field op value` with `=`, `!=`, `<`, `<=`, `>`, `>=` (`*` is a wildcard
//! for `=` and `!=`; values may be double-quoted), cross-object conditions
//! `Hosts.name = h1`, and bare free-text terms, combined with `and` / `or`
//! (juxtaposition is `and`, `and` binds tighter, parentheses group), then
//! `sortby field [asc|desc]` and `page N`.

mod calendar;
mod complete;
mod error;
mod eval;
mod lexer;
mod literal;
mod parser;
mod pattern;
mod query;
mod schema;
mod sort;
mod subject;
mod tables;

#[cfg(test)]
mod tests;

pub use complete::complete;
pub use error::SearchError;
pub use query::Query;
pub use schema::{object_type, object_types, FieldDef, FieldKind, ObjectType};
pub use sort::SortKey;
pub use subject::{FieldValue, Subject};
pub use tables::{
    CLUSTERS, DATA_CENTERS, DISKS, EVENTS, GROUPS, HOSTS, JOBS, NETWORKS, NICS, POOLS, STORAGE,
    TEMPLATES, USERS, VMS, VNIC_PROFILES,
};
