//! Guests: a guest is a VM named by its userid. Creation, power, resizing, the user directory
//! synthesised from the VM, console output and metrics.

use std::sync::Arc;
use std::time::Duration;

use drover_core::{Obj, Op, Reply, VmAction};
use drover_model::Value;
use serde_json::{json, Value as Json};

use super::args::{opt, req, Args, Param};
use super::{Backend, Call, Dispatched};
use crate::error::{Module, ZvmError, ZvmResult};

const G: Module = Module::Guest;

/// What the original waits for a soft stop by default, and between polls.
const SOFTSTOP_TIMEOUT: u64 = 120;

pub(super) async fn dispatch<'a>(b: &Backend, call: Call<'a>) -> Dispatched<'a> {
    const U: &[Param] = &[req("userid")];
    Ok(match call.api {
        "guest_create" => {
            const P: &[Param] = &[
                req("userid"),
                req("vcpus"),
                req("memory"),
                opt("disk_list"),
                opt("user_profile"),
                opt("max_cpu"),
                opt("max_mem"),
                opt("ipl_from"),
                opt("ipl_param"),
                opt("ipl_loadparam"),
                opt("dedicate_vdevs"),
                opt("loaddev"),
                opt("account"),
                opt("comment_list"),
                opt("cschedule"),
                opt("cshare"),
                opt("rdomain"),
                opt("pcif"),
            ];
            match call.bind("guest_create", P) {
                Ok(a) => b.guest_create(&a).await,
                Err(e) => Err(e),
            }
        }
        "guest_list" => match call.bind("guest_list", &[]) {
            Ok(_) => Ok(json!(b
                .guests()
                .into_iter()
                .map(|(u, _)| u)
                .collect::<Vec<_>>())),
            Err(e) => Err(e),
        },
        "guest_delete" => with(call, "guest_delete", U, |a| b.guest_delete(a)).await,
        "guest_start" => {
            with(call, "guest_start", &[req("userid"), opt("timeout")], |a| {
                b.guest_start(a)
            })
            .await
        }
        "guest_stop" | "guest_softstop" => {
            const P: &[Param] = &[req("userid"), opt("timeout"), opt("poll_interval")];
            let soft = call.api == "guest_softstop";
            let name = if soft { "guest_softstop" } else { "guest_stop" };
            with(call, name, P, |a| b.guest_stop(a, soft)).await
        }
        "guest_pause" => with(call, "guest_pause", U, |a| b.power(a, Power::Pause)).await,
        "guest_unpause" => with(call, "guest_unpause", U, |a| b.power(a, Power::Unpause)).await,
        "guest_reboot" => with(call, "guest_reboot", U, |a| b.power(a, Power::Reboot)).await,
        "guest_reset" => with(call, "guest_reset", U, |a| b.power(a, Power::Reset)).await,
        "guest_get_console_output" => {
            with(call, "guest_get_console_output", U, |a| b.console_output(a)).await
        }
        "guest_register" => {
            const P: &[Param] = &[req("userid"), req("meta"), req("net_set"), opt("port_macs")];
            with(call, "guest_register", P, |a| b.guest_register(a)).await
        }
        "guest_deregister" => with(call, "guest_deregister", U, |a| b.guest_deregister(a)).await,
        "guest_live_migrate" => {
            const P: &[Param] = &[
                req("userid"),
                req("dest_zcc_userid"),
                req("destination"),
                req("parms"),
                req("lgr_action"),
            ];
            with(call, "guest_live_migrate", P, |a| b.live_migrate(a)).await
        }
        "guest_live_resize_cpus" | "guest_resize_cpus" => {
            let live = call.api == "guest_live_resize_cpus";
            let name = if live {
                "guest_live_resize_cpus"
            } else {
                "guest_resize_cpus"
            };
            with(call, name, &[req("userid"), req("cpu_cnt")], |a| {
                b.resize_cpus(a, live)
            })
            .await
        }
        "guest_live_resize_mem" | "guest_resize_mem" => {
            let live = call.api == "guest_live_resize_mem";
            let name = if live {
                "guest_live_resize_mem"
            } else {
                "guest_resize_mem"
            };
            with(call, name, &[req("userid"), req("size")], |a| {
                b.resize_mem(a, live)
            })
            .await
        }
        "guest_get_power_state" | "guest_get_power_state_real" => {
            let name = if call.api == "guest_get_power_state" {
                "guest_get_power_state"
            } else {
                "guest_get_power_state_real"
            };
            with(call, name, U, |a| async move {
                let vm = b.guest(&a.userid("userid")?)?;
                Ok(json!(power_state(&vm)))
            })
            .await
        }
        "guest_get_info" => with(call, "guest_get_info", U, |a| b.guest_info(a)).await,
        "guest_get_definition_info" | "guest_get_user_direct" => {
            let masked = call.api == "guest_get_user_direct";
            let name = if masked {
                "guest_get_user_direct"
            } else {
                "guest_get_definition_info"
            };
            with(call, name, U, |a| async move {
                let vm = b.guest(&a.userid("userid")?)?;
                Ok(json!({"user_direct": b.user_direct(&vm, masked)}))
            })
            .await
        }
        "guest_get_adapters_info" => {
            with(call, "guest_get_adapters_info", U, |a| b.adapters_info(a)).await
        }
        "guest_inspect_stats" => {
            with(call, "guest_inspect_stats", &[req("userid_list")], |a| {
                b.inspect_stats(a)
            })
            .await
        }
        _ => return Err(call),
    })
}

