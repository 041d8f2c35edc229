//! Helper processes (dnsmasq, the DHCP client): finding them again through their pidfiles,
//! stopping them, and starting processes inside the agent's network namespace.

use std::path::Path;
use std::time::{Duration, Instant};

use drover_host::HostError;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The arguments a running process was started with (empty if it is gone or a zombie).
pub(crate) fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The process named in `pidfile`, if it still runs with `marker` among its arguments, with
/// those arguments.
pub(crate) fn adopt(pidfile: &Path, marker: &str) -> Option<(i32, Vec<String>)> {
    let pid: i32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let args = cmdline(pid);
    (pid > 0 && args.iter().any(|a| a == marker)).then_some((pid, args))
}

/// Processes running with `marker` somewhere in one of their arguments.
pub(crate) fn find(marker: &str) -> Vec<(i32, Vec<String>)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .map(|pid| (pid, cmdline(pid)))
        .filter(|(_, args)| args.iter().any(|a| a.contains(marker)))
        .collect()
}

/// Whether `pid` runs (exists and is not a zombie).
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

/// Stops `pid` (SIGTERM, then SIGKILL after five seconds) and waits until it has exited.
pub(crate) async fn stop(pid: i32) {
    let mut signal = Signal::SIGTERM;
    let mut deadline = Instant::now() + Duration::from_secs(5);
    let _ = kill(Pid::from_raw(pid), signal);
    while alive(pid) {
        if Instant::now() > deadline {
            if signal == Signal::SIGKILL {
                tracing::warn!(pid, "process does not exit");
                return;
            }
            signal = Signal::SIGKILL;
            deadline = Instant::now() + Duration::from_secs(5);
            let _ = kill(Pid::from_raw(pid), signal);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Makes `cmd` run inside the network namespace `netns` (if any) by having `nsenter` start it:
/// the process keeps its pid. Only the program, arguments, environment and working directory set
/// so far are carried over, so call it right after `Command::new` (stdio, process group and the
/// like set before are lost).
pub(crate) fn enter(
    netns: Option<&str>,
    cmd: &mut tokio::process::Command,
) -> Result<(), HostError> {
    let Some(ns) = netns else {
        return Ok(());
    };
    let path = Path::new("/run/netns").join(ns);
    if !path.exists() {
        return Err(HostError::NetConfig {
            device: ns.into(),
            reason: format!("the network namespace {} does not exist", path.display()),
        });
    }
    let old = cmd.as_std();
    let mut new = tokio::process::Command::new("nsenter");
    new.arg(format!("--net={}", path.display()))
        .arg("--")
        .arg(old.get_program())
        .args(old.get_args());
    for (key, value) in old.get_envs() {
        match value {
            Some(v) => new.env(key, v),
            None => new.env_remove(key),
        };
    }
    if let Some(dir) = old.get_current_dir() {
        new.current_dir(dir);
    }
    *cmd = new;
    Ok(())
}
