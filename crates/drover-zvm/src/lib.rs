//! The z/VM Cloud Connector facade: the REST API of `zvmsdk` 1.6.3 (`zvmconnector`'s REST
//! client) and its socket protocol, translated into operations of the domain core.

pub mod api;
pub mod error;
pub mod pyjson;
pub mod rest;
pub mod socket;
pub mod validate;