/// Binds a call and runs `f` on its arguments.
pub(super) async fn with<F, Fut>(
    call: Call<'_>,
    name: &'static str,
    params: &[Param],
    f: F,
) -> ZvmResult
where
    F: FnOnce(Args) -> Fut,
    Fut: std::future::Future<Output = ZvmResult>,
{
    f(call.bind(name, params)?).await
}

/// `on` for a guest that is logged on (running or paused), else `off`.
pub(super) fn power_state(vm: &Obj) -> &'static str {
    if is_on(vm) {
        "on"
    } else {
        "off"
    }
}

/// Whether the guest is logged on.
pub(super) fn is_on(vm: &Obj) -> bool {
    matches!(vm.str("power_state"), "Running" | "Paused")
}

/// Whether a VM is a guest or XenAPI VM (not a template, snapshot or control domain).
pub(super) fn is_vm(v: &Obj) -> bool {
    !v.bool("is_a_template") && !v.bool("is_a_snapshot") && !v.bool("is_control_domain")
}

/// The cumulative CPU time of a guest as its `VM_metrics` last recorded it, in
/// microseconds (0 when not recorded).
fn cpu_time_us(metrics: &Obj) -> i64 {
    metrics
        .other("cpu_time_us")
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(0)
}

/// A userid as a VM name shows it, if the name is one.
fn userid_of(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 8
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then(|| name.to_uppercase())
}

#[derive(Clone, Copy)]
enum Power {
    Pause,
    Unpause,
    Reboot,
    Reset,
}

