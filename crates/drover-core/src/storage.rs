//! Storage: SRs, VDIs (disk images on the host) and VBDs (a VM's view of a VDI).

use drover_model::{Value, NULL_REF};

use crate::db::Ref;
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::ops::{Ctx, Reply};
use crate::txn::new_ref;

/// A VDI operation.
#[derive(Debug, Clone)]
pub enum VdiAction {
    /// Thin clone.
    Clone,
    /// Full copy to an SR.
    Copy {
        /// Target SR.
        sr: String,
    },
    /// Snapshot.
    Snapshot,
    /// Grow.
    Resize {
        /// New size in bytes.
        size: i64,
    },
}

impl VdiAction {
    /// The datamodel message name.
    pub fn message(&self) -> &'static str {
        match self {
            VdiAction::Clone => "clone",
            VdiAction::Copy { .. } => "copy",
            VdiAction::Snapshot => "snapshot",
            VdiAction::Resize { .. } => "resize",
        }
    }
}

/// A VBD operation.
#[derive(Debug, Clone)]
pub enum VbdAction {
    /// Hot-plug into the running VM.
    Plug,
    /// Hot-unplug.
    Unplug,
    /// Put a VDI into an empty CD drive.
    Insert {
        /// The VDI.
        vdi: String,
    },
    /// Empty a CD drive.
    Eject,
}

impl VbdAction {
    /// The datamodel message name.
    pub fn message(&self) -> &'static str {
        match self {
            VbdAction::Plug => "plug",
            VbdAction::Unplug => "unplug",
            VbdAction::Insert { .. } => "insert",
            VbdAction::Eject => "eject",
        }
    }
}

/// An SR operation.
#[derive(Debug, Clone)]
pub enum SrAction {
    /// Refresh sizes from the host.
    Scan,
    /// SR types the host supports.
    GetSupportedTypes,
}

impl SrAction {
    /// The datamodel message name.
    pub fn message(&self) -> &'static str {
        match self {
            SrAction::Scan => "scan",
            SrAction::GetSupportedTypes => "get_supported_types",
        }
    }
}

impl Engine {
    /// Creates a disk image on the host and its VDI record; nothing is left if either fails.
    pub(crate) async fn new_vdi(
        &self,
        _ctx: &Ctx<'_>,
        sr: &str,
        name: &str,
        size: i64,
        kind: &str,
    ) -> Result<Ref> {
        self.get("SR", sr)?;
        if size < 0 {
            return Err(CoreError::InvalidValue {
                field: "virtual_size".into(),
                value: size.to_string(),
            });
        }
        let r = new_ref();
        let info = self
            .host
            .image_create(sr, &r, size as u64)
            .await
            .map_err(CoreError::from)?;
        let made = self.write(|t| {
            t.create_with_ref(
                "VDI",
                r.clone(),
                vec![
                    ("name_label", Value::str(name)),
                    ("SR", Value::str(sr)),
                    ("virtual_size", Value::Int(info.virtual_size as i64)),
                    (
                        "physical_utilisation",
                        Value::Int(info.physical_utilisation as i64),
                    ),
                    ("type", Value::str(kind)),
                ],
            )
        });
        if let Err(e) = made {
            let _ = self.host.image_destroy(sr, &r).await;
            return Err(e);
        }
        self.refresh_sr(sr).await;
        Ok(r)
    }

    /// Deletes a VDI's image and record, whatever refers to it.
    pub(crate) async fn forget_vdi(&self, vdi: &str) {
        let Ok(obj) = self.get("VDI", vdi) else {
            return;
        };
        let sr = obj.str("SR").to_string();
        if let Err(e) = self.host.image_destroy(&sr, vdi).await {
            tracing::warn!(vdi, error = %e, "could not delete a disk image");
        }
        let _ = self.write(|t| {
            if t.get("VDI", vdi).is_some() {
                t.destroy("VDI", vdi)
            } else {
                Ok(())
            }
        });
        self.refresh_sr(&sr).await;
    }

    /// Updates an SR's size figures from the host.
    pub(crate) async fn refresh_sr(&self, sr: &str) {
        if let Ok(info) = self.host.storage_info(sr).await {
            let _ = self.write_volatile(|t| {
                if t.get("SR", sr).is_none() {
                    return Ok(());
                }
                let allocation: i64 = t
                    .must("SR", sr)?
                    .refs("VDIs")
                    .iter()
                    .filter_map(|v| t.get("VDI", v))
                    .map(|v| v.int("virtual_size"))
                    .sum();
                t.set(
                    "SR",
                    sr,
                    "physical_size",
                    Value::Int(info.physical_size as i64),
                )?;
                t.set(
                    "SR",
                    sr,
                    "physical_utilisation",
                    Value::Int(info.physical_utilisation as i64),
                )?;
                t.set("SR", sr, "virtual_allocation", Value::Int(allocation))
            });
        }
    }

    fn vdi_in_use(&self, vdi: &str) -> bool {
        self.read(|db| {
            db.get("VDI", vdi).is_some_and(|o| {
                o.refs("VBDs")
                    .iter()
                    .filter_map(|b| db.get("VBD", b))
                    .any(|b| {
                        db.get("VM", b.str("VM"))
                            .is_some_and(|vm| vm.str("power_state") != "Halted")
                    })
            })
        })
    }

    /// Destroys a VDI unless a VM that is not halted uses it.
    pub(crate) async fn destroy_vdi(&self, vdi: &str) -> Result<()> {
        self.get("VDI", vdi)?;
        if self.vdi_in_use(vdi) {
            return Err(CoreError::VdiInUse {
                vdi: vdi.into(),
                op: "destroy".into(),
            });
        }
        let vbds = self.get("VDI", vdi)?.refs("VBDs");
        self.write(|t| {
            for b in &vbds {
                if t.get("VBD", b).is_some() {
                    t.destroy("VBD", b)?;
                }
            }
            Ok(())
        })?;
        self.forget_vdi(vdi).await;
        Ok(())
    }

