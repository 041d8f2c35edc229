//! Guest consoles: the `console` records of a running VM, and reading and opening them.

use std::sync::Arc;

use drover_host::{ConsoleKind, Stream};
use drover_model::Value;

use crate::auth::Caller;
use crate::db::Obj;
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::txn::Txn;

/// Console protocols every running VM offers.
const PROTOCOLS: &[&str] = &["vt100", "rfb"];

/// Where clients reach a console, under the engine's console base URL.
fn location(base: &str, console: &str) -> String {
    format!("{base}/console?ref={console}")
}

/// Gives a VM its consoles unless it has some, and points them all at `base`.
pub(crate) fn ensure_consoles(t: &mut Txn, vm: &str, base: &str) -> Result<()> {
    let existing = t.must("VM", vm)?.refs("consoles");
    if existing.is_empty() {
        for protocol in PROTOCOLS {
            let c = t.create(
                "console",
                vec![("protocol", Value::str(*protocol)), ("VM", Value::str(vm))],
            )?;
            t.set("console", &c, "location", Value::str(location(base, &c)))?;
        }
        return Ok(());
    }
    for c in existing {
        let want = location(base, &c);
        if t.get("console", &c)
            .is_some_and(|o| o.str("location") != want)
        {
            t.set("console", &c, "location", Value::str(want))?;
        }
    }
    Ok(())
}

/// Removes a VM's consoles.
pub(crate) fn drop_consoles(t: &mut Txn, vm: &str) -> Result<()> {
    for c in t.must("VM", vm)?.refs("consoles") {
        if t.get("console", &c).is_some() {
            t.destroy("console", &c)?;
        }
    }
    Ok(())
}

impl Engine {
    /// A console and its VM.
    fn console_target(&self, console: &str) -> Result<(Arc<Obj>, Arc<Obj>)> {
        let c = self.get("console", console)?;
        let vm = self.get("VM", c.str("VM"))?;
        Ok((c, vm))
    }

    /// The output a text (`vt100`) console kept so far, for a caller allowed to read consoles.
    pub async fn console_log(&self, caller: &Caller, console: &str) -> Result<Vec<u8>> {
        self.check_permission(caller, "console", "get_record")?;
        let (c, vm) = self.console_target(console)?;
        let protocol = c.str("protocol");
        if protocol != "vt100" {
            return Err(CoreError::OperationNotAllowed(format!(
                "console {console} is {protocol}; only a vt100 console keeps a log"
            )));
        }
        self.resident(&vm)?
            .1
            .console_log(vm.uuid())
            .await
            .map_err(|e| self.host_error(e, "console"))
    }

    /// An interactive stream to a console of a running or paused VM (the serial console for
    /// `vt100`, RFB for `rfb`), for a caller allowed to start VMs.
    pub async fn console_open(&self, caller: &Caller, console: &str) -> Result<Box<dyn Stream>> {
        self.check_permission(caller, "VM", "start")?;
        let (c, vm) = self.console_target(console)?;
        let state = vm.str("power_state");
        if !matches!(state, "Running" | "Paused") {
            return Err(CoreError::VmBadPowerState {
                vm: vm.r.to_string(),
                expected: "running, paused".into(),
                actual: state.to_lowercase(),
            });
        }
        let kind = match c.str("protocol") {
            "vt100" => ConsoleKind::Serial,
            "rfb" => ConsoleKind::Vnc,
            other => {
                return Err(CoreError::OperationNotAllowed(format!(
                    "console protocol {other} is not served"
                )))
            }
        };
        self.resident(&vm)?
            .1
            .console_open(vm.uuid(), kind)
            .await
            .map_err(|e| self.host_error(e, "console"))
    }
}
