/// Why a request body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The body is larger than [`Limits::max_body`](crate::Limits::max_body).
    #[error("request body too large")]
    TooLarge,
    /// Arrays/structs are nested deeper than [`Limits::max_depth`](crate::Limits::max_depth).
    #[error("request nested too deeply")]
    TooDeep,
    /// The body is not a well-formed call in the expected encoding.
    #[error("malformed request: {0}")]
    Malformed(String),
}

impl WireError {
    /// Shorthand for [`WireError::Malformed`].
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        WireError::Malformed(message.into())
    }
}
