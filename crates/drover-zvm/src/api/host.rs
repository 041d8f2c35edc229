//! The host: z/VM's view of the hypervisor, its disk pools and its SSI cluster, answered from
//! the inventory.
//!
//! Mappings:
//! - **Host** (`host_get_info`): the pool's local host, its master.
//!   `zvm_host` is its `name_label` upper-case, `hypervisor_hostname` its `hostname`.
//!   `vcpus` counts its `host_cpu` objects; `vcpus_used` adds up the virtual CPUs of every VM
//!   running or paused there (guests and VMs made through XenAPI alike: they all use the host),
//!   so it can exceed `vcpus` when the host is overcommitted. `memory_mb` is
//!   `host_metrics.memory_total`; `memory_mb_used` is what `host_metrics` reports in use
//!   (total − free), but at least the memory of the running VMs, as `host_metrics` is
//!   refreshed only every monitor period.
//! - `cpu_info.architecture` is the real architecture of the host (`x86_64` on a PC; the one
//!   this connector was built for, which runs beside the engine on the host), not z/VM's
//!   `s390x`; `cpu_info.cec_model` is the CPU model name of `host.cpu_info:modelname`.
//! - `hypervisor_type` stays `"zvm"`: clients of the connector (the nova and cinder drivers)
//!   use it as the hypervisor kind they were written for. `hypervisor_version` is an integer as
//!   in the original (which turns `z/VM 7.2.0` into `720`): Drover's version from
//!   `host.software_version:product_version` with its dots dropped (`0.1.0` → `10`). The
//!   host's real driver (QEMU, sim) is `host.software_version:host_driver` on XenAPI.
//! - `ipl_time` is z/VM's text `IPL at MM/DD/YY HH:MM:SS UTC` of the host's boot time:
//!   `host.other_config:boot_time` (XAPI's key, seconds since the epoch) when the host has
//!   one, else the moment this connector logged on to the engine (the `validation_time` of
//!   its session), the nearest start the inventory records.
//! - **Disk pool** (`ECKD:name`, `FBA:name`): the SR named `name` (see `disk.rs`); without a
//!   name, the connector's default pool or the pool's default SR. Its figures are the SR's
//!   `physical_size` (`disk_total`), `physical_utilisation` (`disk_used`) and their
//!   difference (`disk_available`), in GiB rounded half up, integers as the original answers.
//!   An unknown pool is the directory manager's `8/1/400/4` (a 404 on REST). Without any
//!   default pool the figures are zeros and the volume list `{}`, as the original answers
//!   when no pool is configured.
//! - **DASD volume** (a 1-6 character volume label): a disk pool is one volume, its SR. The
//!   label is the first six ASCII letters and digits of the SR's name, upper-case (`Local
//!   storage` → `LOCALS`); SRs whose names share those six characters share the label and the
//!   first by name answers. `host_get_volume_info` describes it as a 3390 of the SR's size:
//!   `volume_size` in cylinders (737280 bytes), `volume_type` the smallest 3390 model that
//!   holds it (`3390-03`, `-09`, `-27`, `-54`, else the extended `3390-A`). An unknown label
//!   is `404/400/404/1` (the original's "not found" row, `rs` 2, is not in the error table).
//! - **SSI cluster**: a pool of one host is not a cluster (`[]`). A pool of several hosts is
//!   answered as an SSI cluster named after the pool (`DROVER` when the pool has no name),
//!   its PDR the default SR's label on the first four digits of its uuid, in the original's
//!   line format: one member per host (slots in name order), `Joined` when the host is
//!   enabled and its metrics live, else `Down`, heartbeats at `host_metrics.last_updated`.
//!   The guest list leaves out guests running on another member, as the original leaves out
//!   guests logged on elsewhere.

use std::sync::Arc;

use drover_core::Obj;
use drover_model::Value;
use serde_json::{json, Value as Json};

use super::args::{opt, Param};
use super::disk::{pool_name, Pool, CYLINDER};
use super::guest::{is_on, is_vm, with};
use super::{Backend, Call, Dispatched};
use crate::error::{Module, ZvmError, ZvmResult};