impl Backend {
    /// Every guest: the VMs (not templates, snapshots or control domains) whose names are
    /// userids, by userid.
    pub(super) fn guests(&self) -> Vec<(String, Arc<Obj>)> {
        let mut all: Vec<(String, Arc<Obj>)> = self.engine.read(|db| {
            db.all("VM")
                .filter(|v| is_vm(v))
                .filter_map(|v| Some((userid_of(v.str("name_label"))?, v.clone())))
                .collect()
        });
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The guest `userid` (upper-case), or `404`.
    pub(super) fn guest(&self, userid: &str) -> ZvmResult<Arc<Obj>> {
        let userid = userid.to_uppercase();
        self.engine
            .read(|db| {
                db.all("VM")
                    .find(|v| is_vm(v) && v.str("name_label").eq_ignore_ascii_case(&userid))
                    .cloned()
            })
            .ok_or_else(|| ZvmError::no_guest(&userid))
    }

    /// The guest, which must be logged on (`409` otherwise).
    pub(super) fn active_guest(&self, userid: &str) -> ZvmResult<Arc<Obj>> {
        let vm = self.guest(userid)?;
        if is_on(&vm) {
            Ok(vm)
        } else {
            Err(ZvmError::not_active(&userid.to_uppercase()))
        }
    }

    async fn vm_op(&self, vm: &Obj, action: VmAction) -> ZvmResult<Reply> {
        self.op(
            G,
            Op::Vm {
                vm: vm.r.to_string(),
                action,
            },
        )
        .await
    }

    async fn guest_create(&self, a: &Args) -> ZvmResult {
        let userid = a.userid("userid")?;
        let vcpus = a.int("vcpus")?;
        let memory_mb = a.int("memory")?;
        if vcpus < 1 || memory_mb < 1 {
            return Err(ZvmError::ArgFormat(
                "vcpus and memory must be at least 1".into(),
            ));
        }
        let max_cpu = a.opt_int("max_cpu")?.unwrap_or(vcpus);
        if !(1..=64).contains(&max_cpu) || max_cpu < vcpus {
            return Err(ZvmError::ArgFormat(format!(
                "max_cpu {max_cpu} must be between {vcpus} and 64"
            )));
        }
        let memory = memory_mb << 20;
        let max_mem = match a.opt_str("max_mem")? {
            Some(s) => parse_mem(&s)
                .ok_or_else(|| ZvmError::ArgFormat(format!("max_mem {s} is not a size")))?,
            None => memory,
        };
        if max_mem < memory {
            return Err(ZvmError::ArgFormat(format!(
                "max_mem {max_mem} is less than memory {memory}"
            )));
        }
        let profile = a
            .opt_str("user_profile")?
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "OSDFLT".into())
            .to_uppercase();
        // The original never formats a root disk marked `is_boot_disk` (it sets its `format`
        // to `none` before it makes the disks, so the answer says so too).
        let mut disk_list = a.list("disk_list")?;
        if let Some(Json::Object(root)) = disk_list.first_mut() {
            let valid = |f: &Json| {
                f.as_str().is_some_and(|f| {
                    ["ext2", "ext3", "ext4", "xfs", "swap", "none"]
                        .contains(&f.to_ascii_lowercase().as_str())
                })
            };
            if root.get("is_boot_disk").is_some_and(py_truthy)
                && root.get("format").is_none_or(valid)
            {
                root.insert("format".into(), json!("none"));
            }
        }
        let plans = self.plan_disks(&disk_list, &[])?;
        if self.guest(&userid).is_ok() {
            return Err(ZvmError::Smt {
                rc: 400,
                rs: 8,
                msg: format!(
                    "SMT error: Failed to create guest '{userid}': the userid is already defined"
                ),
            });
        }
        let fields = vec![
            ("name_label", Value::str(&userid)),
            (
                "name_description",
                Value::str(format!("z/VM guest {userid}")),
            ),
            ("memory_static_max", Value::Int(max_mem)),
            ("memory_dynamic_max", Value::Int(memory)),
            ("memory_dynamic_min", Value::Int(memory)),
            ("memory_static_min", Value::Int(memory)),
            ("VCPUs_max", Value::Int(max_cpu)),
            ("VCPUs_at_startup", Value::Int(vcpus)),
            ("HVM_boot_policy", Value::str("BIOS order")),
            ("HVM_boot_params", Value::string_map([("order", "cd")])),
            ("domain_type", Value::str("hvm")),
            ("actions_after_shutdown", Value::str("destroy")),
            ("actions_after_reboot", Value::str("restart")),
            ("actions_after_crash", Value::str("restart")),
            (
                "other_config",
                Value::string_map([("zvm_user_profile", profile.as_str())]),
            ),
        ];
        let vm = self
            .op_ref(
                G,
                Op::Create {
                    class: "VM".into(),
                    fields: fields
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                },
            )
            .await?;
        let made = self.create_disks(&vm, &plans).await;
        match made {
            Ok(list) => Ok(Json::Array(list)),
            Err(e) => {
                let _ = self.destroy_guest(&vm).await;
                Err(e)
            }
        }
    }

