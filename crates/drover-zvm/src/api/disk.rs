//! Minidisks: a disk pool `ECKD:name` or `FBA:name` is the SR named `name`, a minidisk is a
//! VDI there attached by a VBD that carries its virtual device number (`zvm_vdev`, the root
//! disk `0100`, the others upward). ECKD sizes count 3390 cylinders of 737280 bytes, FBA sizes
//! 512-byte blocks.

use std::sync::Arc;

use drover_core::{Obj, Op, VbdAction};
use drover_model::Value;
use serde_json::{json, Value as Json};

use super::args::{req, Param};
use super::guest::{is_on, with};
use super::{Backend, Call, Dispatched, NewVbd, VBD_POSITIONS};
use crate::error::{Module, ZvmError, ZvmResult};

const G: Module = Module::Guest;
/// Bytes of a 3390 cylinder as z/VM formats it (15 tracks of 12 4-KiB blocks).
pub(super) const CYLINDER: i64 = 737_280;

/// A size in bytes as whole 3390 cylinders, rounded up.
pub(super) fn cylinders(bytes: i64) -> i64 {
    (bytes + CYLINDER - 1) / CYLINDER
}
/// Bytes of an FBA block.
const BLOCK: i64 = 512;
/// The root disk's virtual device.
const ROOT_VDEV: u32 = 0x100;

pub(super) async fn dispatch<'a>(b: &Backend, call: Call<'a>) -> Dispatched<'a> {
    const LIST: &[Param] = &[req("userid"), req("disk_list")];
    Ok(match call.api {
        "guest_create_disks" => {
            with(call, "guest_create_disks", LIST, |a| async move {
                let vm = b.guest(&a.userid("userid")?)?;
                let existing: Vec<u32> = b.minidisks(&vm).iter().map(|d| d.number).collect();
                let plans = b.plan_disks(&a.list("disk_list")?, &existing)?;
                let made = b.create_disks(&vm.r, &plans).await?;
                Ok(Json::Array(made))
            })
            .await
        }
        "guest_delete_disks" => {
            with(
                call,
                "guest_delete_disks",
                &[req("userid"), req("disk_vdev_list")],
                |a| async move {
                    let vm = b.guest(&a.userid("userid")?)?;
                    let wanted = a.list("disk_vdev_list")?;
                    for vdev in wanted {
                        let vdev = vdev.as_str().and_then(parse_vdev).ok_or_else(|| {
                            ZvmError::ArgFormat(format!("{vdev} is not a virtual device number"))
                        })?;
                        if let Some(d) = b.minidisks(&vm).into_iter().find(|d| d.number == vdev) {
                            b.delete_minidisk(&vm, &d).await?;
                        }
                    }
                    Ok(Json::Null)
                },
            )
            .await
        }
        "guest_config_minidisks" => {
            with(call, "guest_config_minidisks", LIST, |a| async move {
                let vm = b.guest(&a.userid("userid")?)?;
                let disks = b.minidisks(&vm);
                for item in a.list("disk_list")? {
                    let vdev = item
                        .get("vdev")
                        .and_then(|v| v.as_str())
                        .and_then(parse_vdev)
                        .ok_or_else(|| ZvmError::ArgFormat(format!("{item} names no vdev")))?;
                    let d = disks.iter().find(|d| d.number == vdev).ok_or_else(|| {
                        ZvmError::ArgFormat(format!("guest has no minidisk {vdev:04X}"))
                    })?;
                    for (key, field) in [("format", "zvm_format"), ("mntdir", "zvm_mntdir")] {
                        if let Some(v) = item.get(key).and_then(|v| v.as_str()) {
                            b.set_other(G, "VDI", &d.vdi, field, Some(v)).await?;
                        }
                    }
                }
                b.refresh_config_drive(&vm.r).await?;
                Ok(Json::Null)
            })
            .await
        }
        _ => return Err(call),
    })
}

