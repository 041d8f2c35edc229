//! Storage: VDIs (disk images on the host) and VBDs (a VM's view of a VDI).

use std::sync::Arc;

use drover_host::{ByteSource, DiskSpec, HostDriver, HostError, ImageFormat, ImageInfo};
use drover_model::{Value, NULL_REF};

use crate::auth::Caller;
use crate::db::{Db, Obj, Ref};
use crate::engine::{now, Engine};
use crate::error::{CoreError, Result};
use crate::ops::{Ctx, Reply};
use crate::txn::{new_uuid, Txn};

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

/// Where a VDI's image is in its SR: its `location`, or its reference for records made before
/// images had locations.
pub(crate) fn image_location(vdi: &Obj) -> String {
    match vdi.str("location") {
        "" => vdi.r.to_string(),
        location => location.to_string(),
    }
}

/// A disk image just made on the host, not yet recorded as a VDI.
#[derive(Debug, Clone)]
pub(crate) struct NewImage {
    /// The SR it is on.
    pub sr: String,
    /// The uuid of the VDI it becomes (and the name it was made under).
    pub uuid: String,
    /// What the host says about it.
    pub info: ImageInfo,
}

impl NewImage {
    /// The fields of its VDI record that it decides.
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("uuid", Value::str(&self.uuid)),
            ("SR", Value::str(&self.sr)),
            ("location", Value::str(&self.info.location)),
            ("virtual_size", Value::Int(self.info.virtual_size as i64)),
            (
                "physical_utilisation",
                Value::Int(self.info.physical_utilisation as i64),
            ),
            ("managed", Value::Bool(true)),
        ]
    }
}

/// How a VBD's disk is given to a host.
pub(crate) fn disk_spec(db: &Db, vbd: &Obj) -> DiskSpec {
    let vdi = if vbd.bool("empty") {
        None
    } else {
        db.get("VDI", vbd.str("VDI"))
    };
    DiskSpec {
        device: vbd.str("userdevice").to_string(),
        sr: vdi.map(|v| v.str("SR").to_string()).unwrap_or_default(),
        image: vdi.map(|v| image_location(v)).unwrap_or_default(),
        read_only: vbd.str("mode") == "RO" || vdi.is_some_and(|v| v.bool("read_only")),
        cdrom: vbd.str("type") == "CD",
    }
}

/// Marks VBDs of `vm` attached, refusing (`VDI_IN_USE`) a writable, unshared disk that is
/// attached elsewhere (to a VM that is not halted, or twice to this one): an image never has two
/// writers.
pub(crate) fn claim_disks(t: &mut Txn, vm: &str, vbds: &[Ref], op: &str) -> Result<()> {
    for vbd in vbds {
        let Some(v) = t.get("VBD", vbd) else {
            continue;
        };
        if v.str("mode") == "RW" && !v.bool("empty") {
            if let Some(vdi) = t.get("VDI", v.str("VDI")) {
                let shared = vdi.bool("sharable") || vdi.bool("read_only");
                let taken = vdi
                    .refs("VBDs")
                    .iter()
                    .filter_map(|b| t.get("VBD", b))
                    .any(|other| {
                        other.r != *vbd
                            && other.bool("currently_attached")
                            && (other.str("VM") == vm
                                || t.get("VM", other.str("VM"))
                                    .is_some_and(|o| o.str("power_state") != "Halted"))
                    });
                if taken && !shared {
                    return Err(CoreError::VdiInUse {
                        vdi: vdi.r.to_string(),
                        op: op.into(),
                    });
                }
            }
        }
        t.set("VBD", vbd, "currently_attached", Value::Bool(true))?;
    }
    Ok(())
}

/// Marks VBDs detached.
pub(crate) fn release_disks(t: &mut Txn, vbds: &[Ref]) -> Result<()> {
    for vbd in vbds {
        if t.get("VBD", vbd).is_some() {
            t.set("VBD", vbd, "currently_attached", Value::Bool(false))?;
        }
    }
    Ok(())
}

/// Removes a VDI record whose image is gone: CD drives holding it become empty, disks that
/// used it go.
pub(crate) fn unlink_vdi(t: &mut Txn, vdi: &str) -> Result<()> {
    for vbd in t.must("VDI", vdi)?.refs("VBDs") {
        let Some(v) = t.get("VBD", &vbd).cloned() else {
            continue;
        };
        if v.str("type") == "CD" {
            t.set("VBD", &vbd, "VDI", Value::str(NULL_REF))?;
            t.set("VBD", &vbd, "empty", Value::Bool(true))?;
        } else {
            if t.get("VBD_metrics", v.str("metrics")).is_some() {
                t.destroy("VBD_metrics", v.str("metrics"))?;
            }
            t.destroy("VBD", &vbd)?;
        }
    }
    t.destroy("VDI", vdi)
}

