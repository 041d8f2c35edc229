//! High availability: host heartbeats, fencing a host that stops answering, and restarting
//! its highly available guests on other hosts.
//!
//! Every [`HEARTBEAT_PERIOD`] the engine pings each host other than the master. A host that
//! misses [`MISSES`] heartbeats in a row is *non-responsive*: its connection is dropped and its
//! `host_metrics.live` is false. The engine then fences it through its power management
//! ([`crate::fence`]). Only once the agent confirms the host off are its guests marked halted
//! and its HA guests restarted elsewhere, in priority order (`drover_sched::plan_ha_restarts`);
//! the host is then *down*. If it cannot be fenced (no power management, or the agent fails),
//! nothing is restarted, the host stays non-responsive and fencing is tried again: the fate of
//! its guests is unknown, and a second copy of a VM must never run.

use std::sync::Arc;
use std::time::Duration;

use drover_model::Value;
use drover_sched::{HostId, VmId};

use crate::audit::codes;
use crate::audit::Severity;
use crate::db::Ref;
use crate::engine::Engine;
use crate::error::Result;
use crate::fleet::{NODE_KEY, STATE_KEY};
use crate::ops::Op;
use crate::vm::VmAction;

/// How often hosts are pinged.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_millis(1000);

/// How long a ping may take: less than a period, so that rounds keep their pace.
const PING_TIMEOUT: Duration = Duration::from_millis(900);

/// Heartbeats a host may miss in a row before it counts as non-responsive.
pub const MISSES: u32 = 3;

/// Whether a host in this state gets no heartbeats: fenced, switched off, or being switched on.
fn quiet(state: &str) -> bool {
    matches!(state, "down" | "powered_off" | "powering_up")
}

/// What the engine knows of a host's heartbeats.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    misses: u32,
    /// A fencing of the host is under way.
    fencing: bool,
}

/// Starts the heartbeat loop.
pub(crate) fn spawn(engine: &Arc<Engine>) {
    let weak = Arc::downgrade(engine);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(engine) = weak.upgrade() else { return };
            engine.heartbeat_round().await;
        }
    });
}

impl Engine {
    /// Pings every watched host once and acts on those that stopped answering.
    async fn heartbeat_round(self: &Arc<Self>) {
        if let Err(e) = self.run_ha_restarts().await {
            tracing::warn!(error = %e, "cannot restart HA guests");
        }
        let master = self.this_host();
        let hosts: Vec<(Ref, String)> = self.read(|db| {
            db.all("host")
                .filter(|h| *h.r != *master && h.other(NODE_KEY).is_some())
                .map(|h| (h.r.clone(), h.other(STATE_KEY).unwrap_or("").to_string()))
                .collect()
        });
        // Every host is pinged at once, so that hosts that do not answer delay no others.
        let mut pings = tokio::task::JoinSet::new();
        for (host, state) in hosts {
            if quiet(&state) {
                continue;
            }
            let driver = self.driver(&host).ok();
            pings.spawn(async move {
                let answered = match driver {
                    Some(d) => matches!(
                        tokio::time::timeout(PING_TIMEOUT, d.ping()).await,
                        Ok(Ok(()))
                    ),
                    None => false,
                };
                (host, answered)
            });
        }
        while let Some(Ok((host, answered))) = pings.join_next().await {
            // The host may have been fenced, switched off or removed while it was pinged.
            let state = self
                .get("host", &host)
                .map(|h| h.other(STATE_KEY).map(str::to_string));
            let Ok(state) = state else { continue };
            if quiet(state.as_deref().unwrap_or("")) {
                continue;
            }
            let lost = {
                let mut live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
                let l = live.entry(host.to_string()).or_default();
                if answered {
                    l.misses = 0;
                    false
                } else {
                    l.misses += 1;
                    let lost = l.misses >= MISSES && !l.fencing;
                    if lost {
                        l.fencing = true;
                    }
                    lost
                }
            };
            if lost {
                let engine = self.clone();
                tokio::spawn(async move { engine.host_lost(&host).await });
            }
        }
    }

