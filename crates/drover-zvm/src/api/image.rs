//! Images: the image repository is the default disk pool's SR; an image is a VDI there marked
//! `other_config:zvm_image=<name>` with its metadata (`zvm_os_version`, `zvm_md5sum`,
//! `zvm_disk_type`, `zvm_root_disk_units`, `zvm_import_time`, `zvm_capture_type`). An image
//! captured with all disks keeps one VDI per minidisk (`zvm_image_vdev`). Deploy puts a copy of
//! the image on the guest's root minidisk (a thin clone when both are in one SR).

use std::path::PathBuf;

use drover_core::{Obj, Op, Reply, VdiAction, VmAction};
use drover_model::Value;
use futures_util::TryStreamExt;
use md5::{Digest, Md5};
use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::args::{opt, req, Param};
use super::disk::cylinders;
use super::disk::Minidisk;
use super::guest::{is_on, with};
use super::{Backend, Call, Dispatched, NewVbd};
use crate::error::{Module, ZvmError, ZvmResult};

const I: Module = Module::Image;
const G: Module = Module::Guest;
pub(super) async fn dispatch<'a>(b: &Backend, call: Call<'a>) -> Dispatched<'a> {
    Ok(match call.api {
        "image_import" => {
            const P: &[Param] = &[
                req("image_name"),
                req("url"),
                req("image_meta"),
                opt("remote_host"),
            ];
            with(call, "image_import", P, |a| async move {
                let name = a.str("image_name")?;
                let url = a.str("url")?;
                let meta = a.get("image_meta").clone();
                b.image_import(&name, &url, &meta).await
            })
            .await
        }
        "image_query" => {
            with(call, "image_query", &[opt("imagename")], |a| async move {
                b.image_query(a.opt_str("imagename")?.as_deref())
            })
            .await
        }
        "image_delete" => {
            with(call, "image_delete", &[req("image_name")], |a| async move {
                let name = a.str("image_name")?;
                for vdi in b.image_vdis(&name) {
                    b.destroy(I, "VDI", &vdi.r).await?;
                }
                Ok(Json::Null)
            })
            .await
        }
        "image_export" => {
            const P: &[Param] = &[req("image_name"), req("dest_url"), opt("remote_host")];
            with(call, "image_export", P, |a| async move {
                b.image_export(&a.str("image_name")?, &a.str("dest_url")?)
                    .await
            })
            .await
        }
        "image_get_root_disk_size" => {
            with(
                call,
                "image_get_root_disk_size",
                &[req("image_name")],
                |a| async move {
                    let name = a.str("image_name")?;
                    let image = b.image(&name)?;
                    Ok(json!(image.other("zvm_root_disk_units").unwrap_or("")))
                },
            )
            .await
        }
        "guest_deploy" => {
            const P: &[Param] = &[
                req("userid"),
                req("image_name"),
                opt("transportfiles"),
                opt("remotehost"),
                opt("vdev"),
                opt("hostname"),
                opt("skipdiskcopy"),
            ];
            with(call, "guest_deploy", P, |a| async move {
                let _slot = b.disk_copy_slot("deploy", &a.str("userid")?)?;
                b.guest_deploy(
                    &a.userid("userid")?,
                    &a.str("image_name")?,
                    a.opt_str("transportfiles")?,
                    a.opt_str("vdev")?,
                    a.opt_str("hostname")?,
                    a.bool("skipdiskcopy")?,
                )
                .await
            })
            .await
        }
        "guest_capture" => {
            const P: &[Param] = &[
                req("userid"),
                req("image_name"),
                opt("capture_type"),
                opt("compress_level"),
            ];
            with(call, "guest_capture", P, |a| async move {
                let _slot = b.disk_copy_slot("capture", &a.str("userid")?)?;
                let all = match a.opt_str("capture_type")?.as_deref() {
                    None | Some("rootonly") => false,
                    Some("alldisks") => true,
                    Some(t) => {
                        return Err(ZvmError::ArgFormat(format!(
                            "capture_type {t} must be rootonly or alldisks"
                        )))
                    }
                };
                b.guest_capture(&a.userid("userid")?, &a.str("image_name")?, all)
                    .await
            })
            .await
        }
        "guest_grow_root_volume" => {
            with(
                call,
                "guest_grow_root_volume",
                &[req("userid"), req("os_version")],
                |a| async move {
                    let vm = b.guest(&a.userid("userid")?)?;
                    a.str("os_version")?;
                    b.set_other(G, "VM", &vm.r, "zvm_grow_root", Some("true"))
                        .await?;
                    Ok(Json::Null)
                },
            )
            .await
        }
        _ => return Err(call),
    })
}

