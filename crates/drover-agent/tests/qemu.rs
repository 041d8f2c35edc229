//! The agent against real QEMU guests: the tiny guest built by `guest/build-tiny-guest.sh`
//! (in `guest/out`, or `$DROVER_TINY_GUEST`). These tests fail, loudly, without QEMU or the guest.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use drover_agent::{Accel, AccelChoice, AgentConfig, QemuHost};
use drover_host::{
    DiskSpec, GuestEvent, GuestSpec, GuestState, HostDriver, HostError, ImageFormat, ImageInfo,
};

fn guest_dir() -> PathBuf {
    let dir = std::env::var_os("DROVER_TINY_GUEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../guest/out"));
    assert!(
        dir.join("vmlinuz").is_file() && dir.join("initrd.img").is_file(),
        "the tiny guest is not built in {} (run guest/build-tiny-guest.sh)",
        dir.display()
    );
    dir
}

async fn host(data: &std::path::Path) -> QemuHost {
    let mut config = AgentConfig::new(data);
    config.accel = AccelChoice::Fixed(Accel::Tcg);
    config.shutdown_timeout = Duration::from_secs(30);
    QemuHost::open(config).await.expect("agent opens")
}

fn spec(uuid: &str, args: &str, disks: Vec<DiskSpec>) -> GuestSpec {
    let g = guest_dir();
    GuestSpec {
        uuid: uuid.into(),
        name: "t".into(),
        vcpus: 1,
        memory: 96 << 20,
        kernel: g.join("vmlinuz").to_string_lossy().into_owned(),
        ramdisk: g.join("initrd.img").to_string_lossy().into_owned(),
        args: format!("console=ttyS0 no_timer_check {args}"),
        disks,
        ..GuestSpec::default()
    }
}