/// The kind of a disk pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PoolKind {
    /// Count-key-data volumes (3390), sized in cylinders.
    Eckd,
    /// Fixed-block volumes (9336), sized in 512-byte blocks.
    Fba,
}

impl PoolKind {
    fn unit(self) -> i64 {
        match self {
            PoolKind::Eckd => CYLINDER,
            PoolKind::Fba => BLOCK,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PoolKind::Eckd => "ECKD",
            PoolKind::Fba => "FBA",
        }
    }
}

/// A disk pool and the SR behind it.
#[derive(Debug, Clone)]
pub(super) struct Pool {
    pub kind: PoolKind,
    /// The pool's name, upper-case.
    pub name: String,
    /// The SR.
    pub sr: Arc<Obj>,
}

impl Pool {
    /// `ECKD:NAME`.
    pub fn label(&self) -> String {
        format!("{}:{}", self.kind.name(), self.name)
    }
}

/// A minidisk to make.
#[derive(Debug, Clone)]
pub(super) struct DiskPlan {
    number: u32,
    pool: Pool,
    units: i64,
    format: Option<String>,
    boot: bool,
    given: Json,
}

/// A guest's minidisk.
#[derive(Debug, Clone)]
pub(super) struct Minidisk {
    pub number: u32,
    /// `0100`.
    pub vdev: String,
    pub boot: bool,
    pub vbd: String,
    pub vdi: String,
    pub pool: String,
    pub units: i64,
    pub size: i64,
}

impl Minidisk {
    /// The directory's `MDISK` statement.
    pub fn mdisk_line(&self) -> String {
        let (kind, name) = self.pool.split_once(':').unwrap_or(("ECKD", &self.pool));
        let device = if kind.eq_ignore_ascii_case("FBA") {
            "9336"
        } else {
            "3390"
        };
        format!(
            "MDISK {} {device} 0 {} {} MR",
            self.vdev,
            self.units,
            volser(name)
        )
    }
}

/// A virtual device number given as 1 to 4 hex digits.
pub(super) fn parse_vdev(s: &str) -> Option<u32> {
    (!s.is_empty() && s.len() <= 4)
        .then(|| u32::from_str_radix(s, 16).ok())
        .flatten()
}

/// A size such as `3g`, `512M` or a count of cylinders or blocks, in units of `kind`.
fn parse_units(size: &str, kind: PoolKind) -> Option<i64> {
    let s = size.trim();
    let last = s.chars().last()?;
    let bytes = |n: &str, shift: u32| -> Option<i64> {
        let n: f64 = n.parse().ok().filter(|n: &f64| *n > 0.0)?;
        Some((n * (1u64 << shift) as f64).ceil() as i64)
    };
    let b = match last.to_ascii_lowercase() {
        'm' => bytes(&s[..s.len() - 1], 20)?,
        'g' => bytes(&s[..s.len() - 1], 30)?,
        _ => {
            let n: i64 = s.parse().ok().filter(|n| *n > 0)?;
            return Some(n);
        }
    };
    Some((b + kind.unit() - 1) / kind.unit())
}

/// A size given as a count of cylinders (ECKD) or blocks (FBA) as the original restates it in
/// its answer: megabytes, or gigabytes above 1024 M, with one decimal (`200` cylinders are
/// `140.6M`); `None` for sizes with a unit, which it leaves alone.
fn restated_size(size: &str, kind: PoolKind) -> Option<String> {
    let s = size.trim().to_ascii_uppercase();
    if s.ends_with('M') || s.ends_with('G') {
        return None;
    }
    let count: i64 = s.parse().ok()?;
    let mut value = (count * kind.unit()) as f64 / 1024.0 / 1024.0;
    let mut unit = "M";
    if value > 1024.0 {
        value /= 1024.0;
        unit = "G";
    }
    Some(format!("{value:.1}{unit}"))
}

