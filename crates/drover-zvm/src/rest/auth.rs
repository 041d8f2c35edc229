//! Token authentication as the original's `auth = token`: `POST /token` with the admin token
//! (`X-Admin-Token`, equal to the admin token file's content) returns a JWT (HS256, signed
//! with the admin token, expiring after an hour) in `X-Auth-Token`, which every other request
//! must carry.

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
}

#[derive(Serialize, Deserialize)]
struct Claims {
    exp: i64,
}

impl Auth {
    /// A new token if `admin` is the admin token.
    pub fn issue(&self, admin: Option<&str>) -> Option<String> {
        match self {
            Auth::None => Some("server-auth-closed".into()),
            Auth::Token(secret) => {
                if admin? != secret {
                    return None;
                }
                let claims = Claims {
                    exp: drover_core::now() + TOKEN_LIFETIME,
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
        match self {
            Auth::None => true,
            Auth::Token(secret) => token.is_some_and(|t| {
                let mut v = Validation::new(Algorithm::HS256);
                v.leeway = 0;
                v.required_spec_claims = ["exp".to_string()].into_iter().collect();
                decode::<Claims>(t, &DecodingKey::from_secret(secret.as_bytes()), &v).is_ok()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                exp: drover_core::now() - 10,
            },
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert!(!Auth::Token(secret.into()).admits(Some(&old)));
    }
}