/// Waits until the console log has a line containing `needle` after byte `from`.
async fn console_wait(h: &QemuHost, uuid: &str, from: usize, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = h.console_log(uuid).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&log[from.min(log.len())..]).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} on the console of {uuid}; it says:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn uptime(line: &str) -> f64 {
    line.split("uptime=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Kills the guests a test left running when it fails (QEMU outlives the agent by design).
struct Reaper<'a>(&'a std::path::Path);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.0.join("guests"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(pid) = std::fs::read_to_string(e.path().join("qemu.pid")) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", pid.trim()])
                    .status();
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_guest_lives_its_whole_life() {
    let data = tempfile::tempdir().unwrap();
    let _reaper = Reaper(data.path());
    // The first agent's runtime ends as a killed agent process would: its tasks and sockets go.
    let (s, d, disk, clone, extra) = runtime().block_on(first_agent(data.path()));
    runtime().block_on(second_agent(data.path(), s, d, disk, clone, extra));
}

async fn first_agent(
    data: &std::path::Path,
) -> (GuestSpec, DiskSpec, ImageInfo, ImageInfo, ImageInfo) {
    let h = host(data).await;
    h.sr_attach("sr", "sr").await.unwrap();
    let disk = h
        .image_create("sr", "d1", 64 << 20, ImageFormat::Qcow2)
        .await
        .unwrap();
    assert_eq!(disk.location, "d1.qcow2");
    let mut events = h.subscribe();
    let d = DiskSpec {
        device: "1".into(),
        sr: "sr".into(),
        image: disk.location.clone(),
        ..DiskSpec::default()
    };
    let marker = format!("m{}", std::process::id());
    let s = spec(
        "a1",
        &format!("marker={marker} drover.data=D1"),
        vec![d.clone()],
    );
    h.start(&s, false).await.unwrap();
    assert!(matches!(
        h.start(&s, false).await,
        Err(HostError::GuestExists(_))
    ));
    console_wait(&h, "a1", 0, &format!("marker={marker}")).await;
    let mem = console_wait(&h, "a1", 0, "mem_kb=").await;
    assert!(mem.contains("mem_kb="), "{mem}");
    console_wait(&h, "a1", 0, "wrote=D1").await;
    assert_eq!(
        h.guests().await,
        vec![("a1".to_string(), GuestState::Running)]
    );

    // Pause and unpause.
    h.pause("a1").await.unwrap();
    assert_eq!(h.guests().await[0].1, GuestState::Paused);
    h.unpause("a1").await.unwrap();

    // Two writers on one image are refused.
    let other = spec("a2", "", vec![d.clone()]);
    assert!(matches!(
        h.start(&other, false).await,
        Err(HostError::ImageInUse(_))
    ));
    assert!(matches!(
        h.image_destroy("sr", &disk.location).await,
        Err(HostError::ImageInUse(_))
    ));

    // Hot plug and unplug.
    let extra = h
        .image_create("sr", "d2", 32 << 20, ImageFormat::Qcow2)
        .await
        .unwrap();
    let before = h.console_log("a1").await.unwrap().len();
    let d2 = DiskSpec {
        device: "2".into(),
        sr: "sr".into(),
        image: extra.location.clone(),
        ..DiskSpec::default()
    };
    h.disk_attach("a1", &d2).await.unwrap();
    let line = console_wait(&h, "a1", before, "disks=").await;
    assert!(line.contains(":65536"), "{line}");
    let before = h.console_log("a1").await.unwrap().len();
    h.disk_detach("a1", "2").await.unwrap();
    let line = console_wait(&h, "a1", before, "disks=").await;
    assert!(!line.contains(":65536"), "{line}");

    // A live thin clone while the guest writes its disk.
    let clone = h.image_clone("sr", &disk.location, "c1").await.unwrap();
    assert_eq!(clone.virtual_size, 64 << 20);

    // Suspend and resume: the same boot continues.
    let first = console_wait(&h, "a1", 0, "uptime=").await;
    let state = h
        .image_create("sr", "s1", 200 << 20, ImageFormat::Raw)
        .await
        .unwrap();
    h.suspend("a1", "sr", &state.location).await.unwrap();
    assert!(h.guests().await.is_empty());
    let before = h.console_log("a1").await.unwrap().len();
    h.resume(&s, "sr", &state.location, false).await.unwrap();
    let later = console_wait(&h, "a1", before, "uptime=").await;
    assert!(uptime(&later) > uptime(&first), "{first} then {later}");
    assert_eq!(
        later.split("boot_id=").nth(1),
        first.split("boot_id=").nth(1),
        "a resumed guest keeps its boot"
    );
    h.image_destroy("sr", &state.location).await.unwrap();
    assert!(events.try_recv().is_err());
    (s, d, disk, clone, extra)
}

async fn second_agent(
    data: &std::path::Path,
    s: GuestSpec,
    d: DiskSpec,
    disk: ImageInfo,
    clone: ImageInfo,
    extra: ImageInfo,
) {
    // A new agent re-attaches to the running guest.
    let h = host(data).await;
    h.sr_attach("sr", "sr").await.unwrap();
    assert_eq!(
        h.guests().await,
        vec![("a1".to_string(), GuestState::Running)]
    );
    // It still knows the guest's disks: one writer only, and live clones still work.
    let other = spec("a2", "", vec![d.clone()]);
    assert!(matches!(
        h.start(&other, false).await,
        Err(HostError::ImageInUse(_))
    ));
    let clone2 = h.image_clone("sr", &disk.location, "c2").await.unwrap();
    h.image_destroy("sr", &clone2.location).await.unwrap();
    let m = h.guest_metrics("a1").await.unwrap();
    assert_eq!(m.vcpus, 1);
    assert!(m.memory_actual > 0);

    // Clean shutdown through ACPI; no event for a stop the agent was asked for.
    let mut events = h.subscribe();
    h.shutdown("a1", false).await.unwrap();
    assert!(h.guests().await.is_empty());
    assert!(events.try_recv().is_err());

    // The data the guest wrote is on the disk.
    assert_eq!(s.disks.len(), 1);
    let s = spec("a1", "", vec![d.clone()]);
    h.start(&s, false).await.unwrap();
    console_wait(&h, "a1", 0, "data=D1").await;
    h.shutdown("a1", true).await.unwrap();
    h.image_destroy("sr", &clone.location).await.unwrap();
    h.image_destroy("sr", &disk.location).await.unwrap();
    h.image_destroy("sr", &extra.location).await.unwrap();
    let left: Vec<_> = std::fs::read_dir(data.join("sr"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "files left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_leaves_nothing_behind() {
    let data = tempfile::tempdir().unwrap();
    let _reaper = Reaper(data.path());
    let h = host(data.path()).await;
    let mut s = spec("b1", "", vec![]);
    s.kernel = "/nonexistent/vmlinuz".into();
    assert!(matches!(
        h.start(&s, false).await,
        Err(HostError::MissingFile { what: "kernel", .. })
    ));
    let mut s = spec("b1", "", vec![]);
    s.args = String::new();
    s.memory = 1 << 50;
    assert!(matches!(
        h.start(&s, false).await,
        Err(HostError::NotEnoughMemory { .. })
    ));
    h.sr_attach("sr", "sr").await.unwrap();
    let mut bad = b"QFI\xfb".to_vec();
    bad.extend(std::iter::repeat_n(0x5a, 4096));
    std::fs::write(data.path().join("sr/bad.qcow2"), bad).unwrap();
    let s = spec(
        "b1",
        "",
        vec![DiskSpec {
            device: "0".into(),
            sr: "sr".into(),
            image: "bad.qcow2".into(),
            ..DiskSpec::default()
        }],
    );
    let err = h.start(&s, false).await.unwrap_err();
    assert!(
        err.to_string().contains("qemu") || matches!(err, HostError::BadImage { .. }),
        "{err}"
    );
    assert!(h.guests().await.is_empty());
    assert!(!data.path().join("guests/b1/qemu.pid").exists());
    assert!(matches!(
        h.image_create("sr", "huge", 1 << 60, ImageFormat::Qcow2)
            .await,
        Err(HostError::StorageFull { .. })
    ));
    // A guest that dies is reported.
    let s = spec("b2", "", vec![]);
    let mut events = h.subscribe();
    h.start(&s, false).await.unwrap();
    let pid: i32 = std::fs::read_to_string(data.path().join("guests/b2/qemu.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix_kill(pid);
    let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, GuestEvent::Exited { ref uuid, .. } if uuid == "b2"),
        "{ev:?}"
    );
    assert!(h.guests().await.is_empty());
}

fn nix_kill(pid: i32) {
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
}
