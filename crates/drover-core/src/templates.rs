//! Templates offered by the installation itself.

use std::path::Path;

use drover_model::Value;

use crate::engine::Engine;
use crate::error::Result;

/// Name of the tiny test guest's template.
pub const TINY_LINUX: &str = "Tiny Linux";

/// Memory of a tiny guest: its kernel needs ~68 MiB to boot; 96 MiB leaves room.
const TINY_MEMORY: i64 = 96 << 20;

impl Engine {
    /// Offers the tiny guest in `dir` (`vmlinuz`, `initrd.img`) as the template `Tiny Linux`,
    /// booted directly from its kernel; an existing template is pointed at `dir` again.
    pub(crate) fn register_tiny_guest(&self, dir: &Path) -> Result<()> {
        let kernel = dir.join("vmlinuz").to_string_lossy().into_owned();
        let ramdisk = dir.join("initrd.img").to_string_lossy().into_owned();
        self.write(|t| {
            let existing = t
                .db()
                .all("VM")
                .find(|v| v.bool("is_a_template") && v.str("name_label") == TINY_LINUX)
                .map(|v| v.r.to_string());
            if let Some(tpl) = existing {
                t.set("VM", &tpl, "PV_kernel", Value::str(&kernel))?;
                return t.set("VM", &tpl, "PV_ramdisk", Value::str(&ramdisk));
            }
            let metrics = t.create("VM_metrics", vec![])?;
            let tpl = t.create(
                "VM",
                vec![
                    ("name_label", Value::str(TINY_LINUX)),
                    (
                        "name_description",
                        Value::str(
                            "A tiny Linux guest (Debian cloud kernel, busybox initramfs) booted \
                             directly from its kernel; prints status lines on its serial console",
                        ),
                    ),
                    ("is_a_template", Value::Bool(true)),
                    ("is_default_template", Value::Bool(true)),
                    ("memory_static_max", Value::Int(TINY_MEMORY)),
                    ("memory_dynamic_max", Value::Int(TINY_MEMORY)),
                    ("memory_dynamic_min", Value::Int(TINY_MEMORY)),
                    ("memory_static_min", Value::Int(TINY_MEMORY)),
                    ("VCPUs_max", Value::Int(1)),
                    ("VCPUs_at_startup", Value::Int(1)),
                    ("PV_kernel", Value::str(&kernel)),
                    ("PV_ramdisk", Value::str(&ramdisk)),
                    ("PV_args", Value::str("console=ttyS0 no_timer_check quiet")),
                    ("HVM_boot_policy", Value::str("")),
                    ("domain_type", Value::str("pv")),
                    (
                        "other_config",
                        Value::string_map([("default_template", "true")]),
                    ),
                    ("power_state", Value::str("Halted")),
                    ("domid", Value::Int(-1)),
                    ("metrics", Value::str(&*metrics)),
                ],
            )?;
            crate::vm::refresh_allowed(t, &tpl)
        })
    }
}
