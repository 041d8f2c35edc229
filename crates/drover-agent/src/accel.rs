//! Choosing the accelerator: KVM when guests really run under it, TCG otherwise.
//!
//! `/dev/kvm` opening is not enough: under nested virtualization a guest kernel can hang before
//! printing a line. The probe boots a Linux kernel under KVM with an early serial console and
//! accepts KVM only if the kernel announces itself within a few seconds. The verdict is cached,
//! keyed by the QEMU binary, the host kernel and the probe kernel.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// The accelerator guests run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// QEMU's own translator.
    Tcg,
}

impl Accel {
    /// The `-accel` argument.
    pub fn qemu_arg(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// How long the probe kernel may take to print its banner under KVM.
const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// Kernels the probe can boot: the given one, else the host's own.
fn probe_kernels(given: Option<&Path>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = given.into_iter().map(Path::to_path_buf).collect();
    if let Ok(entries) = std::fs::read_dir("/boot") {
        let mut host: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
            })
            .collect();
        host.sort();
        out.extend(host);
    }
    out.retain(|p| p.is_file());
    out
}

fn cache_key(qemu: &Path, kernel: &Path) -> String {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                format!("{}:{}:{}", p.display(), m.len(), m.mtime())
            })
            .unwrap_or_default()
    };
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{}|{}|{release}", stamp(qemu), stamp(kernel))
}

/// Decides the accelerator by a real probe (or a cached verdict of one).
pub async fn probe(qemu: &Path, kernel: Option<&Path>, cache: &Path) -> Accel {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        tracing::info!("no usable /dev/kvm: guests run under TCG");
        return Accel::Tcg;
    }
    let Some(kernel) = probe_kernels(kernel).into_iter().next() else {
        tracing::warn!("no kernel to probe KVM with: guests run under TCG");
        return Accel::Tcg;
    };
    let key = cache_key(qemu, &kernel);
    if let Ok(saved) = std::fs::read_to_string(cache) {
        if let Some((k, v)) = saved.trim_end().rsplit_once('=') {
            if k == key {
                let accel = if v == "kvm" { Accel::Kvm } else { Accel::Tcg };
                tracing::info!(accel = v, "accelerator from the cached probe");
                return accel;
            }
        }
    }
    let accel = if kernel_boots_under_kvm(qemu, &kernel).await {
        Accel::Kvm
    } else {
        Accel::Tcg
    };
    tracing::info!(accel = accel.qemu_arg(), kernel = %kernel.display(), "accelerator probed");
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(cache, format!("{key}={}\n", accel.qemu_arg()));
    accel
}

async fn kernel_boots_under_kvm(qemu: &Path, kernel: &Path) -> bool {
    let child = tokio::process::Command::new(qemu)
        .args([
            "-accel",
            "kvm",
            "-machine",
            "pc",
            "-m",
            "128",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            "stdio",
            "-kernel",
        ])
        .arg(kernel)
        .args([
            "-append",
            "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 no_timer_check",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = child else { return false };
    let Some(mut out) = child.stdout.take() else {
        return false;
    };
    let read = async {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match out.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(13).any(|w| w == b"Linux version") {
                        return true;
                    }
                }
            }
        }
    };
    let ok = tokio::time::timeout(PROBE_TIMEOUT, read)
        .await
        .unwrap_or(false);
    let _ = child.start_kill();
    let _ = child.wait().await;
    ok
}
