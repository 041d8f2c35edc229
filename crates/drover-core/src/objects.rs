//! Creating and destroying objects through their constructors, with each class's own rules.

use drover_host::ImageFormat;
use drover_model::{Qualifier, Schema, Value, NULL_REF};

use crate::db::Ref;
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::ops::{validate, Ctx};

/// Classes made by their own constructors (`VLAN.create`, `Bond.create`, `PIF.scan`).
const OWN_CONSTRUCTOR: &[&str] = &["PIF", "PIF_metrics", "VLAN", "Bond"];

/// Classes clients may not create or destroy directly: the engine owns them.
const ENGINE_OWNED: &[&str] = &[
    "session",
    "task",
    "event",
    "host",
    "pool",
    "host_cpu",
    "host_metrics",
    "SM",
];

impl Engine {
    pub(crate) async fn create_object(
        &self,
        class: &str,
        fields: Vec<(String, Value)>,
    ) -> Result<Ref> {
        let k = Schema::get()
            .class(class)
            .ok_or_else(|| CoreError::Internal(format!("no class {class}")))?;
        if ENGINE_OWNED.contains(&class) || OWN_CONSTRUCTOR.contains(&class) {
            return Err(CoreError::OperationNotAllowed(format!(
                "{class} objects are made by the engine"
            )));
        }
        let mut values: Vec<(String, Value)> = Vec::new();
        for (name, v) in fields {
            let f = k.field(&name).ok_or_else(|| CoreError::NoSuchField {
                class: class.into(),
                field: name.clone(),
            })?;
            if f.qualifier == Qualifier::RoRuntime {
                continue;
            }
            validate(&name, &f.ty, &v)?;
            values.push((name, v));
        }
        let given = values.clone();
        let get = |name: &str| {
            given
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        match class {
            "network" => self.network_create(values).await,
            "VIF" => self.vif_create(values).await,
            "VDI" => {
                let sr = get("SR")
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let size = get("virtual_size").and_then(|v| v.as_int()).unwrap_or(0);
                let name = get("name_label")
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let kind = get("type")
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_else(|| "user".into());
                let raw = get("sm_config")
                    .is_some_and(|c| c.map_get("type").and_then(|t| t.as_str()) == Some("raw"));
                let format = if raw {
                    ImageFormat::Raw
                } else {
                    ImageFormat::Qcow2
                };
                let vdi = self.new_vdi(&sr, &name, size, &kind, format).await?;
                let rest: Vec<(String, Value)> = values
                    .into_iter()
                    .filter(|(n, _)| {
                        !["SR", "virtual_size", "name_label", "type"].contains(&n.as_str())
                    })
                    .collect();
                let applied = self.write(|t| {
                    for (n, v) in rest {
                        t.set("VDI", &vdi, &n, v)?;
                    }
                    Ok(())
                });
                if let Err(e) = applied {
                    self.forget_vdi(&vdi).await;
                    return Err(e);
                }
                Ok(vdi)
            }
            _ => self.write(|t| {
                if class == "VBD" {
                    let vm = get("VM")
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default();
                    let vm_obj = t.must("VM", &vm)?.clone();
                    let device = get("userdevice")
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default();
                    let empty = get("empty").and_then(|v| v.as_bool()).unwrap_or(false);
                    let vdi = get("VDI")
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or(NULL_REF.into());
                    if !empty {
                        t.must("VDI", &vdi)?;
                    }
                    let taken = vm_obj
                        .refs("VBDs")
                        .iter()
                        .filter_map(|b| t.get("VBD", b))
                        .any(|b| b.str("userdevice") == device);
                    if taken && device != "autodetect" {
                        return Err(CoreError::DeviceAlreadyExists(device));
                    }
                }
                let mut vals: Vec<(&str, Value)> = values
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.clone()))
                    .collect();
                match class {
                    "VM" => {
                        let metrics = t.create(
                            "VM_metrics",
                            vec![("install_time", Value::DateTime(crate::engine::now()))],
                        )?;
                        vals.push(("metrics", Value::str(&*metrics)));
                        vals.push(("power_state", Value::str("Halted")));
                        vals.push(("domid", Value::Int(-1)));
                    }
                    "VBD" => vals.push(("metrics", Value::str(&*t.create("VBD_metrics", vec![])?))),
                    _ => {}
                }
                let r = t.create(class, vals)?;
                if class == "VM" {
                    crate::vm::refresh_allowed(t, &r)?;
                }
                Ok(r)
            }),
        }
    }

    pub(crate) async fn destroy_object(&self, ctx: &Ctx<'_>, class: &str, r: &str) -> Result<()> {
        if ENGINE_OWNED.contains(&class) && class != "task" {
            return Err(CoreError::OperationNotAllowed(format!(
                "{class} objects are removed by the engine"
            )));
        }
        match class {
            "VM" => self
                .vm_action(ctx, r, crate::vm::VmAction::Destroy)
                .await
                .map(|_| ()),
            "VDI" => self.destroy_vdi(r).await,
            "SR" => self.sr_forget(r, true).await,
            "PBD" => {
                if self.get(class, r)?.bool("currently_attached") {
                    return Err(CoreError::OperationNotAllowed(format!(
                        "PBD {r} is plugged; unplug it first"
                    )));
                }
                self.write(|t| t.destroy(class, r))
            }
            "VLAN" => self.vlan_destroy(r).await,
            "PIF" => self.pif_destroy(r).await,
            "Bond" => self.bond_destroy(r).await,
            "network" => self.network_destroy(r).await,
            "VIF" => self.vif_destroy(r).await,
            "task" => {
                self.get("task", r)?;
                self.cancels
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(r);
                self.write(|t| t.destroy("task", r))
            }
            "VBD" => {
                let obj = self.get(class, r)?;
                if obj.bool("currently_attached") {
                    return Err(CoreError::OperationNotAllowed(format!(
                        "{class} {r} is attached to a running VM"
                    )));
                }
                self.write(|t| {
                    let m = t.must(class, r)?.str("metrics").to_string();
                    let mclass = format!("{class}_metrics");
                    if t.get(&mclass, &m).is_some() {
                        t.destroy(&mclass, &m)?;
                    }
                    t.destroy(class, r)
                })
            }
            _ => self.write(|t| t.destroy(class, r)),
        }
    }
}