impl Backend {
    /// The pool `ECKD:name`/`FBA:name`, or the default one for `None`.
    pub(super) fn pool(&self, spec: Option<&str>) -> ZvmResult<Pool> {
        let spec = match spec.filter(|s| !s.is_empty()) {
            Some(s) => s.to_string(),
            None => match &self.config.default_pool {
                Some(p) => p.clone(),
                None => {
                    let sr = self.engine.read(|db| {
                        db.all("pool")
                            .next()
                            .map(|p| p.str("default_SR").to_string())
                            .and_then(|r| db.get("SR", &r).cloned())
                    });
                    let sr = sr.ok_or_else(|| {
                        ZvmError::ArgFormat(
                            "Invalid disk_pool input, disk_pool should be configured for \
                             sdkserver."
                                .into(),
                        )
                    })?;
                    return Ok(Pool {
                        kind: PoolKind::Eckd,
                        name: pool_name(&sr),
                        sr,
                    });
                }
            },
        };
        let (kind, name) = spec
            .split_once(':')
            .and_then(|(k, n)| {
                let kind = match k.to_ascii_uppercase().as_str() {
                    "ECKD" => PoolKind::Eckd,
                    "FBA" => PoolKind::Fba,
                    _ => return None,
                };
                Some((kind, n.to_string()))
            })
            .ok_or_else(|| {
                ZvmError::ArgFormat(
                    "Invalid disk_pool input, its format must be ECKD:eckdpoolname or \
                     FBA:fbapoolname"
                        .into(),
                )
            })?;
        let sr = self.pool_sr(&name).ok_or_else(|| ZvmError::Smt {
            rc: 400,
            rs: 4,
            msg: format!(
                "SMT error: disk pool {} does not exist",
                name.to_uppercase()
            ),
        })?;
        Ok(Pool {
            kind,
            name: name.to_uppercase(),
            sr,
        })
    }

    /// The SR of a disk pool: the disk SR whose name is the pool's, ignoring case.
    pub(super) fn pool_sr(&self, name: &str) -> Option<Arc<Obj>> {
        self.engine.read(|db| {
            db.all("SR")
                .filter(|s| s.str("content_type") != "iso" && s.other("zvm_images").is_none())
                .find(|s| pool_name(s).eq_ignore_ascii_case(name))
                .cloned()
        })
    }

    /// Checks a disk list and gives each disk its pool and virtual device.
    pub(super) fn plan_disks(&self, list: &[Json], existing: &[u32]) -> ZvmResult<Vec<DiskPlan>> {
        let mut used: Vec<u32> = existing.to_vec();
        let mut plans = Vec::new();
        for (i, disk) in list.iter().enumerate() {
            let Json::Object(d) = disk else {
                return Err(ZvmError::ArgFormat(
                    "Invalid \"disk_list\" input, it should be a dictionary. Details could be \
                     found in doc."
                        .into(),
                ));
            };
            let size = d.get("size").and_then(|s| s.as_str()).ok_or_else(|| {
                ZvmError::ArgFormat(
                    "Invalid \"disk_list\" input, \"size\" is required for each disk.".into(),
                )
            })?;
            let format = d
                .get("format")
                .and_then(|f| f.as_str())
                .map(|f| f.to_ascii_lowercase());
            if let Some(f) = &format {
                if !["ext2", "ext3", "ext4", "xfs", "swap", "none"].contains(&f.as_str()) {
                    return Err(ZvmError::ArgFormat(
                        "Invalid disk_pool input, supported 'format' includes 'ext2', 'ext3', \
                         'ext4', 'xfs', 'swap', 'none'"
                            .into(),
                    ));
                }
            }
            let pool = self.pool(d.get("disk_pool").and_then(|p| p.as_str()))?;
            let units = parse_units(size, pool.kind)
                .ok_or_else(|| ZvmError::ArgFormat(format!("disk size {size} is not valid")))?;
            let boot = d
                .get("is_boot_disk")
                .and_then(super::args::py_bool)
                .unwrap_or(false);
            let number = match d.get("vdev").and_then(|v| v.as_str()) {
                Some(v) => {
                    let n = parse_vdev(v)
                        .ok_or_else(|| ZvmError::ArgFormat(format!("vdev {v} is not valid")))?;
                    if used.contains(&n) {
                        return Err(ZvmError::Conflict {
                            module: G,
                            rs: 6,
                            msg: format!("virtual device {n:04X} is already defined"),
                        });
                    }
                    n
                }
                None if i == 0 && existing.is_empty() => ROOT_VDEV,
                None => (ROOT_VDEV..0x10000)
                    .find(|n| !used.contains(n))
                    .ok_or_else(|| ZvmError::ArgFormat("no free virtual device".into()))?,
            };
            used.push(number);
            plans.push(DiskPlan {
                number,
                pool,
                units,
                format,
                boot: boot || number == ROOT_VDEV,
                given: disk.clone(),
            });
        }
        Ok(plans)
    }

