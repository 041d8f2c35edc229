//! Live migration between two agents (two data directories, one shared SR directory) with the
//! tiny guest, over the loopback. These tests fail, loudly, without QEMU or the guest. The
//! figures they print are measurements, not assertions.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_agent::QemuHost;
use drover_host::{
    DiskSpec, GuestEvent, GuestSpec, GuestState, HostDriver, HostError, ImageFormat, MigrationStats,
};

mod common;

use common::guest::{config, console_wait, host, runtime, spec, uptime, Reaper};

/// Both agents attach the SR directory `sr` as `sr`.
async fn attach(hosts: &[&QemuHost], sr: &Path) {
    for h in hosts {
        h.sr_attach("sr", sr.to_str().unwrap()).await.unwrap();
    }
}

fn boot_id(line: &str) -> &str {
    line.split("boot_id=").nth(1).unwrap()
}

/// `later` is a status line of the same boot as `first`, with time gone on.
fn same_boot(first: &str, later: &str) {
    assert_eq!(boot_id(first), boot_id(later), "{first} then {later}");
    assert!(uptime(later) > uptime(first), "{first} then {later}");
}

fn show(what: &str, s: &MigrationStats) {
    eprintln!(
        "{what}: downtime {} ms, total {} ms, {} bytes sent",
        s.downtime_ms, s.total_ms, s.transferred_bytes
    );
}

fn qemu_pid(data: &Path, uuid: &str) -> Option<i32> {
    let pid = std::fs::read_to_string(data.join("guests").join(uuid).join("qemu.pid")).ok()?;
    pid.trim().parse().ok()
}

#[test]
fn a_running_guest_moves_live_to_another_host_and_back_paused() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir, sr) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("sr"),
    );
    std::fs::create_dir_all(&sr).unwrap();
    let (_ra, _rb) = (Reaper(&a_dir), Reaper(&b_dir));
    // The agents' runtime ends as killed agent processes would; B's guest runs on.
    let (s, first) = runtime().block_on(async {
        let (a, b) = (host(&a_dir).await, host(&b_dir).await);
        attach(&[&a, &b], &sr).await;
        let disk = a
            .image_create("sr", "d1", 16 << 20, ImageFormat::Qcow2)
            .await
            .unwrap();
        let disks = vec![DiskSpec {
            device: "1".into(),
            sr: "sr".into(),
            image: disk.location,
            ..DiskSpec::default()
        }];
        let s = spec("m1", "drover.data=M1", disks);
        a.start(&s, false).await.unwrap();
        console_wait(&a, "m1", 0, "wrote=M1").await;
        let first = console_wait(&a, "m1", 0, "uptime=").await;
        let (mut events_a, mut events_b) = (a.subscribe(), b.subscribe());

        // The destination waits, present but not yet its host's.
        let uri = b.migrate_receive(&s, "127.0.0.1").await.unwrap();
        assert!(uri.starts_with("tcp:127.0.0.1:"), "{uri}");
        assert!(b.guests().await.is_empty());
        assert!(matches!(
            b.start(&s, false).await,
            Err(HostError::GuestExists(_))
        ));
        assert!(matches!(
            b.pause("m1").await,
            Err(HostError::BadState {
                actual: "incoming",
                ..
            })
        ));

        let stats = a.migrate_send("m1", &uri, 50).await.unwrap();
        show("running guest, A to B", &stats);
        assert!(
            stats.total_ms > 0 && stats.transferred_bytes > 0,
            "{stats:?}"
        );
        // The source is stopped and no longer lists the guest.
        assert!(a.guests().await.is_empty());
        assert!(matches!(
            a.unpause("m1").await,
            Err(HostError::BadState {
                actual: "migrated",
                ..
            })
        ));
        assert!(matches!(
            a.migrate_cancel("m1").await,
            Err(HostError::BadState { .. })
        ));
        b.migrate_incoming_finish("m1", true).await.unwrap();
        b.migrate_incoming_finish("m1", true).await.unwrap();
        a.migrate_release("m1").await.unwrap();
        // Its pidfile goes once the source QEMU is gone.
        assert!(qemu_pid(&a_dir, "m1").is_none());
        assert!(a.guests().await.is_empty());
        assert_eq!(b.guests().await, vec![("m1".into(), GuestState::Running)]);

        // The same boot goes on at B.
        let later = console_wait(&b, "m1", 0, "uptime=").await;
        same_boot(&first, &later);
        assert_eq!(b.guest_metrics("m1").await.unwrap().vcpus, 1);
        assert!(events_a.try_recv().is_err());
        assert!(events_b.try_recv().is_err());
        (s, first)
    });

    runtime().block_on(async {
        // A new agent at B re-attaches to the guest it received.
        let b = host(&b_dir).await;
        let a = host(&a_dir).await;
        attach(&[&a, &b], &sr).await;
        assert_eq!(b.guests().await, vec![("m1".into(), GuestState::Running)]);

        // Back to A, paused: it arrives paused.
        b.pause("m1").await.unwrap();
        let uri = a.migrate_receive(&s, "127.0.0.1").await.unwrap();
        let stats = b.migrate_send("m1", &uri, 50).await.unwrap();
        show("paused guest, B to A", &stats);
        a.migrate_incoming_finish("m1", true).await.unwrap();
        b.migrate_release("m1").await.unwrap();
        assert!(b.guests().await.is_empty());
        assert_eq!(a.guests().await, vec![("m1".into(), GuestState::Paused)]);
        let before = a.console_log("m1").await.unwrap().len();
        a.unpause("m1").await.unwrap();
        let last = console_wait(&a, "m1", before, "uptime=").await;
        same_boot(&first, &last);

        // An ordinary guest of A again: a clean shutdown through ACPI, without an event.
        let mut events = a.subscribe();
        a.shutdown("m1", false).await.unwrap();
        assert!(a.guests().await.is_empty());
        assert!(events.try_recv().is_err());
        a.image_destroy("sr", &s.disks[0].image).await.unwrap();
    });
}