/// Cylinders of the 3390 models, smallest first; larger volumes are extended (`3390-A`).
const MODELS: &[(i64, &str)] = &[
    (3_339, "3390-03"),
    (10_017, "3390-09"),
    (32_760, "3390-27"),
    (65_520, "3390-54"),
];
/// Characters of a DASD volume label.
const LABEL_LEN: usize = 6;

/// Runs the `host_*` calls; answers any other call back.
pub(super) async fn dispatch<'a>(b: &Backend, call: Call<'a>) -> Dispatched<'a> {
    const POOL: &[Param] = &[opt("disk_pool")];
    Ok(match call.api {
        "host_get_info" => with(call, "host_get_info", &[], |_| async move { b.host_info() }).await,
        "host_get_guest_list" => {
            with(call, "host_get_guest_list", &[], |_| async move {
                Ok(json!(b.host_guests()?))
            })
            .await
        }
        "host_diskpool_get_info" => {
            with(call, "host_diskpool_get_info", POOL, |a| async move {
                Ok(match b.pool_arg(a.opt_str("disk_pool")?)? {
                    Some(pool) => pool_figures(&pool.sr),
                    None => json!({"disk_total": 0, "disk_used": 0, "disk_available": 0}),
                })
            })
            .await
        }
        "host_get_diskpool_volumes" => {
            with(call, "host_get_diskpool_volumes", POOL, |a| async move {
                Ok(match b.pool_arg(a.opt_str("disk_pool")?)? {
                    Some(pool) => json!({"diskpool_volumes": volume_label(&pool.sr)}),
                    None => json!({}),
                })
            })
            .await
        }
        "host_get_volume_info" => {
            with(
                call,
                "host_get_volume_info",
                &[opt("volume")],
                |a| async move {
                    let volume = a.opt_str("volume")?.ok_or_else(|| {
                        ZvmError::ArgFormat(
                            "Invalid volume input None, volume must be specified.".into(),
                        )
                    })?;
                    b.volume_info(&volume.to_uppercase())
                },
            )
            .await
        }
        "host_get_ssi_info" => {
            with(call, "host_get_ssi_info", &[], |_| async move {
                Ok(json!(b.ssi_info()))
            })
            .await
        }
        _ => return Err(call),
    })
}

/// Bytes as whole GiB, rounded half up.
fn gib(bytes: i64) -> i64 {
    (bytes.max(0) + (1 << 29)) >> 30
}

/// A disk pool's figures, in GiB.
fn pool_figures(sr: &Obj) -> Json {
    let total = sr.int("physical_size").max(0);
    let used = sr.int("physical_utilisation").clamp(0, total);
    json!({
        "disk_total": gib(total),
        "disk_used": gib(used),
        "disk_available": gib(total - used),
    })
}

/// The DASD volume label of an SR: the first six letters and digits of its name, upper-case.
fn volume_label(sr: &Obj) -> String {
    sr.str("name_label")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(LABEL_LEN)
        .collect::<String>()
        .to_uppercase()
}

/// Seconds since the epoch as `MM/DD/YY HH:MM:SS`.
fn zvm_time(secs: i64) -> String {
    // `YYYYMMDDTHH:MM:SSZ`
    let t = drover_model::time::format(secs);
    format!("{}/{}/{} {}", &t[4..6], &t[6..8], &t[2..4], &t[9..17])
}

/// Seconds since the epoch as SSI's heartbeat stamp, `MM/DD/YYYY_HH:MM:SS`.
fn heartbeat(secs: i64) -> String {
    let t = drover_model::time::format(secs);
    format!("{}/{}/{}_{}", &t[4..6], &t[6..8], &t[0..4], &t[9..17])
}

/// A datetime field's seconds (0 when unset).
fn seconds(v: &Value) -> i64 {
    match v {
        Value::DateTime(t) => *t,
        _ => 0,
    }
}

impl Backend {
    /// The local host: the pool's master.
    pub(super) fn local_host(&self) -> ZvmResult<Arc<Obj>> {
        self.engine
            .read(|db| {
                let pool = db.all("pool").next()?;
                db.get("host", pool.str("master")).cloned()
            })
            .ok_or_else(|| ZvmError::internal(Module::Sdk, "the pool has no master host"))
    }

