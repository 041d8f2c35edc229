//! Live migration of a guest between hosts, over QEMU's own migration stream on TCP.
//!
//! The destination starts QEMU with `-incoming defer`, has it listen on a port the kernel picks
//! (`migrate-incoming` of `tcp:IP:0`, the port read back from `query-migrate`) and keeps the
//! guest apart from its own until the engine commits it. It is started without `-S`: QEMU starts
//! the guest by itself as soon as the last of its state is in, so the downtime is the final copy
//! alone, not a round trip through the engine. That is safe — guest code never runs on both
//! hosts, and a disk never has two writers — because:
//!
//! - the source sends the final part of the state only after it has stopped the guest's CPUs
//!   and inactivated its block devices (flushed, image locks given up); the destination holds
//!   the images inactive while it waits, and activates them and starts the guest only once that
//!   final part has been loaded. A stream cut short makes the destination QEMU exit without
//!   having run anything, and the source, whose write failed, takes its disks back and runs on.
//! - a send can be cancelled only up to that point: the source migrates with
//!   `pause-before-switchover`, so QEMU waits in `pre-switchover` (CPUs stopped, nothing final
//!   sent) until the agent lets it go on with `migrate-continue`, which it does only under the
//!   lock under which it would issue `migrate_cancel`, and refuses cancels from then on. A cancel
//!   arriving just after the last byte left would otherwise restart the source while the
//!   destination starts too.
//! - no return path is asked for, so the source's answer depends on nothing the destination
//!   says after it has started: a send that fails never had a destination run the guest.
//!
//! The guest's run state travels with it: one paused on the source stays paused on the
//! destination.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use drover_host::{HostError, MigrationStats};
use drover_qmp::QmpEvent;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::cmdline::Paths;
use crate::guest::Guest;

/// How long a waiting QEMU reacts to a migration step before the agent looks again anyway.
const POLL: Duration = Duration::from_millis(50);
/// How long a committed guest's state may take to be loaded after the source sent it all.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest downtime QEMU accepts, milliseconds.
const MAX_DOWNTIME_MS: u64 = 2_000_000;
/// The bandwidth of a send when none is configured: no limit but the network's.
const UNLIMITED: u64 = 1 << 40;

/// Where a guest stands in a live migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// An ordinary guest of this host.
    Settled,
    /// Waiting for, or holding, a state sent by another host, not yet committed: not listed,
    /// not reported when it ends, refused by every ordinary operation.
    Incoming,
    /// Sent to another host: stopped here with its disks released, until it is released.
    Sent,
}

impl Stage {
    /// The stage recorded for the guest of `paths` (an ordinary guest has no record).
    pub fn load(paths: &Paths) -> Stage {
        match std::fs::read_to_string(paths.migration()).as_deref() {
            Ok("incoming") => Stage::Incoming,
            Ok("sent") => Stage::Sent,
            _ => Stage::Settled,
        }
    }

    /// Records the stage for an agent that re-attaches later.
    pub fn save(self, paths: &Paths) {
        let _ = match self {
            Stage::Settled => std::fs::remove_file(paths.migration()),
            Stage::Incoming => std::fs::write(paths.migration(), "incoming"),
            Stage::Sent => std::fs::write(paths.migration(), "sent"),
        };
    }

    /// The stage in the words of [`HostError::BadState`]; `None` for an ordinary guest.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Stage::Settled => None,
            Stage::Incoming => Some("incoming"),
            Stage::Sent => Some("migrated"),
        }
    }
}

/// How far a send has come, for a cancel to know whether it may still stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// No send in progress.
    Idle,
    /// Copying memory: a cancel is safe.
    Copying,
    /// Cancelled; QEMU ends the send.
    Cancelled,
    /// The guest is stopped and its final state on its way: too late to cancel.
    SwitchingOver,
}

/// Refuses a migration URI other than `tcp:IP:PORT` (IPv6 in brackets): QEMU would also run
/// the command of an `exec:` URI, and the URI comes from another host.
pub(crate) fn check_uri(uri: &str) -> Result<(), HostError> {
    let tcp = uri
        .strip_prefix("tcp:")
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .is_some_and(|a| a.port() != 0);
    if !tcp {
        return Err(HostError::MigrationFailed(format!(
            "{uri:?} is not a tcp:IP:PORT address"
        )));
    }
    Ok(())
}

