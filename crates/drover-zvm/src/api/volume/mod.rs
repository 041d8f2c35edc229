//! Volumes: FCP (SCSI) volumes, FCP devices and FCP Multipath Templates, mapped onto disk
//! images the host can reach.
//!
//! Mappings:
//! - **Volume (LUN)**: a VDI tagged `other_config:zvm_lun=<LUN>` (an operator or a test tags it,
//!   e.g. with XenAPI `VDI.add_to_other_config`). LUNs compare as 16 hex digits: `0x` dropped,
//!   case ignored, zeros added on the left (`0x4020400100000000`, `4020400100000000` and
//!   `0X40204001` + zeros are one LUN). Snapshots are never volumes.
//! - **Target port (WWPN)**: the storage ports of a volume are those listed in its SR's
//!   `other_config:zvm_wwpn` (WWPNs separated by commas, spaces or semicolons, in the same
//!   16-hex-digit form); an SR without that key answers on every WWPN. A LUN names the first
//!   volume (by VDI uuid) that at least one of the given target WWPNs reaches, so one LUN
//!   number can live behind different ports, as on a SAN.
//! - **FCP device**: a 4-hex-digit device number named by an FCP Multipath Template. The
//!   devices and templates live in the pool object's `other_config`: `zvm_fcp_template:<id>`
//!   holds a template as JSON (`id`, `name`, `description`, `host_default`,
//!   `storage_providers`, `min_fcp_paths_count` or null for "every path", `paths`: the device
//!   numbers of each path), `zvm_fcp:<device>` the usage of a device as JSON (`userid`,
//!   `reserved`, `connections`, `template`). A device exists while a template names it, or
//!   while it is reserved or connected; an idle device no template names is forgotten.
//!   A device is `active` (dedicated to its guest) while it has connections, else `free`;
//!   Drover's devices are never offline or missing, so those statistics stay empty, and
//!   `sync_with_zvm` has nothing to synchronise.
//! - **WWPNs of a device**, synthesised from its number and the host's uuid in IBM's
//!   `c05076` style: the channel path (CHPID) is the device number's high byte; the physical
//!   port of a channel path is `c05076` + 4 hex digits of the host uuid + `00` + CHPID + `00`,
//!   the NPIV port of a device `c05076` + the same 4 digits + `01` + device number.
//! - **Reservation** (`get_volume_connector`): with `reserve`, the template (the given one, the
//!   storage provider's default, else the host default) gives the guest the devices it
//!   already holds from it, else the lowest-numbered idle device of each path, as long as at
//!   least `min_fcp_paths_count` paths have one (else the empty connector). Without
//!   `reserve`, the guest's reserved devices of the template without connections are
//!   released. The answer's `host` is the host's name and the userid (`HOST_USERID`), as the
//!   original joins the LPAR name and the userid.
//! - **Attach** (`volume_attach`): every FCP device must be reserved for the guest. The
//!   volume's VDI gets `other_config:zvm_volume=<LUN>` (so deleting a guest keeps it), and the
//!   guest a `Disk` VBD at its lowest free position with `other_config` `zvm_volume=<LUN>`,
//!   `zvm_fcp` (the devices), `zvm_wwpn` (the target ports that reach it) and
//!   `zvm_mount_point`, hot-plugged when the guest is logged on; each device's connections go
//!   up by one. Attaching a LUN the guest has is `300/30/300/3`; a LUN no given port reaches
//!   is `300/30/300/8`. `is_root_volume` only counts the connections (the boot volume is the
//!   guest's already). `os_version` and `multipath` are checked but change nothing: z/VM
//!   uses them to configure the volume inside the guest's Linux, which a disk QEMU presents
//!   does not need.
//! - **Detach** (`volume_detach`): unplugs and removes the guest's VBD of the LUN (a LUN the
//!   guest does not have is `300/30/300/4`) and takes one connection off each device;
//!   detaching from a guest that no longer exists only counts, as in the original, and so does
//!   `update_connections_only` or `is_root_volume`.
//! - **Boot map** (`volume_refresh_bootmap`): z/VM rewrites the boot record of a SCSI boot
//!   volume; QEMU boots a disk image directly, so nothing is written. The call checks what
//!   the rewrite needs (defined FCP devices, enough paths, the template's devices, an ignition
//!   file for RHCOS networks, a volume behind the LUN: `300/30/300/5` otherwise) and answers
//!   the paths, `{device: [target WWPNs that reach the volume]}`, as the original does. `wwid`
//!   is accepted and not needed: the LUN names the volume.
//! - **Templates** list in name order. A device is in at most one path of a template; a
//!   storage provider has at most one default template, and the host one. Template ids are
//!   uuids. Unknown templates are the SDK's `404/400/404/1`, unknown devices the volume
//!   module's `404/30/404/1`, conflicts with allocated devices `409/30/409/22..24`.
//! - **Arguments**: missing or malformed `connection_info` keys and malformed device lists are
//!   argument-format errors (`100/400/100/3`), where the original fails with internal errors;
//!   list arguments also come as the text of a Python list (`"['id1', 'id2']"`) or as
//!   comma-separated text, as the REST layer passes query parameters.
//!
//! `fcp.rs` holds the FCP inventory (templates, device usage, their keeping in the pool, device
//! lists, LUNs and WWPNs), `attach.rs` the calls on guests (connector, attach, detach, boot
//! map), `templates.rs` the template and device usage calls.

