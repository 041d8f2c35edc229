//! A simulated host for scale tests and machines without QEMU.
//!
//! It models what a host does — guest states, memory accounting, whole new disks with thin clones
//! and full copies, storage capacity — and refuses what it does not model. Every operation can be given a
//! duration so that long-running behaviour (task progress, cancellation) is observable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::{
    ByteSource, ConsoleKind, DiskSpec, GuestEvent, GuestMetrics, GuestSpec, GuestState, HostDriver,
    HostError, HostInfo, HostMetrics, ImageFormat, ImageInfo, StorageInfo, Stream,
};

/// How the simulated host is sized.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Host name.
    pub hostname: String,
    /// Physical CPUs.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory: u64,
    /// Capacity of each storage repository, bytes.
    pub sr_capacity: u64,
    /// How long each guest or image operation takes.
    pub op_delay: Duration,
    /// Where the simulated disks are remembered across restarts, if anywhere.
    pub state_file: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            hostname: "sim-host".into(),
            cpus: 8,
            memory: 256 << 30,
            sr_capacity: 4 << 40,
            op_delay: Duration::ZERO,
            state_file: None,
        }
    }
}

/// Memory the simulated hypervisor keeps for itself.
const HOST_OVERHEAD: u64 = 512 << 20;

struct Guest {
    state: GuestState,
    memory: u64,
    vcpus: u32,
    started: Instant,
}

struct Image {
    virtual_size: u64,
    physical: u64,
}

impl Image {
    fn info(&self, location: &str) -> ImageInfo {
        ImageInfo {
            location: location.into(),
            virtual_size: self.virtual_size,
            physical_utilisation: self.physical,
        }
    }
}

#[derive(Default)]
struct Sr {
    images: HashMap<String, Image>,
}

#[derive(Default)]
struct State {
    guests: HashMap<String, Guest>,
    suspended: HashMap<String, u64>,
    srs: HashMap<String, Sr>,
}

/// The simulated host.
pub struct SimHost {
    config: SimConfig,
    state: Mutex<State>,
    events: broadcast::Sender<GuestEvent>,
    born: Instant,
}

impl SimHost {
    /// A simulated host of the given size.
    pub fn new(config: SimConfig) -> SimHost {
        let mut state = State::default();
        if let Some(saved) = config
            .state_file
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
        {
            let disks: HashMap<String, HashMap<String, (u64, u64)>> =
                serde_json::from_slice(&saved).unwrap_or_default();
            for (sr, images) in disks {
                let images = images
                    .into_iter()
                    .map(|(k, (v, p))| {
                        (
                            k,
                            Image {
                                virtual_size: v,
                                physical: p,
                            },
                        )
                    })
                    .collect();
                state.srs.insert(sr, Sr { images });
            }
        }
        SimHost {
            config,
            state: Mutex::new(state),
            events: broadcast::channel(1024).0,
            born: Instant::now(),
        }
    }

    /// Remembers the simulated disks, as a real host's storage would.
    fn save(&self, st: &State) {
        let Some(path) = &self.config.state_file else {
            return;
        };
        let disks: HashMap<&String, HashMap<&String, (u64, u64)>> = st
            .srs
            .iter()
            .map(|(sr, s)| {
                (
                    sr,
                    s.images
                        .iter()
                        .map(|(k, i)| (k, (i.virtual_size, i.physical)))
                        .collect(),
                )
            })
            .collect();
        let tmp = path.with_extension("tmp");
        let written = serde_json::to_vec(&disks)
            .map_err(std::io::Error::other)
            .and_then(|data| std::fs::write(&tmp, data))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            eprintln!("simulated host: cannot save {}: {e}", path.display());
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn work(&self) {
        if !self.config.op_delay.is_zero() {
            tokio::time::sleep(self.config.op_delay).await;
        }
    }

    fn used_memory(st: &State) -> u64 {
        HOST_OVERHEAD + st.guests.values().map(|g| g.memory).sum::<u64>()
    }

    fn reserve(&self, st: &State, needed: u64) -> Result<(), HostError> {
        let available = self.config.memory.saturating_sub(Self::used_memory(st));
        if needed > available {
            return Err(HostError::NotEnoughMemory { needed, available });
        }
        Ok(())
    }

    /// Puts a built guest on the host, checking memory again: it may have gone meanwhile.
    fn admit(&self, st: &mut State, spec: &GuestSpec, paused: bool) -> Result<(), HostError> {
        self.reserve(st, spec.memory)?;
        let state = if paused {
            GuestState::Paused
        } else {
            GuestState::Running
        };
        let guest = Guest {
            state,
            memory: spec.memory,
            vcpus: spec.vcpus.max(1),
            started: Instant::now(),
        };
        st.guests.insert(spec.uuid.clone(), guest);
        Ok(())
    }

    fn sr_used(sr: &Sr) -> u64 {
        sr.images.values().map(|i| i.physical).sum()
    }

    fn with_guest<T>(
        &self,
        uuid: &str,
        f: impl FnOnce(&mut Guest) -> Result<T, HostError>,
    ) -> Result<T, HostError> {
        let mut st = self.state();
        let g = st
            .guests
            .get_mut(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
        f(g)
    }

    fn sr_mut<'a>(st: &'a mut State, sr: &str) -> Result<&'a mut Sr, HostError> {
        st.srs
            .get_mut(sr)
            .ok_or_else(|| HostError::Failed(format!("storage repository {sr} is not attached")))
    }

