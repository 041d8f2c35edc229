//! The facade's errors and their `<fault>` documents: the one place where core errors become
//! oVirt's HTTP statuses.

use axum::http::StatusCode;
use drover_core::CoreError;

use crate::node::Node;
use crate::search::SearchError;

/// An error answered as a fault.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The request is malformed or misses a required value (400).
    BadRequest(String),
    /// No valid credentials (401).
    Unauthorized(String),
    /// The caller may not do this (403).
    Forbidden(String),
    /// The addressed entity or collection does not exist (404).
    NotFound(String),
    /// The entity's state does not allow the operation (409).
    Conflict(String),
    /// Something failed inside the engine (500).
    Internal(String),
}

/// Results of the facade.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A 400 for a required value the request lacks, in oVirt's words.
    pub fn missing(entity: &str, fields: &str) -> ApiError {
        ApiError::BadRequest(format!("{entity} [{fields}] required for add"))
    }

    /// A 404 for an id that names nothing.
    pub fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::NotFound(format!("Entity not found: {what}: id={id}"))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The fault's reason line.
    fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "Operation Failed",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound(_) => "Not Found",
            ApiError::Conflict(_) => "Operation Failed",
            ApiError::Internal(_) => "Internal Error",
        }
    }

    /// The detail text.
    pub fn detail(&self) -> &str {
        match self {
            ApiError::BadRequest(d)
            | ApiError::Unauthorized(d)
            | ApiError::Forbidden(d)
            | ApiError::NotFound(d)
            | ApiError::Conflict(d)
            | ApiError::Internal(d) => d,
        }
    }

    /// The `<fault>` document.
    pub fn fault(&self) -> Node {
        Node::new("fault")
            .text("reason", self.reason())
            .text("detail", format!("[{}]", self.detail()))
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        let text = e.to_string();
        match e {
            CoreError::SessionInvalid(_) | CoreError::AuthenticationFailed => {
                ApiError::Unauthorized(text)
            }
            CoreError::PermissionDenied { .. } => ApiError::Forbidden(text),
            CoreError::HandleInvalid { .. } | CoreError::UuidInvalid { .. } => {
                ApiError::NotFound(text)
            }
            CoreError::NoSuchField { .. }
            | CoreError::FieldType(_)
            | CoreError::InvalidValue { .. }
            | CoreError::MapDuplicateKey { .. }
            | CoreError::MemoryConstraint(_)
            | CoreError::VmNoVcpus(_)
            | CoreError::VmTooManyVcpus(_)
            | CoreError::MacInvalid(_)
            | CoreError::InvalidIpAddress(_)
            | CoreError::InvalidCidrAddress(_)
            | CoreError::VlanTagInvalid(_) => ApiError::BadRequest(text),
            CoreError::Internal(_) | CoreError::Store(_) => ApiError::Internal(text),
            _ => ApiError::Conflict(text),
        }
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> ApiError {
        ApiError::BadRequest(format!("Cannot search: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_map_to_statuses() {
        let e: ApiError = CoreError::handle("VM", "x").into();
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        let e: ApiError = CoreError::VmBadPowerState {
            vm: "v".into(),
            expected: "Halted".into(),
            actual: "Running".into(),
        }
        .into();
        assert_eq!(e.status(), StatusCode::CONFLICT);
        let f = e.fault();
        assert_eq!(f.text_at("reason"), Some("Operation Failed"));
        assert!(f.text_at("detail").unwrap().starts_with('['));
    }
}