mod attach;
mod fcp;
mod templates;

use serde_json::Value as Json;

use super::args::{opt, req, Param};
use super::guest::with;
use super::{Backend, Call, Dispatched};
use crate::error::Module;
use attach::connection;

/// The module volume errors are raised by.
const V: Module = Module::Volume;

/// Serialises changes of the FCP inventory (reservations, connections, templates).
static FCP_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An optional parameter defaulting to `true`.
const fn opt_true(name: &'static str) -> Param {
    (name, Some(|| Json::Bool(true)))
}

/// Runs the volume, FCP device and FCP Multipath Template calls; answers any other call
/// back.
pub(super) async fn dispatch<'a>(b: &Backend, call: Call<'a>) -> Dispatched<'a> {
    Ok(match call.api {
        "volume_attach" => {
            with(
                call,
                "volume_attach",
                &[req("connection_info")],
                |a| async move { b.volume_attach(connection(&a)?).await },
            )
            .await
        }
        "volume_detach" => {
            with(
                call,
                "volume_detach",
                &[req("connection_info")],
                |a| async move { b.volume_detach(connection(&a)?).await },
            )
            .await
        }
        "volume_refresh_bootmap" => {
            const P: &[Param] = &[
                req("fcpchannels"),
                req("wwpns"),
                req("lun"),
                opt("wwid"),
                opt("transportfiles"),
                opt("guest_networks"),
                opt("fcp_template_id"),
            ];
            with(call, "volume_refresh_bootmap", P, |a| b.refresh_bootmap(a)).await
        }
        "get_volume_connector" => {
            const P: &[Param] = &[
                req("userid"),
                opt("reserve"),
                opt("fcp_template_id"),
                opt("sp_name"),
            ];
            with(call, "get_volume_connector", P, |a| b.volume_connector(a)).await
        }
        "get_fcp_templates" => {
            const P: &[Param] = &[
                opt("template_id_list"),
                opt("assigner_id"),
                opt("default_sp_list"),
                opt("host_default"),
            ];
            with(call, "get_fcp_templates", P, |a| async move {
                b.fcp_templates(&a)
            })
            .await
        }
        "get_fcp_templates_details" => {
            const P: &[Param] = &[
                opt("template_id_list"),
                opt("raw"),
                opt_true("statistics"),
                opt("sync_with_zvm"),
            ];
            with(call, "get_fcp_templates_details", P, |a| async move {
                b.fcp_templates_details(&a)
            })
            .await
        }
        "create_fcp_template" => {
            const P: &[Param] = &[
                req("name"),
                opt("description"),
                opt("fcp_devices"),
                opt("host_default"),
                opt("default_sp_list"),
                opt("min_fcp_paths_count"),
            ];
            with(call, "create_fcp_template", P, |a| b.create_template(a)).await
        }
        "edit_fcp_template" => {
            const P: &[Param] = &[
                req("fcp_template_id"),
                opt("name"),
                opt("description"),
                opt("fcp_devices"),
                opt("host_default"),
                opt("default_sp_list"),
                opt("min_fcp_paths_count"),
            ];
            with(call, "edit_fcp_template", P, |a| b.edit_template(a)).await
        }
        "delete_fcp_template" => {
            with(call, "delete_fcp_template", &[req("template_id")], |a| {
                b.delete_template(a)
            })
            .await
        }
        "get_fcp_usage" => {
            with(call, "get_fcp_usage", &[req("fcp")], |a| async move {
                b.fcp_usage(&a)
            })
            .await
        }
        "set_fcp_usage" => {
            const P: &[Param] = &[
                req("fcp"),
                req("userid"),
                req("reserved"),
                req("connections"),
                req("fcp_template_id"),
            ];
            with(call, "set_fcp_usage", P, |a| b.set_fcp_usage(a)).await
        }
        _ => return Err(call),
    })
}
