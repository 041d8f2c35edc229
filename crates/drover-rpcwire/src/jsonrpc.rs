//! JSON-RPC (versions 1.0 and 2.0, as spoken by XenAPI's `/jsonrpc` endpoint):
//! parse request objects, write response objects.

mod parse;
mod write;

pub use parse::parse_call;
pub use write::{write_failure, write_parse_error, write_success};

use crate::Call;

/// The JSON-RPC protocol version of a request, echoed in its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// JSON-RPC 1.0: no `"jsonrpc"` member.
    V1,
    /// JSON-RPC 2.0: `"jsonrpc": "2.0"`.
    V2,
}

/// A decoded JSON-RPC request.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCall {
    /// Method name and positional parameters.
    pub call: Call,
    /// The request `id`, any JSON value (`null` when absent), echoed in the response.
    pub id: serde_json::Value,
    /// Protocol version of the request.
    pub version: Version,
}
