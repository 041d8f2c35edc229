//! Images the agent makes from files (ISO 9660 config drives) and exports as raw bytes, with the
//! real `xorriso` and `qemu-img`. These tests fail, loudly, without them.

use std::collections::BTreeMap;
use std::path::Path;

use drover_agent::{Accel, AccelChoice, AgentConfig, QemuHost};
use drover_host::{ByteSource, HostDriver, HostError, ImageFormat};
use tokio::io::AsyncReadExt;

async fn host(data: &Path) -> QemuHost {
    let mut config = AgentConfig::new(data);
    config.accel = AccelChoice::Fixed(Accel::Tcg);
    let h = QemuHost::open(config).await.expect("agent opens");
    h.sr_attach("sr", "sr").await.unwrap();
    h
}

fn files(list: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(p, d)| (p.to_string(), d.to_vec()))
        .collect()
}

/// The names in the SR directory, hidden ones included.
fn sr_entries(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("sr"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The volume descriptors of an ISO 9660 image: (type, sector) for each up to the terminator.
fn volume_descriptors(iso: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    for sector in iso.chunks(2048).skip(16) {
        assert_eq!(&sector[1..6], b"CD001", "not a volume descriptor");
        out.push((sector[0], sector));
        if sector[0] == 255 {
            break;
        }
    }
    out
}

/// Every file of an ISO image as `xorriso` reads it with its Rock Ridge names.
fn iso_files(iso: &Path) -> BTreeMap<String, Vec<u8>> {
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(iso)
        .args(["-extract", "/"])
        .arg(out.path())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("xorriso runs");
    assert!(status.success());
    let mut files = BTreeMap::new();
    let mut dirs = vec![out.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                let rel = e.path().strip_prefix(out.path()).unwrap().to_owned();
                files.insert(
                    rel.to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                );
            }
        }
    }
    files
}

