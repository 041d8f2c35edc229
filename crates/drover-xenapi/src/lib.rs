//! The XenAPI facade: XML-RPC on `POST /` and `/RPC2`, JSON-RPC v1/v2 on `POST /jsonrpc`, guest
//! consoles on `GET /console` and disk uploads on `PUT /import_raw_vdi`.
//!
//! It turns calls into the core's [`drover_core::Op`]s (driven by the datamodel, so every
//! class's getters, setters and constructors exist without being written by hand), and maps
//! replies and [`drover_core::CoreError`]s back to XenAPI values and error codes.

mod convert;
mod dispatch;
mod errors;
mod http;
mod server;
mod where_expr;

pub use server::router;