    async fn guest_delete(&self, a: Args) -> ZvmResult {
        let userid = a.userid("userid")?;
        match self.guest(&userid) {
            Ok(vm) => {
                if vm.str("power_state") != "Halted" {
                    self.vm_op(&vm, VmAction::HardShutdown).await?;
                }
                self.destroy_guest(&vm.r).await?;
                Ok(Json::Null)
            }
            Err(_) => Ok(Json::Null),
        }
    }

    /// Removes a halted VM with its minidisks, NICs and config drive; attached volumes are
    /// detached first and kept.
    async fn destroy_guest(&self, vm: &str) -> ZvmResult<()> {
        let obj = self.obj(G, "VM", vm)?;
        for vbd in obj.refs("VBDs") {
            let Ok(b) = self.obj(G, "VBD", &vbd) else {
                continue;
            };
            let volume = self
                .obj(G, "VDI", b.str("VDI"))
                .is_ok_and(|vdi| vdi.other("zvm_volume").is_some());
            if volume {
                self.destroy(G, "VBD", &vbd).await?;
            }
        }
        self.vm_op(&obj, VmAction::Remove { keep_disks: false })
            .await?;
        Ok(())
    }

    async fn guest_start(&self, a: Args) -> ZvmResult {
        let vm = self.guest(&a.userid("userid")?)?;
        let timeout = a.opt_int("timeout")?.unwrap_or(0).max(0) as u64;
        match vm.str("power_state") {
            "Running" => return Ok(Json::Null),
            "Paused" => {
                self.vm_op(&vm, VmAction::Unpause).await?;
                return Ok(Json::Null);
            }
            "Suspended" => {
                self.vm_op(
                    &vm,
                    VmAction::Resume {
                        paused: false,
                        force: false,
                    },
                )
                .await?
            }
            _ => {
                self.vm_op(
                    &vm,
                    VmAction::Start {
                        paused: false,
                        force: false,
                    },
                )
                .await?
            }
        };
        if timeout > 0 {
            self.wait_for_os(&vm.r, Duration::from_secs(timeout))
                .await?;
        }
        Ok(Json::Null)
    }