    /// `host_get_info`: the host's figures and the default pool's.
    fn host_info(&self) -> ZvmResult {
        let host = self.local_host()?;
        let (cpus, used_cpus, used_memory, total_memory, free_memory, session_start) =
            self.engine.read(|db| {
                let cpus = db
                    .all("host_cpu")
                    .filter(|c| c.str("host") == &*host.r)
                    .count() as i64;
                let running: Vec<&Arc<Obj>> = db
                    .all("VM")
                    .filter(|v| is_vm(v) && is_on(v) && v.str("resident_on") == &*host.r)
                    .collect();
                let used_cpus: i64 = running
                    .iter()
                    .map(|v| {
                        let live = db
                            .get("VM_metrics", v.str("metrics"))
                            .map(|m| m.int("VCPUs_number"))
                            .unwrap_or(0);
                        if live > 0 {
                            live
                        } else {
                            v.int("VCPUs_at_startup")
                        }
                    })
                    .sum();
                let used_memory: i64 = running.iter().map(|v| v.int("memory_dynamic_max")).sum();
                let (total, free) = db
                    .get("host_metrics", host.str("metrics"))
                    .map(|m| (m.int("memory_total"), m.int("memory_free")))
                    .unwrap_or_default();
                let session_start = db
                    .get("session", &self.caller.session)
                    .map(|s| seconds(s.get("validation_time")))
                    .unwrap_or_else(drover_core::now);
                (cpus, used_cpus, used_memory, total, free, session_start)
            });
        let boot = host
            .other("boot_time")
            .and_then(|t| t.trim().parse::<f64>().ok())
            .map(|t| t as i64)
            .unwrap_or(session_start);
        let version: i64 = host
            .get("software_version")
            .map_get("product_version")
            .and_then(|v| v.as_str())
            .map(|v| v.chars().filter(char::is_ascii_digit).collect::<String>())
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(0);
        let model = host
            .get("cpu_info")
            .map_get("modelname")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let mut info = json!({
            "zcc_userid": self.config.zcc_userid,
            "zvm_host": host.str("name_label").to_uppercase(),
            "vcpus": cpus,
            "vcpus_used": used_cpus,
            "cpu_info": {"architecture": std::env::consts::ARCH, "cec_model": model},
            "memory_mb": total_memory >> 20,
            "memory_mb_used": (total_memory - free_memory).max(used_memory).max(0) >> 20,
            "hypervisor_type": "zvm",
            "hypervisor_version": version,
            "hypervisor_hostname": host.str("hostname"),
            "ipl_time": format!("IPL at {} UTC", zvm_time(boot)),
        });
        let disks = match self.pool_arg(None)? {
            Some(pool) => pool_figures(&pool.sr),
            None => json!({"disk_total": 0, "disk_used": 0, "disk_available": 0}),
        };
        if let (Json::Object(info), Json::Object(disks)) = (&mut info, disks) {
            info.extend(disks);
        }
        Ok(info)
    }

    /// The userids of the guests, leaving out those running on another host of the pool.
    fn host_guests(&self) -> ZvmResult<Vec<String>> {
        let host = self.local_host()?;
        Ok(self
            .guests()
            .into_iter()
            .filter(|(_, vm)| !is_on(vm) || vm.str("resident_on") == &*host.r)
            .map(|(userid, _)| userid)
            .collect())
    }