/// Cancels the send of `uuid` as soon as it is under way.
async fn cancel_soon(h: &QemuHost, uuid: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match h.migrate_cancel(uuid).await {
            Ok(()) => return,
            Err(HostError::BadState { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(e) => panic!("cancel: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_migration_leaves_the_guest_running_at_its_source() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir, sr) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("sr"),
    );
    std::fs::create_dir_all(&sr).unwrap();
    let (_ra, _rb) = (Reaper(&a_dir), Reaper(&b_dir));
    // At 1 MiB/s the send lasts many seconds: the cancel comes first.
    let mut slow = config(&a_dir);
    slow.migration_bandwidth = Some(1 << 20);
    let a = Arc::new(QemuHost::open(slow).await.unwrap());
    let b = host(&b_dir).await;
    attach(&[&a, &b], &sr).await;
    let s: GuestSpec = spec("c1", "", vec![]);
    a.start(&s, false).await.unwrap();
    let first = console_wait(&a, "c1", 0, "uptime=").await;
    let (mut events_a, mut events_b) = (a.subscribe(), b.subscribe());
    assert!(matches!(
        a.migrate_cancel("c1").await,
        Err(HostError::BadState {
            actual: "running",
            ..
        })
    ));
    assert!(matches!(
        a.migrate_cancel("nope").await,
        Err(HostError::NoSuchGuest(_))
    ));

    let uri = b.migrate_receive(&s, "127.0.0.1").await.unwrap();
    let send = tokio::spawn({
        let a = a.clone();
        async move { a.migrate_send("c1", &uri, 50).await }
    });
    cancel_soon(&a, "c1").await;
    let sent = send.await.unwrap();
    assert!(
        matches!(sent, Err(HostError::MigrationCancelled)),
        "{sent:?}"
    );

    // The guest runs on at A; B has nothing left.
    assert_eq!(a.guests().await, vec![("c1".into(), GuestState::Running)]);
    let before = a.console_log("c1").await.unwrap().len();
    same_boot(&first, &console_wait(&a, "c1", before, "uptime=").await);
    b.migrate_incoming_finish("c1", false).await.unwrap();
    assert!(b.guests().await.is_empty());
    assert!(qemu_pid(&b_dir, "c1").is_none());
    assert!(events_a.try_recv().is_err());
    assert!(events_b.try_recv().is_err());

    // A send whose caller stops waiting goes on, and can still be cancelled.
    let uri = b.migrate_receive(&s, "127.0.0.1").await.unwrap();
    let abandoned =
        tokio::time::timeout(Duration::from_millis(300), a.migrate_send("c1", &uri, 50)).await;
    assert!(abandoned.is_err(), "{abandoned:?}");
    a.migrate_cancel("c1").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(
        a.migrate_cancel("c1").await,
        Err(HostError::BadState {
            actual: "running",
            ..
        })
    ) {
        assert!(Instant::now() < deadline, "the send did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.guests().await, vec![("c1".into(), GuestState::Running)]);
    b.migrate_incoming_finish("c1", false).await.unwrap();

    // A destination that gave up is not sent to.
    let uri = b.migrate_receive(&s, "127.0.0.1").await.unwrap();
    b.migrate_incoming_finish("c1", false).await.unwrap();
    assert!(matches!(
        a.migrate_send("c1", &uri, 50).await,
        Err(HostError::MigrationFailed(_))
    ));
    assert_eq!(a.guests().await, vec![("c1".into(), GuestState::Running)]);
    a.shutdown("c1", true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_nobody_receives_fails_and_the_guest_runs_on() {
    let tmp = tempfile::tempdir().unwrap();
    let a_dir = tmp.path().join("a");
    let _ra = Reaper(&a_dir);
    let a = host(&a_dir).await;
    let s = spec("f1", "", vec![]);
    a.start(&s, false).await.unwrap();
    let first = console_wait(&a, "f1", 0, "uptime=").await;
    let mut events = a.subscribe();

    // A port nobody listens on, and addresses the agent does not send to.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let touched = tmp.path().join("touched");
    for uri in [
        format!("tcp:127.0.0.1:{port}"),
        format!("exec:touch {}", touched.display()),
        "unix:/tmp/x".into(),
    ] {
        let err = a.migrate_send("f1", &uri, 50).await.unwrap_err();
        assert!(matches!(err, HostError::MigrationFailed(_)), "{uri}: {err}");
    }
    assert!(!touched.exists());
    assert_eq!(a.guests().await, vec![("f1".into(), GuestState::Running)]);
    let before = a.console_log("f1").await.unwrap().len();
    same_boot(&first, &console_wait(&a, "f1", before, "uptime=").await);

    // A destination cannot listen on a wildcard or on an address it does not have.
    for ip in ["0.0.0.0", "::", "host", "192.0.2.1"] {
        let r = a.migrate_receive(&spec("f2", "", vec![]), ip).await;
        assert!(matches!(r, Err(HostError::Failed(_))), "{ip}: {r:?}");
    }
    assert!(qemu_pid(&a_dir, "f2").is_none());
    assert!(matches!(
        a.migrate_incoming_finish("f1", false).await,
        Err(HostError::BadState {
            actual: "running",
            ..
        })
    ));

    // Still an ordinary guest: its death is reported.
    assert!(events.try_recv().is_err());
    let pid = qemu_pid(&a_dir, "f1").unwrap();
    nix_kill(pid);
    let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, GuestEvent::Exited { ref uuid, .. } if uuid == "f1"),
        "{ev:?}"
    );
}

fn nix_kill(pid: i32) {
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
}
