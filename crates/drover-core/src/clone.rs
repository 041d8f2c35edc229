//! VM clone, copy, snapshot, revert and provision: multi-step operations with rollback.

use drover_host::ImageFormat;
use drover_model::{Value, NULL_REF};

use crate::db::{Obj, Ref, View};
use crate::engine::{now, Engine};
use crate::error::{CoreError, Result};
use crate::ops::Ctx;
use crate::storage::{image_location, NewImage};
use crate::txn::Txn;

/// How disks are duplicated.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Thin clones sharing data with the source.
    Clone,
    /// Full copies, to this SR (or each disk's own when null).
    Copy(String),
    /// Thin clones kept as a snapshot of the VM.
    Snapshot,
}

/// Fields that a duplicate does not take from its source.
const FRESH: &[&str] = &[
    "uuid",
    "allowed_operations",
    "current_operations",
    "power_state",
    "resident_on",
    "scheduled_to_be_resident_on",
    "consoles",
    "VIFs",
    "VBDs",
    "VUSBs",
    "crash_dumps",
    "VTPMs",
    "domid",
    "metrics",
    "guest_metrics",
    "snapshots",
    "snapshot_of",
    "is_a_snapshot",
    "snapshot_time",
    "children",
    "parent",
    "suspend_VDI",
    "is_default_template",
    "attached_PCIs",
    "VGPUs",
    "blobs",
    "name_label",
];

impl Engine {
    pub(crate) async fn duplicate(
        &self,
        ctx: &Ctx<'_>,
        vm: &str,
        name: &str,
        mode: Mode,
    ) -> Result<Ref> {
        let op = match mode {
            Mode::Clone => "clone",
            Mode::Copy(_) => "copy",
            Mode::Snapshot => "snapshot",
        };
        let source = (*self.begin(ctx, vm, op)?).clone();
        let result = self.duplicate_disks(ctx, &source, &mode).await;
        let made = match result {
            Ok(made) => made,
            Err(e) => {
                self.end(ctx, vm, |_| Ok(()))?;
                return Err(e);
            }
        };
        let (nets, macs) = self.read(|db| {
            let vifs = db.members(&source, "VIFs", "VIF");
            (
                crate::network::distinct(vifs.iter().map(|v| Ref::from(v.str("network")))),
                vifs.len(),
            )
        });
        let macs = self.fresh_macs(macs);
        let committed = self
            .net_change(&nets, |t| {
                t.update("VM", vm, "current_operations", |m| {
                    m.map_remove(&Value::str(&*ctx.task))
                })?;
                crate::vm::refresh_allowed(t, vm)?;
                ctx.checkpoint()?;
                build_vm(t, &source, name, &mode, &made, &macs)
            })
            .await;
        match committed {
            Ok(r) => Ok(r),
            Err(e) => {
                self.end(ctx, vm, |_| Ok(()))?;
                for (_, image) in &made {
                    self.discard_image(image).await;
                }
                Err(e)
            }
        }
    }

    /// Duplicates every disk of the VM on the host; on failure or cancellation, removes the
    /// images already made. Returns, per source VBD, the new image.
    async fn duplicate_disks(
        &self,
        ctx: &Ctx<'_>,
        vm: &Obj,
        mode: &Mode,
    ) -> Result<Vec<(Ref, NewImage)>> {
        let disks: Vec<(Ref, Obj)> = self.read(|db| {
            vm.refs("VBDs")
                .into_iter()
                .filter_map(|vbd| {
                    let v = db.get("VBD", &vbd)?;
                    if v.str("type") == "CD" || v.bool("empty") {
                        return None;
                    }
                    Some((vbd.clone(), (**db.get("VDI", v.str("VDI"))?).clone()))
                })
                .collect()
        });
        let mut made: Vec<(Ref, NewImage)> = Vec::new();
        let total = disks.len().max(1) as f64;
        for (i, (vbd, vdi)) in disks.iter().enumerate() {
            let step = async {
                ctx.checkpoint()?;
                let to = match mode {
                    Mode::Copy(target) => Some(if target.is_empty() || target == NULL_REF {
                        vdi.str("SR")
                    } else {
                        target.as_str()
                    }),
                    _ => None,
                };
                self.copy_image(vdi, to).await
            };
            match step.await {
                Ok(image) => made.push((vbd.clone(), image)),
                Err(e) => {
                    for (_, image) in &made {
                        self.discard_image(image).await;
                    }
                    return Err(e);
                }
            }
            ctx.progress(self, (i + 1) as f64 / total * 0.9);
        }
        Ok(made)
    }

