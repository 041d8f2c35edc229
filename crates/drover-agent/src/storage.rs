//! Storage repositories as directories of image files.
//!
//! A VDI is one file in its SR's directory, named by its location. A thin clone turns the source's
//! data into a hidden, read-only base file (`.base-<uuid>`) that both the source and the clone use
//! as their backing file; base files nobody uses any more are deleted. Files being made carry a
//! hidden scratch name until they are complete, so a crash never leaves a half-made image under a
//! real name, and scans never see one. Config drives are ISO 9660 images (`<name>.iso`) made by
//! `xorriso` from files staged in a hidden directory; exports of qcow2 images are converted to
//! an unlinked scratch file read by the caller.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use drover_host::{ByteSource, HostError, ImageFormat, ImageInfo, StorageInfo};
use tokio::io::AsyncWriteExt;

use crate::image::{self, allocated, create_qcow2, header, make_iso, qemu_img, scratch};
use crate::QemuHost;

/// Bytes kept free for metadata when checking space for a new image.
const HEADROOM: u64 = 1 << 20;

/// Bytes of an ISO 9660 image besides its files' data, at most, for a few files.
const ISO_OVERHEAD: u64 = 1 << 20;

/// Prefixes of hidden scratch files and directories: what a crash may leave behind.
const SCRATCH_FILES: [&str; 3] = [".new-", ".import-", ".export-"];
const SCRATCH_DIRS: [&str; 1] = [".files-"];

/// A scratch file or directory, removed when dropped (on every path, also when the future
/// making it is dropped) unless kept.
struct Scratch(Option<PathBuf>);

impl Scratch {
    fn new(path: PathBuf) -> Scratch {
        Scratch(Some(path))
    }

    fn path(&self) -> &Path {
        self.0.as_deref().expect("scratch path")
    }

    /// It is no scratch any more (it was renamed).
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

fn io_err(what: impl std::fmt::Display) -> impl Fn(std::io::Error) -> HostError {
    move |e| HostError::Failed(format!("{what}: {e}"))
}

/// Whether a directory entry is a VDI (not hidden scratch or base files).
fn is_image_name(name: &str) -> bool {
    !name.starts_with('.') && !name.contains('/')
}

impl QemuHost {
    /// The directory of an attached SR.
    pub(crate) fn sr_dir(&self, sr: &str) -> Result<PathBuf, HostError> {
        let dir = self
            .srs
            .lock()
            .expect("srs lock")
            .get(sr)
            .cloned()
            .ok_or_else(|| HostError::SrUnavailable {
                sr: sr.into(),
                reason: "not attached on this host".into(),
            })?;
        if !dir.is_dir() {
            return Err(HostError::SrUnavailable {
                sr: sr.into(),
                reason: format!("directory {} is gone", dir.display()),
            });
        }
        Ok(dir)
    }

    /// The file of image `location` in SR `sr`.
    pub(crate) fn image_path(&self, sr: &str, location: &str) -> Result<PathBuf, HostError> {
        if !is_image_name(location) || location.is_empty() {
            return Err(HostError::NoSuchImage(location.into()));
        }
        let path = self.sr_dir(sr)?.join(location);
        if !path.is_file() {
            return Err(HostError::NoSuchImage(location.into()));
        }
        Ok(path)
    }

    pub(crate) fn attach_sr(&self, sr: &str, location: &str) -> Result<StorageInfo, HostError> {
        let dir = if Path::new(location).is_absolute() {
            PathBuf::from(location)
        } else {
            self.config.data_dir.join(location)
        };
        std::fs::create_dir_all(&dir).map_err(|e| HostError::SrUnavailable {
            sr: sr.into(),
            reason: format!("{}: {e}", dir.display()),
        })?;
        // Leftovers of operations a crash interrupted, unless a running guest still writes one
        // (a live clone interrupted between redirecting the guest and renaming its new file).
        let open: Vec<PathBuf> = self
            .guests
            .lock()
            .expect("registry lock")
            .values()
            .flat_map(|g| g.open_files())
            .collect();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let scratch = SCRATCH_FILES.iter().any(|p| name.starts_with(p));
                if scratch && !open.contains(&e.path()) {
                    let _ = std::fs::remove_file(e.path());
                }
                if SCRATCH_DIRS.iter().any(|p| name.starts_with(p)) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        self.srs
            .lock()
            .expect("srs lock")
            .insert(sr.to_string(), dir.clone());
        collect_bases(&dir);
        self.sr_figures(sr)
    }