fn failed(e: HostError) -> HostError {
    match e {
        HostError::Failed(why) => HostError::MigrationFailed(why),
        other => other,
    }
}

/// The figures of a completed migration in a `query-migrate` answer.
fn stats(status: &Value) -> MigrationStats {
    MigrationStats {
        downtime_ms: status["downtime"].as_u64().unwrap_or(0),
        total_ms: status["total-time"].as_u64().unwrap_or(0),
        transferred_bytes: status["ram"]["transferred"].as_u64().unwrap_or(0),
    }
}

impl Guest {
    /// Destination side: has the waiting QEMU listen on a free TCP port of `ip`; the URI the
    /// source sends to.
    pub async fn listen(&self, ip: IpAddr) -> Result<String, HostError> {
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let uri = format!("tcp:{host}:0");
        self.cmd("migrate-incoming", Some(json!({ "uri": uri })))
            .await?;
        let st = self.cmd("query-migrate", None).await?;
        let port = st["socket-address"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|a| a["port"].as_str()?.parse::<u16>().ok())
            .ok_or_else(|| HostError::Failed(format!("QEMU names no port it listens on: {st}")))?;
        Ok(format!("tcp:{host}:{port}"))
    }

    /// Destination side: waits until QEMU has loaded the whole state (and started the guest,
    /// unless it came paused).
    pub async fn arrived(&self) -> Result<(), HostError> {
        let deadline = Instant::now() + ARRIVAL_TIMEOUT;
        loop {
            let status = self.status().await.map_err(|e| {
                HostError::MigrationFailed(format!("the guest's state did not arrive: {e}"))
            })?;
            match status.as_str() {
                "running" | "paused" => return Ok(()),
                "inmigrate" if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                other => {
                    return Err(HostError::MigrationFailed(format!(
                        "the guest's state did not arrive (QEMU is {other})"
                    )))
                }
            }
        }
    }

    /// Source side: sends the guest to `uri` and, once it is all sent, records it as sent.
    /// `bandwidth` bounds the bytes per second, if given.
    pub async fn send(
        &self,
        uri: &str,
        max_downtime_ms: u64,
        bandwidth: Option<u64>,
    ) -> Result<MigrationStats, HostError> {
        let events = {
            let mut out = self.outgoing.lock().await;
            if *out != Outgoing::Idle {
                return Err(HostError::BadState {
                    uuid: self.uuid.clone(),
                    expected: "running",
                    actual: "migrating",
                });
            }
            // Under the lock, so that a cancel finds the migration it is to cancel.
            let events = self.begin(uri, max_downtime_ms, bandwidth).await?;
            *out = Outgoing::Copying;
            events
        };
        let result = self.track(events).await;
        let mut out = self.outgoing.lock().await;
        if result.is_ok() {
            self.set_stage(Stage::Sent);
        }
        *out = Outgoing::Idle;
        result
    }

    /// Starts the migration; the QMP events it will be followed by.
    async fn begin(
        &self,
        uri: &str,
        max_downtime_ms: u64,
        bandwidth: Option<u64>,
    ) -> Result<broadcast::Receiver<QmpEvent>, HostError> {
        let events = self.qmp.events();
        self.set_pause_before_switchover(true)
            .await
            .map_err(failed)?;
        let params = json!({
            "downtime-limit": max_downtime_ms.min(MAX_DOWNTIME_MS),
            "max-bandwidth": bandwidth.unwrap_or(UNLIMITED),
        });
        self.cmd("migrate-set-parameters", Some(params))
            .await
            .map_err(failed)?;
        self.cmd("migrate", Some(json!({ "uri": uri })))
            .await
            .map_err(failed)?;
        Ok(events)
    }