    pub(crate) async fn revert(&self, ctx: &Ctx<'_>, snapshot: &str) -> Result<()> {
        let snap = self.get("VM", snapshot)?;
        if !snap.bool("is_a_snapshot") {
            return Err(CoreError::OperationNotAllowed(
                "revert is only allowed on a snapshot".into(),
            ));
        }
        let vm = snap.str("snapshot_of").to_string();
        let target = self
            .get("VM", &vm)
            .map_err(|_| CoreError::Internal(format!("snapshot {snapshot} has lost its VM")))?;
        if target.str("power_state") != "Halted" {
            Box::pin(self.vm_action(ctx, &vm, crate::vm::VmAction::HardShutdown)).await?;
        }
        // Clone each of the snapshot's disks, then swap them in for the VM's disks by device.
        let clones = self.duplicate_disks(ctx, &snap, &Mode::Clone).await?;
        let by_device: Vec<(String, NewImage)> = self.read(|db| {
            clones
                .iter()
                .filter_map(|(vbd, d)| {
                    db.get("VBD", vbd)
                        .map(|v| (v.str("userdevice").to_string(), d.clone()))
                })
                .collect()
        });
        let mut old_images = Vec::new();
        let result = self.write(|t| {
            let target = t.must("VM", &vm)?.clone();
            for vbd in target.refs("VBDs") {
                let v = t.must("VBD", &vbd)?.clone();
                let Some((_, image)) = by_device.iter().find(|(d, _)| *d == v.str("userdevice"))
                else {
                    continue;
                };
                let old = v.str("VDI").to_string();
                let base = t.get("VDI", &old).cloned();
                let new = new_vdi_record(t, image, base.as_ref())?;
                t.set("VBD", &vbd, "VDI", Value::str(&*new))?;
                // The disk the VM had goes once nothing else uses it, and its new image keeps
                // its identity (uuid), as a disk keeps its id when oVirt restores a snapshot.
                if let Some(b) = base.filter(|_| {
                    t.get("VDI", &old)
                        .is_some_and(|v| v.refs("VBDs").is_empty())
                }) {
                    old_images.push((image_location(&b), b.str("SR").to_string()));
                    t.destroy("VDI", &old)?;
                    t.set("VDI", &new, "uuid", Value::str(b.uuid()))?;
                }
            }
            // The VM takes back the snapshot's configuration, not its identity or runtime state.
            for (f, v) in snap.class.fields.iter().zip(&snap.fields) {
                if !FRESH.contains(&&*f.name) && &*f.name != "is_a_template" {
                    t.set("VM", &vm, &f.name, v.clone())?;
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                for (image, sr) in old_images {
                    if let Ok(host) = self.sr_driver(&sr) {
                        let _ = host.image_destroy(&sr, &image).await;
                    }
                }
                Ok(())
            }
            Err(e) => {
                for (_, image) in &by_device {
                    self.discard_image(image).await;
                }
                Err(CoreError::Internal(format!("revert failed: {e}")))
            }
        }
    }

    pub(crate) async fn provision(&self, vm: &str) -> Result<()> {
        let obj = self.get("VM", vm)?;
        if !obj.bool("is_a_template") {
            return Err(CoreError::ProvisionOnlyOnTemplate);
        }
        if obj.str("power_state") != "Halted" {
            return Err(CoreError::VmBadPowerState {
                vm: vm.into(),
                expected: "halted".into(),
                actual: obj.str("power_state").to_lowercase(),
            });
        }
        let spec = obj
            .get("other_config")
            .map_get("disks")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let disks = parse_provision(&spec)?;
        let mut made: Vec<(Ref, String)> = Vec::new();
        for d in &disks {
            let sr = if d.sr.is_empty() {
                self.default_sr()?
            } else {
                self.sr_by_uuid(&d.sr)?
            };
            match self
                .new_vdi(
                    &sr,
                    &format!("{} {}", obj.str("name_label"), d.device),
                    d.size,
                    "system",
                    ImageFormat::Qcow2,
                )
                .await
            {
                Ok(vdi) => made.push((vdi, d.device.clone())),
                Err(e) => {
                    for (vdi, _) in made {
                        self.forget_vdi(&vdi).await;
                    }
                    return Err(e);
                }
            }
        }
        let result = self.write(|t| {
            for ((vdi, device), d) in made.iter().zip(&disks) {
                let metrics = t.create("VBD_metrics", vec![])?;
                t.create(
                    "VBD",
                    vec![
                        ("VM", Value::str(vm)),
                        ("VDI", Value::str(&**vdi)),
                        ("userdevice", Value::str(device)),
                        ("bootable", Value::Bool(d.bootable)),
                        ("mode", Value::str("RW")),
                        ("type", Value::str("Disk")),
                        ("metrics", Value::str(&*metrics)),
                    ],
                )?;
            }
            t.update("VM", vm, "other_config", |m| {
                m.map_remove(&Value::str("disks"))
            })
        });
        if let Err(e) = result {
            for (vdi, _) in made {
                self.forget_vdi(&vdi).await;
            }
            return Err(e);
        }
        Ok(())
    }

    fn sr_by_uuid(&self, uuid: &str) -> Result<String> {
        self.read(|db| {
            db.table("SR")
                .and_then(|t| t.by_uuid(uuid))
                .map(|r| r.to_string())
        })
        .ok_or_else(|| CoreError::UuidInvalid {
            class: "SR".into(),
            uuid: uuid.into(),
        })
    }
}

/// One disk of a provisioning spec.
#[derive(Debug, PartialEq)]
struct ProvisionDisk {
    device: String,
    size: i64,
    sr: String,
    bootable: bool,
}

/// Parses `<provision><disk device="0" size="..." sr="" bootable="true" type="system"/></provision>`.
fn parse_provision(spec: &str) -> Result<Vec<ProvisionDisk>> {
    let bad = |why: &str| CoreError::InvalidValue {
        field: "other_config:disks".into(),
        value: why.into(),
    };
    let mut out = Vec::new();
    for part in spec.split("<disk").skip(1) {
        let tag = part.split('>').next().unwrap_or("");
        let attr = |name: &str| -> Option<String> {
            let key = format!("{name}=\"");
            let start = tag.find(&key)? + key.len();
            let end = tag[start..].find('"')? + start;
            Some(tag[start..end].to_string())
        };
        out.push(ProvisionDisk {
            device: attr("device").ok_or_else(|| bad("a disk has no device"))?,
            size: attr("size")
                .and_then(|s| s.parse().ok())
                .filter(|s: &i64| *s > 0)
                .ok_or_else(|| bad("a disk has no valid size"))?,
            sr: attr("sr").unwrap_or_default(),
            bootable: attr("bootable").as_deref() == Some("true"),
        });
    }
    Ok(out)
}

/// Writes a VDI record for a new image, inheriting names and flags from `base`.
fn new_vdi_record(t: &mut Txn, image: &NewImage, base: Option<&Obj>) -> Result<Ref> {
    let mut fields = image.fields();
    fields.push(("type", Value::str("user")));
    if let Some(b) = base {
        for f in [
            "name_label",
            "name_description",
            "type",
            "read_only",
            "sharable",
            "other_config",
        ] {
            fields.push((f, b.get(f).clone()));
        }
    }
    t.create("VDI", fields)
}

/// Records the duplicate of `source`: its VBDs on the new images `made`, its VIFs with the new
/// `macs` (and addresses of their networks' ranges).
fn build_vm(
    t: &mut Txn,
    source: &Obj,
    name: &str,
    mode: &Mode,
    made: &[(Ref, NewImage)],
    macs: &[String],
) -> Result<Ref> {
    let mut fields: Vec<(&str, Value)> = source
        .class
        .fields
        .iter()
        .zip(&source.fields)
        .filter(|(f, _)| !FRESH.contains(&&*f.name))
        .map(|(f, v)| (&*f.name, v.clone()))
        .collect();
    fields.push(("name_label", Value::str(name)));
    fields.push(("power_state", Value::str("Halted")));
    fields.push(("domid", Value::Int(-1)));
    let metrics = t.create("VM_metrics", vec![("install_time", Value::DateTime(now()))])?;
    fields.push(("metrics", Value::str(&*metrics)));
    if let Mode::Snapshot = mode {
        fields.push(("is_a_snapshot", Value::Bool(true)));
        fields.push(("is_a_template", Value::Bool(true)));
        fields.push(("snapshot_of", Value::str(&*source.r)));
        fields.push(("snapshot_time", Value::DateTime(now())));
    } else {
        fields.push(("is_a_snapshot", Value::Bool(false)));
    }
    let vm = t.create("VM", fields)?;
    for vbd in source.refs("VBDs") {
        let Some(v) = t.get("VBD", &vbd).cloned() else {
            continue;
        };
        let vdi = match made.iter().find(|(s, _)| *s == vbd) {
            Some((_, image)) => {
                let base = t.get("VDI", v.str("VDI")).cloned();
                let r = new_vdi_record(t, image, base.as_ref())?;
                if let Mode::Snapshot = mode {
                    t.set("VDI", &r, "is_a_snapshot", Value::Bool(true))?;
                    t.set("VDI", &r, "snapshot_of", Value::str(v.str("VDI")))?;
                    t.set("VDI", &r, "snapshot_time", Value::DateTime(now()))?;
                }
                Value::str(&*r)
            }
            None => v.get("VDI").clone(),
        };
        let metrics = t.create("VBD_metrics", vec![])?;
        let mut vf: Vec<(&str, Value)> = [
            "userdevice",
            "bootable",
            "mode",
            "type",
            "empty",
            "unpluggable",
            "other_config",
            "qos_algorithm_type",
            "qos_algorithm_params",
        ]
        .iter()
        .map(|f| (*f, v.get(f).clone()))
        .collect();
        vf.extend([
            ("VM", Value::str(&*vm)),
            ("VDI", vdi),
            ("metrics", Value::str(&*metrics)),
        ]);
        t.create("VBD", vf)?;
    }
    let vifs: Vec<Obj> = t
        .members(source, "VIFs", "VIF")
        .into_iter()
        .cloned()
        .collect();
    let mut nets = Vec::new();
    for (v, mac) in vifs.iter().zip(macs) {
        let metrics = t.create("VIF_metrics", vec![])?;
        let mut vf: Vec<(&str, Value)> = [
            "device",
            "network",
            "MTU",
            "other_config",
            "qos_algorithm_type",
            "qos_algorithm_params",
            "locking_mode",
        ]
        .iter()
        .map(|f| (*f, v.get(f).clone()))
        .collect();
        vf.extend([
            ("VM", Value::str(&*vm)),
            ("MAC", Value::str(mac)),
            ("MAC_autogenerated", Value::Bool(true)),
            ("metrics", Value::str(&*metrics)),
        ]);
        let copy = t.create("VIF", vf)?;
        crate::network::dhcp::set_reserved(t, &copy, None)?;
        nets.push(Ref::from(v.str("network")));
    }
    for net in crate::network::distinct(nets) {
        if t.get("network", &net).is_some() {
            crate::network::dhcp::reconcile(t, &net)?;
        }
    }
    crate::vm::refresh_allowed(t, &vm)?;
    Ok(vm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_provisioning_specs() {
        let disks = parse_provision(r#"<provision><disk device="0" size="8589934592" sr="" bootable="true" type="system"/><disk device="1" size="1024" sr="abc" bootable="false" type="system"/></provision>"#).unwrap();
        assert_eq!(disks.len(), 2);
        assert_eq!(
            disks[0],
            ProvisionDisk {
                device: "0".into(),
                size: 8589934592,
                sr: "".into(),
                bootable: true
            }
        );
        assert_eq!(disks[1].sr, "abc");
        assert!(parse_provision(r#"<provision><disk device="0"/></provision>"#).is_err());
        assert!(parse_provision("").unwrap().is_empty());
    }
}