    pub(crate) fn sr_figures(&self, sr: &str) -> Result<StorageInfo, HostError> {
        let dir = self.sr_dir(sr)?;
        let st = nix::sys::statvfs::statvfs(&dir).map_err(|e| HostError::SrUnavailable {
            sr: sr.into(),
            reason: e.to_string(),
        })?;
        let free = st.blocks_available() as u64 * st.fragment_size() as u64;
        let used: u64 = std::fs::read_dir(&dir)
            .map_err(io_err(dir.display()))?
            .flatten()
            .map(|e| allocated(&e.path()))
            .sum();
        Ok(StorageInfo {
            physical_size: used + free,
            physical_utilisation: used,
        })
    }

    fn ensure_space(&self, sr: &str, bytes: u64) -> Result<(), HostError> {
        let f = self.sr_figures(sr)?;
        let available = f.physical_size - f.physical_utilisation;
        if bytes + HEADROOM > available {
            return Err(HostError::StorageFull {
                requested: bytes,
                available,
            });
        }
        Ok(())
    }

    pub(crate) fn scan(&self, sr: &str) -> Result<Vec<ImageInfo>, HostError> {
        let dir = self.sr_dir(sr)?;
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir)
            .map_err(io_err(dir.display()))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_image_name(&name) || !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            match info_of(&e.path(), &name) {
                Ok(info) => out.push(info),
                Err(err) => tracing::warn!(sr, file = name, %err, "not a usable image"),
            }
        }
        out.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }

    pub(crate) async fn create_image(
        &self,
        sr: &str,
        name: &str,
        size: u64,
        format: ImageFormat,
    ) -> Result<ImageInfo, HostError> {
        let dir = self.sr_dir(sr)?;
        let (location, fmt) = match format {
            ImageFormat::Qcow2 => (format!("{name}.qcow2"), "qcow2"),
            ImageFormat::Raw => (format!("{name}.raw"), "raw"),
        };
        if !is_image_name(name) || dir.join(&location).exists() {
            return Err(HostError::Failed(format!("image {location} exists")));
        }
        // Thin images take space as the guest writes: a new one must at least fit.
        self.ensure_space(sr, size)?;
        let tmp = scratch(&dir, "new");
        let made = match fmt {
            "qcow2" => create_qcow2(&tmp, size, None).await,
            _ => std::fs::File::create(&tmp)
                .and_then(|f| f.set_len(size))
                .map_err(io_err(tmp.display())),
        };
        finish(made, &tmp, &dir.join(&location))?;
        info_of(&dir.join(&location), &location)
    }

    pub(crate) async fn destroy_image(&self, sr: &str, location: &str) -> Result<(), HostError> {
        let path = self.image_path(sr, location)?;
        if self.image_user(&path).is_some() {
            return Err(HostError::ImageInUse(location.into()));
        }
        std::fs::remove_file(&path).map_err(io_err(path.display()))?;
        collect_bases(&self.sr_dir(sr)?);
        Ok(())
    }

    /// A thin clone: the source's current data becomes a shared read-only base.
    pub(crate) async fn clone_image(
        &self,
        sr: &str,
        src: &str,
        name: &str,
    ) -> Result<ImageInfo, HostError> {
        let path = self.image_path(sr, src)?;
        let dir = self.sr_dir(sr)?;
        let h = header(&path).map_err(io_err(path.display()))?;
        let location = format!("{name}.qcow2");
        let dst = dir.join(&location);
        if dst.exists() {
            return Err(HostError::Failed(format!("image {location} exists")));
        }
        self.ensure_space(sr, 0)?;
        let base_name = format!(".base-{}", uuid::Uuid::new_v4());
        let base = dir.join(&base_name);
        // The base is another name for the source's current file: whatever happens next,
        // the source keeps its data.
        std::fs::hard_link(&path, &base).map_err(io_err(base.display()))?;
        let result = async {
            let overlay = scratch(&dir, "new");
            create_qcow2(&overlay, h.virtual_size, Some((&base_name, h.format))).await?;
            match self.image_user(&path) {
                Some(guest) => guest.redirect_writes(&path, &overlay).await,
                None => Ok(()),
            }
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&overlay);
            })?;
            std::fs::rename(&overlay, &path).map_err(io_err(path.display()))?;
            let tmp = scratch(&dir, "new");
            let made = create_qcow2(&tmp, h.virtual_size, Some((&base_name, h.format))).await;
            finish(made, &tmp, &dst)
        }
        .await;
        if let Err(e) = result {
            collect_bases(&dir);
            return Err(e);
        }
        info_of(&dst, &location)
    }

    /// A full, independent copy (the backing chain flattened).
    pub(crate) async fn copy_image(
        &self,
        sr: &str,
        src: &str,
        dst_sr: &str,
        name: &str,
    ) -> Result<ImageInfo, HostError> {
        let path = self.image_path(sr, src)?;
        if self.image_user(&path).is_some() {
            return Err(HostError::ImageInUse(src.into()));
        }
        let dir = self.sr_dir(dst_sr)?;
        let location = format!("{name}.qcow2");
        let dst = dir.join(&location);
        self.ensure_space(dst_sr, chain_allocated(&path))?;
        let tmp = scratch(&dir, "new");
        let made = qemu_img(&[
            "convert",
            "-q",
            "-O",
            "qcow2",
            &path.to_string_lossy(),
            &tmp.to_string_lossy(),
        ])
        .await
        .map(|_| ());
        finish(made, &tmp, &dst)?;
        info_of(&dst, &location)
    }

    pub(crate) async fn resize_image(
        &self,
        sr: &str,
        location: &str,
        size: u64,
    ) -> Result<ImageInfo, HostError> {
        let path = self.image_path(sr, location)?;
        if self.image_user(&path).is_some() {
            return Err(HostError::ImageInUse(location.into()));
        }
        let h = header(&path).map_err(io_err(path.display()))?;
        if size < h.virtual_size {
            return Err(HostError::Failed(
                "shrinking a disk image is not supported".into(),
            ));
        }
        self.ensure_space(sr, size - h.virtual_size)?;
        qemu_img(&[
            "resize",
            "-q",
            "-f",
            h.format,
            &path.to_string_lossy(),
            &size.to_string(),
        ])
        .await?;
        info_of(&path, location)
    }

    pub(crate) fn image_figures(&self, sr: &str, location: &str) -> Result<ImageInfo, HostError> {
        info_of(&self.image_path(sr, location)?, location)
    }

    /// Replaces an image's contents with an upload, converted to the image's own format.
    pub(crate) async fn import_image(
        &self,
        sr: &str,
        location: &str,
        format: &str,
        mut data: ByteSource,
    ) -> Result<ImageInfo, HostError> {
        let path = self.image_path(sr, location)?;
        if self.image_user(&path).is_some() {
            return Err(HostError::ImageInUse(location.into()));
        }
        let bad = |reason: String| HostError::BadImage {
            image: location.into(),
            reason,
        };
        if !matches!(format, "raw" | "qcow2") {
            return Err(bad(format!("unknown format {format:?} (raw or qcow2)")));
        }
        let target = header(&path).map_err(io_err(path.display()))?;
        let dir = self.sr_dir(sr)?;
        let upload = scratch(&dir, "import");
        let received = async {
            let mut f = tokio::fs::File::create(&upload)
                .await
                .map_err(io_err(upload.display()))?;
            let mut total = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut data, &mut buf)
                    .await
                    .map_err(|e| HostError::Failed(format!("reading the upload: {e}")))?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if format == "raw" && total > target.virtual_size {
                    return Err(bad(format!(
                        "the upload is larger than the {}-byte disk",
                        target.virtual_size
                    )));
                }
                if total % (64 << 20) < n as u64 {
                    self.ensure_space(sr, n as u64)?;
                }
                f.write_all(&buf[..n])
                    .await
                    .map_err(io_err(upload.display()))?;
            }
            f.sync_all().await.map_err(io_err(upload.display()))?;
            Ok(total)
        }
        .await;
        let result = async {
            received?;
            let h = header(&upload).map_err(io_err(upload.display()))?;
            if format == "qcow2" {
                if h.format != "qcow2" {
                    return Err(bad("the upload is not a qcow2 image".into()));
                }
                if h.backing.is_some() {
                    return Err(bad("an uploaded image must not have a backing file".into()));
                }
                if h.virtual_size > target.virtual_size {
                    return Err(bad(format!(
                        "the image's {} bytes do not fit the {}-byte disk",
                        h.virtual_size, target.virtual_size
                    )));
                }
                qemu_img(&["check", "-q", "-f", "qcow2", &upload.to_string_lossy()])
                    .await
                    .map_err(|e| bad(e.to_string()))?;
            }
            let out = scratch(&dir, "new");
            let made = qemu_img(&[
                "convert",
                "-q",
                "-f",
                format,
                "-O",
                target.format,
                &upload.to_string_lossy(),
                &out.to_string_lossy(),
            ])
            .await
            .map(|_| ());
            let made = match made {
                Ok(()) => qemu_img(&[
                    "resize",
                    "-q",
                    "-f",
                    target.format,
                    &out.to_string_lossy(),
                    &target.virtual_size.to_string(),
                ])
                .await
                .map(|_| ()),
                Err(e) => Err(e),
            };
            finish(made, &out, &path)
        }
        .await;
        let _ = std::fs::remove_file(&upload);
        result?;
        collect_bases(&dir);
        info_of(&path, location)
    }
}

