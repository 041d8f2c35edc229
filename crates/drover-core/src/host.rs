//! Host messages: facts answered from the host driver, and enabling or disabling a host for
//! new guests.

use std::sync::Arc;

use drover_model::Value;

use crate::audit::{codes, Severity};
use crate::db::Ref;
use crate::engine::{now, Engine};
use crate::error::{CoreError, Result};
use crate::fence::{PowerAction, PowerState};
use crate::ops::{Ctx, Reply};

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
    /// Live-migrates every guest away, where the scheduler places them.
    Evacuate,
    /// Sets the host's power management: agent type (empty: none) and its options.
    SetPowerOnMode {
        /// The agent type.
        mode: String,
        /// The agent's options.
        config: Vec<(String, String)>,
    },
    /// Switches the host on through its power management.
    PowerOn,
    /// Fences the host through its power management: switches it off, and once it is
    /// confirmed off, its guests are halted and its HA guests restarted elsewhere.
    PowerOff,
    /// The host's power state as its power management reports it (`on` or `off`).
    PowerStatus,
    /// An administrator confirms that a non-responsive host is off (rebooted by hand): its
    /// guests are halted and its HA guests restarted elsewhere, as after fencing.
    ConfirmFenced,
    /// Removes the host from the pool (XenAPI `pool.eject`).
    Eject,
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
            HostAction::Evacuate => "evacuate",
            HostAction::SetPowerOnMode { .. } => "set_power_on_mode",
            HostAction::PowerOn => "power_on",
            HostAction::PowerOff => "power_off",
            HostAction::PowerStatus => "power_status",
            HostAction::ConfirmFenced => "confirm_fenced",
            HostAction::Eject => "eject",
        }
    }
}

impl Engine {
    pub(crate) async fn host_action(
        self: &Arc<Self>,
        ctx: &Ctx<'_>,
        host: &str,
        action: HostAction,
    ) -> Result<Reply> {
        self.get("host", host)?;
        Ok(match action {
            HostAction::ComputeFreeMemory => Reply::Value(Value::Int(
                self.driver(host)?.metrics().await.memory_free as i64,
            )),
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
            HostAction::Evacuate => {
                self.evacuate(ctx, host).await?;
                Reply::Void
            }
            HostAction::SetPowerOnMode { mode, config } => {
                self.set_power_on_mode(host, &mode, config)?;
                Reply::Void
            }
            HostAction::PowerOn => {
                self.power_up(host).await?;
                Reply::Void
            }
            HostAction::PowerOff => {
                self.refuse_master(host)?;
                self.detach_driver(host);
                self.set_host_state(host, Some("non_responsive"), false)?;
                self.fence(host).await?;
                self.host_fenced(&Ref::from(host)).await?;
                Reply::Void
            }
            HostAction::PowerStatus => {
                let state = match self.power(host, PowerAction::Status).await? {
                    PowerState::On => "on",
                    PowerState::Off => "off",
                };
                Reply::Value(Value::str(state))
            }
            HostAction::ConfirmFenced => {
                self.refuse_master(host)?;
                if self.host_connected(host) {
                    return Err(CoreError::OperationNotAllowed(format!(
                        "host {host} answers; only a host that does not can be confirmed off"
                    )));
                }
                self.host_fenced(&Ref::from(host)).await?;
                Reply::Void
            }
            HostAction::Eject => {
                self.eject_host(host).await?;
                Reply::Void
            }
        })
    }

    /// Refuses power operations on the master, which runs the engine.
    fn refuse_master(&self, host: &str) -> Result<()> {
        if *self.this_host() == *host {
            return Err(CoreError::OperationNotAllowed(
                "the pool master runs the engine and cannot be switched off".into(),
            ));
        }
        Ok(())
    }

    /// Fails with `HOST_DISABLED` when the host accepts no new guests.
    pub(crate) fn require_enabled(&self, host: &str) -> Result<()> {
        match self.read(|db| db.get("host", host).map(|h| h.bool("enabled"))) {
            Some(false) => Err(CoreError::HostDisabled(host.to_string())),
            _ => Ok(()),
        }
    }
}

impl Engine {
    /// Live-migrates every guest of `host` to the hosts the scheduler picks. A guest that
    /// cannot move is reported in the audit log (oVirt's "cannot switch to maintenance") and
    /// fails the evacuation with `CANNOT_EVACUATE_HOST`; the others move all the same.
    pub(crate) async fn evacuate(&self, ctx: &Ctx<'_>, host: &str) -> Result<()> {
        self.get("host", host)?;
        let plan = drover_sched::evacuate(&self.cluster(), &drover_sched::HostId::from(host))
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let mut stuck: Vec<String> = Vec::new();
        let mut refuse = |msg: String| {
            self.audit_system(
                codes::VDS_MAINTENANCE_FAILED,
                Severity::Warning,
                "host",
                host,
                &format!("Host cannot enter maintenance yet: {msg}"),
            );
            stuck.push(msg);
        };
        for (vm, why) in &plan.stuck {
            let name = self
                .get("VM", vm.as_str())
                .map(|v| v.str("name_label").to_string())
                .unwrap_or_else(|_| vm.to_string());
            refuse(format!("VM {name} cannot be moved off the host: {why}"));
        }
        for m in plan.migrations {
            let sub = ctx.child();
            if let Err(e) = self
                .pool_migrate(&sub, m.vm.as_str(), Some(m.to.as_str()))
                .await
            {
                refuse(format!("VM {} could not be migrated: {e}", m.vm));
            }
            ctx.checkpoint()?;
        }
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(CoreError::CannotEvacuateHost(stuck.join("; ")))
        }
    }
}
