//! Host interfaces handed to Drover (uplinks, bond members): checking them, remembering how they
//! were, giving them back; and undoing a half-done change.

use std::path::Path;

use drover_host::HostError;
use serde::{Deserialize, Serialize};

use super::run::{Ip, Link};

/// How a host interface was before Drover took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Prior {
    /// The interface.
    pub(crate) device: String,
    /// Whether it was up.
    pub(crate) up: bool,
    /// Its MTU.
    pub(crate) mtu: u32,
    /// Its MAC.
    pub(crate) mac: String,
    /// The bridge or bond it was a port of.
    pub(crate) master: Option<String>,
}

impl Prior {
    /// The state of `link` now.
    pub(crate) fn of(link: &Link) -> Prior {
        Prior {
            device: link.ifname.clone(),
            up: link.up(),
            mtu: link.mtu,
            mac: link.address.clone(),
            master: link.master.clone(),
        }
    }
}

/// Checks that the host interface `device` may be handed to Drover: it exists, carries no
/// addresses or routes of the host's and is nobody's port. Returns it.
pub(crate) async fn check_free(ip: &Ip, device: &str, owner: &str) -> Result<Link, HostError> {
    let link = ip.existing(device).await?;
    if link.link_type != "ether"
        || link.kind() == "tun"
        || (link.ours(owner) && link.kind() != "bond")
    {
        return Err(HostError::NetConfig {
            device: device.into(),
            reason: "not a host Ethernet interface".into(),
        });
    }
    if link.has_global_address()
        || link.master.is_some()
        || ip.routes(device).await?.iter().any(|r| r.is_held())
    {
        return Err(HostError::DeviceInUse(device.into()));
    }
    Ok(link)
}

/// Gives `prior.device` back as it was, changing only what differs. A vanished device is fine.
pub(crate) async fn restore(ip: &Ip, prior: &Prior) -> Result<(), HostError> {
    let Some(now) = ip.link(&prior.device).await? else {
        return Ok(());
    };
    let dev = prior.device.as_str();
    if now.master != prior.master && now.master.is_some() {
        ip.set(dev, &["nomaster"]).await?;
    }
    if now.mtu != prior.mtu {
        ip.set(dev, &["mtu", &prior.mtu.to_string()]).await?;
    }
    if !prior.mac.is_empty() && !now.address.eq_ignore_ascii_case(&prior.mac) {
        ip.set(dev, &["address", &prior.mac]).await?;
    }
    if let Some(m) = &prior.master {
        if now.master.as_ref() != Some(m) {
            ip.set(dev, &["master", m]).await?;
        }
    }
    ip.set(dev, &[if prior.up { "up" } else { "down" }]).await
}

/// One step taking back part of a change.
#[derive(Debug)]
enum Step {
    /// Delete a device this change made.
    Delete(String),
    /// Give a host interface back.
    Restore(Prior),
    /// Run a tool (`ip`, `bridge`) with these arguments.
    Run(&'static str, Vec<String>),
}

/// What a change did so far, to take it back if a later step fails.
#[derive(Debug, Default)]
pub(crate) struct Undo {
    steps: Vec<Step>,
}

impl Undo {
    /// Remembers that `device` was made.
    pub(crate) fn made(&mut self, device: &str) {
        self.steps.push(Step::Delete(device.into()));
    }

    /// Remembers that a host interface was taken as it was in `prior`.
    pub(crate) fn took(&mut self, prior: Prior) {
        self.steps.push(Step::Restore(prior));
    }

    /// Remembers a command that takes back the last step.
    pub(crate) fn run(&mut self, program: &'static str, args: &[&str]) {
        self.steps.push(Step::Run(
            program,
            args.iter().map(|s| s.to_string()).collect(),
        ));
    }

    /// Takes back every step, last first, as far as possible.
    pub(crate) async fn rollback(self, ip: &Ip) {
        for step in self.steps.into_iter().rev() {
            let done = match &step {
                Step::Delete(d) => ip.cmd(d, &["link", "del", "dev", d]).await,
                Step::Restore(p) => restore(ip, p).await,
                Step::Run(program, args) => {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    ip.tool("undo", program, &args).await.map(drop)
                }
            };
            if let Err(e) = done {
                tracing::warn!(?step, error = %e, "undoing a network change failed");
            }
        }
    }
}

/// Reads a JSON state file; `None` if there is none.
pub(crate) fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, HostError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| HostError::Failed(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(HostError::Failed(format!("{}: {e}", path.display()))),
    }
}

/// Writes a JSON state file atomically.
pub(crate) fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), HostError> {
    let fail = |e: &dyn std::fmt::Display| HostError::Failed(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| fail(&e))?;
    std::fs::write(&tmp, bytes).map_err(|e| fail(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(&e))
}