impl QemuHost {
    /// A read-only ISO 9660 image `<name>.iso` of `files`, replacing one of that name: the
    /// files are staged in a hidden directory of the SR, the image is made under a scratch name
    /// and renamed over the old one, so a guest that has the old one open keeps reading it.
    pub(crate) async fn iso_image(
        &self,
        sr: &str,
        name: &str,
        label: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<ImageInfo, HostError> {
        drover_host::check_image_files(name, label, files)?;
        if name.is_empty() || !is_image_name(name) {
            return Err(HostError::Failed(format!("bad image name {name:?}")));
        }
        let dir = self.sr_dir(sr)?;
        let location = format!("{name}.iso");
        let dst = dir.join(&location);
        if self.image_user(&dst).is_some() {
            return Err(HostError::ImageInUse(location));
        }
        // The staged files and the image: about twice the data.
        let data: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
        self.ensure_space(sr, 2 * data + ISO_OVERHEAD)?;
        let stage = Scratch::new(scratch(&dir, "files"));
        std::fs::create_dir(stage.path()).map_err(io_err(stage.path().display()))?;
        for (path, contents) in files {
            let file = stage.path().join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent.display()))?;
            }
            std::fs::write(&file, contents).map_err(io_err(file.display()))?;
        }
        let out = Scratch::new(scratch(&dir, "new"));
        make_iso(stage.path(), label, out.path()).await?;
        drop(stage);
        std::fs::File::open(out.path())
            .and_then(|f| f.sync_all())
            .map_err(io_err(out.path().display()))?;
        std::fs::rename(out.path(), &dst).map_err(io_err(dst.display()))?;
        out.keep();
        info_of(&dst, &location)
    }

    /// What a guest sees of an image, as raw bytes: a raw image's own file, or a qcow2 image
    /// (with its backing chain) converted to an unnamed scratch file, which goes when the
    /// stream is dropped.
    pub(crate) async fn export_image(
        &self,
        sr: &str,
        location: &str,
    ) -> Result<ByteSource, HostError> {
        let path = self.image_path(sr, location)?;
        if self.image_user(&path).is_some() {
            return Err(HostError::ImageInUse(location.into()));
        }
        let h = header(&path).map_err(|e| HostError::BadImage {
            image: location.into(),
            reason: e.to_string(),
        })?;
        if h.format == "raw" {
            let f = tokio::fs::File::open(&path)
                .await
                .map_err(io_err(path.display()))?;
            return Ok(Box::new(f));
        }
        let dir = self.sr_dir(sr)?;
        // qemu-img writes the raw file sparse: it takes what the chain has allocated.
        self.ensure_space(sr, chain_allocated(&path))?;
        let tmp = Scratch::new(scratch(&dir, "export"));
        qemu_img(&[
            "convert",
            "-q",
            "-f",
            h.format,
            "-O",
            "raw",
            &path.to_string_lossy(),
            &tmp.path().to_string_lossy(),
        ])
        .await?;
        let f = tokio::fs::File::open(tmp.path())
            .await
            .map_err(io_err(tmp.path().display()))?;
        // Unlinked: the open file keeps its data until the reader is done with it.
        drop(tmp);
        Ok(Box::new(f))
    }
}

