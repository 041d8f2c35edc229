//! XML-RPC: parse `<methodCall>` bodies, write `<methodResponse>` bodies.
//!
//! Accepts what Python's `xmlrpc.client` (with `allow_none=True`) and the other
//! XenAPI client libraries send, and writes what `xmlrpc.client.loads` reads back.

mod parse;
mod write;

pub use parse::parse_call;
pub use write::{write_fault, write_response, write_response_with, ValueWriter};
