//! The oVirt REST API v4 facade of Drover: `ovirtsdk4` and other oVirt clients work against
//! the engine's inventory unchanged.
//!
//! A data center is the XenAPI pool, its one cluster `Default` holds the hosts, a storage
//! domain is an SR, a disk a VDI and a disk attachment a VBD, a NIC a VIF on the network of
//! its vNIC profile, a template a XenAPI template, a snapshot a XenAPI snapshot, a job a core
//! task and an event an entry of the engine's audit log. Every operation enters the core
//! through [`drover_core::Engine::call`] with the caller the request authenticated as.

mod api;
mod auth;
mod coll;
mod fault;
mod http;
mod listing;
mod model;
mod node;
mod routes;
pub mod search;

pub use http::router;