async fn read_all(mut src: ByteSource) -> Vec<u8> {
    let mut out = Vec::new();
    src.read_to_end(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn an_iso_image_holds_its_files_and_replaces_an_older_one() {
    let data = tempfile::tempdir().unwrap();
    let h = host(data.path()).await;
    let long = format!("openstack/latest/{}.json", "x".repeat(90));
    let first = files(&[
        (
            "drover/network.env",
            b"NIC_COUNT=1\nNIC0_MAC=02:00:00:12:34:56\nNIC0_IP=192.168.95.10\n",
        ),
        ("openstack/latest/meta_data.json", b"{\"uuid\": \"u1\"}"),
        (&long, b"long name"),
        ("Gr\u{fc}\u{df}e mit Leerzeichen.txt", b"utf-8 name"),
        ("empty", b""),
        ("big.bin", &vec![0xa5; 3 << 20]),
    ]);
    let info = h
        .image_from_files("sr", "cfg", "config-2", &first)
        .await
        .unwrap();
    assert_eq!(info.location, "cfg.iso");
    let path = data.path().join("sr/cfg.iso");
    let iso = std::fs::read(&path).unwrap();
    assert_eq!(info.virtual_size, iso.len() as u64);
    assert_eq!(iso.len() % 2048, 0);
    assert!(info.physical_utilisation > 3 << 20);

    // The label in the primary descriptor, and a Joliet supplementary descriptor.
    let vds = volume_descriptors(&iso);
    let primary = vds
        .iter()
        .find(|(t, _)| *t == 1)
        .expect("primary descriptor")
        .1;
    assert_eq!(
        String::from_utf8_lossy(&primary[40..72]).trim_end(),
        "config-2"
    );
    assert!(
        vds.iter()
            .any(|(t, s)| *t == 2
                && [b"%/@", b"%/C", b"%/E"].contains(&&s[88..91].try_into().unwrap())),
        "no Joliet descriptor"
    );
    // Rock Ridge names (long, mixed case, UTF-8) and the exact contents.
    let want: BTreeMap<String, Vec<u8>> = first.iter().cloned().collect();
    assert_eq!(iso_files(&path), want);

    // The guest view of an ISO image is the image itself.
    assert_eq!(
        read_all(h.image_export("sr", "cfg.iso").await.unwrap()).await,
        iso
    );

    // A reader of the old image keeps it while a new one replaces it.
    let old = tokio::fs::File::open(&path).await.unwrap();
    let second = files(&[("drover/network.env", b"NIC_COUNT=0\n")]);
    let info2 = h
        .image_from_files("sr", "cfg", "config-2", &second)
        .await
        .unwrap();
    assert_eq!(info2.location, "cfg.iso");
    assert!(info2.virtual_size < info.virtual_size);
    assert_eq!(iso_files(&path), second.iter().cloned().collect());
    assert_eq!(read_all(Box::new(old)).await, iso);

    // One image, nothing else left behind, and a scan sees it.
    assert_eq!(sr_entries(data.path()), ["cfg.iso"]);
    let scanned = h.sr_scan("sr").await.unwrap();
    assert_eq!(scanned.len(), 1);
    assert_eq!(scanned[0].location, "cfg.iso");
    assert_eq!(scanned[0].virtual_size, info2.virtual_size);

    // No files at all: an empty image.
    let empty = h
        .image_from_files("sr", "none", "EMPTY", &[])
        .await
        .unwrap();
    assert!(iso_files(&data.path().join("sr").join(&empty.location)).is_empty());
    h.image_destroy("sr", "none.iso").await.unwrap();
    h.image_destroy("sr", "cfg.iso").await.unwrap();
    assert!(sr_entries(data.path()).is_empty());
}

#[tokio::test]
async fn bad_iso_requests_are_refused_and_leave_nothing_behind() {
    let data = tempfile::tempdir().unwrap();
    let h = host(data.path()).await;
    for path in [
        "/etc/passwd",
        "../escape",
        "a/../../escape",
        "a/./b",
        "a//b",
        "a/",
        "",
        ".",
        "back\\slash",
        "nul\0byte",
    ] {
        let err = h
            .image_from_files("sr", "bad", "config-2", &files(&[(path, b"x")]))
            .await
            .unwrap_err();
        assert!(matches!(err, HostError::BadImage { .. }), "{path:?}: {err}");
    }
    for (list, label) in [
        (files(&[("a", b"1"), ("a", b"2")]), "config-2"),
        (files(&[("a", b"1"), ("a/b", b"2")]), "config-2"),
        (files(&[("a", b"1")]), ""),
        (files(&[("a", b"1")]), &"L".repeat(33)),
        (files(&[("a", b"1")]), "new\nline"),
    ] {
        let err = h
            .image_from_files("sr", "bad", label, &list)
            .await
            .unwrap_err();
        assert!(
            matches!(err, HostError::BadImage { .. }),
            "{list:?} {label:?}: {err}"
        );
    }
    assert!(h
        .image_from_files("sr", ".hidden", "config-2", &[])
        .await
        .is_err());
    assert!(h
        .image_from_files("sr", "a/b", "config-2", &[])
        .await
        .is_err());
    assert!(matches!(
        h.image_from_files("nosr", "cfg", "config-2", &[]).await,
        Err(HostError::SrUnavailable { .. })
    ));
    assert!(sr_entries(data.path()).is_empty());

    // Leftovers of a crash go when the SR is attached again.
    std::fs::create_dir_all(data.path().join("sr/.files-x/drover")).unwrap();
    std::fs::write(data.path().join("sr/.files-x/drover/network.env"), "x").unwrap();
    std::fs::write(data.path().join("sr/.export-x"), "x").unwrap();
    let h = host(data.path()).await;
    assert!(h.sr_scan("sr").await.unwrap().is_empty());
    assert!(sr_entries(data.path()).is_empty());
}

#[tokio::test]
async fn export_gives_what_the_guest_sees() {
    let data = tempfile::tempdir().unwrap();
    let h = host(data.path()).await;
    let size = 4u64 << 20;
    let mut content: Vec<u8> = (0..(1u32 << 20) + 4321)
        .map(|i| (i * 7 % 251) as u8)
        .collect();

    // qcow2, written through an import: the export is converted back to the raw bytes.
    let q = h
        .image_create("sr", "q", size, ImageFormat::Qcow2)
        .await
        .unwrap();
    h.image_import(
        "sr",
        &q.location,
        "raw",
        Box::new(std::io::Cursor::new(content.clone())),
    )
    .await
    .unwrap();
    let stream = h.image_export("sr", &q.location).await.unwrap();
    // The scratch file is unlinked while the stream is still open.
    assert_eq!(sr_entries(data.path()), ["q.qcow2"]);
    let out = read_all(stream).await;
    content.resize(size as usize, 0);
    assert_eq!(out.len() as u64, size);
    assert!(out == content, "the exported bytes differ");

    // A thin clone reads through its backing chain.
    let c = h.image_clone("sr", &q.location, "c").await.unwrap();
    assert!(read_all(h.image_export("sr", &c.location).await.unwrap()).await == content);

    // raw: the file itself.
    let r = h
        .image_create("sr", "r", 1 << 20, ImageFormat::Raw)
        .await
        .unwrap();
    let raw: Vec<u8> = (0..1u32 << 20).map(|i| (i % 13) as u8).collect();
    h.image_import(
        "sr",
        &r.location,
        "raw",
        Box::new(std::io::Cursor::new(raw.clone())),
    )
    .await
    .unwrap();
    assert!(read_all(h.image_export("sr", &r.location).await.unwrap()).await == raw);

    assert!(matches!(
        h.image_export("sr", "none.qcow2").await,
        Err(HostError::NoSuchImage(_))
    ));
    for img in [&c.location, &q.location, &r.location] {
        h.image_destroy("sr", img).await.unwrap();
    }
    assert!(sr_entries(data.path()).is_empty());
}