impl Engine {
    /// A host failure of a guest or image operation in the terms of the objects involved:
    /// images become their VDIs, a missing device is the bridge of a NIC; `op` is the
    /// operation refused.
    pub(crate) fn host_error(&self, e: HostError, op: &str) -> CoreError {
        let vdi = |location: &str| {
            self.read(|db| {
                db.all("VDI")
                    .find(|v| image_location(v) == location)
                    .map(|v| (v.r.to_string(), v.str("SR").to_string()))
            })
        };
        match e {
            HostError::ImageInUse(image) => CoreError::VdiInUse {
                vdi: vdi(&image).map_or(image, |(r, _)| r),
                op: op.into(),
            },
            HostError::NoSuchImage(location) => CoreError::VdiLocationMissing {
                sr: vdi(&location).map(|(_, sr)| sr).unwrap_or_default(),
                location,
            },
            HostError::BadImage { image, reason } => CoreError::BadImage {
                vdi: vdi(&image).map_or(image, |(r, _)| r),
                reason,
            },
            HostError::NoSuchDevice(bridge) => CoreError::BridgeNotAvailable(bridge),
            e => e.into(),
        }
    }

    /// Fails with `SR_NOT_ATTACHED` unless the SR is plugged into this host.
    pub(crate) fn require_attached(&self, sr: &str) -> Result<()> {
        if !self.sr_hosts(sr).is_empty() {
            Ok(())
        } else {
            Err(CoreError::SrNotAttached(sr.into()))
        }
    }

    /// Creates a disk image on the host and its VDI record; nothing is left if either fails.
    pub(crate) async fn new_vdi(
        &self,
        sr: &str,
        name: &str,
        size: i64,
        kind: &str,
        format: ImageFormat,
    ) -> Result<Ref> {
        self.get("SR", sr)?;
        if size < 0 {
            return Err(CoreError::InvalidValue {
                field: "virtual_size".into(),
                value: size.to_string(),
            });
        }
        self.require_attached(sr)?;
        let uuid = new_uuid();
        let info = self
            .sr_driver(sr)?
            .image_create(sr, &uuid, size as u64, format)
            .await
            .map_err(|e| self.host_error(e, "create"))?;
        let image = NewImage {
            sr: sr.into(),
            uuid,
            info,
        };
        self.record_image(
            &image,
            vec![("name_label", Value::str(name)), ("type", Value::str(kind))],
        )
        .await
    }

