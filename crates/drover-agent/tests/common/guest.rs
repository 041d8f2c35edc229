//! The tiny test guest and the agents that run it, for the tests that boot it: the guest
//! built by `guest/build-tiny-guest.sh` (in `guest/out`, or `$DROVER_TINY_GUEST`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drover_agent::{Accel, AccelChoice, AgentConfig, QemuHost};
use drover_host::{DiskSpec, GuestSpec, HostDriver};

use super::Netns;

/// The directory of the tiny guest's kernel and initrd.
pub fn guest_dir() -> PathBuf {
    let dir = std::env::var_os("DROVER_TINY_GUEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../guest/out"));
    assert!(
        dir.join("vmlinuz").is_file() && dir.join("initrd.img").is_file(),
        "the tiny guest is not built in {} (run guest/build-tiny-guest.sh)",
        dir.display()
    );
    dir
}

/// The agent's configuration in tests: TCG, 30 s for a clean shutdown.
pub fn config(data: &Path) -> AgentConfig {
    let mut config = AgentConfig::new(data);
    config.accel = AccelChoice::Fixed(Accel::Tcg);
    config.shutdown_timeout = Duration::from_secs(30);
    config
}

/// An agent with its state in `data`.
pub async fn host(data: &Path) -> QemuHost {
    host_in(data, None).await
}

/// An agent whose networks and guests live in the network namespace `netns`.
pub async fn host_in(data: &Path, netns: Option<&Netns>) -> QemuHost {
    let mut config = config(data);
    config.netns = netns.map(|n| n.0.clone());
    QemuHost::open(config).await.expect("agent opens")
}

/// A direct-boot spec of the tiny guest with kernel arguments `args`.
pub fn spec(uuid: &str, args: &str, disks: Vec<DiskSpec>) -> GuestSpec {
    let g = guest_dir();
    GuestSpec {
        uuid: uuid.into(),
        name: "t".into(),
        vcpus: 1,
        memory: 96 << 20,
        kernel: g.join("vmlinuz").to_string_lossy().into_owned(),
        ramdisk: g.join("initrd.img").to_string_lossy().into_owned(),
        args: format!("console=ttyS0 no_timer_check {args}"),
        disks,
        ..GuestSpec::default()
    }
}

/// Waits until the console log has a line containing `needle` after byte `from`.
pub async fn console_wait(h: &QemuHost, uuid: &str, from: usize, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = h.console_log(uuid).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&log[from.min(log.len())..]).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} on the console of {uuid}; it says:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The uptime in a status line of the guest.
pub fn uptime(line: &str) -> f64 {
    line.split("uptime=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Kills the guests a test left running when it fails (QEMU outlives the agent by design).
pub struct Reaper<'a>(pub &'a Path);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.0.join("guests"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(pid) = std::fs::read_to_string(e.path().join("qemu.pid")) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", pid.trim()])
                    .status();
            }
        }
    }
}

/// A runtime of its own, to end like a killed agent process: its tasks and sockets go.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