    /// Waits until the guest's own agent (or DHCP) has reported in, as the original waits
    /// for the guest's operating system to come up.
    async fn wait_for_os(&self, vm: &str, limit: Duration) -> ZvmResult<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let up = self.engine.read(|db| {
                db.get("VM", vm)
                    .map(|v| v.str("guest_metrics").to_string())
                    .and_then(|g| db.get("VM_guest_metrics", &g).map(|_| ()))
                    .is_some()
            });
            if up {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let userid = self.obj(G, "VM", vm)?.str("name_label").to_string();
                return Err(ZvmError::Failed {
                    module: G,
                    rs: 16,
                    msg: format!(
                        "Failed to start the guest: '{userid}', its operating system did not \
                         report in within {} seconds",
                        limit.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn guest_stop(&self, a: Args, soft: bool) -> ZvmResult {
        let vm = self.guest(&a.userid("userid")?)?;
        let timeout = a.opt_int("timeout")?;
        a.opt_int("poll_interval")?;
        if !is_on(&vm) {
            return Ok(Json::Null);
        }
        let action = match (soft, timeout) {
            (true, t) => VmAction::ShutdownWithin {
                secs: t.unwrap_or(SOFTSTOP_TIMEOUT as i64).max(0) as u64,
            },
            (false, Some(t)) if t > 0 => VmAction::ShutdownWithin { secs: t as u64 },
            (false, _) => VmAction::HardShutdown,
        };
        self.vm_op(&vm, action).await?;
        Ok(Json::Null)
    }

    async fn power(&self, a: Args, what: Power) -> ZvmResult {
        let userid = a.userid("userid")?;
        let vm = self.guest(&userid)?;
        let state = vm.str("power_state");
        let action = match (what, state) {
            (Power::Pause, "Paused") | (Power::Unpause, "Running") => return Ok(Json::Null),
            (Power::Pause, "Running") => VmAction::Pause,
            (Power::Unpause, "Paused") => VmAction::Unpause,
            (Power::Reboot, "Running") => VmAction::CleanReboot,
            (Power::Reset, "Running" | "Paused") => VmAction::HardReboot,
            _ => {
                return Err(ZvmError::Failed {
                    module: G,
                    rs: 5,
                    msg: format!("Guest '{userid}' is not logged on (power state {state})"),
                })
            }
        };
        self.vm_op(&vm, action).await?;
        Ok(Json::Null)
    }

    async fn console_output(&self, a: Args) -> ZvmResult {
        let vm = self.guest(&a.userid("userid")?)?;
        let console = vm.refs("consoles").into_iter().next();
        let Some(console) = console else {
            return Ok(json!(""));
        };
        let log = self
            .engine
            .console_log(&self.caller, &console)
            .await
            .map_err(|e| super::core_error(G, e))?;
        Ok(json!(String::from_utf8_lossy(&log)))
    }

    async fn guest_register(&self, a: Args) -> ZvmResult {
        let vm = self.guest(&a.userid("userid")?)?;
        let meta = a.str("meta")?;
        let net_set = match a.get("net_set") {
            Json::String(s) => s.clone(),
            v => v.to_string(),
        };
        let os = serde_json::from_str::<Json>(&meta)
            .ok()
            .and_then(|m| m.get("os_version")?.as_str().map(String::from))
            .unwrap_or(meta);
        self.set_other(G, "VM", &vm.r, "zvm_registered", Some("true"))
            .await?;
        self.set_other(G, "VM", &vm.r, "zvm_os_version", Some(&os))
            .await?;
        self.set_other(G, "VM", &vm.r, "zvm_net_set", Some(&net_set))
            .await?;
        if let Json::Object(ports) = a.get("port_macs") {
            for (mac_tail, port) in ports {
                if let Some(vif) = self.vif_by_mac_tail(&vm, mac_tail) {
                    self.set_other(G, "VIF", &vif, "zvm_nic_id", port.as_str())
                        .await?;
                }
            }
        }
        Ok(Json::Null)
    }

    async fn guest_deregister(&self, a: Args) -> ZvmResult {
        let vm = self.guest(&a.userid("userid")?)?;
        self.set_other(G, "VM", &vm.r, "zvm_registered", None)
            .await?;
        Ok(Json::Null)
    }

    /// `guest_live_migrate`: `destination` is a host of the pool, by name or uuid (the
    /// relocation domain is the pool); `move` live-migrates the guest there, `test` checks
    /// that it could go.
    async fn live_migrate(&self, a: Args) -> ZvmResult {
        let userid = a.userid("userid")?;
        let destination = a.str("destination")?;
        // The original compares `lgr_action.lower()`.
        let action = a.str("lgr_action")?.to_lowercase();
        let vm = self.active_guest(&userid)?;
        if !matches!(action.as_str(), "move" | "test") {
            return Err(ZvmError::ArgFormat(format!(
                "lgr_action {action} must be move or test"
            )));
        }
        let refused = |why: &str| ZvmError::Failed {
            module: G,
            rs: 1,
            msg: format!("SMT error: Failed to {action} guest '{userid}' to {destination}: {why}"),
        };
        let host = self
            .engine
            .read(|db| {
                db.all("host")
                    .find(|h| {
                        h.str("name_label").eq_ignore_ascii_case(&destination)
                            || h.uuid().eq_ignore_ascii_case(&destination)
                    })
                    .map(|h| h.r.to_string())
            })
            .ok_or_else(|| {
                refused(&format!(
                    "{destination} is not a member of this host's relocation domain"
                ))
            })?;
        if host == vm.str("resident_on") {
            return Err(refused("the guest already runs there"));
        }
        if action == "test" {
            return Ok(Json::Null);
        }
        self.vm_op(&vm, VmAction::PoolMigrate { host: Some(host) })
            .await?;
        Ok(Json::Null)
    }

    async fn resize_cpus(&self, a: Args, live: bool) -> ZvmResult {
        let userid = a.userid("userid")?;
        let count = a.int("cpu_cnt")?;
        let vm = self.guest(&userid)?;
        if live && !is_on(&vm) {
            return Err(ZvmError::not_active(&userid));
        }
        let max = vm.int("VCPUs_max");
        if count < 1 || count > max {
            return Err(ZvmError::Conflict {
                module: G,
                rs: 4,
                msg: format!(
                    "Failed to resize cpus of guest: '{userid}', error: the requested number of \
                     cpus: '{count}' exceeds the maximum number of cpus allowed: '{max}'."
                ),
            });
        }
        if live {
            let active = vm.int("VCPUs_at_startup");
            if count < active {
                return Err(ZvmError::Conflict {
                    module: G,
                    rs: 2,
                    msg: format!(
                        "Failed to live resize cpus of guest: '{userid}', error: current active \
                         cpu count: '{active}' is greater than requested count: '{count}'."
                    ),
                });
            }
            self.vm_op(&vm, VmAction::SetVcpusNumberLive { n: count })
                .await?;
        } else {
            self.set(G, "VM", &vm.r, "VCPUs_at_startup", Value::Int(count))
                .await?;
        }
        Ok(Json::Null)
    }

    async fn resize_mem(&self, a: Args, live: bool) -> ZvmResult {
        let userid = a.userid("userid")?;
        let size = a.str("size")?;
        let bytes = parse_mem(&size)
            .ok_or_else(|| ZvmError::ArgFormat(format!("size {size} is not a size")))?;
        let vm = self.guest(&userid)?;
        if live && !is_on(&vm) {
            return Err(ZvmError::not_active(&userid));
        }
        let max = vm.int("memory_static_max");
        if bytes > max {
            return Err(ZvmError::Conflict {
                module: G,
                rs: 20,
                msg: format!(
                    "Failed to resize memory of guest: '{userid}', error: the requested memory \
                     size: '{}m' exceeds the maximum memory size defined: '{}m'.",
                    bytes >> 20,
                    max >> 20
                ),
            });
        }
        let current = vm.int("memory_dynamic_max");
        if live && bytes < current {
            return Err(ZvmError::Conflict {
                module: G,
                rs: 18,
                msg: format!(
                    "Failed to live resize memory of guest: '{userid}', error: current active \
                     memory size: '{}'m is greater than requested size: '{}'m.",
                    current >> 20,
                    bytes >> 20
                ),
            });
        }
        let min = vm.int("memory_static_min").min(bytes);
        self.vm_op(
            &vm,
            VmAction::SetMemoryLimits {
                static_min: min,
                static_max: max,
                dynamic_min: bytes,
                dynamic_max: bytes,
            },
        )
        .await?;
        Ok(Json::Null)
    }

    async fn guest_info(&self, a: Args) -> ZvmResult {
        let vm = self.guest(&a.userid("userid")?)?;
        let on = is_on(&vm);
        let (mem, cpus, cpu_time) = self.engine.read(|db| {
            db.get("VM_metrics", vm.str("metrics"))
                .map(|m| {
                    (
                        m.int("memory_actual"),
                        m.int("VCPUs_number"),
                        cpu_time_us(m),
                    )
                })
                .unwrap_or_default()
        });
        let (distro, kernel) = self.engine.read(|db| {
            db.get("VM_guest_metrics", vm.str("guest_metrics"))
                .map(|g| {
                    let os = g.get("os_version");
                    let get = |k: &str| {
                        os.map_get(k)
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                            .to_string()
                    };
                    (get("distro"), get("uname"))
                })
                .unwrap_or_default()
        });
        let distro = if distro.is_empty() {
            vm.other("zvm_os_version").unwrap_or("").to_string()
        } else {
            distro
        };
        Ok(json!({
            "power_state": power_state(&vm),
            "max_mem_kb": vm.int("memory_static_max") >> 10,
            "mem_kb": if on { mem.max(vm.int("memory_dynamic_max")) >> 10 } else { 0 },
            "num_cpu": if on && cpus > 0 { cpus } else { vm.int("VCPUs_at_startup") },
            "cpu_time_us": if on { cpu_time } else { 0 },
            "online_cpu_num": if on { cpus.max(1) } else { 0 },
            "os_distro": distro,
            "kernel_info": kernel,
        }))
    }

    async fn adapters_info(&self, a: Args) -> ZvmResult {
        let vm = self.guest(&a.userid("userid")?)?;
        let mut adapters = Vec::new();
        for nic in self.nics(&vm) {
            adapters.push(json!({
                "adapter_address": nic.vdev,
                "adapter_status": if nic.coupled && is_on(&vm) { "02" } else { "00" },
                "lan_owner": "SYSTEM",
                "lan_name": nic.vswitch.clone().unwrap_or_default(),
                "mac_address": nic.mac.to_uppercase(),
                "mac_ip_version": "4",
                "mac_ip_address": nic.ip.clone().unwrap_or_default(),
            }));
        }
        Ok(json!({"adapters": adapters}))
    }

    async fn inspect_stats(&self, a: Args) -> ZvmResult {
        let list = a.userid_list("userid_list")?;
        let mut out = serde_json::Map::new();
        for vm in self.running_guests(list) {
            let (cpu_time, mem, elapsed) = self.engine.read(|db| {
                db.get("VM_metrics", vm.str("metrics"))
                    .map(|m| {
                        let start = match m.get("start_time") {
                            Value::DateTime(t) => *t,
                            _ => 0,
                        };
                        (
                            cpu_time_us(m),
                            m.int("memory_actual"),
                            (drover_core::now() - start).max(0) * 1_000_000,
                        )
                    })
                    .unwrap_or_default()
            });
            let vcpus = vm.int("VCPUs_at_startup");
            out.insert(
                vm.str("name_label").to_uppercase(),
                json!({
                    "guest_cpus": vcpus,
                    "used_cpu_time_us": cpu_time,
                    "elapsed_cpu_time_us": elapsed * vcpus,
                    "min_cpu_count": vcpus,
                    "max_cpu_limit": vm.int("VCPUs_max"),
                    "samples_cpu_in_use": 0,
                    "samples_cpu_delay": 0,
                    "used_mem_kb": mem >> 10,
                    "max_mem_kb": vm.int("memory_static_max") >> 10,
                    "min_mem_kb": vm.int("memory_static_min") >> 10,
                    "shared_mem_kb": 0,
                }),
            );
        }
        Ok(Json::Object(out))
    }

    /// The user directory entry of a guest, in z/VM's line shapes.
    pub(super) fn user_direct(&self, vm: &Obj, masked: bool) -> Vec<String> {
        let userid = vm.str("name_label").to_uppercase();
        let password = if masked { "******" } else { "LBYONLY" };
        let mut lines = vec![format!(
            "USER {userid} {password} {}M {}M G",
            vm.int("memory_dynamic_max") >> 20,
            vm.int("memory_static_max") >> 20
        )];
        lines.push(format!(
            "INCLUDE {}",
            vm.other("zvm_user_profile").unwrap_or("OSDFLT")
        ));
        for cpu in 0..vm.int("VCPUs_at_startup") {
            lines.push(format!("COMMAND DEFINE CPU {cpu:02X} TYPE IFL"));
        }
        lines.push("CPU 00 BASE".into());
        lines.push(format!("MACHINE ESA {}", vm.int("VCPUs_max")));
        let disks = self.minidisks(vm);
        if let Some(boot) = disks.iter().find(|d| d.boot).or(disks.first()) {
            lines.push(format!("IPL {}", boot.vdev));
        }
        for nic in self.nics(vm) {
            let mut line = format!("NICDEF {} TYPE QDIO", nic.vdev.to_uppercase());
            if let Some(vsw) = &nic.vswitch {
                line.push_str(&format!(" LAN SYSTEM {vsw}"));
            }
            let mac = nic.mac.replace(':', "").to_uppercase();
            line.push_str(&format!(" MACID {}", &mac[mac.len().saturating_sub(6)..]));
            lines.push(line);
        }
        for d in disks {
            lines.push(d.mdisk_line());
        }
        lines
    }
}

/// Whether Python takes a JSON value for true.
fn py_truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// A memory size such as `512m` or `4G`, in bytes.
pub(super) fn parse_mem(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = num.parse().ok().filter(|n| *n > 0)?;
    match unit {
        "m" | "M" => Some(n << 20),
        "g" | "G" => Some(n << 30),
        _ => None,
    }
}