    fn grow(&self, sr: &mut Sr, extra: u64) -> Result<(), HostError> {
        let available = self.config.sr_capacity.saturating_sub(Self::sr_used(sr));
        if extra > available {
            return Err(HostError::StorageFull {
                requested: extra,
                available,
            });
        }
        Ok(())
    }
}

fn state_name(s: GuestState) -> &'static str {
    match s {
        GuestState::Running => "running",
        GuestState::Paused => "paused",
        GuestState::Suspended => "suspended",
    }
}

fn expect(g: &Guest, uuid: &str, want: GuestState) -> Result<(), HostError> {
    if g.state != want {
        return Err(HostError::BadState {
            uuid: uuid.into(),
            expected: state_name(want),
            actual: state_name(g.state),
        });
    }
    Ok(())
}

/// Bytes a simulated image occupies: metadata only until the guest writes.
const IMAGE_METADATA: u64 = 192 << 10;

#[async_trait]
impl HostDriver for SimHost {
    fn info(&self) -> HostInfo {
        HostInfo {
            hostname: self.config.hostname.clone(),
            cpu_count: self.config.cpus,
            cpu_model: "Drover simulated CPU".into(),
            cpu_speed_mhz: 2400,
            memory_total: self.config.memory,
            driver: "sim",
        }
    }

    async fn metrics(&self) -> HostMetrics {
        let st = self.state();
        let running = st
            .guests
            .values()
            .filter(|g| g.state == GuestState::Running)
            .count() as f64;
        let wobble = (self.born.elapsed().as_secs_f64() / 7.0).sin().abs() * 0.05;
        HostMetrics {
            memory_total: self.config.memory,
            memory_free: self.config.memory.saturating_sub(Self::used_memory(&st)),
            cpu_utilisation: vec![
                (0.01 + running * 0.02 / self.config.cpus as f64 + wobble)
                    .min(1.0);
                self.config.cpus as usize
            ],
        }
    }

    async fn guests(&self) -> Vec<(String, GuestState)> {
        let st = self.state();
        st.guests
            .iter()
            .map(|(u, g)| (u.clone(), g.state))
            .chain(
                st.suspended
                    .keys()
                    .map(|u| (u.clone(), GuestState::Suspended)),
            )
            .collect()
    }

    async fn start(&self, spec: &GuestSpec, paused: bool) -> Result<(), HostError> {
        {
            let st = self.state();
            if st.guests.contains_key(&spec.uuid) {
                return Err(HostError::GuestExists(spec.uuid.clone()));
            }
            self.reserve(&st, spec.memory)?;
            for d in &spec.disks {
                if d.image.is_empty() {
                    continue;
                }
                if !st.srs.values().any(|sr| sr.images.contains_key(&d.image)) {
                    return Err(HostError::NoSuchImage(d.image.clone()));
                }
            }
        }
        self.work().await;
        let mut st = self.state();
        self.admit(&mut st, spec, paused)
    }