/// Moves a finished scratch file to its real name, or removes it when making it failed.
fn finish(made: Result<(), HostError>, tmp: &Path, dst: &Path) -> Result<(), HostError> {
    match made {
        Ok(()) => std::fs::rename(tmp, dst).map_err(io_err(dst.display())),
        Err(e) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
    }
}

fn info_of(path: &Path, location: &str) -> Result<ImageInfo, HostError> {
    let h = header(path).map_err(|e| HostError::BadImage {
        image: location.into(),
        reason: e.to_string(),
    })?;
    Ok(ImageInfo {
        location: location.into(),
        virtual_size: h.virtual_size,
        physical_utilisation: allocated(path),
    })
}

/// Bytes allocated by an image and every file of its backing chain.
fn chain_allocated(path: &Path) -> u64 {
    let mut total = 0;
    let mut cur = Some(path.to_path_buf());
    let mut seen = HashSet::new();
    while let Some(p) = cur.take() {
        if !seen.insert(p.clone()) {
            break;
        }
        total += allocated(&p);
        cur = header(&p)
            .ok()
            .and_then(|h| h.backing)
            .map(|b| p.parent().unwrap_or(Path::new("/")).join(b));
    }
    total
}

/// Deletes base files that no image (or other base) uses any more, and orphaned scratch files.
pub(crate) fn collect_bases(dir: &Path) {
    loop {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let files: Vec<(String, PathBuf)> = entries
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        let used: HashSet<String> = files
            .iter()
            .filter_map(|(_, p)| header(p).ok().and_then(|h| h.backing))
            .collect();
        let unused: Vec<&PathBuf> = files
            .iter()
            .filter(|(n, _)| n.starts_with(".base-") && !used.contains(n))
            .map(|(_, p)| p)
            .collect();
        if unused.is_empty() {
            return;
        }
        for p in unused {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The image module's file-name rule, for the guest runtime.
pub(crate) fn image_format(path: &Path) -> Result<&'static str, HostError> {
    image::header(path)
        .map(|h| h.format)
        .map_err(|e| HostError::BadImage {
            image: path.display().to_string(),
            reason: e.to_string(),
        })
}
