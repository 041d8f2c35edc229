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
}

#[derive(Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
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
        match self {
            Auth::None => true,
            Auth::Token(secret) => token.is_some_and(|t| {
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
