//! Power management: switching hosts off and on, and fencing, through pluggable agents.
//!
//! A host's power management is its XenAPI `power_on_mode` (the agent type, such as `drover`
//! or `ipmilan`; empty for none) and `power_on_config` (the agent's options, such as `ip`,
//! `username`, `password`, `plug`). The engine hands both to a [`PowerManager`], which runs
//! the agent; the `drover` binary runs fence agents in the fence-agents convention (options on
//! standard input, exit status 0 for success, and for `status` 0 on and 2 off).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use drover_model::Value;

use crate::db::Obj;
use crate::engine::Engine;
use crate::error::{CoreError, Result};

/// A power-management action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Switch the host off (fence it): its agent and guests stop at once.
    Off,
    /// Switch it on.
    On,
    /// Ask whether it is on.
    Status,
}

impl PowerAction {
    /// The fence-agent name of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::Off => "off",
            PowerAction::On => "on",
            PowerAction::Status => "status",
        }
    }
}

/// Whether a host's power is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    /// On.
    On,
    /// Off.
    Off,
}

/// Runs power-management agents.
#[async_trait]
pub trait PowerManager: Send + Sync + std::fmt::Debug {
    /// Runs agent `kind` with `options` for `action`; the state the agent reports after it.
    async fn run(
        &self,
        kind: &str,
        options: &BTreeMap<String, String>,
        action: PowerAction,
    ) -> std::result::Result<PowerState, String>;
}

/// Suffix of a `power_on_config` key whose value names a secret.
pub const SECRET_SUFFIX: &str = "_secret";

/// A host's `power_on_config`.
fn config_of(host: &Obj) -> Vec<(String, String)> {
    host.get("power_on_config")
        .as_map()
        .unwrap_or(&[])
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
        .collect()
}

/// Whether a host has power management set up.
pub(crate) fn has_power_management(host: &Obj) -> bool {
    !host.str("power_on_mode").is_empty()
}

/// How long fencing waits for the agent to report the host off.
const FENCE_CONFIRM: Duration = Duration::from_secs(20);

impl Engine {
    /// Runs the host's power-management agent for `action`.
    pub(crate) async fn power(&self, host: &str, action: PowerAction) -> Result<PowerState> {
        let obj = self.get("host", host)?;
        let kind = obj.str("power_on_mode").to_string();
        let pm = self.power_manager.as_ref().filter(|_| !kind.is_empty());
        let Some(pm) = pm else {
            return Err(CoreError::OperationNotAllowed(format!(
                "host {host} has no power management"
            )));
        };
        let mut options = BTreeMap::new();
        for (k, v) in config_of(&obj) {
            match k.strip_suffix(SECRET_SUFFIX) {
                Some(name) => {
                    let value =
                        self.secret(&v)
                            .ok_or_else(|| CoreError::PowerManagementFailed {
                                host: host.into(),
                                reason: format!("the secret of option {name} is gone"),
                            })?;
                    options.insert(name.to_string(), value);
                }
                None => {
                    options.insert(k, v);
                }
            }
        }
        pm.run(&kind, &options, action)
            .await
            .map_err(|reason| CoreError::PowerManagementFailed {
                host: host.into(),
                reason,
            })
    }

    /// Fences a host: switches it off and waits until its agent reports it off. `Ok` only
    /// once the host is confirmed off, so that none of its guests can still run.
    pub(crate) async fn fence(&self, host: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + FENCE_CONFIRM;
        self.power(host, PowerAction::Off).await?;
        loop {
            if self.power(host, PowerAction::Status).await? == PowerState::Off {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CoreError::PowerManagementFailed {
                    host: host.into(),
                    reason: "the host is still on after being switched off".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sets a host's power management (XenAPI `host.set_power_on_mode`). A password option
    /// (a key ending in `password`) is kept as a secret: the config names it as
    /// `KEY_secret` = the secret's uuid, as XenServer does, and the agent gets the password.
    pub(crate) fn set_power_on_mode(
        &self,
        host: &str,
        mode: &str,
        config: Vec<(String, String)>,
    ) -> Result<()> {
        let old: Vec<String> = config_of(&*self.get("host", host)?)
            .into_iter()
            .filter(|(k, _)| k.ends_with(SECRET_SUFFIX))
            .map(|(_, v)| v)
            .collect();
        let mut new_secrets = Vec::new();
        let config: Vec<(String, String)> = config
            .into_iter()
            .map(|(k, v)| {
                if k.ends_with("password") {
                    let uuid = crate::txn::new_uuid();
                    new_secrets.push((uuid.clone(), v));
                    (format!("{k}{SECRET_SUFFIX}"), uuid)
                } else {
                    (k, v)
                }
            })
            .collect();
        let kept: Vec<&String> = config
            .iter()
            .filter(|(k, _)| k.ends_with(SECRET_SUFFIX))
            .map(|(_, v)| v)
            .collect();
        let gone: Vec<String> = old.into_iter().filter(|u| !kept.contains(&u)).collect();
        self.change_secrets(&new_secrets, &[])?;
        let written = self.write(|t| {
            t.set("host", host, "power_on_mode", Value::str(mode))?;
            t.set(
                "host",
                host,
                "power_on_config",
                Value::string_map(config.clone()),
            )
        });
        match written {
            Ok(()) => self.change_secrets(&[], &gone),
            Err(e) => {
                let made: Vec<String> = new_secrets.into_iter().map(|(u, _)| u).collect();
                let _ = self.change_secrets(&[], &made);
                Err(e)
            }
        }
    }
}