    async fn shutdown(&self, uuid: &str, _hard: bool) -> Result<(), HostError> {
        self.with_guest(uuid, |_| Ok(()))?;
        self.work().await;
        self.state()
            .guests
            .remove(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
        let _ = self.events.send(GuestEvent::Exited {
            uuid: uuid.into(),
            reason: "shutdown".into(),
        });
        Ok(())
    }

    async fn reboot(&self, uuid: &str, _hard: bool) -> Result<(), HostError> {
        self.with_guest(uuid, |_| Ok(()))?;
        self.work().await;
        self.with_guest(uuid, |g| {
            g.state = GuestState::Running;
            g.started = Instant::now();
            Ok(())
        })
    }

    async fn pause(&self, uuid: &str) -> Result<(), HostError> {
        self.with_guest(uuid, |g| expect(g, uuid, GuestState::Running))?;
        self.work().await;
        self.with_guest(uuid, |g| {
            g.state = GuestState::Paused;
            Ok(())
        })
    }

    async fn unpause(&self, uuid: &str) -> Result<(), HostError> {
        self.with_guest(uuid, |g| expect(g, uuid, GuestState::Paused))?;
        self.work().await;
        self.with_guest(uuid, |g| {
            g.state = GuestState::Running;
            Ok(())
        })
    }

    async fn suspend(&self, uuid: &str, _sr: &str, state_image: &str) -> Result<(), HostError> {
        let memory = self.with_guest(uuid, |g| Ok(g.memory))?;
        {
            let mut st = self.state();
            let sr = st
                .srs
                .values_mut()
                .find(|sr| sr.images.contains_key(state_image))
                .ok_or_else(|| HostError::NoSuchImage(state_image.into()))?;
            let img = sr.images.get_mut(state_image).expect("found above");
            img.physical = img.physical.max(memory);
        }
        self.work().await;
        let mut st = self.state();
        st.guests
            .remove(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
        st.suspended.insert(uuid.into(), memory);
        Ok(())
    }

    async fn resume(
        &self,
        spec: &GuestSpec,
        _sr: &str,
        state_image: &str,
        paused: bool,
    ) -> Result<(), HostError> {
        {
            let st = self.state();
            if !st
                .srs
                .values()
                .any(|sr| sr.images.contains_key(state_image))
            {
                return Err(HostError::NoSuchImage(state_image.into()));
            }
            self.reserve(&st, spec.memory)?;
        }
        self.work().await;
        let mut st = self.state();
        self.admit(&mut st, spec, paused)?;
        st.suspended.remove(&spec.uuid);
        Ok(())
    }

    async fn disk_attach(&self, uuid: &str, _disk: &DiskSpec) -> Result<(), HostError> {
        self.with_guest(uuid, |g| expect(g, uuid, GuestState::Running))?;
        self.work().await;
        Ok(())
    }

    async fn disk_detach(&self, uuid: &str, _device: &str) -> Result<(), HostError> {
        self.with_guest(uuid, |g| expect(g, uuid, GuestState::Running))?;
        self.work().await;
        Ok(())
    }

    async fn media_change(
        &self,
        uuid: &str,
        _device: &str,
        _media: Option<(&str, &str)>,
    ) -> Result<(), HostError> {
        self.with_guest(uuid, |_| Ok(()))
    }

    async fn console_log(&self, _uuid: &str) -> Result<Vec<u8>, HostError> {
        Err(HostError::Unsupported(
            "the simulated host has no guest consoles".into(),
        ))
    }

    async fn console_open(
        &self,
        _uuid: &str,
        _kind: ConsoleKind,
    ) -> Result<Box<dyn Stream>, HostError> {
        Err(HostError::Unsupported(
            "the simulated host has no guest consoles".into(),
        ))
    }

    async fn set_memory(&self, uuid: &str, bytes: u64) -> Result<(), HostError> {
        let mut st = self.state();
        let current = st
            .guests
            .get(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?
            .memory;
        if bytes > current {
            self.reserve(&st, bytes - current)?;
        }
        st.guests.get_mut(uuid).expect("checked").memory = bytes;
        Ok(())
    }

    async fn set_vcpus(&self, uuid: &str, count: u32) -> Result<(), HostError> {
        if count == 0 || count > self.config.cpus * 4 {
            return Err(HostError::Failed(format!(
                "cannot run {count} virtual CPUs"
            )));
        }
        self.with_guest(uuid, |g| {
            g.vcpus = count;
            Ok(())
        })
    }

    async fn guest_metrics(&self, uuid: &str) -> Result<GuestMetrics, HostError> {
        self.with_guest(uuid, |g| {
            let busy = if g.state == GuestState::Running {
                0.02 + (g.started.elapsed().as_secs_f64() / 5.0).sin().abs() * 0.1
            } else {
                0.0
            };
            Ok(GuestMetrics {
                memory_actual: g.memory,
                vcpus: g.vcpus,
                vcpu_utilisation: vec![busy; g.vcpus as usize],
                ..GuestMetrics::default()
            })
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<GuestEvent> {
        self.events.subscribe()
    }

    async fn sr_attach(&self, sr: &str, _location: &str) -> Result<StorageInfo, HostError> {
        let mut st = self.state();
        let sr = st.srs.entry(sr.to_string()).or_default();
        Ok(StorageInfo {
            physical_size: self.config.sr_capacity,
            physical_utilisation: Self::sr_used(sr),
        })
    }

    async fn sr_detach(&self, sr: &str) -> Result<(), HostError> {
        self.state().srs.remove(sr);
        Ok(())
    }

    async fn sr_scan(&self, sr: &str) -> Result<Vec<ImageInfo>, HostError> {
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        Ok(sr.images.iter().map(|(k, img)| img.info(k)).collect())
    }

    async fn storage_info(&self, sr: &str) -> Result<StorageInfo, HostError> {
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        Ok(StorageInfo {
            physical_size: self.config.sr_capacity,
            physical_utilisation: Self::sr_used(sr),
        })
    }

    async fn image_create(
        &self,
        sr: &str,
        image: &str,
        size: u64,
        _format: ImageFormat,
    ) -> Result<ImageInfo, HostError> {
        self.work().await;
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        if sr.images.contains_key(image) {
            return Err(HostError::Failed(format!("image {image} exists")));
        }
        // New disks are allocated whole (as on a thick SR); clones and snapshots stay thin.
        let physical = size.max(IMAGE_METADATA);
        self.grow(sr, physical)?;
        let img = Image {
            virtual_size: size,
            physical,
        };
        let info = img.info(image);
        sr.images.insert(image.into(), img);
        self.save(&st);
        Ok(info)
    }

    async fn image_destroy(&self, sr: &str, image: &str) -> Result<(), HostError> {
        self.work().await;
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        sr.images
            .remove(image)
            .ok_or_else(|| HostError::NoSuchImage(image.into()))?;
        self.save(&st);
        Ok(())
    }

    async fn image_clone(&self, sr: &str, src: &str, dst: &str) -> Result<ImageInfo, HostError> {
        self.work().await;
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        let size = sr
            .images
            .get(src)
            .ok_or_else(|| HostError::NoSuchImage(src.into()))?
            .virtual_size;
        self.grow(sr, IMAGE_METADATA)?;
        sr.images.insert(
            dst.into(),
            Image {
                virtual_size: size,
                physical: IMAGE_METADATA,
            },
        );
        self.save(&st);
        Ok(ImageInfo {
            location: dst.into(),
            virtual_size: size,
            physical_utilisation: IMAGE_METADATA,
        })
    }

    async fn image_copy(
        &self,
        sr: &str,
        src: &str,
        dst_sr: &str,
        dst: &str,
    ) -> Result<ImageInfo, HostError> {
        let (size, used) = {
            let mut st = self.state();
            let from = Self::sr_mut(&mut st, sr)?;
            let img = from
                .images
                .get(src)
                .ok_or_else(|| HostError::NoSuchImage(src.into()))?;
            (img.virtual_size, img.physical)
        };
        self.work().await;
        let mut st = self.state();
        let to = Self::sr_mut(&mut st, dst_sr)?;
        self.grow(to, used)?;
        to.images.insert(
            dst.into(),
            Image {
                virtual_size: size,
                physical: used,
            },
        );
        self.save(&st);
        Ok(ImageInfo {
            location: dst.into(),
            virtual_size: size,
            physical_utilisation: used,
        })
    }

    async fn image_resize(&self, sr: &str, image: &str, size: u64) -> Result<ImageInfo, HostError> {
        self.work().await;
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        let img = sr
            .images
            .get_mut(image)
            .ok_or_else(|| HostError::NoSuchImage(image.into()))?;
        if size < img.virtual_size {
            return Err(HostError::Failed(
                "shrinking a disk image is not supported".into(),
            ));
        }
        img.virtual_size = size;
        let info = img.info(image);
        self.save(&st);
        Ok(info)
    }

    async fn image_info(&self, sr: &str, image: &str) -> Result<ImageInfo, HostError> {
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        let img = sr
            .images
            .get(image)
            .ok_or_else(|| HostError::NoSuchImage(image.into()))?;
        Ok(img.info(image))
    }

    async fn image_import(
        &self,
        sr: &str,
        image: &str,
        format: &str,
        mut data: ByteSource,
    ) -> Result<ImageInfo, HostError> {
        if format != "raw" {
            return Err(HostError::BadImage {
                image: image.into(),
                reason: format!("the simulated host imports raw images only, not {format}"),
            });
        }
        let size = self.image_info(sr, image).await?.virtual_size;
        let received = tokio::io::copy(&mut data, &mut tokio::io::sink())
            .await
            .map_err(|e| HostError::Failed(format!("reading the upload: {e}")))?;
        if received > size {
            return Err(HostError::BadImage {
                image: image.into(),
                reason: format!("{received} bytes do not fit a {size}-byte disk"),
            });
        }
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        let img = sr
            .images
            .get_mut(image)
            .ok_or_else(|| HostError::NoSuchImage(image.into()))?;
        img.physical = img.physical.max(received);
        let info = img.info(image);
        self.save(&st);
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(uuid: &str, memory: u64) -> GuestSpec {
        GuestSpec {
            uuid: uuid.into(),
            memory,
            vcpus: 1,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn accounts_memory_and_refuses_when_exhausted() {
        let host = SimHost::new(SimConfig {
            memory: (1 << 30) + HOST_OVERHEAD,
            ..Default::default()
        });
        host.start(&spec("a", 768 << 20), false).await.unwrap();
        let err = host.start(&spec("b", 512 << 20), false).await.unwrap_err();
        assert!(
            matches!(err, HostError::NotEnoughMemory { needed, available } if needed == 512 << 20 && available == 256 << 20)
        );
        host.shutdown("a", true).await.unwrap();
        host.start(&spec("b", 512 << 20), false).await.unwrap();
        assert_eq!(host.metrics().await.memory_free, 512 << 20);
    }

    #[tokio::test]
    async fn transitions_follow_the_guest_state() {
        let host = SimHost::new(SimConfig::default());
        host.start(&spec("a", 1 << 20), true).await.unwrap();
        assert!(matches!(
            host.pause("a").await,
            Err(HostError::BadState { .. })
        ));
        host.unpause("a").await.unwrap();
        host.pause("a").await.unwrap();
        assert!(matches!(
            host.shutdown("zz", true).await,
            Err(HostError::NoSuchGuest(_))
        ));
        let mut events = host.subscribe();
        host.shutdown("a", false).await.unwrap();
        assert_eq!(
            events.recv().await.unwrap(),
            GuestEvent::Exited {
                uuid: "a".into(),
                reason: "shutdown".into()
            }
        );
        assert!(host.guests().await.is_empty());
    }

    #[tokio::test]
    async fn images_are_thin_or_full_and_storage_fills() {
        let capacity = 3 * IMAGE_METADATA - 1;
        let host = SimHost::new(SimConfig {
            sr_capacity: capacity,
            ..Default::default()
        });
        assert!(
            host.image_create("sr", "x", 1 << 20, ImageFormat::Qcow2)
                .await
                .is_err(),
            "unattached SR refused"
        );
        host.sr_attach("sr", "").await.unwrap();
        let err = host
            .image_create("sr", "huge", 10 << 30, ImageFormat::Qcow2)
            .await;
        assert!(
            matches!(err, Err(HostError::StorageFull { requested, available }) if requested == 10 << 30 && available == capacity),
            "{err:?}"
        );
        host.image_create("sr", "base", IMAGE_METADATA, ImageFormat::Qcow2)
            .await
            .unwrap();
        let clone = host.image_clone("sr", "base", "c1").await.unwrap();
        assert_eq!(clone.virtual_size, IMAGE_METADATA);
        assert_eq!(clone.physical_utilisation, IMAGE_METADATA);
        let err = host.image_create("sr", "many", 1, ImageFormat::Qcow2).await;
        assert!(matches!(err, Err(HostError::StorageFull { .. })), "{err:?}");
    }
}