    /// The disk pool a `disk_pool` argument names, checked as the original checks it; `None`
    /// asks for the default pool, and answers `None` when there is none.
    fn pool_arg(&self, spec: Option<String>) -> ZvmResult<Option<Pool>> {
        match spec.filter(|s| !s.is_empty()) {
            Some(spec) => {
                let Some((kind, _)) = spec.split_once(':') else {
                    return Err(ZvmError::ArgFormat(
                        "Invalid input parameter disk_pool, expect \":\" in disk_pool, eg. \
                         ECKD:eckdpool"
                            .into(),
                    ));
                };
                if !matches!(kind.to_ascii_uppercase().as_str(), "ECKD" | "FBA") {
                    return Err(ZvmError::ArgFormat(
                        "Invalid disk pool type found in disk_pool, expect disk_pool like \
                         ECKD:eckdpool or FBA:fbapool"
                            .into(),
                    ));
                }
                self.pool(Some(&spec)).map(Some)
            }
            None => {
                let has_default = self.config.default_pool.is_some()
                    || self.engine.read(|db| {
                        db.all("pool")
                            .next()
                            .is_some_and(|p| db.get("SR", p.str("default_SR")).is_some())
                    });
                if has_default {
                    self.pool(None).map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// The SRs that are disk pools (not ISO libraries or the image repository), by name.
    fn pool_srs(&self) -> Vec<Arc<Obj>> {
        let mut srs: Vec<Arc<Obj>> = self.engine.read(|db| {
            db.all("SR")
                .filter(|s| s.str("content_type") != "iso" && s.other("zvm_images").is_none())
                .cloned()
                .collect()
        });
        srs.sort_by_key(|s| pool_name(s));
        srs
    }

    /// `host_get_volume_info`: the type and size of the volume with label `label`.
    fn volume_info(&self, label: &str) -> ZvmResult {
        let sr = self
            .pool_srs()
            .into_iter()
            .find(|s| !label.is_empty() && volume_label(s) == label)
            .ok_or_else(|| ZvmError::NotExist {
                module: Module::Sdk,
                what: format!("The volume {label} in the disk pools configured for sdkserver"),
            })?;
        let cylinders = sr.int("physical_size").max(0) / CYLINDER;
        let model = MODELS
            .iter()
            .find(|(max, _)| cylinders <= *max)
            .map(|(_, m)| *m)
            .unwrap_or("3390-A");
        Ok(json!({"volume_type": model, "volume_size": cylinders.to_string()}))
    }

    /// The SSI cluster of a pool of several hosts, in the lines of SMAPI's `SSI_Query`.
    fn ssi_info(&self) -> Vec<String> {
        let (pool_label, pdr, mut members) = self.engine.read(|db| {
            let pool = db.all("pool").next();
            let pool_label = pool
                .map(|p| p.str("name_label").to_uppercase())
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| "DROVER".into());
            let pdr = pool
                .and_then(|p| db.get("SR", p.str("default_SR")))
                .map(|sr| {
                    let device: String = sr.uuid().chars().take(4).collect();
                    format!("{}_on_{}", volume_label(sr), device.to_uppercase())
                })
                .unwrap_or_default();
            let members: Vec<(String, bool, i64)> = db
                .all("host")
                .map(|h| {
                    let metrics = db.get("host_metrics", h.str("metrics"));
                    let live = metrics.is_some_and(|m| m.bool("live"));
                    let beat = metrics.map(|m| seconds(m.get("last_updated"))).unwrap_or(0);
                    (
                        h.str("name_label").to_uppercase(),
                        live && h.bool("enabled"),
                        beat,
                    )
                })
                .collect();
            (pool_label, pdr, members)
        });
        if members.len() < 2 {
            return Vec::new();
        }
        members.sort();
        let mut lines = vec![
            format!("ssi_name = {pool_label}"),
            "ssi_mode = Stable".to_string(),
            format!("ssi_pdr = {pdr}"),
            "cross_system_timeouts = Enabled".to_string(),
            format!("output.ssiInfoCount = {}", members.len()),
            String::new(),
        ];
        for (slot, (name, joined, beat)) in members.iter().enumerate() {
            lines.extend([
                format!("member_slot = {}", slot + 1),
                format!("member_system_id = {name}"),
                format!("member_state = {}", if *joined { "Joined" } else { "Down" }),
                format!("member_pdr_heartbeat = {}", heartbeat(*beat)),
                format!("member_received_heartbeat = {}", heartbeat(*beat)),
                String::new(),
            ]);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_zvm_shapes() {
        // 2026-11-23 10:01:02 UTC
        let t = 1_795_428_062;
        assert_eq!(zvm_time(t), "11/23/26 10:01:02");
        assert_eq!(heartbeat(t), "11/23/2026_10:01:02");
    }

    #[test]
    fn sizes_round_to_whole_gib() {
        assert_eq!(gib(0), 0);
        assert_eq!(gib((1 << 30) + (1 << 29) - 1), 1);
        assert_eq!(gib((1 << 30) + (1 << 29)), 2);
        assert_eq!(gib(-5), 0);
    }
}
