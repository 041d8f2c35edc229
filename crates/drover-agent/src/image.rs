//! Disk image files: format detection from their headers and the `qemu-img` operations.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use drover_host::HostError;
use tokio::process::Command;

/// The qcow2 magic, `QFI\xfb`.
const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// What the first bytes of an image file say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// `qcow2` or `raw`.
    pub format: &'static str,
    /// Size the guest sees.
    pub virtual_size: u64,
    /// The backing file name, as written in a qcow2 header.
    pub backing: Option<String>,
}

/// Reads an image file's header (without starting a process).
pub(crate) fn header(path: &Path) -> std::io::Result<Header> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while n < buf.len() {
        let got = f.read(&mut buf[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    buf.truncate(n);
    if n < 72 || buf[..4] != QCOW2_MAGIC {
        return Ok(Header {
            format: "raw",
            virtual_size: len,
            backing: None,
        });
    }
    let be64 = |o: usize| u64::from_be_bytes(buf[o..o + 8].try_into().expect("8 bytes"));
    let be32 = |o: usize| u32::from_be_bytes(buf[o..o + 4].try_into().expect("4 bytes"));
    let offset = be64(8) as usize;
    let size = be32(16) as usize;
    let backing = if offset == 0 || size == 0 {
        None
    } else if offset + size <= buf.len() && size <= 1023 {
        Some(String::from_utf8_lossy(&buf[offset..offset + size]).into_owned())
    } else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "qcow2 backing file name out of range",
        ));
    };
    Ok(Header {
        format: "qcow2",
        virtual_size: be64(24),
        backing,
    })
}

/// Bytes a file takes on its filesystem.
pub(crate) fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path)
        .map(|m| m.blocks() * 512)
        .unwrap_or(0)
}

/// Runs `qemu-img` with `args`; its error output becomes the error.
pub(crate) async fn qemu_img(args: &[&str]) -> Result<String, HostError> {
    let out = Command::new("qemu-img")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| HostError::Failed(format!("cannot run qemu-img: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HostError::Failed(format!(
            "qemu-img {}: {}",
            args.first().copied().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Makes the ISO 9660 image `out` of the directory tree under `root` with `xorriso`: volume
/// label `label`, Rock Ridge names (with owners and modes made uniform: root, readable by all)
/// and Joliet names. Its error output becomes the error.
pub(crate) async fn make_iso(root: &Path, label: &str, out: &Path) -> Result<(), HostError> {
    let result = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-input-charset", "utf-8"])
        .args(["-V", label, "-r", "-J", "-joliet-long", "-o"])
        .arg(out)
        .arg(root)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => HostError::Unsupported(
                "making ISO images needs xorriso (the Debian package xorriso)".into(),
            ),
            _ => HostError::Failed(format!("cannot run xorriso: {e}")),
        })?;
    if result.status.success() {
        Ok(())
    } else {
        Err(HostError::Failed(format!(
            "xorriso: {}",
            String::from_utf8_lossy(&result.stderr).trim()
        )))
    }
}

/// Creates a qcow2 image of `size` bytes, over `backing` (a file name in the same directory)
/// when given. The backing file is not opened, so it may be in use by a running guest.
pub(crate) async fn create_qcow2(
    path: &Path,
    size: u64,
    backing: Option<(&str, &str)>,
) -> Result<(), HostError> {
    let p = path.to_string_lossy();
    let size = size.to_string();
    match backing {
        None => qemu_img(&["create", "-q", "-f", "qcow2", &p, &size]).await?,
        Some((name, format)) => {
            qemu_img(&[
                "create", "-q", "-f", "qcow2", "-u", "-b", name, "-F", format, &p, &size,
            ])
            .await?
        }
    };
    Ok(())
}

/// A path next to `path` for a file being made, hidden from scans.
pub(crate) fn scratch(dir: &Path, what: &str) -> PathBuf {
    dir.join(format!(".{what}-{}", uuid::Uuid::new_v4()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn headers_of_raw_and_qcow2_with_backing() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("a.raw");
        std::fs::write(&raw, vec![1u8; 3000]).unwrap();
        let h = header(&raw).unwrap();
        assert_eq!((h.format, h.virtual_size, h.backing), ("raw", 3000, None));

        let base = dir.path().join("base.qcow2");
        create_qcow2(&base, 1 << 30, None).await.unwrap();
        let h = header(&base).unwrap();
        assert_eq!((h.format, h.virtual_size), ("qcow2", 1 << 30));
        assert_eq!(h.backing, None);

        let top = dir.path().join("top.qcow2");
        create_qcow2(&top, 1 << 30, Some(("base.qcow2", "qcow2")))
            .await
            .unwrap();
        let h = header(&top).unwrap();
        assert_eq!(h.backing.as_deref(), Some("base.qcow2"));
        assert!(allocated(&top) < 1 << 20);
    }

    #[tokio::test]
    async fn qemu_img_errors_carry_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let err = qemu_img(&["info", &dir.path().join("none").to_string_lossy()])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("No such file"), "{err}");
    }
}
