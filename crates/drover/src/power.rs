//! Power management for the engine: running fence agents, and `drover fence`, the fence agent
//! of hosts that are `drover node` processes on one machine (test hosts).
//!
//! Fence agents follow the fence-agents convention: options as `key=value` lines on standard
//! input (`action` among them), exit status 0 for success; for `status`, 0 means on and 2 off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use drover_core::{PowerAction, PowerManager, PowerState};
use tokio::io::AsyncWriteExt;

/// How long an agent may run.
const AGENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs fence agents: `drover` is this binary's `drover fence`; any other type `T` is
/// `DIR/fence_T` (`/usr/sbin` unless configured, where Debian's `fence-agents` installs them).
#[derive(Debug)]
pub struct FenceAgents {
    /// Directory of `fence_*` agents.
    pub dir: PathBuf,
}

#[async_trait]
impl PowerManager for FenceAgents {
    async fn run(
        &self,
        kind: &str,
        options: &BTreeMap<String, String>,
        action: PowerAction,
    ) -> Result<PowerState, String> {
        let valid = !kind.is_empty()
            && kind
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(format!("{kind:?} is not a fence agent type"));
        }
        let mut cmd = if kind == "drover" {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let mut c = tokio::process::Command::new(exe);
            c.arg("fence");
            c
        } else {
            tokio::process::Command::new(self.dir.join(format!("fence_{kind}")))
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("fence agent {kind}: {e}"))?;
        let mut input = format!("action={}\n", action.as_str());
        for (k, v) in options {
            if k == "action" || k.contains(['\n', '=']) || v.contains('\n') {
                continue;
            }
            input.push_str(&format!("{k}={v}\n"));
        }
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .await
                .map_err(|e| format!("fence agent {kind}: {e}"))?;
        }
        let out = tokio::time::timeout(AGENT_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| format!("fence agent {kind} did not finish in {AGENT_TIMEOUT:?}"))?
            .map_err(|e| format!("fence agent {kind}: {e}"))?;
        let said = || String::from_utf8_lossy(&out.stderr).trim().to_string();
        match (action, out.status.code()) {
            (PowerAction::Status, Some(0)) => Ok(PowerState::On),
            (PowerAction::Status, Some(2)) => Ok(PowerState::Off),
            (PowerAction::Off, Some(0)) => Ok(PowerState::Off),
            (PowerAction::On, Some(0)) => Ok(PowerState::On),
            (_, code) => Err(format!(
                "fence agent {kind} failed ({}): {}",
                code.map_or("killed".to_string(), |c| format!("exit {c}")),
                said()
            )),
        }
    }
}

/// The pidfile a node writes in its data directory.
pub const NODE_PIDFILE: &str = "node.pid";

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The node process and the QEMU processes of a node's data directory.
fn node_processes(dir: &Path) -> (Option<i32>, Vec<i32>) {
    let node = read_pid(&dir.join(NODE_PIDFILE)).filter(|p| alive(*p));
    let guests = std::fs::read_dir(dir.join("guests"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| read_pid(&e.path().join("qemu.pid")))
        .filter(|p| alive(*p))
        .collect();
    (node, guests)
}

/// `drover fence`: the fence agent of a `drover node` on this machine. Options (stdin):
/// `action` (`off`, `on`, `reboot`, `status`, `monitor`), `plug` (the node's data directory)
/// and, for `on`, `start` (a shell command that starts the node again).
/// `off` kills the node and every QEMU process of its guests at once (SIGKILL) and succeeds
/// once they are gone. A `plug` without a `node.pid` (no node ever ran there: a wrong
/// directory) fails every action but `monitor`, so that nothing is confirmed off by mistake.
pub fn fence_agent() -> std::process::ExitCode {
    use std::io::Read;
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        eprintln!("drover fence: cannot read the options");
        return std::process::ExitCode::from(1);
    }
    let options: BTreeMap<&str, &str> = input
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let action = options.get("action").copied().unwrap_or("reboot");
    if action == "monitor" {
        return std::process::ExitCode::SUCCESS;
    }
    let Some(dir) = options
        .get("plug")
        .or(options.get("port"))
        .map(PathBuf::from)
    else {
        eprintln!("drover fence: the option plug (the node's data directory) is missing");
        return std::process::ExitCode::from(1);
    };
    // A plug that names no node's directory must not confirm anything: the node it was meant
    // for may still run.
    if !dir.join(NODE_PIDFILE).is_file() {
        eprintln!(
            "drover fence: {} is not the data directory of a node that has run ({NODE_PIDFILE} \
             is missing)",
            dir.display()
        );
        return std::process::ExitCode::from(1);
    }
    let code = match action {
        "status" => {
            if node_processes(&dir).0.is_some() {
                0
            } else {
                2
            }
        }
        "off" => off(&dir),
        "on" => on(&dir, options.get("start").copied()),
        "reboot" => match off(&dir) {
            0 => on(&dir, options.get("start").copied()),
            c => c,
        },
        other => {
            eprintln!("drover fence: unknown action {other}");
            1
        }
    };
    std::process::ExitCode::from(code)
}

fn off(dir: &Path) -> u8 {
    let (node, guests) = node_processes(dir);
    for pid in node.into_iter().chain(guests) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for _ in 0..100 {
        let (node, guests) = node_processes(dir);
        if node.is_none() && guests.is_empty() {
            return 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "drover fence: processes of {} survive SIGKILL",
        dir.display()
    );
    1
}

fn on(dir: &Path, start: Option<&str>) -> u8 {
    if node_processes(dir).0.is_some() {
        return 0;
    }
    let Some(start) = start else {
        eprintln!("drover fence: the option start (the command that starts the node) is missing");
        return 1;
    };
    let spawned = std::process::Command::new("setsid")
        .args(["sh", "-c", start])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("drover fence: cannot start the node: {e}");
        return 1;
    }
    for _ in 0..200 {
        if node_processes(dir).0.is_some() {
            return 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("drover fence: the node did not start");
    1
}