    /// Records the VDI of an image just made on the host, with `fields` beside its own; the
    /// image is removed again if the record cannot be made.
    pub(crate) async fn record_image(
        &self,
        image: &NewImage,
        fields: Vec<(&'static str, Value)>,
    ) -> Result<Ref> {
        let made = self.write(|t| {
            let mut all = image.fields();
            all.extend(fields);
            t.create("VDI", all)
        });
        match made {
            Ok(r) => {
                self.refresh_sr(&image.sr).await;
                Ok(r)
            }
            Err(e) => {
                self.discard_image(image).await;
                Err(e)
            }
        }
    }

    /// A connected host on which both SRs are plugged.
    fn driver_of_both(&self, a: &str, b: &str) -> Result<Arc<dyn HostDriver>> {
        let on_b = self.sr_hosts(b);
        self.sr_hosts(a)
            .into_iter()
            .filter(|h| on_b.contains(h))
            .find_map(|h| self.driver(&h).ok())
            .ok_or_else(|| CoreError::SrNotAttached(b.into()))
    }

    /// Makes a new image from a VDI's: a thin clone on its SR, or a full copy onto `to`.
    pub(crate) async fn copy_image(&self, vdi: &Obj, to: Option<&str>) -> Result<NewImage> {
        let sr = vdi.str("SR");
        let src = image_location(vdi);
        let uuid = new_uuid();
        let (target, op, info) = match to {
            Some(to) => {
                self.require_attached(to)?;
                let host = self.driver_of_both(sr, to)?;
                (to, "copy", host.image_copy(sr, &src, to, &uuid).await)
            }
            None => (
                sr,
                "clone",
                self.sr_driver(sr)?.image_clone(sr, &src, &uuid).await,
            ),
        };
        let info = info.map_err(|e| self.host_error(e, op))?;
        Ok(NewImage {
            sr: target.into(),
            uuid,
            info,
        })
    }

    /// Deletes an image that no record names.
    pub(crate) async fn discard_image(&self, image: &NewImage) {
        let Ok(host) = self.sr_driver(&image.sr) else {
            tracing::warn!(sr = %image.sr, "no host reaches the SR of an image to discard");
            return;
        };
        if let Err(e) = host.image_destroy(&image.sr, &image.info.location).await {
            tracing::warn!(image = %image.info.location, error = %e, "could not delete a disk image");
        }
    }

    /// Deletes a VDI's record, whatever refers to it, and its image.
    pub(crate) async fn forget_vdi(&self, vdi: &str) {
        let Ok(obj) = self.get("VDI", vdi) else {
            return;
        };
        let _ = self.write(|t| {
            if t.get("VDI", vdi).is_some() {
                t.destroy("VDI", vdi)
            } else {
                Ok(())
            }
        });
        self.delete_images(&[(obj.str("SR").to_string(), image_location(&obj))])
            .await;
    }

    /// Deletes the images (SR, location) of VDI records already removed, then refreshes the
    /// SRs' figures. An image the host cannot delete is reported and left for a scan to find.
    pub(crate) async fn delete_images(&self, images: &[(String, String)]) {
        for (sr, image) in images {
            let Ok(host) = self.sr_driver(sr) else {
                tracing::warn!(%image, "no host reaches the SR of a disk image to delete");
                continue;
            };
            if let Err(e) = host.image_destroy(sr, image).await {
                tracing::warn!(%image, error = %e, "could not delete a disk image");
            }
        }
        let mut srs: Vec<&str> = images.iter().map(|(sr, _)| sr.as_str()).collect();
        srs.sort_unstable();
        srs.dedup();
        for sr in srs {
            self.refresh_sr(sr).await;
        }
    }

    /// Updates an SR's size figures from the host.
    pub(crate) async fn refresh_sr(&self, sr: &str) {
        let Ok(host) = self.sr_driver(sr) else { return };
        if let Ok(info) = host.storage_info(sr).await {
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

    /// Whether a VM that is not halted has the VDI.
    pub(crate) fn vdi_in_use(&self, vdi: &str) -> bool {
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

    /// Replaces the contents of a VDI with an upload given in `format` (`raw` or `qcow2`), for
    /// a caller allowed to create VDIs. The VDI must not be in use.
    pub async fn import_vdi(
        &self,
        caller: &Caller,
        vdi: &str,
        format: &str,
        data: ByteSource,
    ) -> Result<()> {
        self.check_permission(caller, "VDI", "create")?;
        let obj = self.get("VDI", vdi)?;
        if !matches!(format, "raw" | "qcow2") {
            return Err(CoreError::InvalidValue {
                field: "format".into(),
                value: format.into(),
            });
        }
        if self.vdi_in_use(vdi) {
            return Err(CoreError::VdiInUse {
                vdi: vdi.into(),
                op: "import".into(),
            });
        }
        let sr = obj.str("SR").to_string();
        self.require_attached(&sr)?;
        let info = self
            .sr_driver(&sr)?
            .image_import(&sr, &image_location(&obj), format, data)
            .await
            .map_err(|e| match e {
                HostError::BadImage { reason, .. } => CoreError::ImportFailed(reason),
                e => self.host_error(e, "import"),
            })?;
        self.write(|t| record_sizes(t, vdi, &info))?;
        self.refresh_sr(&sr).await;
        Ok(())
    }

    /// The guest-visible contents of a VDI as raw bytes, for a caller allowed to copy VDIs.
    /// The VDI must not be written by a running guest.
    pub async fn export_vdi(&self, caller: &Caller, vdi: &str) -> Result<ByteSource> {
        self.check_permission(caller, "VDI", "copy")?;
        let obj = self.get("VDI", vdi)?;
        if self.vdi_in_use(vdi) {
            return Err(CoreError::VdiInUse {
                vdi: vdi.into(),
                op: "export".into(),
            });
        }
        let sr = obj.str("SR").to_string();
        self.require_attached(&sr)?;
        self.sr_driver(&sr)?
            .image_export(&sr, &image_location(&obj))
            .await
            .map_err(|e| self.host_error(e, "export"))
    }

    pub(crate) async fn vdi_action(
        &self,
        _ctx: &Ctx<'_>,
        vdi: &str,
        action: VdiAction,
    ) -> Result<Reply> {
        let obj = self.get("VDI", vdi)?;
        let sr = obj.str("SR").to_string();
        self.require_attached(&sr)?;
        match action {
            VdiAction::Clone | VdiAction::Snapshot | VdiAction::Copy { .. } => {
                let image = match &action {
                    VdiAction::Copy { sr: to } => {
                        self.get("SR", to)?;
                        self.copy_image(&obj, Some(to)).await?
                    }
                    _ => self.copy_image(&obj, None).await?,
                };
                let snapshot = matches!(action, VdiAction::Snapshot);
                let made = self.write(|t| {
                    let mut fields = image.fields();
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
                        fields.push(("snapshot_time", Value::DateTime(now())));
                    }
                    t.create("VDI", fields)
                });
                match made {
                    Ok(r) => {
                        self.refresh_sr(&image.sr).await;
                        Ok(Reply::Ref(r))
                    }
                    Err(e) => {
                        self.discard_image(&image).await;
                        Err(e)
                    }
                }
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
                    .sr_driver(&sr)?
                    .image_resize(&sr, &image_location(&obj), size as u64)
                    .await
                    .map_err(|e| self.host_error(e, "resize"))?;
                self.write(|t| record_sizes(t, vdi, &info))?;
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
        let live = matches!(vm.str("power_state"), "Running" | "Paused");
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
                if plug {
                    self.plug(&vm, &obj).await?;
                } else {
                    self.unplug(&vm, &obj).await?;
                }
                Ok(Reply::Void)
            }
            VbdAction::Insert { vdi } => {
                let media = self.get("VDI", &vdi)?;
                if obj.str("type") != "CD" {
                    return Err(CoreError::VbdNotRemovableMedia(vbd.into()));
                }
                if !obj.bool("empty") {
                    return Err(CoreError::VbdNotEmpty(vbd.into()));
                }
                if live {
                    let location = image_location(&media);
                    self.resident(&vm)?
                        .1
                        .media_change(
                            vm.uuid(),
                            obj.str("userdevice"),
                            Some((media.str("SR"), &location)),
                        )
                        .await
                        .map_err(|e| self.host_error(e, "insert"))?;
                }
                self.write(|t| {
                    t.set("VBD", vbd, "VDI", Value::str(&vdi))?;
                    t.set("VBD", vbd, "empty", Value::Bool(false))
                })?;
                Ok(Reply::Void)
            }
            VbdAction::Eject => {
                if obj.str("type") != "CD" {
                    return Err(CoreError::VbdNotRemovableMedia(vbd.into()));
                }
                if obj.bool("empty") {
                    return Err(CoreError::VbdIsEmpty(vbd.into()));
                }
                if live {
                    self.resident(&vm)?
                        .1
                        .media_change(vm.uuid(), obj.str("userdevice"), None)
                        .await
                        .map_err(|e| self.host_error(e, "eject"))?;
                }
                self.write(|t| {
                    t.set("VBD", vbd, "VDI", Value::str(NULL_REF))?;
                    t.set("VBD", vbd, "empty", Value::Bool(true))
                })?;
                Ok(Reply::Void)
            }
        }
    }

    /// Hot-plugs a VBD into its running VM: claimed first, released again if the host refuses.
    async fn plug(&self, vm: &Obj, vbd: &Obj) -> Result<()> {
        if vbd.bool("currently_attached") {
            return Err(CoreError::DeviceAlreadyAttached(vbd.r.to_string()));
        }
        let vbds = [vbd.r.clone()];
        self.write(|t| claim_disks(t, &vm.r, &vbds, "plug"))?;
        let spec = self.read(|db| disk_spec(db, vbd));
        let attached = match self.resident(vm) {
            Ok((_, host)) => host.disk_attach(vm.uuid(), &spec).await,
            Err(e) => {
                self.write(|t| release_disks(t, &vbds))?;
                return Err(e);
            }
        };
        if let Err(e) = attached {
            self.write(|t| release_disks(t, &vbds))?;
            return Err(self.host_error(e, "plug"));
        }
        Ok(())
    }

    /// Hot-unplugs a VBD from its running VM.
    async fn unplug(&self, vm: &Obj, vbd: &Obj) -> Result<()> {
        if !vbd.bool("currently_attached") {
            return Err(CoreError::DeviceAlreadyDetached(vbd.r.to_string()));
        }
        if !vbd.bool("unpluggable") {
            return Err(CoreError::VbdNotUnpluggable(vbd.r.to_string()));
        }
        self.resident(vm)?
            .1
            .disk_detach(vm.uuid(), vbd.str("userdevice"))
            .await
            .map_err(|e| self.host_error(e, "unplug"))?;
        self.write(|t| release_disks(t, std::slice::from_ref(&vbd.r)))
    }
}

/// Records an image's figures on its VDI.
pub(crate) fn record_sizes(t: &mut Txn, vdi: &str, info: &ImageInfo) -> Result<()> {
    t.must("VDI", vdi)?;
    t.set(
        "VDI",
        vdi,
        "virtual_size",
        Value::Int(info.virtual_size as i64),
    )?;
    t.set(
        "VDI",
        vdi,
        "physical_utilisation",
        Value::Int(info.physical_utilisation as i64),
    )
}
