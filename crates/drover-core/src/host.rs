//! Host messages: facts answered from the host driver, and enabling or disabling a host for
//! new guests.

use drover_model::Value;

use crate::engine::{now, Engine};
use crate::error::{CoreError, Result};
use crate::ops::Reply;

/// A host operation.
#[derive(Debug, Clone)]
pub enum HostAction {
    /// Bytes free for new guests.
    ComputeFreeMemory,
    /// The host's clock, UTC.
    GetServertime,
    /// The host's clock, local time (UTC on Drover hosts).
    GetServerLocaltime,
    /// The management PIF.
    GetManagementInterface,
    /// Refuses new guests from now on (maintenance); running guests keep running.
    Disable,
    /// Accepts new guests again.
    Enable,
}

impl HostAction {
    /// The datamodel message name.
    pub fn message(&self) -> &'static str {
        match self {
            HostAction::ComputeFreeMemory => "compute_free_memory",
            HostAction::GetServertime => "get_servertime",
            HostAction::GetServerLocaltime => "get_server_localtime",
            HostAction::GetManagementInterface => "get_management_interface",
            HostAction::Disable => "disable",
            HostAction::Enable => "enable",
        }
    }
}

impl Engine {
    pub(crate) async fn host_action(&self, host: &str, action: HostAction) -> Result<Reply> {
        self.get("host", host)?;
        if *self.this_host() != *host {
            return Err(CoreError::OperationNotAllowed(format!(
                "host {host} is not reachable"
            )));
        }
        Ok(match action {
            HostAction::ComputeFreeMemory => {
                Reply::Value(Value::Int(self.host.metrics().await.memory_free as i64))
            }
            HostAction::GetServertime | HostAction::GetServerLocaltime => {
                Reply::Value(Value::DateTime(now()))
            }
            HostAction::GetManagementInterface => self.read(|db| {
                db.all("PIF")
                    .find(|p| p.str("host") == host && p.bool("management"))
                    .map(|p| Reply::Ref(p.r.clone()))
                    .ok_or_else(|| {
                        CoreError::OperationNotAllowed(
                            "the host has no management interface".into(),
                        )
                    })
            })?,
            HostAction::Disable | HostAction::Enable => {
                let enabled = matches!(action, HostAction::Enable);
                self.write(|t| t.set("host", host, "enabled", Value::Bool(enabled)))?;
                Reply::Void
            }
        })
    }

    /// Fails with `HOST_DISABLED` when the host accepts no new guests.
    pub(crate) fn require_enabled(&self, host: &str) -> Result<()> {
        match self.read(|db| db.get("host", host).map(|h| h.bool("enabled"))) {
            Some(false) => Err(CoreError::HostDisabled(host.to_string())),
            _ => Ok(()),
        }
    }
}
