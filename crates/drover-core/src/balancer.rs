//! Periodic load balancing and the power saver, by the pool's scheduling policy.
//!
//! Every balancing period the engine runs one round of `drover_sched::balance` (migrations off
//! over-utilised hosts) and of `drover_sched::power_saving` (draining under-utilised hosts,
//! switching empty hosts off through power management and on again when capacity is needed).
//! Migrations run as live migrations of the engine's own session, so they are audited like any
//! other. A host switched off is `powered_off`; one being switched on is `powering_up` until its
//! agent answers, and neither gets heartbeats meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use drover_sched::Migration;

use crate::audit::{codes, Severity};
use crate::engine::{now, Engine};
use crate::error::Result;
use crate::fence::PowerAction;
use crate::ops::Op;
use crate::vm::VmAction;

/// How often balancing runs unless the engine is configured otherwise (oVirt's default).
pub const DEFAULT_BALANCE_PERIOD: Duration = Duration::from_secs(60);

/// Starts the balancing loop.
pub(crate) fn spawn(engine: &Arc<Engine>, period: Duration) {
    let weak = Arc::downgrade(engine);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(engine) = weak.upgrade() else { return };
            if let Err(e) = engine.balance_round().await {
                tracing::warn!(error = %e, "a balancing round failed");
            }
        }
    });
}

impl Engine {
    /// One round of load balancing and power saving.
    pub(crate) async fn balance_round(self: &Arc<Self>) -> Result<()> {
        let mut cluster = self.cluster();
        let at = now().max(0) as u64;
        let high = cluster.policy.params.high_utilization();
        {
            let mut since = self.overcommit.lock().unwrap_or_else(|e| e.into_inner());
            let loads: HashMap<String, u32> = cluster
                .hosts
                .iter()
                .map(|h| (h.id.to_string(), h.cpu_load_percent))
                .collect();
            since.retain(|h, _| loads.get(h).is_some_and(|l| *l >= high));
            for (h, load) in &loads {
                if *load >= high {
                    since.entry(h.clone()).or_insert(at);
                }
            }
            for h in &mut cluster.hosts {
                h.cpu_over_commit_since = since.get(h.id.as_str()).copied();
            }
        }
        let moves = drover_sched::balance(&cluster, at)
            .map_err(|e| crate::error::CoreError::Internal(e.to_string()))?;
        let power = drover_sched::power_saving(&cluster)
            .map_err(|e| crate::error::CoreError::Internal(e.to_string()))?;
        if moves.is_empty()
            && power.migrations.is_empty()
            && power.power_off.is_empty()
            && power.power_on.is_empty()
        {
            return Ok(());
        }
        let caller = self.service_session("drover-balancer")?;
        for m in moves.iter().chain(&power.migrations) {
            self.balance_move(&caller, m).await;
        }
        for host in &power.power_off {
            let host = host.as_str();
            let empty = self.read(|db| !db.all("VM").any(|v| v.str("resident_on") == host));
            if !empty {
                continue;
            }
            match self.power(host, PowerAction::Off).await {
                Ok(_) => {
                    self.detach_driver(host);
                    self.set_host_state(host, Some("powered_off"), false)?;
                    self.audit_system(
                        codes::VDS_POWER_SAVE,
                        Severity::Normal,
                        "host",
                        host,
                        "Host was switched off by the power saver",
                    );
                }
                Err(e) => {
                    tracing::warn!(host, error = %e, "the power saver cannot switch a host off")
                }
            }
        }
        for host in &power.power_on {
            if let Err(e) = self.power_up(host.as_str()).await {
                tracing::warn!(%host, error = %e, "the power saver cannot switch a host on");
            }
        }
        self.logout(&caller)
    }

    async fn balance_move(self: &Arc<Self>, caller: &crate::Caller, m: &Migration) {
        let op = Op::Vm {
            vm: m.vm.to_string(),
            action: VmAction::PoolMigrate {
                host: Some(m.to.to_string()),
            },
        };
        if let Err(e) = self.call(caller, op).await {
            tracing::info!(vm = %m.vm, to = %m.to, error = %e, "a balancing migration failed");
        }
    }

    /// Switches a host on through its power management and reconnects to it once its agent
    /// answers.
    pub(crate) async fn power_up(self: &Arc<Self>, host: &str) -> Result<()> {
        self.power(host, PowerAction::On).await?;
        if self.host_connected(host) {
            return self.set_host_state(host, None, true);
        }
        self.set_host_state(host, Some("powering_up"), false)?;
        self.audit_system(
            codes::VDS_POWER_SAVE,
            Severity::Normal,
            "host",
            host,
            "Host was switched on",
        );
        self.reconnect_later(host);
        Ok(())
    }
}
