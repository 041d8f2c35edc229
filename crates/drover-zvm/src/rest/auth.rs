//! Token authentication as the original's `auth = token`: `POST /token` with the admin token
//! (`X-Admin-Token`, equal to the admin token file's content) returns a JWT (HS256, signed
//! with the admin token, expiring after an hour) in `X-Auth-Token`, which every other request
//! must carry — on every route, `GET /` included, as the original's `tokens.validate` wraps
//! every handler. A token passes as PyJWT 1 (which the original was written for) let it:
//! signed with the admin token by an HMAC algorithm, and not expired if it says when it
//! expires.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How long a token is valid, in seconds.
const TOKEN_LIFETIME: i64 = 3600;

/// The authentication mode of the REST layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Every request is let in; `POST /token` answers `server-auth-closed`.
    None,
    /// Requests need a token made with this admin token.
    Token(String),
    /// Requests need a token made with the admin token this file holds, read at each request
    /// as the original does: a new token in the file takes effect at once, and without the
    /// file nothing is let in.
    TokenFile(std::path::PathBuf),
}

#[derive(Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
}

impl Auth {
    /// The admin token, if tokens are needed; `Some("")` when its file cannot be read.
    fn secret(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Token(s) => Some(s.clone()),
            Auth::TokenFile(path) => Some(
                std::fs::read_to_string(path)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default(),
            ),
        }
    }

    /// A new token if `admin` is the admin token.
    pub fn issue(&self, admin: Option<&str>) -> Option<String> {
        match self.secret() {
            None => Some("server-auth-closed".into()),
            Some(secret) => {
                if secret.is_empty() || admin? != secret {
                    return None;
                }
                let claims = Claims {
                    exp: Some(drover_core::now() + TOKEN_LIFETIME),
                };
                encode(
                    &Header::new(Algorithm::HS256),
                    &claims,
                    &EncodingKey::from_secret(secret.as_bytes()),
                )
                .ok()
            }
        }
    }

    /// Whether a request with this `X-Auth-Token` may pass.
    pub fn admits(&self, token: Option<&str>) -> bool {
        match self.secret() {
            None => true,
            Some(secret) if secret.is_empty() => false,
            Some(secret) => token.is_some_and(|t| {
                let mut v = Validation::new(Algorithm::HS256);
                v.algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
                v.leeway = 0;
                v.required_spec_claims = Default::default();
                decode::<Claims>(t, &DecodingKey::from_secret(secret.as_bytes()), &v).is_ok()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_read_at_each_request() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first\n").unwrap();
        let auth = Auth::TokenFile(file.clone());
        let t = auth.issue(Some("first")).unwrap();
        assert!(auth.admits(Some(&t)));
        std::fs::write(&file, "second").unwrap();
        assert!(!auth.admits(Some(&t)));
        assert!(auth.issue(Some("first")).is_none());
        let t2 = auth.issue(Some("second")).unwrap();
        assert!(auth.admits(Some(&t2)));
        std::fs::remove_file(&file).unwrap();
        assert!(!auth.admits(Some(&t2)));
        assert!(auth.issue(Some("")).is_none());
    }

    #[test]
    fn tokens_need_the_admin_token_and_verify() {
        let auth = Auth::Token("my-admin-token".into());
        assert!(auth.issue(Some("wrong")).is_none());
        assert!(auth.issue(None).is_none());
        let t = auth.issue(Some("my-admin-token")).unwrap();
        assert!(auth.admits(Some(&t)));
        assert!(!auth.admits(Some("garbage")));
        assert!(!auth.admits(None));
        assert!(!Auth::Token("other".into()).admits(Some(&t)));
        assert!(Auth::None.admits(None));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let secret = "s";
        let old = encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                exp: Some(drover_core::now() - 10),
            },
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert!(!Auth::Token(secret.into()).admits(Some(&old)));
    }

    #[test]
    fn tokens_pass_as_pyjwt_1_let_them() {
        let secret = "s";
        let token = |alg, exp| {
            encode(
                &Header::new(alg),
                &Claims { exp },
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap()
        };
        let auth = Auth::Token(secret.into());
        assert!(
            auth.admits(Some(&token(Algorithm::HS256, None))),
            "no exp: never expires"
        );
        let later = Some(drover_core::now() + 60);
        assert!(auth.admits(Some(&token(Algorithm::HS512, later))));
        assert!(auth.admits(Some(&token(Algorithm::HS384, later))));
    }
}
