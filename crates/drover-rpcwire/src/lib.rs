//! Wire codecs for the two RPC encodings spoken by XenAPI: XML-RPC and JSON-RPC.
//!
//! This crate knows nothing about XenAPI classes. It turns an HTTP request body
//! into a [`Call`] (a method name and its parameter [`WireValue`]s) and turns a
//! result back into a response body.
//!
//! Both parsers face the network: they never panic, reject bodies larger than
//! [`Limits::max_body`] before looking at them, and stop at
//! [`Limits::max_depth`] levels of array/struct nesting. The writers append
//! straight into a caller-supplied `Vec<u8>` so a buffer can be reused.
//!
//! ```
//! use drover_rpcwire::{xmlrpc, Limits, WireValue};
//!
//! let body = b"<methodCall><methodName>VM.get_all</methodName>\
//!     <params><param><value>OpaqueRef:abc</value></param></params></methodCall>";
//! let call = xmlrpc::parse_call(body, &Limits::default()).unwrap();
//! assert_eq!(call.method, "VM.get_all");
//! assert_eq!(call.params[0].as_str(), Some("OpaqueRef:abc"));
//!
//! let mut out = Vec::new();
//! xmlrpc::write_response(&mut out, &WireValue::Array(vec![]));
//! ```

mod error;
pub mod jsonrpc;
mod number;
mod scan;
mod value;
pub mod xmlrpc;

pub use error::WireError;
pub use value::WireValue;

/// A decoded RPC call: the method name and its positional parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Method name, e.g. `session.login_with_password`.
    pub method: String,
    /// Positional parameters, in order.
    pub params: Vec<WireValue>,
}

/// Bounds applied while parsing untrusted request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of nested array/struct levels inside one parameter
    /// (a scalar has depth 0, `[1]` has depth 1). It also bounds the parsers'
    /// recursion, so keep it modest.
    pub max_depth: usize,
    /// Maximum body size in bytes, checked before parsing starts.
    pub max_body: usize,
}

impl Default for Limits {
    /// Depth 64, body 16 MiB.
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_body: 16 * 1024 * 1024,
        }
    }
}
