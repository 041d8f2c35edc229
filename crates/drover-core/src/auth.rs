//! Identities: login accounts, sessions, and the role checks every operation passes.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use drover_model::{Schema, Value};
use serde::{Deserialize, Serialize};

use crate::db::Ref;
use crate::engine::{now, Engine};
use crate::error::{CoreError, Result};

/// The role with every permission.
pub const SUPERUSER_ROLE: &str = "pool-admin";

/// Seconds a session may stay idle before it expires.
const SESSION_IDLE_LIMIT: i64 = 24 * 3600;

/// A login account, stored with its password hashed (argon2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// PHC string of the argon2 hash.
    pub hash: String,
    /// The account's role.
    pub role: String,
    /// Its `user` object.
    pub user: String,
}

/// What a facade may know of a login account.
#[derive(Debug, Clone)]
pub struct AccountInfo {
    /// Account name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Its `user` object.
    pub user: Ref,
}

/// Hashes a password with a fresh salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| CoreError::Internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Internal(format!("hashing: {e}")))
}

/// Runs deliberately slow password hashing off the async workers.
async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CoreError::Internal(format!("password hashing: {e}")))
}

/// Checks a password against a stored hash, off the async workers.
async fn verify_slowly(password: &str, hash: &str) -> Result<bool> {
    let (password, hash) = (password.to_string(), hash.to_string());
    off_thread(move || verify(&password, &hash)).await
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Event registration of a session (the older `event.register`/`next` interface).
#[derive(Debug, Default)]
pub struct Registration {
    /// Classes registered for (`*` for all).
    pub classes: Vec<String>,
    /// Generation up to which events were delivered.
    pub cursor: u64,
}

/// What the engine keeps about a live session.
#[derive(Debug)]
pub struct SessionInfo {
    /// Account name.
    pub user: String,
    /// Role.
    pub role: String,
    last_active: AtomicI64,
    /// Event registration, if any.
    pub registration: Mutex<Option<Registration>>,
}

/// Who is calling: every operation carries one.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's session.
    pub session: Ref,
    /// Account name.
    pub user: String,
    /// Role.
    pub role: String,
    pub(crate) info: Arc<SessionInfo>,
}

impl Caller {
    /// The caller's session record.
    pub fn session_info(&self) -> &SessionInfo {
        &self.info
    }
}

impl Engine {
    fn account_name(user: &str) -> &str {
        // XenServer's superuser is root; Drover's is admin. Both names reach it.
        if user == "root" {
            "admin"
        } else {
            user
        }
    }

    /// Checks a password and opens a session.
    pub async fn login(&self, user: &str, password: &str, originator: &str) -> Result<Ref> {
        let name = Self::account_name(user);
        let account = self
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or(CoreError::AuthenticationFailed)?;
        if !verify_slowly(password, &account.hash).await? {
            return Err(CoreError::AuthenticationFailed);
        }
        self.open_session(name, &account, originator)
    }

    /// Opens a session for an API facade that authenticates its own clients (the z/VM
    /// connector's admin token): it acts as the superuser account, and every operation it runs
    /// still enters through [`Engine::call`] with this caller.
    pub fn service_session(&self, originator: &str) -> Result<Caller> {
        let name = Self::account_name("admin");
        let account = self
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or(CoreError::AuthenticationFailed)?;
        let r = self.open_session(name, &account, originator)?;
        self.authenticate(&r)
    }

    fn open_session(&self, name: &str, account: &Account, originator: &str) -> Result<Ref> {
        let role = account.role.as_str();
        let host = self.this_host();
        let r = self.write(|t| {
            t.create(
                "session",
                vec![
                    ("this_host", Value::str(&*host)),
                    ("this_user", Value::str(&account.user)),
                    ("last_active", Value::DateTime(now())),
                    ("validation_time", Value::DateTime(now())),
                    ("originator", Value::str(originator)),
                    ("is_local_superuser", Value::Bool(role == SUPERUSER_ROLE)),
                    ("auth_user_name", Value::str(name)),
                ],
            )
        })?;
        let info = SessionInfo {
            user: name.to_string(),
            role: role.to_string(),
            last_active: AtomicI64::new(now()),
            registration: Mutex::new(None),
        };
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(r.clone(), Arc::new(info));
        Ok(r)
    }

    /// The caller behind a session reference, or `SESSION_INVALID`.
    pub fn authenticate(&self, session: &str) -> Result<Caller> {
        let info = self
            .sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(session)
            .cloned();
        let info = info.ok_or_else(|| CoreError::SessionInvalid(session.into()))?;
        let t = now();
        if t - info.last_active.load(Ordering::Relaxed) > SESSION_IDLE_LIMIT {
            self.end_session(session)?;
            return Err(CoreError::SessionInvalid(session.into()));
        }
        info.last_active.store(t, Ordering::Relaxed);
        Ok(Caller {
            session: session.into(),
            user: info.user.clone(),
            role: info.role.clone(),
            info,
        })
    }

    /// Ends the caller's session.
    pub fn logout(&self, caller: &Caller) -> Result<()> {
        self.end_session(&caller.session)
    }

    fn end_session(&self, session: &str) -> Result<()> {
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(session);
        self.write(|t| {
            if t.get("session", session).is_some() {
                t.destroy("session", session)
            } else {
                Ok(())
            }
        })
    }

    /// Every login account: its name, role and `user` object, sorted by name.
    pub fn accounts(&self) -> Vec<AccountInfo> {
        let mut list: Vec<AccountInfo> = self
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, a)| AccountInfo {
                name: name.clone(),
                role: a.role.clone(),
                user: a.user.as_str().into(),
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Changes the caller's own password.
    pub async fn change_password(&self, caller: &Caller, old: &str, new: &str) -> Result<()> {
        let account = self
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&caller.user)
            .cloned()
            .ok_or(CoreError::AuthenticationFailed)?;
        if !verify_slowly(old, &account.hash).await? {
            return Err(CoreError::AuthenticationFailed);
        }
        if new.len() < 4 {
            return Err(CoreError::ChangePasswordRejected(
                "the new password must have at least 4 characters".into(),
            ));
        }
        self.put_account(
            &caller.user,
            Account {
                hash: {
                    let new = new.to_string();
                    off_thread(move || hash_password(&new)).await??
                },
                ..account
            },
        )
    }

    /// Checks that the caller's role may call `class.message` (roles of the datamodel).
    pub fn check_permission(&self, caller: &Caller, class: &str, message: &str) -> Result<()> {
        if caller.role == SUPERUSER_ROLE {
            return Ok(());
        }
        let allowed = Schema::get()
            .class(class)
            .and_then(|c| c.messages.get(message))
            .map(|m| m.roles.iter().any(|r| **r == *caller.role))
            .unwrap_or(false);
        if allowed {
            Ok(())
        } else {
            Err(CoreError::PermissionDenied {
                permission: format!("{class}.{message}"),
                reason: format!("role {} may not call it", caller.role),
            })
        }
    }
}