    /// Makes the planned minidisks of VM `vm`, plugging them in if it runs; answers the
    /// disk list with each disk's `vdev` and `disk_pool`.
    pub(super) async fn create_disks(&self, vm: &str, plans: &[DiskPlan]) -> ZvmResult<Vec<Json>> {
        let mut out = Vec::new();
        for p in plans {
            let guest = self.obj(G, "VM", vm)?;
            let userid = guest.str("name_label").to_string();
            let vdev = format!("{:04X}", p.number);
            let size = p.units * p.pool.kind.unit();
            let format = p.format.clone().unwrap_or_else(|| "none".into());
            let pool_label = p.pool.label();
            let units = p.units.to_string();
            let other_config = Value::string_map([
                ("zvm_pool", pool_label.as_str()),
                ("zvm_format", format.as_str()),
                ("zvm_units", units.as_str()),
            ]);
            let vdi = self
                .create_vdi(
                    G,
                    &p.pool.sr.r,
                    &format!("{userid} {vdev}"),
                    &format!("minidisk {vdev} of {userid}"),
                    size,
                    other_config,
                )
                .await?;
            let position = self.free_position(&guest)?;
            let disk = NewVbd {
                vm,
                vdi: &vdi,
                userdevice: &position.to_string(),
                bootable: p.boot,
                cd: false,
                read_only: false,
                other_config: Value::string_map([("zvm_vdev", vdev.as_str())]),
            };
            let vbd = match self.create_vbd(G, disk).await {
                Ok(v) => v,
                Err(e) => {
                    let _ = self.destroy(G, "VDI", &vdi).await;
                    return Err(e);
                }
            };
            if is_on(&*self.obj(G, "VM", vm)?) {
                self.op(
                    G,
                    Op::Vbd {
                        vbd: vbd.clone(),
                        action: VbdAction::Plug,
                    },
                )
                .await?;
            }
            // As the original's `add_mdisks` answers: the pool (the given one, else the
            // default), the vdev, and a size given as a count of cylinders or blocks
            // restated as `%.1fM` or `%.1fG`.
            let mut given = p.given.clone();
            if let Json::Object(m) = &mut given {
                if m.get("disk_pool")
                    .is_none_or(|v| v.as_str().is_none_or(str::is_empty))
                {
                    m.insert("disk_pool".into(), json!(pool_label));
                }
                m.insert("vdev".into(), json!(vdev));
                if let Some(size) = m
                    .get("size")
                    .and_then(|s| s.as_str())
                    .and_then(|s| restated_size(s, p.pool.kind))
                {
                    m.insert("size".into(), json!(size));
                }
            }
            out.push(given);
        }
        Ok(out)
    }

    /// Makes a read-write, unshared user VDI of `size` bytes in SR `sr`; answers its
    /// reference.
    pub(super) async fn create_vdi(
        &self,
        module: Module,
        sr: &str,
        name: &str,
        description: &str,
        size: i64,
        other_config: Value,
    ) -> ZvmResult<String> {
        self.op_ref(
            module,
            Op::Create {
                class: "VDI".into(),
                fields: vec![
                    ("name_label".into(), Value::str(name)),
                    ("name_description".into(), Value::str(description)),
                    ("SR".into(), Value::str(sr)),
                    ("virtual_size".into(), Value::Int(size)),
                    ("type".into(), Value::str("user")),
                    ("sharable".into(), Value::Bool(false)),
                    ("read_only".into(), Value::Bool(false)),
                    ("other_config".into(), other_config),
                ],
            },
        )
        .await
    }

