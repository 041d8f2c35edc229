//! Removing a VM with what belongs to it: its NICs, disk attachments and snapshots, and the
//! disks nothing else uses. Everything is checked and every record goes in one transaction;
//! the disks' images are deleted once it has committed.

use crate::db::{Obj, Ref, View};
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::ops::Ctx;
use crate::storage::image_location;
use crate::txn::Txn;
use crate::vm::{check_op, destroy_vm_record, require_halted};

impl Engine {
    /// Removes a halted VM as [`crate::VmAction::Remove`] says.
    pub(crate) async fn remove_vm(&self, ctx: &Ctx<'_>, vm: &str, keep_disks: bool) -> Result<()> {
        require_halted(&*self.get("VM", vm)?)?;
        let obj = self.begin(ctx, vm, "destroy")?;
        let nets = self.read(|db| {
            let family = std::iter::once(&*obj).chain(db.members(&obj, "snapshots", "VM"));
            crate::network::distinct(
                family
                    .flat_map(|v| db.members(v, "VIFs", "VIF"))
                    .map(|vif| Ref::from(vif.str("network"))),
            )
        });
        let removed = self
            .net_change(&nets, |t| remove_records(t, vm, keep_disks))
            .await;
        match removed {
            Ok(images) => {
                self.delete_images(&images).await;
                Ok(())
            }
            Err(e) => {
                self.end(ctx, vm, |_| Ok(()))?;
                Err(e)
            }
        }
    }
}

/// Checks a VM's removal and deletes its records with those of its snapshots and of the disks
/// that go with them; answers those disks' images (SR, location).
fn remove_records(t: &mut Txn, vm: &str, keep_disks: bool) -> Result<Vec<(String, String)>> {
    let obj = t.must("VM", vm)?.clone();
    require_halted(&obj)?;
    let snapshots: Vec<Obj> = t
        .members(&obj, "snapshots", "VM")
        .into_iter()
        .cloned()
        .collect();
    for s in &snapshots {
        check_op(s, "destroy")?;
    }
    let family: Vec<Ref> = snapshots
        .iter()
        .chain([&obj])
        .map(|v| v.r.clone())
        .collect();
    let own = disks(t, &obj);
    let mut doomed: Vec<Obj> = Vec::new();
    for member in snapshots.iter().chain([&obj]) {
        for vdi in disks(t, member) {
            let kept = keep_disks && own.iter().any(|o| o.r == vdi.r);
            if !kept && !doomed.iter().any(|d| d.r == vdi.r) && disposable(t, &vdi, &family) {
                doomed.push(vdi);
            }
        }
    }
    for vdi in &doomed {
        let sr = vdi.str("SR");
        let attached = t
            .db()
            .all("PBD")
            .any(|p| p.str("SR") == sr && p.bool("currently_attached"));
        if !attached {
            return Err(CoreError::SrNotAttached(sr.into()));
        }
    }
    for member in &family {
        destroy_vm_record(t, member)?;
    }
    for vdi in &doomed {
        t.destroy("VDI", &vdi.r)?;
    }
    Ok(doomed
        .iter()
        .map(|v| (v.str("SR").to_string(), image_location(v)))
        .collect())
}

/// The VDIs in a VM's drives, CD drives included.
fn disks(t: &Txn, vm: &Obj) -> Vec<Obj> {
    t.members(vm, "VBDs", "VBD")
        .iter()
        .filter(|b| !b.bool("empty"))
        .filter_map(|b| t.get("VDI", b.str("VDI")))
        .cloned()
        .collect()
}

/// Whether a disk goes with the VMs of `family`: none outside it has the disk, and it is
/// neither sharable nor an image of an ISO library.
fn disposable(t: &Txn, vdi: &Obj, family: &[Ref]) -> bool {
    let iso = t
        .get("SR", vdi.str("SR"))
        .is_some_and(|sr| sr.str("content_type") == "iso");
    let elsewhere = t
        .members(vdi, "VBDs", "VBD")
        .iter()
        .any(|b| !family.iter().any(|f| **f == *b.str("VM")));
    !vdi.bool("sharable") && !iso && !elsewhere
}