    /// Follows the migration until it ends, letting it switch over when it is ready to.
    async fn track(
        &self,
        mut events: broadcast::Receiver<QmpEvent>,
    ) -> Result<MigrationStats, HostError> {
        let mut waited_for_figures = 0;
        loop {
            // A slow answer is no reason to leave a migration alone; a closed monitor is.
            let st = match self.cmd("query-migrate", None).await {
                Ok(st) => st,
                Err(e) if self.qmp.is_closed() => return Err(failed(e)),
                Err(_) => Value::Null,
            };
            match st["status"].as_str().unwrap_or("") {
                // QEMU says `completed` a moment before it has worked out the figures.
                "completed" if st["total-time"].as_u64() == Some(0) && waited_for_figures < 50 => {
                    waited_for_figures += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                "completed" => return Ok(stats(&st)),
                "failed" => {
                    self.settle().await;
                    let why = st["error-desc"].as_str().unwrap_or("unknown error");
                    return Err(HostError::MigrationFailed(why.into()));
                }
                "cancelled" => {
                    self.settle().await;
                    return Err(HostError::MigrationCancelled);
                }
                "pre-switchover" => self.switch_over().await,
                _ => {}
            }
            // The next status change comes as an event; look again after a while regardless.
            let _ = tokio::time::timeout(POLL, async {
                while let Ok(ev) = events.recv().await {
                    if ev.name == "MIGRATION" {
                        break;
                    }
                }
            })
            .await;
        }
    }

    /// Lets a send waiting before its switch-over go on, unless it was cancelled; no cancel
    /// is possible from then on.
    async fn switch_over(&self) {
        let mut out = self.outgoing.lock().await;
        if *out != Outgoing::Copying {
            return;
        }
        *out = Outgoing::SwitchingOver;
        let go_on = json!({ "state": "pre-switchover" });
        if self.cmd("migrate-continue", Some(go_on)).await.is_err() {
            // Unless QEMU went on regardless, it still waits with nothing final sent: it is let
            // go on at the next look, and until then a cancel is still safe.
            let waits = self
                .cmd("query-migrate", None)
                .await
                .is_ok_and(|st| st["status"] == "pre-switchover");
            if waits {
                *out = Outgoing::Copying;
            }
        }
    }

    /// Waits, briefly, for QEMU to leave the stopped state of a switch-over that failed: it then
    /// runs the guest again (or leaves it paused, if it was).
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.status().await.is_ok_and(|s| s == "finish-migrate")
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Source side: cancels the send in progress, if it is not switching over yet.
    pub async fn cancel_send(&self) -> Result<(), HostError> {
        let mut out = self.outgoing.lock().await;
        let actual = match *out {
            Outgoing::Copying => {
                self.cmd("migrate_cancel", None).await?;
                *out = Outgoing::Cancelled;
                return Ok(());
            }
            Outgoing::Cancelled => return Ok(()),
            Outgoing::SwitchingOver => "switching over",
            Outgoing::Idle => self.state_name().await,
        };
        Err(HostError::BadState {
            uuid: self.uuid.clone(),
            expected: "migrating",
            actual,
        })
    }

    /// The guest's state in the words of [`HostError::BadState`].
    pub async fn state_name(&self) -> &'static str {
        match self.stage().name() {
            Some(name) => name,
            None if self.status().await.is_ok_and(|s| s == "running") => "running",
            None => "paused",
        }
    }

    /// Has QEMU wait before the switch-over of a migration, or not.
    pub async fn set_pause_before_switchover(&self, on: bool) -> Result<(), HostError> {
        let caps = json!({ "capabilities": [
            { "capability": "events", "state": true },
            { "capability": "pause-before-switchover", "state": on },
        ]});
        self.cmd("migrate-set-capabilities", Some(caps))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_addresses_are_sent_to() {
        for ok in ["tcp:10.0.0.2:49152", "tcp:[fd00::2]:4444"] {
            check_uri(ok).unwrap();
        }
        for bad in [
            "exec:rm -rf /",
            "tcp:10.0.0.2",
            "tcp:10.0.0.2:0",
            "tcp:host:4444",
            "unix:/tmp/s",
            "tcp:10.0.0.2:4444,x",
        ] {
            assert!(
                matches!(check_uri(bad), Err(HostError::MigrationFailed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_stage_is_kept_for_a_reattach() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            dir: dir.path().into(),
            run: dir.path().into(),
        };
        assert_eq!(Stage::load(&paths), Stage::Settled);
        for stage in [Stage::Incoming, Stage::Sent, Stage::Settled] {
            stage.save(&paths);
            assert_eq!(Stage::load(&paths), stage);
        }
        assert!(!paths.migration().exists());
    }

    #[test]
    fn figures_come_from_query_migrate() {
        let st = json!({"status": "completed", "downtime": 7, "total-time": 610,
            "ram": {"transferred": 83964601}});
        assert_eq!(
            stats(&st),
            MigrationStats {
                downtime_ms: 7,
                total_ms: 610,
                transferred_bytes: 83964601
            }
        );
    }
}