    /// The lowest VBD position the VM does not use.
    fn free_position(&self, vm: &Obj) -> ZvmResult<u32> {
        self.free_device_position(vm, "VBD", 0..VBD_POSITIONS)
            .ok_or_else(|| ZvmError::internal(G, "the guest has no free disk position"))
    }

    /// A guest's minidisks, by virtual device.
    pub(super) fn minidisks(&self, vm: &Obj) -> Vec<Minidisk> {
        let mut out: Vec<Minidisk> = self.engine.read(|db| {
            vm.refs("VBDs")
                .iter()
                .filter_map(|r| db.get("VBD", r))
                .filter(|b| b.str("type") == "Disk")
                .filter_map(|b| {
                    let number = parse_vdev(b.other("zvm_vdev")?)?;
                    let vdi = db.get("VDI", b.str("VDI"))?;
                    Some(Minidisk {
                        number,
                        vdev: format!("{number:04X}"),
                        boot: b.bool("bootable"),
                        vbd: b.r.to_string(),
                        vdi: vdi.r.to_string(),
                        pool: vdi.other("zvm_pool").unwrap_or("").to_string(),
                        units: vdi
                            .other("zvm_units")
                            .and_then(|u| u.parse().ok())
                            .unwrap_or_else(|| vdi.int("virtual_size") / CYLINDER),
                        size: vdi.int("virtual_size"),
                    })
                })
                .collect()
        });
        out.sort_by_key(|d| d.number);
        out
    }

    /// Takes a minidisk from its guest (unplugging it first if plugged in a running guest)
    /// and destroys it.
    async fn delete_minidisk(&self, vm: &Obj, d: &Minidisk) -> ZvmResult<()> {
        let vbd = self.obj(G, "VBD", &d.vbd)?;
        self.remove_vbd(G, vm, &vbd).await?;
        self.destroy(G, "VDI", &d.vdi).await
    }
}

/// A disk pool's name: the SR's name label upper-case, with `_` for each character a z/VM
/// name cannot hold (`Local storage` is `LOCAL_STORAGE`).
pub(super) fn pool_name(sr: &Obj) -> String {
    sr.str("name_label")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The volume serial of a pool's disks: the first six letters and digits of its name.
fn volser(pool: &str) -> String {
    pool.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(6)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_cylinders_or_blocks() {
        assert_eq!(parse_units("3338", PoolKind::Eckd), Some(3338));
        assert_eq!(parse_units("1g", PoolKind::Eckd), Some(1457));
        assert_eq!(parse_units("512M", PoolKind::Fba), Some(1_048_576));
        assert_eq!(parse_units("0", PoolKind::Fba), None);
        assert_eq!(parse_units("x", PoolKind::Fba), None);
    }

    #[test]
    fn counted_sizes_are_restated_as_the_original_does() {
        assert_eq!(
            restated_size("200", PoolKind::Eckd).as_deref(),
            Some("140.6M")
        );
        assert_eq!(
            restated_size("3338", PoolKind::Eckd).as_deref(),
            Some("2.3G")
        );
        assert_eq!(
            restated_size("2097152", PoolKind::Fba).as_deref(),
            Some("1024.0M")
        );
        assert_eq!(restated_size("1g", PoolKind::Eckd), None);
        assert_eq!(restated_size("512M", PoolKind::Fba), None);
    }

    #[test]
    fn vdevs_are_hex() {
        assert_eq!(parse_vdev("0100"), Some(0x100));
        assert_eq!(parse_vdev("1fc5"), Some(0x1fc5));
        assert_eq!(parse_vdev("10000"), None);
        assert_eq!(parse_vdev(""), None);
    }
}