impl Backend {
    /// A slot among the deploys and captures allowed at once, or `503`.
    fn disk_copy_slot(
        &self,
        action: &str,
        userid: &str,
    ) -> ZvmResult<tokio::sync::SemaphorePermit<'_>> {
        self.disk_copies
            .try_acquire()
            .map_err(|_| ZvmError::Unavailable(format!("action: '{action}', userid: {userid}")))
    }

    /// The VDIs of an image (name compared ignoring case), root first.
    fn image_vdis(&self, name: &str) -> Vec<std::sync::Arc<Obj>> {
        let mut all: Vec<_> = self.engine.read(|db| {
            db.all("VDI")
                .filter(|v| {
                    v.other("zvm_image")
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
                .cloned()
                .collect()
        });
        all.sort_by_key(|v| v.other("zvm_image_vdev").map(String::from));
        all
    }

    /// An image's root VDI, or `404`.
    fn image(&self, name: &str) -> ZvmResult<std::sync::Arc<Obj>> {
        self.image_vdis(name)
            .into_iter()
            .next()
            .ok_or_else(|| ZvmError::NotExist {
                module: I,
                what: format!("Image with name: {name}"),
            })
    }

    /// The image repository SR.
    fn image_sr(&self) -> ZvmResult<String> {
        Ok(self.pool(None)?.sr.r.to_string())
    }

    async fn image_import(&self, name: &str, url: &str, meta: &Json) -> ZvmResult {
        if !self.image_vdis(name).is_empty() {
            return Err(ZvmError::Failed {
                module: I,
                rs: 13,
                msg: format!(
                    "Image import error: image name {name} already exist in image database"
                ),
            });
        }
        let os_version = meta
            .get("os_version")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ZvmError::MissingOption("os_version".into()))?
            .to_string();
        let staged = self.stage(url).await?;
        let result = self.import_staged(name, &staged, meta, &os_version).await;
        let _ = tokio::fs::remove_file(&staged.path).await;
        result
    }

    /// Fetches an image into the work directory, computing its md5 on the way.
    async fn stage(&self, url: &str) -> ZvmResult<Staged> {
        let path = self
            .config
            .work_dir
            .join(format!("staging-{}", drover_core::txn::new_uuid()));
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(|e| ZvmError::internal(I, format!("{}: {e}", path.display())))?;
        let mut md5 = Md5::new();
        let mut size = 0u64;
        let mut head = Vec::new();
        let fail = |rs: i64, e: String| ZvmError::Failed {
            module: I,
            rs,
            msg: match rs {
                9 => format!("Import image from http server failed with reason {e}"),
                _ => format!("Import image from local file system failed with error {e}"),
            },
        };
        let mut take = |chunk: &[u8]| {
            md5.update(chunk);
            size += chunk.len() as u64;
            if head.len() < 512 {
                head.extend_from_slice(&chunk[..chunk.len().min(512 - head.len())]);
            }
        };
        if let Some(file) = url.strip_prefix("file://") {
            let mut f = tokio::fs::File::open(file)
                .await
                .map_err(|e| fail(12, format!("{file}: {e}")))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f
                    .read(&mut buf)
                    .await
                    .map_err(|e| fail(12, e.to_string()))?;
                if n == 0 {
                    break;
                }
                take(&buf[..n]);
                out.write_all(&buf[..n])
                    .await
                    .map_err(|e| fail(12, e.to_string()))?;
            }
        } else {
            let resp = reqwest::get(url)
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| fail(9, e.to_string()))?;
            let mut body = resp.bytes_stream();
            while let Some(chunk) = body.try_next().await.map_err(|e| fail(9, e.to_string()))? {
                take(&chunk);
                out.write_all(&chunk)
                    .await
                    .map_err(|e| fail(9, e.to_string()))?;
            }
        }
        out.flush().await.map_err(|e| fail(12, e.to_string()))?;
        Ok(Staged {
            path,
            size,
            md5: format!("{:x}", md5.finalize()),
            qcow2_size: qcow2_virtual_size(&head),
        })
    }

    async fn import_staged(
        &self,
        name: &str,
        staged: &Staged,
        meta: &Json,
        os_version: &str,
    ) -> ZvmResult {
        if let Some(want) = meta.get("md5sum").and_then(|v| v.as_str()) {
            if !want.eq_ignore_ascii_case(&staged.md5) {
                return Err(ZvmError::Failed {
                    module: I,
                    rs: 4,
                    msg: "Image import error: The md5sum after import is not same as source \
                          image, it is possible that the image has been broken during import"
                        .into(),
                });
            }
        }
        let disk_type = meta
            .get("disk_type")
            .and_then(|v| v.as_str())
            .unwrap_or("DASD")
            .to_uppercase();
        let (format, virtual_size) = match staged.qcow2_size {
            Some(v) => ("qcow2", v as i64),
            None => ("raw", staged.size as i64),
        };
        let units = if disk_type == "SCSI" {
            format!("{}:BLK", (virtual_size + 511) / 512)
        } else {
            format!("{}:CYL", cylinders(virtual_size))
        };
        let size = staged.size.to_string();
        let now = drover_core::now().to_string();
        let sr = self.image_sr()?;
        let other_config = Value::string_map([
            ("zvm_image", name),
            ("zvm_os_version", os_version),
            ("zvm_md5sum", staged.md5.as_str()),
            ("zvm_disk_type", disk_type.as_str()),
            ("zvm_root_disk_units", units.as_str()),
            ("zvm_image_size", size.as_str()),
            ("zvm_import_time", now.as_str()),
            ("zvm_capture_type", "rootonly"),
        ]);
        let description = format!("z/VM image {name}");
        let vdi = self
            .create_vdi(I, &sr, name, &description, virtual_size, other_config)
            .await?;
        let file = tokio::fs::File::open(&staged.path)
            .await
            .map_err(|e| ZvmError::internal(I, e.to_string()))?;
        if let Err(e) = self
            .engine
            .import_vdi(&self.caller, &vdi, format, Box::new(file))
            .await
        {
            let _ = self.destroy(I, "VDI", &vdi).await;
            return Err(ZvmError::Failed {
                module: I,
                rs: 14,
                msg: format!("Image import error: {e}"),
            });
        }
        Ok(Json::Null)
    }

    fn image_query(&self, name: Option<&str>) -> ZvmResult {
        let roots: Vec<std::sync::Arc<Obj>> = match name {
            Some(n) => vec![self.image(n)?],
            None => {
                let mut seen = std::collections::BTreeMap::new();
                for v in self.engine.read(|db| {
                    db.all("VDI")
                        .filter(|v| v.other("zvm_image").is_some())
                        .filter(|v| v.other("zvm_image_vdev").is_none_or(|d| d == "0100"))
                        .cloned()
                        .collect::<Vec<_>>()
                }) {
                    seen.insert(v.other("zvm_image").unwrap_or("").to_lowercase(), v);
                }
                seen.into_values().collect()
            }
        };
        Ok(Json::Array(
            roots
                .iter()
                .map(|v| {
                    let o = |k: &str| v.other(k).unwrap_or("").to_string();
                    json!({
                        "imagename": o("zvm_image"),
                        "imageosdistro": o("zvm_os_version"),
                        "md5sum": o("zvm_md5sum"),
                        "disk_size_units": o("zvm_root_disk_units"),
                        "image_size_in_bytes": o("zvm_image_size"),
                        "type": o("zvm_capture_type"),
                        "comments": if o("zvm_comments").is_empty() { Json::Null } else { json!(o("zvm_comments")) },
                        "last_access_time": o("zvm_import_time").parse::<f64>().unwrap_or(0.0),
                    })
                })
                .collect(),
        ))
    }

    async fn image_export(&self, name: &str, dest_url: &str) -> ZvmResult {
        let image = self.image(name).map_err(|_| ZvmError::Failed {
            module: I,
            rs: 20,
            msg: format!("The image record of {name} does not exist"),
        })?;
        let dest = dest_url.strip_prefix("file://").ok_or_else(|| {
            ZvmError::ArgFormat(format!("dest_url {dest_url} must be a file:// URL"))
        })?;
        let fail = |e: String| ZvmError::Failed {
            module: I,
            rs: 22,
            msg: format!("Export image to local file system failed: {e}"),
        };
        let mut data = self
            .engine
            .export_vdi(&self.caller, &image.r)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let dest = PathBuf::from(dest);
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        }
        let mut out = tokio::fs::File::create(&dest)
            .await
            .map_err(|e| fail(format!("{}: {e}", dest.display())))?;
        tokio::io::copy(&mut data, &mut out)
            .await
            .map_err(|e| fail(e.to_string()))?;
        out.sync_all().await.map_err(|e| fail(e.to_string()))?;
        Ok(json!({
            "image_name": image.other("zvm_image").unwrap_or(name),
            "image_path": dest_url,
            "os_version": image.other("zvm_os_version").unwrap_or(""),
            "md5sum": image.other("zvm_md5sum").unwrap_or(""),
        }))
    }

    async fn guest_deploy(
        &self,
        userid: &str,
        image_name: &str,
        transportfiles: Option<String>,
        vdev: Option<String>,
        hostname: Option<String>,
        skip_copy: bool,
    ) -> ZvmResult {
        let vm = self.guest(userid)?;
        let images = self.image_vdis(image_name);
        if images.is_empty() {
            return Err(ZvmError::Failed {
                module: I,
                rs: 20,
                msg: format!("The image record of {image_name} does not exist"),
            });
        }
        let deploy_error = |msg: String| ZvmError::Failed {
            module: G,
            rs: 14,
            msg: format!("Failed to deploy image to userid: '{userid}', {msg}"),
        };
        if is_on(&vm) {
            return Err(deploy_error("the guest is logged on; stop it first".into()));
        }
        let disks = self.minidisks(&vm);
        let root_vdev = vdev
            .as_deref()
            .and_then(super::disk::parse_vdev)
            .or_else(|| disks.iter().find(|d| d.boot).map(|d| d.number))
            .unwrap_or(0x100);
        if !skip_copy {
            for image in &images {
                let target = match image.other("zvm_image_vdev") {
                    Some(v) if images.len() > 1 => super::disk::parse_vdev(v),
                    _ => Some(root_vdev),
                };
                let disk = target.and_then(|t| disks.iter().find(|d| d.number == t));
                let Some(disk) = disk else {
                    return Err(deploy_error(format!(
                        "the guest has no minidisk {:04X} to deploy to",
                        target.unwrap_or(root_vdev)
                    )));
                };
                if image.int("virtual_size") > disk.size {
                    return Err(deploy_error(format!(
                        "image {image_name} ({} bytes) does not fit minidisk {} ({} bytes)",
                        image.int("virtual_size"),
                        disk.vdev,
                        disk.size
                    )));
                }
                self.replace_disk(&vm, disk, image).await?;
            }
        }
        let os = images[0].other("zvm_os_version").unwrap_or("").to_string();
        self.set_other(G, "VM", &vm.r, "zvm_image", Some(image_name))
            .await?;
        self.set_other(G, "VM", &vm.r, "zvm_os_version", Some(&os))
            .await?;
        self.set_other(G, "VM", &vm.r, "zvm_hostname", hostname.as_deref())
            .await?;
        self.set_other(
            G,
            "VM",
            &vm.r,
            "zvm_transportfiles",
            transportfiles.as_deref(),
        )
        .await?;
        self.refresh_config_drive(&vm.r).await?;
        Ok(Json::Null)
    }

    /// Puts a copy of `image` in place of the minidisk `disk`, keeping its vdev, position,
    /// pool and size.
    async fn replace_disk(&self, vm: &Obj, disk: &Minidisk, image: &Obj) -> ZvmResult<()> {
        let old_vdi = self.obj(G, "VDI", &disk.vdi)?;
        let old_vbd = self.obj(G, "VBD", &disk.vbd)?;
        let target_sr = old_vdi.str("SR").to_string();
        let action = if image.str("SR") == target_sr {
            VdiAction::Clone
        } else {
            VdiAction::Copy { sr: target_sr }
        };
        let copy = self
            .op_ref(
                G,
                Op::Vdi {
                    vdi: image.r.to_string(),
                    action,
                },
            )
            .await?;
        if let Err(e) = self
            .finish_copy(vm, &copy, &old_vdi, &old_vbd, disk.size)
            .await
        {
            let _ = self.destroy(G, "VDI", &copy).await;
            return Err(e);
        }
        self.destroy(G, "VBD", &old_vbd.r).await?;
        self.destroy(G, "VDI", &old_vdi.r).await
    }

    async fn finish_copy(
        &self,
        vm: &Obj,
        copy: &str,
        old_vdi: &Obj,
        old_vbd: &Obj,
        size: i64,
    ) -> ZvmResult<()> {
        if self.obj(G, "VDI", copy)?.int("virtual_size") < size {
            self.op(
                G,
                Op::Vdi {
                    vdi: copy.into(),
                    action: VdiAction::Resize { size },
                },
            )
            .await?;
        }
        let (name, description) = (old_vdi.str("name_label"), old_vdi.str("name_description"));
        self.set(G, "VDI", copy, "name_label", Value::str(name))
            .await?;
        self.set(G, "VDI", copy, "name_description", Value::str(description))
            .await?;
        self.set(
            G,
            "VDI",
            copy,
            "other_config",
            old_vdi.get("other_config").clone(),
        )
        .await?;
        self.set(G, "VBD", &old_vbd.r, "userdevice", Value::str("15"))
            .await?;
        let disk = NewVbd {
            vm: &vm.r,
            vdi: copy,
            userdevice: old_vbd.str("userdevice"),
            bootable: old_vbd.bool("bootable"),
            cd: false,
            read_only: false,
            other_config: old_vbd.get("other_config").clone(),
        };
        self.create_vbd(G, disk).await.map(|_| ())
    }

    async fn guest_capture(&self, userid: &str, image_name: &str, all: bool) -> ZvmResult {
        let vm = self.guest(userid)?;
        let fail = |msg: String| ZvmError::Failed {
            module: G,
            rs: 5,
            msg: format!("Failed to capture userid {userid} to generate image, error: {msg}"),
        };
        if !self.image_vdis(image_name).is_empty() {
            return Err(fail(format!("image {image_name} already exists")));
        }
        let disks = self.minidisks(&vm);
        let chosen: Vec<&Minidisk> = if all {
            disks.iter().collect()
        } else {
            disks
                .iter()
                .find(|d| d.boot)
                .or(disks.first())
                .into_iter()
                .collect()
        };
        if chosen.is_empty() {
            return Err(fail("the guest has no minidisk".into()));
        }
        let was_on = is_on(&vm);
        if was_on {
            self.op(
                G,
                Op::Vm {
                    vm: vm.r.to_string(),
                    action: VmAction::ShutdownWithin { secs: 60 },
                },
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        }
        let result = self.capture_disks(&vm, image_name, &chosen, all).await;
        if was_on {
            self.op(
                G,
                Op::Vm {
                    vm: vm.r.to_string(),
                    action: VmAction::Start {
                        paused: false,
                        force: false,
                    },
                },
            )
            .await?;
        }
        result.map_err(|e| fail(e.message()))
    }

    async fn capture_disks(
        &self,
        vm: &Obj,
        image_name: &str,
        disks: &[&Minidisk],
        all: bool,
    ) -> ZvmResult {
        let repo = self.image_sr()?;
        let os = vm.other("zvm_os_version").unwrap_or("").to_string();
        let mut made: Vec<String> = Vec::new();
        for d in disks {
            let copy = match self
                .op(
                    G,
                    Op::Vdi {
                        vdi: d.vdi.clone(),
                        action: VdiAction::Copy { sr: repo.clone() },
                    },
                )
                .await
            {
                Ok(Reply::Ref(r)) => r.to_string(),
                Ok(other) => {
                    return Err(ZvmError::internal(G, format!("unexpected reply {other:?}")))
                }
                Err(e) => {
                    for v in made {
                        let _ = self.destroy(I, "VDI", &v).await;
                    }
                    return Err(e);
                }
            };
            let size = self.obj(I, "VDI", &copy)?.int("virtual_size");
            let units = format!("{}:CYL", cylinders(size));
            let now = drover_core::now().to_string();
            let kind = if all { "alldisks" } else { "rootonly" };
            let md5 = self.vdi_md5(&copy).await.unwrap_or_default();
            let bytes = size.to_string();
            self.set(I, "VDI", &copy, "name_label", Value::str(image_name))
                .await?;
            self.set(
                I,
                "VDI",
                &copy,
                "other_config",
                Value::string_map([
                    ("zvm_image", image_name),
                    ("zvm_os_version", os.as_str()),
                    ("zvm_md5sum", md5.as_str()),
                    ("zvm_disk_type", "DASD"),
                    ("zvm_root_disk_units", units.as_str()),
                    ("zvm_image_size", bytes.as_str()),
                    ("zvm_import_time", now.as_str()),
                    ("zvm_capture_type", kind),
                    ("zvm_image_vdev", d.vdev.as_str()),
                ]),
            )
            .await?;
            made.push(copy);
        }
        Ok(Json::Null)
    }

    /// The md5 of a VDI's contents.
    async fn vdi_md5(&self, vdi: &str) -> ZvmResult<String> {
        let mut data = self
            .engine
            .export_vdi(&self.caller, vdi)
            .await
            .map_err(|e| ZvmError::internal(I, e.to_string()))?;
        let mut md5 = Md5::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = data
                .read(&mut buf)
                .await
                .map_err(|e| ZvmError::internal(I, e.to_string()))?;
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
        }
        Ok(format!("{:x}", md5.finalize()))
    }
}

/// An image fetched into the work directory.
struct Staged {
    path: PathBuf,
    size: u64,
    md5: String,
    qcow2_size: Option<u64>,
}

/// The virtual size of a qcow2 image from its header, if `head` starts one.
fn qcow2_virtual_size(head: &[u8]) -> Option<u64> {
    if head.len() < 32 || &head[..4] != b"QFI\xfb" {
        return None;
    }
    Some(u64::from_be_bytes(head[24..32].try_into().ok()?))
}
