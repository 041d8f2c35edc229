//! Config drives: small read-only ISO 9660 images made from files the engine is given (a
//! guest's network and disk configuration, transport files), kept as VDIs that a facade puts
//! into a VM's CD drive.

use drover_model::Value;

use crate::auth::Caller;
use crate::db::Ref;
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::storage::{image_location, record_sizes, NewImage};
use crate::txn::new_uuid;

/// The VDI `other_config` key that marks a config drive (`true`); only such VDIs are replaced.
const CONFIG_DRIVE: &str = "config_drive";

impl Engine {
    /// Makes a read-only ISO 9660 image with volume label `label` holding `files` (relative
    /// paths, contents) in SR `sr`, for a caller allowed to create VDIs, and answers its VDI: a
    /// new read-only `user` VDI named `name_label` with `other_config:config_drive=true`, or with
    /// `replace` that config drive VDI of `sr`, whose image gets the new contents in place (its
    /// reference, uuid and location stay). A VDI a VM that is not halted holds is `VDI_IN_USE`:
    /// eject it first.
    pub async fn vdi_from_files(
        &self,
        caller: &Caller,
        sr: &str,
        name_label: &str,
        label: &str,
        files: Vec<(String, Vec<u8>)>,
        replace: Option<&str>,
    ) -> Result<Ref> {
        self.check_permission(caller, "VDI", "create")?;
        self.get("SR", sr)?;
        self.require_attached(sr)?;
        match replace {
            None => self.new_config_drive(sr, name_label, label, &files).await,
            Some(vdi) => {
                self.refill_config_drive(sr, vdi, name_label, label, &files)
                    .await?;
                Ok(Ref::from(vdi))
            }
        }
    }

    /// A new config drive image and its VDI record; nothing is left if either fails.
    async fn new_config_drive(
        &self,
        sr: &str,
        name_label: &str,
        label: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<Ref> {
        let uuid = new_uuid();
        let info = self
            .sr_driver(sr)?
            .image_from_files(sr, &uuid, label, files)
            .await
            .map_err(|e| self.host_error(e, "create"))?;
        let image = NewImage {
            sr: sr.into(),
            uuid,
            info,
        };
        self.record_image(
            &image,
            vec![
                ("name_label", Value::str(name_label)),
                ("name_description", Value::str("config drive")),
                ("type", Value::str("user")),
                ("read_only", Value::Bool(true)),
                ("sharable", Value::Bool(false)),
                ("other_config", Value::string_map([(CONFIG_DRIVE, "true")])),
            ],
        )
        .await
    }

    /// New contents for the image of the config drive VDI `vdi` on `sr`.
    async fn refill_config_drive(
        &self,
        sr: &str,
        vdi: &str,
        name_label: &str,
        label: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<()> {
        let obj = self.get("VDI", vdi)?;
        if obj.str("SR") != sr {
            return Err(CoreError::InvalidValue {
                field: "SR".into(),
                value: sr.into(),
            });
        }
        let marked = obj
            .get("other_config")
            .map_get(CONFIG_DRIVE)
            .and_then(|v| v.as_str())
            == Some("true");
        if !marked {
            return Err(CoreError::OperationNotAllowed(format!(
                "VDI {vdi} is not a config drive"
            )));
        }
        if self.vdi_in_use(vdi) {
            return Err(CoreError::VdiInUse {
                vdi: vdi.into(),
                op: "update".into(),
            });
        }
        // Images are made under their VDI's uuid; the host replaces the one of that name.
        let info = self
            .sr_driver(sr)?
            .image_from_files(sr, obj.uuid(), label, files)
            .await
            .map_err(|e| self.host_error(e, "update"))?;
        let moved = info.location != image_location(&obj);
        self.write(|t| {
            record_sizes(t, vdi, &info)?;
            if moved {
                t.set("VDI", vdi, "location", Value::str(&info.location))?;
            }
            if t.must("VDI", vdi)?.str("name_label") != name_label {
                t.set("VDI", vdi, "name_label", Value::str(name_label))?;
            }
            Ok(())
        })?;
        self.refresh_sr(sr).await;
        Ok(())
    }
}
