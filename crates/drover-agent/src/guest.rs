//! One running guest: its QEMU process, QMP connection, disks, NICs, console and agent channel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_host::{
    AgentReport, DiskIo, DiskSpec, GuestEvent, GuestMetrics, GuestSpec, HostError, NicIo, NicSpec,
};
use drover_qmp::{Qmp, QmpError};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{broadcast, watch};

use crate::cmdline::{self, Disk, Paths};
use crate::migrate::{Outgoing, Stage};
use crate::net::Net;
use crate::Accel;

/// How long an ordinary QMP command may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long QEMU may take to open its QMP socket after being started.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a guest may take to release a device it is asked to unplug.
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(30);
/// The console log is cut back to `CONSOLE_KEEP` bytes when it grows beyond `CONSOLE_MAX`.
const CONSOLE_MAX: u64 = 2 << 20;
const CONSOLE_KEEP: u64 = 1 << 20;

/// A disk as plugged into the running guest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PluggedDisk {
    spec: DiskSpec,
    /// QEMU device id.
    id: String,
    /// Top block node, if the drive has media.
    node: Option<String>,
    /// The image file.
    path: Option<PathBuf>,
}

/// CPU, disk and NIC counters at one moment, to turn into rates.
struct Sample {
    at: Instant,
    cpu_ticks: Vec<u64>,
    disk_bytes: HashMap<String, (u64, u64)>,
    /// Bytes each NIC's guest received and sent, by device position.
    nic_bytes: HashMap<String, (u64, u64)>,
}

/// Where the guests of this host are kept, for a guest to take itself out when it exits.
pub(crate) type Registry = Arc<Mutex<HashMap<String, Arc<Guest>>>>;

/// A running (or paused) guest.
pub(crate) struct Guest {
    pub uuid: String,
    pub paths: Paths,
    pub pid: i32,
    pub qmp: Qmp,
    spec: Mutex<GuestSpec>,
    disks: Mutex<Vec<PluggedDisk>>,
    /// The NICs, in position order; kept in the spec file with the rest of the spec.
    nics: Mutex<Vec<NicSpec>>,
    /// Held while a NIC is plugged or unplugged, so that two never race for a position.
    nic_ops: tokio::sync::Mutex<()>,
    net: Arc<Net>,
    /// Set while the agent itself stops the guest, so its exit is not reported as an event.
    stopping: AtomicBool,
    /// Where the guest stands in a live migration; kept in the guest's `migration` file.
    stage: Mutex<Stage>,
    /// How far a send of the guest to another host has come.
    pub outgoing: tokio::sync::Mutex<Outgoing>,
    gone: watch::Receiver<bool>,
    agent: Mutex<Option<AgentReport>>,
    sample: Mutex<Option<Sample>>,
    node_generation: AtomicU32,
}

fn qmp_err(e: QmpError) -> HostError {
    HostError::Failed(e.to_string())
}

/// Whether process `pid` still exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Where a launched guest's state comes from, when it does not boot afresh.
pub(crate) enum Incoming {
    /// The state a suspend saved to this file.
    File(PathBuf),
    /// A live migration from another host, which `Guest::listen` waits for.
    Live,
}

/// How a guest is to be started.
pub(crate) struct Launch<'a> {
    pub qemu: &'a Path,
    pub accel: Accel,
    pub spec: &'a GuestSpec,
    pub disks: Vec<Disk>,
    pub paths: Paths,
    pub paused: bool,
    pub incoming: Option<Incoming>,
    /// The host's networking: QEMU runs in its namespace and the NICs' taps join its bridges.
    pub net: Arc<Net>,
}

