//! oVirt's authentication: the SSO token endpoint and its logout, bearer tokens, and HTTP
//! Basic credentials. A token is the core session it opened, so its lifetime, expiry and
//! logout are the core's.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use drover_core::{audit_codes, Caller, CoreError, Engine, Severity};
use sha2::{Digest, Sha256};

use crate::fault::ApiError;

/// The domain of the engine's own accounts.
pub const INTERNAL_DOMAIN: &str = "internal";

/// Seconds a token lives without use, as the core's session idle limit.
pub const TOKEN_LIFETIME_SECS: i64 = 24 * 3600;

/// The originator recorded on sessions this facade opens.
const ORIGINATOR: &str = "oVirt REST API";

/// Sessions opened for Basic credentials, by a digest of the credentials, so that a client
/// sending them on every request pays for one password check.
#[derive(Default)]
pub struct BasicSessions {
    by_digest: Mutex<HashMap<[u8; 32], String>>,
}

/// The account behind an oVirt user name (`admin@internal`; a bare name is taken as internal).
pub fn account_name(user: &str) -> Result<&str, ApiError> {
    match user.rsplit_once('@') {
        Some((name, INTERNAL_DOMAIN)) => Ok(name),
        Some((_, domain)) => Err(ApiError::Unauthorized(format!(
            "No such authorization profile: {domain}"
        ))),
        None => Ok(user),
    }
}

/// Checks credentials and opens a core session; answers its reference (the access token).
pub async fn login(engine: &Engine, user: &str, password: &str) -> Result<String, ApiError> {
    let name = account_name(user)?;
    let session = engine
        .login(name, password, ORIGINATOR)
        .await
        .map_err(|e| match e {
            CoreError::AuthenticationFailed => ApiError::Unauthorized(
                "Cannot authenticate user: the user name or password is incorrect".into(),
            ),
            other => other.into(),
        })?;
    let caller = engine.authenticate(&session)?;
    engine.audit_record(
        &caller,
        audit_codes::USER_VDC_LOGIN,
        Severity::Normal,
        &format!("User {name}@{INTERNAL_DOMAIN} logged in."),
        Vec::new(),
        None,
    )?;
    Ok(session.to_string())
}

impl BasicSessions {
    /// The caller of a request's `Authorization` header value (`Bearer` or `Basic`).
    pub async fn caller(&self, engine: &Engine, header: Option<&str>) -> Result<Caller, ApiError> {
        let header = header
            .ok_or_else(|| ApiError::Unauthorized("the request carries no credentials".into()))?;
        let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return engine.authenticate(value).map_err(|_| {
                ApiError::Unauthorized("the access token is unknown or expired".into())
            });
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::Unauthorized(format!(
                "unsupported authorization scheme {scheme}"
            )));
        }
        let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let known = self.sessions().get(&digest).cloned();
        if let Some(session) = known {
            if let Ok(caller) = engine.authenticate(&session) {
                return Ok(caller);
            }
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ApiError::Unauthorized("malformed Basic credentials".into()))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| ApiError::Unauthorized("malformed Basic credentials".into()))?;
        let session = login(engine, user, password).await?;
        self.sessions().insert(digest, session.clone());
        engine
            .authenticate(&session)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], String>> {
        self.by_digest.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert_eq!(account_name("admin@internal"), Ok("admin"));
        assert_eq!(account_name("admin"), Ok("admin"));
        assert!(account_name("admin@example.com").is_err());
    }
}