    pub(crate) async fn vdi_action(
        &self,
        _ctx: &Ctx<'_>,
        vdi: &str,
        action: VdiAction,
    ) -> Result<Reply> {
        let obj = self.get("VDI", vdi)?;
        let sr = obj.str("SR").to_string();
        match action {
            VdiAction::Clone | VdiAction::Snapshot | VdiAction::Copy { .. } => {
                let image = new_ref();
                let (target, info) = match &action {
                    VdiAction::Copy { sr: to } => {
                        self.get("SR", to)?;
                        (to.clone(), self.host.image_copy(&sr, vdi, to, &image).await)
                    }
                    _ => (sr.clone(), self.host.image_clone(&sr, vdi, &image).await),
                };
                let info = info.map_err(CoreError::from)?;
                let snapshot = matches!(action, VdiAction::Snapshot);
                let made = self.write(|t| {
                    let mut fields = vec![
                        ("SR", Value::str(&target)),
                        ("virtual_size", Value::Int(info.virtual_size as i64)),
                        (
                            "physical_utilisation",
                            Value::Int(info.physical_utilisation as i64),
                        ),
                    ];
                    for f in [
                        "name_label",
                        "name_description",
                        "type",
                        "sharable",
                        "read_only",
                        "other_config",
                    ] {
                        fields.push((f, obj.get(f).clone()));
                    }
                    if snapshot {
                        fields.push(("is_a_snapshot", Value::Bool(true)));
                        fields.push(("snapshot_of", Value::str(vdi)));
                        fields.push(("snapshot_time", Value::DateTime(crate::engine::now())));
                    }
                    t.create_with_ref("VDI", image.clone(), fields)
                });
                if let Err(e) = made {
                    let _ = self.host.image_destroy(&target, &image).await;
                    return Err(e);
                }
                self.refresh_sr(&target).await;
                Ok(Reply::Ref(image))
            }
            VdiAction::Resize { size } => {
                if size < obj.int("virtual_size") {
                    return Err(CoreError::InvalidValue {
                        field: "size".into(),
                        value: size.to_string(),
                    });
                }
                if self.vdi_in_use(vdi) {
                    return Err(CoreError::VdiInUse {
                        vdi: vdi.into(),
                        op: "resize".into(),
                    });
                }
                let info = self
                    .host
                    .image_resize(&sr, vdi, size as u64)
                    .await
                    .map_err(CoreError::from)?;
                self.write(|t| {
                    t.set(
                        "VDI",
                        vdi,
                        "virtual_size",
                        Value::Int(info.virtual_size as i64),
                    )
                })?;
                self.refresh_sr(&sr).await;
                Ok(Reply::Void)
            }
        }
    }

    pub(crate) async fn vbd_action(
        &self,
        _ctx: &Ctx<'_>,
        vbd: &str,
        action: VbdAction,
    ) -> Result<Reply> {
        let obj = self.get("VBD", vbd)?;
        let vm = self.get("VM", obj.str("VM"))?;
        match action {
            VbdAction::Plug | VbdAction::Unplug => {
                let plug = matches!(action, VbdAction::Plug);
                if vm.str("power_state") != "Running" {
                    return Err(CoreError::VmBadPowerState {
                        vm: vm.r.to_string(),
                        expected: "running".into(),
                        actual: vm.str("power_state").to_lowercase(),
                    });
                }
                if obj.bool("currently_attached") == plug {
                    return Err(CoreError::OperationNotAllowed(format!(
                        "VBD {vbd} is {} attached",
                        if plug { "already" } else { "not" }
                    )));
                }
                Err(CoreError::OperationNotAllowed(
                    "hot plug needs the qemu host driver; this host cannot change a running guest's disks".into(),
                ))
            }
            VbdAction::Insert { vdi } => {
                self.get("VDI", &vdi)?;
                if obj.str("type") != "CD" {
                    return Err(CoreError::OperationNotAllowed(
                        "only CD drives take media".into(),
                    ));
                }
                if !obj.bool("empty") {
                    return Err(CoreError::OperationNotAllowed(
                        "the drive is not empty".into(),
                    ));
                }
                self.write(|t| {
                    t.set("VBD", vbd, "VDI", Value::str(&vdi))?;
                    t.set("VBD", vbd, "empty", Value::Bool(false))
                })?;
                Ok(Reply::Void)
            }
            VbdAction::Eject => {
                if obj.str("type") != "CD" || obj.bool("empty") {
                    return Err(CoreError::OperationNotAllowed(
                        "the drive has no media to eject".into(),
                    ));
                }
                self.write(|t| {
                    t.set("VBD", vbd, "VDI", Value::str(NULL_REF))?;
                    t.set("VBD", vbd, "empty", Value::Bool(true))
                })?;
                Ok(Reply::Void)
            }
        }
    }

    pub(crate) async fn sr_action(
        &self,
        _ctx: &Ctx<'_>,
        sr: &str,
        action: SrAction,
    ) -> Result<Reply> {
        match action {
            SrAction::Scan => {
                self.get("SR", sr)?;
                self.refresh_sr(sr).await;
                Ok(Reply::Void)
            }
            SrAction::GetSupportedTypes => {
                Ok(Reply::Value(Value::Set(self.read(|db| {
                    db.all("SM").map(|sm| Value::str(sm.str("type"))).collect()
                }))))
            }
        }
    }
}