impl Guest {
    /// Starts QEMU and connects to it; on failure nothing is left running. A guest with NICs
    /// starts with its CPUs stopped until their taps are ports of their bridges. A guest
    /// waiting for a live migration is this host's only once it is committed (see `migrate`).
    pub async fn launch(
        l: Launch<'_>,
        registry: &Registry,
        events: &broadcast::Sender<GuestEvent>,
    ) -> Result<Arc<Guest>, HostError> {
        let has_nics = !l.spec.nics.is_empty();
        // Its taps join their bridges before QEMU connects, so a live migration's destination
        // needs no `-S`: QEMU starts the guest itself once the whole state is in.
        let live = matches!(l.incoming, Some(Incoming::Live));
        let args = cmdline::build(
            l.spec,
            &l.disks,
            &l.paths,
            l.accel,
            l.incoming.is_some(),
            !live && (l.paused || has_nics || l.incoming.is_some()),
        )?;
        let io = |what: &Path| {
            let what = what.display().to_string();
            move |e: std::io::Error| HostError::Failed(format!("{what}: {e}"))
        };
        std::fs::create_dir_all(&l.paths.dir).map_err(io(&l.paths.dir))?;
        std::fs::create_dir_all(&l.paths.run).map_err(io(&l.paths.run))?;
        for stale in [
            l.paths.qmp(),
            l.paths.console(),
            l.paths.vnc(),
            l.paths.agent(),
            l.paths.pidfile(),
        ] {
            let _ = std::fs::remove_file(stale);
        }
        if l.incoming.is_none() {
            // A new boot gets a new console log; a restored guest continues its own.
            let _ = std::fs::remove_file(l.paths.console_log());
        }
        let spec_json = serde_json::to_vec_pretty(l.spec)
            .map_err(|e| HostError::Failed(format!("spec: {e}")))?;
        std::fs::write(l.paths.spec(), spec_json).map_err(io(&l.paths.spec()))?;
        let log = std::fs::File::create(l.paths.qemu_log()).map_err(io(&l.paths.qemu_log()))?;
        let out = log.try_clone().map_err(io(&l.paths.qemu_log()))?;
        let mut command = tokio::process::Command::new(l.qemu);
        command.args(&args);
        let spawned = l.net.enter(&mut command).and_then(|()| {
            command
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(log)
                .process_group(0)
                .kill_on_drop(false)
                .spawn()
                .map_err(|e| HostError::Failed(format!("cannot run {}: {e}", l.qemu.display())))
        });
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                cleanup(&l.paths);
                return Err(e);
            }
        };
        let pid = child.id().unwrap_or(0) as i32;
        let started = Instant::now();
        let qmp = loop {
            if let Ok(Some(status)) = child.try_wait() {
                let why = std::fs::read_to_string(l.paths.qemu_log()).unwrap_or_default();
                cleanup(&l.paths);
                return Err(HostError::Failed(format!(
                    "qemu exited ({status}) while starting: {}",
                    why.trim()
                )));
            }
            if l.paths.qmp().exists() {
                if let Ok((qmp, _)) = Qmp::connect(&l.paths.qmp(), QMP_TIMEOUT).await {
                    break qmp;
                }
            }
            if started.elapsed() > LAUNCH_TIMEOUT {
                let _ = child.start_kill();
                let _ = child.wait().await;
                cleanup(&l.paths);
                return Err(HostError::Failed(
                    "qemu did not open its control socket in time".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let (gone_tx, gone) = watch::channel(false);
        let stage = if live {
            Stage::Incoming
        } else {
            Stage::Settled
        };
        let guest = Arc::new(Guest::new(
            l.spec, &l.paths, pid, qmp, &l.disks, l.net, gone,
        ));
        *guest.stage.lock().expect("stage lock") = stage;
        guest.save_spec();
        guest.follow(registry, events, gone_tx, async move {
            match child.wait().await {
                Ok(s) if s.success() => "the guest powered off".to_string(),
                Ok(s) => format!("qemu ended: {s}"),
                Err(e) => format!("qemu ended: {e}"),
            }
        });
        let ready = async {
            guest.attach_taps().await?;
            match &l.incoming {
                Some(Incoming::File(state)) => guest.restore(state, l.paused).await,
                Some(Incoming::Live) => Ok(()),
                None if has_nics && !l.paused => guest.set_running(true).await,
                None => Ok(()),
            }
        };
        if let Err(e) = ready.await {
            guest.kill().await;
            return Err(e);
        }
        Ok(guest)
    }

    /// Re-attaches to a guest a previous run of the agent started, if it still runs.
    pub async fn reattach(
        paths: Paths,
        net: Arc<Net>,
        registry: &Registry,
        events: &broadcast::Sender<GuestEvent>,
    ) -> Option<Arc<Guest>> {
        let spec: GuestSpec = serde_json::from_slice(&std::fs::read(paths.spec()).ok()?).ok()?;
        let pid: i32 = std::fs::read_to_string(paths.pidfile())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ours = String::from_utf8_lossy(&cmdline).contains(&spec.uuid);
        let mut connected = None;
        // A guest that is ours gets time to answer (its monitor may be busy).
        for _ in 0..if ours { 5 } else { 0 } {
            if let Ok((qmp, _)) = Qmp::connect(&paths.qmp(), Duration::from_secs(2)).await {
                connected = Some(qmp);
                break;
            }
            if !alive(pid) {
                break;
            }
        }
        let qmp = match connected {
            Some(qmp) => qmp,
            None => {
                if ours && alive(pid) {
                    tracing::warn!(uuid = spec.uuid, pid, "guest does not answer: stopping it");
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                cleanup(&paths);
                return None;
            }
        };
        let disks: Vec<PluggedDisk> = std::fs::read(paths.disks())
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        let stage = Stage::load(&paths);
        let (gone_tx, gone) = watch::channel(false);
        let guest = Arc::new(Guest::new(&spec, &paths, pid, qmp, &[], net, gone));
        *guest.disks.lock().expect("disks lock") = disks;
        *guest.stage.lock().expect("stage lock") = stage;
        let watched = guest.clone();
        guest.follow(registry, events, gone_tx, async move {
            // Not our child any more: its control socket closing is its exit.
            watched.qmp.closed().await;
            for _ in 0..100 {
                if !alive(watched.pid) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            "qemu ended".to_string()
        });
        Some(guest)
    }

    fn new(
        spec: &GuestSpec,
        paths: &Paths,
        pid: i32,
        qmp: Qmp,
        disks: &[Disk],
        net: Arc<Net>,
        gone: watch::Receiver<bool>,
    ) -> Guest {
        let plugged = disks
            .iter()
            .map(|d| {
                let id = cmdline::device_id(&d.spec).unwrap_or_default();
                PluggedDisk {
                    spec: d.spec.clone(),
                    node: d.file.as_ref().map(|_| {
                        if d.spec.cdrom {
                            id.clone()
                        } else {
                            format!("{id}-0")
                        }
                    }),
                    path: d.file.as_ref().map(|(p, _)| p.clone()),
                    id,
                }
            })
            .collect();
        Guest {
            uuid: spec.uuid.clone(),
            paths: paths.clone(),
            pid,
            qmp,
            spec: Mutex::new(spec.clone()),
            disks: Mutex::new(plugged),
            nics: Mutex::new(spec.nics.clone()),
            nic_ops: tokio::sync::Mutex::new(()),
            net,
            stopping: AtomicBool::new(false),
            stage: Mutex::new(Stage::Settled),
            outgoing: tokio::sync::Mutex::new(Outgoing::Idle),
            gone,
            agent: Mutex::new(None),
            sample: Mutex::new(None),
            node_generation: AtomicU32::new(1),
        }
    }

    /// Registers the guest and follows it: `exit` resolves, with a reason, when QEMU is gone.
    fn follow(
        self: &Arc<Self>,
        registry: &Registry,
        events: &broadcast::Sender<GuestEvent>,
        gone: watch::Sender<bool>,
        exit: impl std::future::Future<Output = String> + Send + 'static,
    ) {
        registry
            .lock()
            .expect("registry lock")
            .insert(self.uuid.clone(), self.clone());
        let me = self.clone();
        let (reg, ev) = (registry.clone(), events.clone());
        tokio::spawn(async move {
            let reason = exit.await;
            me.exited(&reg, &ev, &reason, &gone);
        });
        self.spawn_helpers();
    }

    fn exited(
        &self,
        registry: &Registry,
        events: &broadcast::Sender<GuestEvent>,
        reason: &str,
        gone: &watch::Sender<bool>,
    ) {
        {
            let mut reg = registry.lock().expect("registry lock");
            if reg.get(&self.uuid).is_some_and(|g| g.pid == self.pid) {
                reg.remove(&self.uuid);
            }
        }
        cleanup(&self.paths);
        let _ = gone.send(true);
        // A guest in a migration is not, or no longer, this host's to report.
        if !self.stopping.load(Ordering::SeqCst) && self.stage() == Stage::Settled {
            tracing::info!(uuid = self.uuid, reason, "guest stopped");
            let _ = events.send(GuestEvent::Exited {
                uuid: self.uuid.clone(),
                reason: reason.into(),
            });
        }
    }

    /// The guest agent reader and the console log keeper, for as long as the guest runs.
    fn spawn_helpers(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let mut gone = self.gone.clone();
        let sock = self.paths.agent();
        tokio::spawn(async move {
            loop {
                if *gone.borrow() {
                    return;
                }
                if let Ok(stream) = tokio::net::UnixStream::connect(&sock).await {
                    let mut lines = tokio::io::BufReader::new(stream).lines();
                    loop {
                        tokio::select! {
                            line = lines.next_line() => match line {
                                Ok(Some(line)) => {
                                    let Some(g) = me.upgrade() else { return };
                                    if let Some(report) = parse_agent(&line, &g.nics()) {
                                        *g.agent.lock().expect("agent lock") = Some(report);
                                    }
                                }
                                _ => break,
                            },
                            _ = gone.changed() => return,
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = gone.changed() => return,
                }
            }
        });
        let log = self.paths.console_log();
        let mut gone = self.gone.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(10)) => bound_log(&log),
                    _ = gone.changed() => return,
                }
            }
        });
    }

    /// Waits until the QEMU process is gone, up to `timeout`.
    pub async fn wait_gone(&self, timeout: Duration) -> bool {
        let mut gone = self.gone.clone();
        tokio::time::timeout(timeout, gone.wait_for(|g| *g))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub async fn cmd(&self, command: &str, args: Option<Value>) -> Result<Value, HostError> {
        self.qmp
            .execute(command, args, QMP_TIMEOUT)
            .await
            .map_err(qmp_err)
    }

    /// Asks the guest to release device `id`; whether it did within [`UNPLUG_TIMEOUT`].
    async fn device_del(&self, id: &str) -> Result<bool, HostError> {
        let mut events = self.qmp.events();
        self.cmd("device_del", Some(json!({ "id": id }))).await?;
        let deleted = async {
            while let Ok(ev) = events.recv().await {
                if ev.name == "DEVICE_DELETED" && ev.data["device"].as_str() == Some(id) {
                    return true;
                }
            }
            false
        };
        Ok(tokio::time::timeout(UNPLUG_TIMEOUT, deleted)
            .await
            .unwrap_or(false))
    }

    /// `running`, `paused`, ... as QEMU says.
    pub async fn status(&self) -> Result<String, HostError> {
        let st = self.cmd("query-status", None).await?;
        Ok(st["status"].as_str().unwrap_or("unknown").to_string())
    }

    /// Presses the ACPI power button and waits for the guest to go. The button is pressed again
    /// every few seconds, for a guest that was still booting when it was first pressed.
    pub async fn powerdown(&self, timeout: Duration) -> Result<(), HostError> {
        const AGAIN: Duration = Duration::from_secs(5);
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        loop {
            if let Err(e) = self.cmd("system_powerdown", None).await {
                if self.wait_gone(Duration::ZERO).await {
                    return Ok(());
                }
                self.stopping.store(false, Ordering::SeqCst);
                return Err(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if self.wait_gone(left.min(AGAIN)).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stopping.store(false, Ordering::SeqCst);
                return Err(HostError::ShutdownTimeout(self.uuid.clone()));
            }
        }
    }

    /// Stops the guest at once.
    pub async fn kill(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.qmp.execute("quit", None, Duration::from_secs(2)).await;
        if self.wait_gone(Duration::from_secs(5)).await {
            return;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        self.wait_gone(Duration::from_secs(10)).await;
    }

    /// Saves the guest's memory and device state to `file`, then stops it.
    pub async fn save(&self, file: &Path) -> Result<(), HostError> {
        let uri = exec_uri("cat > ", file)?;
        // A live migration may have left QEMU set to wait before its switch-over.
        self.set_pause_before_switchover(false).await?;
        self.cmd("migrate", Some(json!({ "uri": uri }))).await?;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let st = self.cmd("query-migrate", None).await?;
            match st["status"].as_str().unwrap_or("") {
                "completed" => break,
                "failed" | "cancelled" => {
                    return Err(HostError::Failed(format!(
                        "saving the guest's memory failed: {}",
                        st["error-desc"].as_str().unwrap_or("unknown error")
                    )))
                }
                _ if Instant::now() > deadline => {
                    let _ = self.cmd("migrate_cancel", None).await;
                    return Err(HostError::Failed(
                        "saving the guest's memory took too long".into(),
                    ));
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        self.kill().await;
        Ok(())
    }

    async fn restore(&self, file: &Path, paused: bool) -> Result<(), HostError> {
        let uri = exec_uri("cat ", file)?;
        self.cmd("migrate-incoming", Some(json!({ "uri": uri })))
            .await?;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let st = self.status().await.map_err(|e| {
                HostError::Failed(format!("restoring the guest's memory failed: {e}"))
            })?;
            match st.as_str() {
                "inmigrate" | "prelaunch" if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                "paused" | "postmigrate" => break,
                other => {
                    return Err(HostError::Failed(format!(
                        "restoring the guest's memory ended in state {other}"
                    )))
                }
            }
        }
        if !paused {
            self.cmd("cont", None).await?;
        }
        Ok(())
    }

    /// Pauses or resumes the virtual CPUs.
    pub async fn set_running(&self, run: bool) -> Result<(), HostError> {
        self.cmd(if run { "cont" } else { "stop" }, None)
            .await
            .map(|_| ())
    }

    /// Resets the machine, as the reset button does.
    pub async fn reset(&self) -> Result<(), HostError> {
        self.cmd("system_reset", None).await.map(|_| ())
    }

    /// Sets the balloon target.
    pub async fn balloon(&self, bytes: u64) -> Result<(), HostError> {
        let max = self.spec.lock().expect("spec lock").memory;
        if bytes > max {
            return Err(HostError::Failed(format!(
                "the guest was started with {max} bytes and cannot grow beyond that while it runs"
            )));
        }
        self.cmd("balloon", Some(json!({ "value": bytes })))
            .await
            .map(|_| ())
    }

    /// Plugs or unplugs virtual CPUs until the guest has `count`.
    pub async fn set_vcpus(&self, count: u32) -> Result<(), HostError> {
        let spec = self.spec();
        let max = cmdline::max_vcpus(&spec);
        if count == 0 || count > max {
            return Err(HostError::Failed(format!(
                "the guest can have 1 to {max} virtual CPUs while it runs, not {count}"
            )));
        }
        let mut current = spec.vcpus.max(1);
        while current < count {
            self.cmd(
                "device_add",
                Some(json!({
                    "driver": cmdline::CPU_TYPE,
                    "id": cmdline::cpu_id(current),
                    "socket-id": 0,
                    "core-id": current,
                    "thread-id": 0,
                })),
            )
            .await?;
            current += 1;
            self.record_vcpus(current);
        }
        while current > count {
            if !self.device_del(&cmdline::cpu_id(current - 1)).await? {
                return Err(HostError::Unsupported(format!(
                    "the guest did not release virtual CPU {}; it keeps {current}",
                    current - 1
                )));
            }
            current -= 1;
            self.record_vcpus(current);
        }
        Ok(())
    }

    fn record_vcpus(&self, count: u32) {
        self.spec.lock().expect("spec lock").vcpus = count;
        self.save_spec();
    }

    /// The spec the guest runs with, including disks and NICs plugged since.
    pub fn spec(&self) -> GuestSpec {
        let mut spec = self.spec.lock().expect("spec lock").clone();
        spec.disks = self
            .disks
            .lock()
            .expect("disks lock")
            .iter()
            .map(|d| d.spec.clone())
            .collect();
        spec.nics = self.nics();
        spec
    }

    /// The NICs plugged now.
    fn nics(&self) -> Vec<NicSpec> {
        self.nics.lock().expect("nics lock").clone()
    }

    /// Where the guest stands in a live migration.
    pub fn stage(&self) -> Stage {
        *self.stage.lock().expect("stage lock")
    }

    /// Moves the guest to another stage of a live migration, recorded for a re-attach.
    pub fn set_stage(&self, stage: Stage) {
        *self.stage.lock().expect("stage lock") = stage;
        self.save_spec();
    }

    /// Records the spec, the disks as plugged now and the migration stage, for an agent that
    /// re-attaches later.
    fn save_spec(&self) {
        if let Ok(json) = serde_json::to_vec_pretty(&self.spec()) {
            let _ = std::fs::write(self.paths.spec(), json);
        }
        self.stage().save(&self.paths);
        let disks = self.disks.lock().expect("disks lock").clone();
        if let Ok(json) = serde_json::to_vec_pretty(&disks) {
            let _ = std::fs::write(self.paths.disks(), json);
        }
    }

    /// Files the QEMU process has open.
    pub fn open_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|fds| {
                fds.flatten()
                    .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the guest has `path` open as a disk it writes.
    pub fn writes(&self, path: &Path) -> bool {
        self.disks
            .lock()
            .expect("disks lock")
            .iter()
            .any(|d| d.path.as_deref() == Some(path))
    }

    /// Hot-plugs a disk.
    pub async fn plug(&self, disk: &DiskSpec, file: &Path, format: &str) -> Result<(), HostError> {
        let id = cmdline::device_id(disk)?;
        let n = cmdline::position(&disk.device)?;
        if n >= cmdline::MAX_DISKS {
            return Err(HostError::Failed(format!("no slot for disk position {n}")));
        }
        if self
            .disks
            .lock()
            .expect("disks lock")
            .iter()
            .any(|d| d.id == id)
        {
            return Err(HostError::Failed(format!(
                "the guest already has a disk at position {n}"
            )));
        }
        let node = self.new_node(&id);
        self.add_node(&node, file, format, disk.read_only).await?;
        let dev = cmdline::device_args(&cmdline::disk_device(&id, &node, n, None));
        if let Err(e) = self.cmd("device_add", Some(dev)).await {
            let _ = self
                .cmd("blockdev-del", Some(json!({ "node-name": node })))
                .await;
            return Err(e);
        }
        self.disks.lock().expect("disks lock").push(PluggedDisk {
            spec: disk.clone(),
            id,
            node: Some(node),
            path: Some(file.to_path_buf()),
        });
        self.save_spec();
        Ok(())
    }

    /// Hot-unplugs the disk at `device`, waiting for the guest to release it.
    pub async fn unplug(&self, device: &str) -> Result<(), HostError> {
        let n = cmdline::position(device)?;
        let disk = self
            .disks
            .lock()
            .expect("disks lock")
            .iter()
            .find(|d| !d.spec.cdrom && cmdline::position(&d.spec.device).ok() == Some(n))
            .cloned()
            .ok_or_else(|| HostError::Failed(format!("no disk at position {device}")))?;
        if !self.device_del(&disk.id).await? {
            return Err(HostError::Failed(format!(
                "the guest did not release disk {device}"
            )));
        }
        if let Some(node) = &disk.node {
            let _ = self
                .cmd("blockdev-del", Some(json!({ "node-name": node })))
                .await;
        }
        self.disks
            .lock()
            .expect("disks lock")
            .retain(|d| d.id != disk.id);
        self.save_spec();
        Ok(())
    }

    /// Inserts media into, or ejects it from, the CD drive at `device`.
    pub async fn change_media(
        &self,
        device: &str,
        media: Option<(&Path, &DiskSpec)>,
    ) -> Result<(), HostError> {
        let n = cmdline::position(device)?;
        let disk = self
            .disks
            .lock()
            .expect("disks lock")
            .iter()
            .find(|d| d.spec.cdrom && cmdline::position(&d.spec.device).ok() == Some(n))
            .cloned()
            .ok_or_else(|| HostError::Failed(format!("no CD drive at position {device}")))?;
        let id = json!({ "id": disk.id });
        self.cmd(
            "blockdev-open-tray",
            Some(json!({ "id": disk.id, "force": true })),
        )
        .await?;
        self.cmd("blockdev-remove-medium", Some(id.clone())).await?;
        if let Some(node) = &disk.node {
            let _ = self
                .cmd("blockdev-del", Some(json!({ "node-name": node })))
                .await;
        }
        let mut updated = disk.clone();
        updated.node = None;
        updated.path = None;
        updated.spec.sr.clear();
        updated.spec.image.clear();
        if let Some((file, spec)) = media {
            let node = self.new_node(&disk.id);
            self.add_node(&node, file, "raw", true).await?;
            self.cmd(
                "blockdev-insert-medium",
                Some(json!({ "id": disk.id, "node-name": node })),
            )
            .await?;
            updated.node = Some(node);
            updated.path = Some(file.to_path_buf());
            updated.spec.sr = spec.sr.clone();
            updated.spec.image = spec.image.clone();
        }
        self.cmd("blockdev-close-tray", Some(id)).await?;
        for d in self.disks.lock().expect("disks lock").iter_mut() {
            if d.id == updated.id {
                *d = updated.clone();
            }
        }
        self.save_spec();
        Ok(())
    }

    /// Makes the taps QEMU made for the guest's NICs ports of their bridges.
    async fn attach_taps(&self) -> Result<(), HostError> {
        for nic in self.nics() {
            let n = cmdline::nic_position(&nic)?;
            self.net
                .attach_port(
                    &cmdline::tap_name(&self.paths.run, n),
                    &nic.bridge,
                    cmdline::nic_mtu(&nic),
                )
                .await?;
        }
        Ok(())
    }

    /// Hot-plugs a NIC: a new tap, made a port of the NIC's bridge, behind a virtio NIC in the
    /// position's PCI slot. On failure the tap goes again.
    pub async fn nic_attach(&self, nic: &NicSpec) -> Result<(), HostError> {
        let _op = self.nic_ops.lock().await;
        let n = cmdline::nic_position(nic)?;
        let status = self.status().await?;
        if status != "running" && status != "paused" {
            return Err(HostError::Failed(format!(
                "a NIC is plugged into a running or paused guest, not one that is {status}"
            )));
        }
        if self
            .nics()
            .iter()
            .any(|x| cmdline::nic_position(x).ok() == Some(n))
        {
            return Err(HostError::Failed(format!(
                "the guest already has a NIC at position {n}"
            )));
        }
        let (netdev, _) = cmdline::nic_ids(n);
        let tap = cmdline::tap_name(&self.paths.run, n);
        self.cmd(
            "netdev_add",
            Some(json!({
                "type": "tap",
                "id": netdev,
                "ifname": tap,
                "script": "no",
                "downscript": "no",
            })),
        )
        .await?;
        let plugged = async {
            self.net
                .attach_port(&tap, &nic.bridge, cmdline::nic_mtu(nic))
                .await?;
            let dev = cmdline::device_args(&cmdline::nic_device(nic, n, None));
            self.cmd("device_add", Some(dev)).await
        };
        if let Err(e) = plugged.await {
            let _ = self.cmd("netdev_del", Some(json!({ "id": netdev }))).await;
            return Err(e);
        }
        {
            let mut nics = self.nics.lock().expect("nics lock");
            nics.push(nic.clone());
            nics.sort_by_key(|x| cmdline::nic_position(x).unwrap_or(u32::MAX));
        }
        self.save_spec();
        Ok(())
    }

    /// The position of the guest's NIC at `device`, which must exist.
    fn nic_at(&self, device: &str) -> Result<u32, HostError> {
        device
            .parse::<u32>()
            .ok()
            .filter(|n| {
                self.nics()
                    .iter()
                    .any(|x| cmdline::nic_position(x).ok() == Some(*n))
            })
            .ok_or_else(|| HostError::Failed(format!("no NIC at position {device}")))
    }

    /// Hot-unplugs the NIC at `device`, waiting for the guest to release it; its tap goes.
    pub async fn nic_detach(&self, device: &str) -> Result<(), HostError> {
        let _op = self.nic_ops.lock().await;
        let n = self.nic_at(device)?;
        let (netdev, id) = cmdline::nic_ids(n);
        if !self.device_del(&id).await? {
            return Err(HostError::Failed(format!(
                "the guest did not release NIC {device}"
            )));
        }
        self.nics
            .lock()
            .expect("nics lock")
            .retain(|x| cmdline::nic_position(x).ok() != Some(n));
        self.save_spec();
        self.cmd("netdev_del", Some(json!({ "id": netdev })))
            .await
            .map(|_| ())
    }

    /// Moves the NIC at `device` to `bridge`: its tap becomes a port of that bridge (which takes
    /// it from its old one) with `mtu`, and the spec file records the new bridge, so a re-attach
    /// or a resume keeps it there. The guest sees no unplug.
    pub async fn nic_move(&self, device: &str, bridge: &str, mtu: u32) -> Result<(), HostError> {
        let _op = self.nic_ops.lock().await;
        let n = self.nic_at(device)?;
        self.net
            .attach_port(&cmdline::tap_name(&self.paths.run, n), bridge, mtu)
            .await?;
        for nic in self.nics.lock().expect("nics lock").iter_mut() {
            if cmdline::nic_position(nic).ok() == Some(n) {
                nic.bridge = bridge.into();
                nic.mtu = mtu;
            }
        }
        self.save_spec();
        Ok(())
    }

    /// Makes the guest write the disk backed by `path` into the new, empty `overlay` (whose
    /// backing file holds `path`'s current data) from now on.
    pub async fn redirect_writes(&self, path: &Path, overlay: &Path) -> Result<(), HostError> {
        let disk = self
            .disks
            .lock()
            .expect("disks lock")
            .iter()
            .find(|d| d.path.as_deref() == Some(path))
            .cloned()
            .ok_or_else(|| HostError::Failed(format!("{} is not plugged", path.display())))?;
        let top = disk
            .node
            .clone()
            .ok_or_else(|| HostError::Failed("the drive is empty".into()))?;
        let node = self.new_node(&disk.id);
        self.cmd(
            "blockdev-add",
            Some(json!({
                "driver": "qcow2",
                "node-name": node,
                "file": { "driver": "file", "filename": overlay },
                "backing": null,
            })),
        )
        .await?;
        if let Err(e) = self
            .cmd(
                "blockdev-snapshot",
                Some(json!({ "node": top, "overlay": node })),
            )
            .await
        {
            let _ = self
                .cmd("blockdev-del", Some(json!({ "node-name": node })))
                .await;
            return Err(e);
        }
        for d in self.disks.lock().expect("disks lock").iter_mut() {
            if d.id == disk.id {
                d.node = Some(node.clone());
            }
        }
        self.save_spec();
        Ok(())
    }

    fn new_node(&self, id: &str) -> String {
        format!(
            "{id}-{}",
            self.node_generation.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn add_node(
        &self,
        node: &str,
        file: &Path,
        format: &str,
        read_only: bool,
    ) -> Result<(), HostError> {
        self.cmd(
            "blockdev-add",
            Some(json!({
                "driver": format,
                "node-name": node,
                "read-only": read_only,
                "file": { "driver": "file", "filename": file, "read-only": read_only },
            })),
        )
        .await
        .map(|_| ())
    }

    /// Live figures: memory, per-vCPU utilisation and disk throughput since the last call.
    pub async fn metrics(&self) -> Result<GuestMetrics, HostError> {
        let balloon = self.cmd("query-balloon", None).await.ok();
        let spec_memory = self.spec.lock().expect("spec lock").memory;
        let memory_actual = balloon
            .as_ref()
            .and_then(|b| b["actual"].as_u64())
            .unwrap_or(spec_memory);
        let cpus = self.cmd("query-cpus-fast", None).await?;
        let threads: Vec<i64> = cpus
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["thread-id"].as_i64()).collect())
            .unwrap_or_default();
        let cpu_ticks: Vec<u64> = threads.iter().map(|t| thread_ticks(self.pid, *t)).collect();
        let stats = self.cmd("query-blockstats", None).await?;
        let ids: Vec<(String, String)> = self
            .disks
            .lock()
            .expect("disks lock")
            .iter()
            .map(|d| (d.id.clone(), d.spec.device.clone()))
            .collect();
        let mut disk_bytes = HashMap::new();
        for s in stats.as_array().into_iter().flatten() {
            let qdev = s["qdev"].as_str().unwrap_or("");
            if let Some((_, device)) = ids
                .iter()
                .find(|(id, _)| qdev.contains(&format!("/{id}/")) || qdev == id)
            {
                let st = &s["stats"];
                disk_bytes.insert(
                    device.clone(),
                    (
                        st["rd_bytes"].as_u64().unwrap_or(0),
                        st["wr_bytes"].as_u64().unwrap_or(0),
                    ),
                );
            }
        }
        let mut leases: HashMap<String, Vec<(String, std::net::Ipv4Addr)>> = HashMap::new();
        let taps = std::fs::read_to_string(format!("/proc/{}/net/dev", self.pid))
            .map(|t| tap_counters(&t))
            .unwrap_or_default();
        // A tap receives what the guest sends and sends what the guest receives.
        let mut nics: Vec<NicIo> = self
            .nics()
            .iter()
            .map(|nic| {
                let tap = cmdline::nic_position(nic)
                    .ok()
                    .and_then(|n| taps.get(&cmdline::tap_name(&self.paths.run, n)))
                    .copied()
                    .unwrap_or_default();
                let leased = leases
                    .entry(nic.bridge.clone())
                    .or_insert_with(|| self.net.leases(&nic.bridge));
                NicIo {
                    device: nic.device.clone(),
                    rx_bytes: tap.tx_bytes,
                    tx_bytes: tap.rx_bytes,
                    rx_errors: tap.tx_errors,
                    tx_errors: tap.rx_errors,
                    leased_ipv4: leased
                        .iter()
                        .filter(|(mac, _)| mac.eq_ignore_ascii_case(&nic.mac))
                        .map(|(_, ip)| *ip)
                        .collect(),
                    ..NicIo::default()
                }
            })
            .collect();
        let now = Sample {
            at: Instant::now(),
            cpu_ticks,
            disk_bytes,
            nic_bytes: nics
                .iter()
                .map(|n| (n.device.clone(), (n.rx_bytes, n.tx_bytes)))
                .collect(),
        };
        let mut last = self.sample.lock().expect("sample lock");
        let (vcpu_utilisation, disks) = match last.as_ref() {
            Some(prev) => {
                let secs = now.at.duration_since(prev.at).as_secs_f64().max(0.001);
                for n in &mut nics {
                    let (rx, tx) = prev
                        .nic_bytes
                        .get(&n.device)
                        .copied()
                        .unwrap_or((n.rx_bytes, n.tx_bytes));
                    n.read_kbs = n.rx_bytes.saturating_sub(rx) as f64 / 1024.0 / secs;
                    n.write_kbs = n.tx_bytes.saturating_sub(tx) as f64 / 1024.0 / secs;
                }
                let hz = clock_ticks();
                let util = now
                    .cpu_ticks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let before = prev.cpu_ticks.get(i).copied().unwrap_or(*t);
                        (t.saturating_sub(before) as f64 / hz / secs).min(1.0)
                    })
                    .collect();
                let disks = now
                    .disk_bytes
                    .iter()
                    .map(|(dev, (r, w))| {
                        let (pr, pw) = prev.disk_bytes.get(dev).copied().unwrap_or((*r, *w));
                        DiskIo {
                            device: dev.clone(),
                            read_kbs: r.saturating_sub(pr) as f64 / 1024.0 / secs,
                            write_kbs: w.saturating_sub(pw) as f64 / 1024.0 / secs,
                        }
                    })
                    .collect();
                (util, disks)
            }
            None => (
                vec![0.0; now.cpu_ticks.len()],
                now.disk_bytes
                    .keys()
                    .map(|d| DiskIo {
                        device: d.clone(),
                        ..DiskIo::default()
                    })
                    .collect(),
            ),
        };
        let vcpus = now.cpu_ticks.len() as u32;
        let cpu_time_us = (now.cpu_ticks.iter().sum::<u64>() as f64 / clock_ticks() * 1e6) as u64;
        *last = Some(now);
        Ok(GuestMetrics {
            memory_actual,
            vcpus,
            vcpu_utilisation,
            cpu_time_us,
            disks,
            nics,
            agent: self.agent.lock().expect("agent lock").clone(),
        })
    }
}

fn exec_uri(command: &str, file: &Path) -> Result<String, HostError> {
    let f = file.to_string_lossy();
    if f.contains('\'') {
        return Err(HostError::Failed(format!("unusable state file name {f}")));
    }
    Ok(format!("exec:{command}'{f}'"))
}

/// Counters of one network device, as its host side sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TapCounters {
    rx_bytes: u64,
    rx_errors: u64,
    tx_bytes: u64,
    tx_errors: u64,
}

/// The counters of each device in a `/proc/<pid>/net/dev` table.
fn tap_counters(table: &str) -> HashMap<String, TapCounters> {
    table
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            // Receive: bytes packets errs ...; transmit starts at the ninth field.
            Some((
                name.trim().to_string(),
                TapCounters {
                    rx_bytes: *f.first()?,
                    rx_errors: *f.get(2)?,
                    tx_bytes: *f.get(8)?,
                    tx_errors: *f.get(10)?,
                },
            ))
        })
        .collect()
}

/// CPU time (user + system) of one thread, in clock ticks.
fn thread_ticks(pid: i32, tid: i64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            // Fields after the command: state is 0, utime 11, stime 12.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64
}

/// Removes a stopped guest's sockets and runtime files; the console log stays.
fn cleanup(paths: &Paths) {
    let _ = std::fs::remove_dir_all(&paths.run);
    let _ = std::fs::remove_file(paths.pidfile());
    let _ = std::fs::remove_file(paths.spec());
    let _ = std::fs::remove_file(paths.disks());
    let _ = std::fs::remove_file(paths.migration());
}

/// Cuts the console log back to its last `CONSOLE_KEEP` bytes once it passes `CONSOLE_MAX`.
/// QEMU appends (`O_APPEND`), so its next write lands at the new end.
fn bound_log(log: &Path) {
    let Ok(meta) = std::fs::metadata(log) else {
        return;
    };
    if meta.len() <= CONSOLE_MAX {
        return;
    }
    let Ok(data) = std::fs::read(log) else { return };
    let tail = &data[data.len().saturating_sub(CONSOLE_KEEP as usize)..];
    let _ = std::fs::write(log, tail);
}

/// Reads one report line of the guest agent. Interfaces map to the positions of `nics` by MAC;
/// those of unknown MACs are left out.
fn parse_agent(line: &str, nics: &[NicSpec]) -> Option<AgentReport> {
    let v: Value = serde_json::from_str(line).ok()?;
    let flat = |v: &Value| -> std::collections::BTreeMap<String, String> {
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                )
            })
            .collect()
    };
    let mut networks = std::collections::BTreeMap::new();
    for (iface, addrs) in v["networks"].as_object().into_iter().flatten() {
        let Some(mac) = v["macs"][iface].as_str() else {
            continue;
        };
        let Some(nic) = nics.iter().find(|n| n.mac.eq_ignore_ascii_case(mac)) else {
            continue;
        };
        let ips = addrs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .map(|a| a.split('/').next().unwrap_or(a));
        for (i, ip) in ips.enumerate() {
            if i == 0 {
                networks.insert(format!("{}/ip", nic.device), ip.to_string());
            }
            networks.insert(format!("{}/ipv4/{i}", nic.device), ip.to_string());
        }
    }
    let disks = v["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str())
        .map(|d| (d.to_string(), "present".to_string()))
        .collect();
    let mut other = std::collections::BTreeMap::new();
    for k in ["agent", "version", "uptime", "boot_id"] {
        if let Some(x) = v.get(k) {
            other.insert(
                k.to_string(),
                x.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| x.to_string()),
            );
        }
    }
    Some(AgentReport {
        os_version: flat(&v["os"]),
        memory: flat(&v["memory"]),
        networks,
        disks,
        other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_reports_become_maps() {
        let nics = [
            NicSpec {
                device: "0".into(),
                mac: "52:54:00:AB:00:01".into(),
                ..NicSpec::default()
            },
            NicSpec {
                device: "2".into(),
                mac: "52:54:00:ab:00:02".into(),
                ..NicSpec::default()
            },
        ];
        let r = parse_agent(
            r#"{"agent":"drover-tiny","version":1,"os":{"name":"Drover tiny guest","kernel":"6.1"},
            "memory":{"total_kb":70000,"free_kb":50000},
            "networks":{"eth0":["10.0.0.5/24"],"eth1":["10.0.1.5/24","10.0.2.5/16"],
                        "eth2":["10.9.9.9/24"],"eth3":["10.8.8.8/24"]},
            "macs":{"eth0":"52:54:00:ab:00:01","eth1":"52:54:00:AB:00:02","eth2":"52:54:00:ff:ff:ff"},
            "disks":["vda"],"uptime":12.5,"boot_id":"b"}"#
                .replace('\n', " ")
                .as_str(),
            &nics,
        )
        .unwrap();
        assert_eq!(r.os_version["kernel"], "6.1");
        assert_eq!(r.memory["total_kb"], "70000");
        assert_eq!(
            r.networks,
            [
                ("0/ip", "10.0.0.5"),
                ("0/ipv4/0", "10.0.0.5"),
                ("2/ip", "10.0.1.5"),
                ("2/ipv4/0", "10.0.1.5"),
                ("2/ipv4/1", "10.0.2.5"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into()
        );
        assert_eq!(r.other["uptime"], "12.5");
        assert!(parse_agent("not json", &nics).is_none());
    }

    #[test]
    fn tap_counters_are_read_from_the_net_dev_table() {
        let table = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
dv0123abcd.10: 1234      10    1    0    0     0          0         0     5678      20    2    0    0     0       0          0
";
        let c = tap_counters(table);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c["dv0123abcd.10"],
            TapCounters {
                rx_bytes: 1234,
                rx_errors: 1,
                tx_bytes: 5678,
                tx_errors: 2,
            }
        );
    }

    #[test]
    fn console_log_is_cut_to_its_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let mut data = vec![b'a'; CONSOLE_MAX as usize];
        data.extend_from_slice(b"the end");
        std::fs::write(&log, &data).unwrap();
        bound_log(&log);
        let kept = std::fs::read(&log).unwrap();
        assert_eq!(kept.len(), CONSOLE_KEEP as usize);
        assert!(kept.ends_with(b"the end"));
    }
}
