//! Background work: following guest events and refreshing metrics from the host.

use std::sync::Arc;
use std::time::Duration;

use drover_host::GuestEvent;
use drover_model::Value;

use crate::engine::{now, Engine};

/// How often metrics are refreshed.
const METRICS_PERIOD: Duration = Duration::from_secs(5);

pub(crate) fn spawn(engine: &Arc<Engine>) {
    let weak = Arc::downgrade(engine);
    let mut events = engine.host.subscribe();
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            let Some(engine) = weak.upgrade() else { return };
            let GuestEvent::Exited { uuid, reason } = ev;
            engine.guest_exited(&uuid, &reason);
        }
    });
    let weak = Arc::downgrade(engine);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(METRICS_PERIOD);
        loop {
            tick.tick().await;
            let Some(engine) = weak.upgrade() else { return };
            engine.refresh_metrics().await;
        }
    });
}

impl Engine {
    /// A guest stopped without the engine asking (or while it asked): mark its VM halted unless
    /// an operation of the engine is handling it.
    fn guest_exited(&self, uuid: &str, reason: &str) {
        let _ = self.write(|t| {
            let vm = t
                .db()
                .table("VM")
                .and_then(|tb| tb.by_uuid(uuid))
                .map(|r| r.to_string());
            let Some(vm) = vm else { return Ok(()) };
            let obj = t.must("VM", &vm)?;
            let busy = obj
                .get("current_operations")
                .as_map()
                .is_some_and(|m| !m.is_empty());
            if busy || obj.str("power_state") == "Halted" || obj.str("power_state") == "Suspended" {
                return Ok(());
            }
            tracing::info!(vm, reason, "guest stopped on its own");
            crate::vm::halt(t, &vm)?;
            crate::vm::refresh_allowed(t, &vm)
        });
    }

    async fn refresh_metrics(&self) {
        let host = self.this_host();
        let hm = self.host.metrics().await;
        let running: Vec<(String, String, String)> = self.read(|db| {
            db.all("VM")
                .filter(|v| v.str("resident_on") == &*host)
                .map(|v| {
                    (
                        v.r.to_string(),
                        v.uuid().to_string(),
                        v.str("metrics").to_string(),
                    )
                })
                .collect()
        });
        let mut figures = Vec::new();
        for (vm, uuid, metrics) in running {
            if let Ok(m) = self.host.guest_metrics(&uuid).await {
                figures.push((vm, metrics, m));
            }
        }
        let _ = self.write_volatile(|t| {
            let hmr = t.must("host", &host)?.str("metrics").to_string();
            if t.get("host_metrics", &hmr).is_some() {
                t.set(
                    "host_metrics",
                    &hmr,
                    "memory_free",
                    Value::Int(hm.memory_free as i64),
                )?;
                t.set("host_metrics", &hmr, "last_updated", Value::DateTime(now()))?;
            }
            let cpus: Vec<String> = t
                .db()
                .all("host_cpu")
                .filter(|c| c.str("host") == &*host)
                .map(|c| c.r.to_string())
                .collect();
            for c in cpus {
                t.set(
                    "host_cpu",
                    &c,
                    "utilisation",
                    Value::Float(hm.cpu_utilisation),
                )?;
            }
            for (_, metrics, m) in &figures {
                if t.get("VM_metrics", metrics).is_none() {
                    continue;
                }
                t.set(
                    "VM_metrics",
                    metrics,
                    "memory_actual",
                    Value::Int(m.memory_actual as i64),
                )?;
                t.set(
                    "VM_metrics",
                    metrics,
                    "VCPUs_number",
                    Value::Int(m.vcpus as i64),
                )?;
                let util = m
                    .vcpu_utilisation
                    .iter()
                    .enumerate()
                    .map(|(i, u)| (Value::Int(i as i64), Value::Float(*u)))
                    .collect();
                t.set("VM_metrics", metrics, "VCPUs_utilisation", Value::Map(util))?;
                t.set(
                    "VM_metrics",
                    metrics,
                    "last_updated",
                    Value::DateTime(now()),
                )?;
            }
            Ok(())
        });
    }
}