    /// A host stopped answering: mark it non-responsive, fence it, and once it is confirmed
    /// off, mark its guests halted and restart the HA ones elsewhere.
    async fn host_lost(self: &Arc<Self>, host: &Ref) {
        tracing::warn!(%host, "host stopped answering heartbeats");
        self.audit_system(
            codes::VDS_FAILURE,
            Severity::Error,
            "host",
            host,
            "Host is not responding",
        );
        self.detach_driver(host);
        if let Err(e) = self.set_host_state(host, Some("non_responsive"), false) {
            tracing::warn!(%host, error = %e, "cannot record a host as non-responsive");
        }
        match self.fence(host).await {
            Ok(()) => {
                tracing::warn!(%host, "host fenced");
                if let Err(e) = self.host_fenced(host).await {
                    tracing::warn!(%host, error = %e, "cannot record a fenced host's guests");
                }
            }
            Err(e) => {
                tracing::warn!(%host, error = %e, "cannot fence the host: its guests are left alone");
                self.audit_system(
                    codes::VDS_AUTO_FENCE_FAILED,
                    Severity::Alert,
                    "host",
                    host,
                    &format!("Host could not be fenced: {e}; its VMs are not restarted"),
                );
            }
        }
        {
            let mut live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
            let l = live.entry(host.to_string()).or_default();
            // Fenced, the host gets no heartbeats; not fenced, it is tried again after the
            // next misses.
            l.fencing = false;
            l.misses = 0;
        }
        // When its agent answers again (switched on, restarted), the host is taken back.
        self.reconnect_later(host);
    }

    /// The host is confirmed off: its guests stopped with it.
    pub(crate) async fn host_fenced(self: &Arc<Self>, host: &Ref) -> Result<()> {
        let cluster = self.cluster();
        let plan = drover_sched::plan_ha_restarts(&cluster, &HostId::from(&**host));
        let vms: Vec<Ref> = self.read(|db| {
            db.all("VM")
                .filter(|v| v.str("resident_on") == &**host && !v.bool("is_control_domain"))
                .map(|v| v.r.clone())
                .collect()
        });
        self.write(|t| {
            for vm in &vms {
                crate::vm::record_unplanned_stop(t, vm, "its host was fenced")?;
                crate::vm::halt(t, vm)?;
                t.set("VM", vm, "current_operations", Value::empty_map())?;
                crate::vm::refresh_allowed(t, vm)?;
            }
            Ok(())
        })?;
        self.set_host_state(host, Some("down"), false)?;
        self.audit_system(
            codes::VDS_AUTO_FENCE_STATUS,
            Severity::Warning,
            "host",
            host,
            "Host was fenced and is down",
        );
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(%host, error = %e, "cannot plan HA restarts");
                return Ok(());
            }
        };
        for (vm, reason) in &plan.unplaceable {
            self.audit_system(
                codes::HA_VM_RESTART_FAILED,
                Severity::Alert,
                "VM",
                vm.as_str(),
                &format!("Highly available VM could not be restarted: {reason}"),
            );
        }
        // The heartbeat loop restarts them, in this order, through the entry path.
        self.ha_restarts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(plan.restarts);
        Ok(())
    }

    /// Starts the HA guests that fenced hosts left, in the order they were planned.
    async fn run_ha_restarts(self: &Arc<Self>) -> Result<()> {
        let restarts: Vec<(VmId, HostId)> =
            std::mem::take(&mut *self.ha_restarts.lock().unwrap_or_else(|e| e.into_inner()));
        if restarts.is_empty() {
            return Ok(());
        }
        let caller = self.service_session("drover-ha")?;
        for (vm, target) in restarts {
            let op = Op::Vm {
                vm: vm.as_str().into(),
                action: VmAction::StartOn {
                    host: target.as_str().into(),
                    paused: false,
                    force: false,
                },
            };
            match self.call(&caller, op).await {
                Ok(_) => self.audit_system(
                    codes::HA_VM_RESTARTED,
                    Severity::Warning,
                    "VM",
                    vm.as_str(),
                    "Highly available VM was restarted on another host",
                ),
                Err(e) => self.audit_system(
                    codes::HA_VM_RESTART_FAILED,
                    Severity::Alert,
                    "VM",
                    vm.as_str(),
                    &format!("Highly available VM failed to restart: {e}"),
                ),
            }
        }
        self.logout(&caller)
    }

    /// Records a host's state (`other_config:drover_state`; `None` for up) and liveness.
    pub(crate) fn set_host_state(&self, host: &str, state: Option<&str>, live: bool) -> Result<()> {
        self.write(|t| {
            let obj = t.must("host", host)?.clone();
            if let Some(map) = obj.map_with("other_config", &[(STATE_KEY, state)]) {
                t.set("host", host, "other_config", map)?;
            }
            let metrics = obj.str("metrics");
            if t.get("host_metrics", metrics)
                .is_some_and(|m| m.bool("live") != live)
            {
                t.set("host_metrics", metrics, "live", Value::Bool(live))?;
            }
            Ok(())
        })
    }
}
