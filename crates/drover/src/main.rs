//! The `drover` command: `drover serve` runs the engine with its API servers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod connect;
mod power;

use clap::{Parser, Subcommand, ValueEnum};
use drover_agent::{find_qemu, Accel, AccelChoice, AgentConfig, QemuHost};
use drover_core::{Engine, EngineConfig};
use drover_host::sim::{SimConfig, SimHost};
use drover_host::HostDriver;

/// mimalloc: listing thousands of objects allocates many small, short-lived buffers, which
/// glibc's allocator serves markedly slower (bench/ovirt.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "drover",
    version,
    about = "Manage virtual machines through XenAPI and the z/VM Cloud Connector API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine and its API servers.
    Serve(ServeArgs),
    /// Run the host agent as a node that an engine enrols and then drives over mutual TLS.
    Node(NodeArgs),
    /// The fence agent of `drover node` hosts on this machine (fence-agents convention:
    /// options on standard input; `plug` is the node's data directory).
    Fence,
}

#[derive(clap::Args)]
struct NodeArgs {
    /// Directory of the node's credentials and the host agent's state.
    #[arg(long, default_value = "./var-node")]
    data_dir: PathBuf,
    /// Address the engine reaches the node at.
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// File holding the one-time enrolment secret (default: DATA_DIR/enrol-secret, made and
    /// shown at the first start).
    #[arg(long, value_name = "FILE")]
    enrol_secret_file: Option<PathBuf>,
    /// The most a live migration from this node may send, in MiB per second (default: as fast
    /// as the network goes); QEMU host driver only.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    migration_bandwidth_mib: Option<u64>,
    #[command(flatten)]
    driver: DriverArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum AccelArg {
    /// KVM if a probe shows guests run under it, else TCG.
    Auto,
    /// Hardware virtualization.
    Kvm,
    /// QEMU's translator.
    Tcg,
}

#[derive(Clone, Copy, ValueEnum)]
enum ZvmAuthArg {
    /// Every request is let in.
    None,
    /// Requests need a token from `POST /token`.
    Token,
}

#[derive(Clone, Copy, ValueEnum)]
enum Driver {
    /// Real QEMU guests.
    Qemu,
    /// A simulated host.
    Sim,
}

/// How to build the host driver; shared by `drover serve` and `drover node`.
#[derive(clap::Args)]
struct DriverArgs {
    /// Host driver: `qemu` when qemu-system-x86_64 is installed, else `sim`.
    #[arg(long, value_enum)]
    host_driver: Option<Driver>,
    /// Accelerator of QEMU guests.
    #[arg(long, value_enum, default_value = "auto")]
    accel: AccelArg,
    /// How long a clean shutdown may take before it fails, in seconds.
    #[arg(long, default_value_t = 60)]
    shutdown_timeout_secs: u64,
    /// Directory of the tiny guest (vmlinuz, initrd.img, disk.img) to offer as the template
    /// `Tiny Linux`; default DATA_DIR/tiny-guest when it exists.
    #[arg(long)]
    tiny_guest: Option<PathBuf>,
    /// Put the host's networks (bridges, VLAN and VXLAN ports, bonds), DHCP services and
    /// guests into the existing network namespace NAME (as made by `ip netns add NAME`, under
    /// /run/netns) instead of the host's own; QEMU host driver only.
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// How long each simulated host operation takes, in milliseconds.
    #[arg(long, default_value_t = 0)]
    sim_op_delay_ms: u64,
    /// Memory of the simulated host, in MiB.
    #[arg(long, default_value_t = 262_144)]
    sim_memory_mib: u64,
    /// Capacity of each simulated storage repository, in MiB.
    #[arg(long, default_value_t = 4 << 20)]
    sim_sr_capacity_mib: u64,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Directory of the store and other state.
    #[arg(long, default_value = "./var")]
    data_dir: PathBuf,
    #[command(flatten)]
    driver: DriverArgs,
    /// Address of the XenAPI server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address of the z/VM Cloud Connector REST API (off unless given).
    #[arg(long, value_name = "HOST:PORT")]
    zvm_listen: Option<SocketAddr>,
    /// Address of the z/VM Cloud Connector socket protocol (`ZVMConnector(connection_type=
    /// 'socket')`; off unless given).
    #[arg(long, value_name = "HOST:PORT")]
    zvm_socket_listen: Option<SocketAddr>,
    /// Authentication of the z/VM REST API: `none`, or `token` with `--zvm-token-file`.
    #[arg(long, value_enum, default_value = "none")]
    zvm_auth: ZvmAuthArg,
    /// File holding the z/VM admin token (`X-Admin-Token`), for `--zvm-auth token`.
    #[arg(long, value_name = "FILE")]
    zvm_token_file: Option<PathBuf>,
    /// Disk pool (`ECKD:name` or `FBA:name`, name = an SR's name) of z/VM disks that name
    /// none; default: the pool's default SR.
    #[arg(long, value_name = "POOL")]
    zvm_disk_pool: Option<String>,
    /// Address of the oVirt REST API v4 (`/ovirt-engine/api` and its SSO; off unless given).
    #[arg(long, value_name = "HOST:PORT")]
    ovirt_listen: Option<SocketAddr>,
    /// Directory of the `fence_TYPE` power-management agents hosts' `power_on_mode` names
    /// (the type `drover` is `drover fence`).
    #[arg(long, default_value = "/usr/sbin")]
    fence_agents_dir: PathBuf,
    /// The longest pause of a live migration, in milliseconds.
    #[arg(long, default_value_t = drover_core::DEFAULT_MAX_DOWNTIME_MS)]
    max_migration_downtime_ms: u64,
    /// How often load balancing and the power saver run, in seconds.
    #[arg(long, default_value_t = drover_core::DEFAULT_BALANCE_PERIOD.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    balance_period_secs: u64,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DROVER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Fence) {
        return power::fence_agent();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("drover: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Node(args) => node(args).await,
            Command::Fence => Ok(()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drover: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Builds the host driver `args` ask for, with its state in `data_dir`; a QEMU host's live
/// migrations send at most `migration_bandwidth` bytes per second, if given.
async fn host_driver(
    data_dir: &Path,
    args: &DriverArgs,
    migration_bandwidth: Option<u64>,
) -> Result<Arc<dyn HostDriver>, String> {
    let sim = || -> Arc<dyn HostDriver> {
        Arc::new(SimHost::new(SimConfig {
            state_file: Some(data_dir.join("sim-host.json")),
            ..sim_config(args)
        }))
    };
    let qemu = find_qemu();
    let qemu = match (args.host_driver, qemu) {
        (Some(Driver::Sim), _) | (None, None) if args.netns.is_some() => {
            return Err("--netns needs the qemu host driver (and qemu-system-x86_64)".into())
        }
        (Some(Driver::Sim), _) => return Ok(sim()),
        (Some(Driver::Qemu), None) => {
            return Err(
                "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)".into(),
            )
        }
        (None, None) => {
            let msg = "qemu-system-x86_64 is not installed: guests are SIMULATED \
                       (install qemu-system-x86 for real virtual machines)";
            eprintln!("drover: WARNING: {msg}");
            tracing::warn!("{msg}");
            return Ok(sim());
        }
        (_, Some(q)) => q,
    };
    let mut config = AgentConfig::new(data_dir);
    config.qemu = qemu;
    config.accel = match args.accel {
        AccelArg::Auto => AccelChoice::Auto,
        AccelArg::Kvm => AccelChoice::Fixed(Accel::Kvm),
        AccelArg::Tcg => AccelChoice::Fixed(Accel::Tcg),
    };
    config.probe_kernel = tiny_guest(data_dir, args).map(|d| d.join("vmlinuz"));
    config.shutdown_timeout = Duration::from_secs(args.shutdown_timeout_secs);
    config.netns = args.netns.clone();
    config.migration_bandwidth = migration_bandwidth;
    let host = QemuHost::open(config).await.map_err(|e| e.to_string())?;
    tracing::info!(accel = host.accel().qemu_arg(), "QEMU host agent ready");
    Ok(Arc::new(host))
}

/// What a simulated host is like.
fn sim_config(args: &DriverArgs) -> SimConfig {
    SimConfig {
        hostname: hostname(),
        memory: args.sim_memory_mib << 20,
        sr_capacity: args.sim_sr_capacity_mib << 20,
        op_delay: Duration::from_millis(args.sim_op_delay_ms),
        ..SimConfig::default()
    }
}

/// Checks that `--netns NAME` names an existing network namespace.
fn check_netns(name: &str) -> Result<(), String> {
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains('/');
    if plain && std::path::Path::new("/run/netns").join(name).exists() {
        Ok(())
    } else {
        Err(format!(
            "network namespace {name:?} does not exist (make it with `ip netns add {name}`)"
        ))
    }
}

/// The tiny guest's directory, if there is one.
fn tiny_guest(data_dir: &Path, args: &DriverArgs) -> Option<PathBuf> {
    let dir = args
        .tiny_guest
        .clone()
        .unwrap_or_else(|| data_dir.join("tiny-guest"));
    let dir = dir.canonicalize().ok()?;
    dir.join("vmlinuz").is_file().then_some(dir)
}

/// Starts the z/VM Cloud Connector facade's REST and socket listeners.
async fn start_zvm(args: &ServeArgs, engine: Arc<Engine>) -> Result<(), String> {
    let auth = match (args.zvm_auth, &args.zvm_token_file) {
        (ZvmAuthArg::None, _) => drover_zvm::rest::Auth::None,
        (ZvmAuthArg::Token, Some(f)) => {
            let token = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
            if token.trim().is_empty() {
                return Err(format!("{}: the admin token file is empty", f.display()));
            }
            drover_zvm::rest::Auth::TokenFile(f.clone())
        }
        (ZvmAuthArg::Token, None) => {
            return Err("--zvm-auth token needs --zvm-token-file".into());
        }
    };
    let config = drover_zvm::api::ZvmConfig {
        work_dir: args.data_dir.join("zvm"),
        default_pool: args.zvm_disk_pool.clone(),
        zcc_userid: "ZCCUSER".into(),
        max_concurrent_deploy_capture: 20,
    };
    let backend =
        Arc::new(drover_zvm::api::Backend::new(engine, config).map_err(|e| e.to_string())?);
    if let Some(addr) = args.zvm_listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let router = drover_zvm::rest::router(backend.clone(), auth);
        tracing::info!(listen = %addr, "z/VM Cloud Connector REST API ready");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(l, router).await {
                tracing::error!("z/VM REST server stopped: {e}");
            }
        });
    }
    if let Some(addr) = args.zvm_socket_listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        tracing::info!(listen = %addr, "z/VM Cloud Connector socket protocol ready");
        tokio::spawn(async move {
            if let Err(e) = drover_zvm::socket::serve(l, backend).await {
                tracing::error!("z/VM socket server stopped: {e}");
            }
        });
    }
    Ok(())
}

/// Starts the oVirt REST API's listener.
async fn start_ovirt(addr: SocketAddr, engine: Arc<Engine>) -> Result<(), String> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let router = drover_ovirt::router(engine);
    tracing::info!(listen = %addr, "oVirt REST API ready");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(l, router).await {
            tracing::error!("oVirt REST server stopped: {e}");
        }
    });
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let host = open_driver(&args.data_dir, &args.driver, None).await?;
    let sim = (host.info().driver == "sim").then(|| sim_config(&args.driver));
    let connector = connect::Connector::new(args.data_dir.clone(), sim)?;
    let config = EngineConfig {
        data_dir: args.data_dir.clone(),
        admin_password: std::env::var("DROVER_ADMIN_PASSWORD").ok(),
        console_base: format!("http://{}", args.listen),
        tiny_guest: tiny_guest(&args.data_dir, &args.driver),
        connector: Some(Arc::new(connector)),
        power_manager: Some(Arc::new(power::FenceAgents {
            dir: args.fence_agents_dir.clone(),
        })),
        max_migration_downtime_ms: args.max_migration_downtime_ms,
        balance_period: Duration::from_secs(args.balance_period_secs),
        ..EngineConfig::default()
    };
    let engine = Engine::open(config, host)
        .await
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("{}: {e}", args.listen))?;
    if args.zvm_listen.is_some() || args.zvm_socket_listen.is_some() {
        start_zvm(&args, engine.clone()).await?;
    }
    if let Some(addr) = args.ovirt_listen {
        start_ovirt(addr, engine.clone()).await?;
    }
    tracing::info!(listen = %args.listen, data_dir = %args.data_dir.display(), "XenAPI server ready");
    axum::serve(listener, drover_xenapi::router(engine))
        .await
        .map_err(|e| e.to_string())
}

/// Makes the data directory, checks the network namespace and builds the host driver.
async fn open_driver(
    data_dir: &Path,
    args: &DriverArgs,
    migration_bandwidth: Option<u64>,
) -> Result<Arc<dyn HostDriver>, String> {
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    if let Some(name) = &args.netns {
        check_netns(name)?;
    }
    host_driver(data_dir, args, migration_bandwidth).await
}

/// `drover node`: the host agent served to an engine (enrolment first, then mutual TLS).
async fn node(args: NodeArgs) -> Result<(), String> {
    let bandwidth = args.migration_bandwidth_mib.map(|m| m << 20);
    let host = open_driver(&args.data_dir, &args.driver, bandwidth).await?;
    let pki = &args.data_dir;
    let (identity, secret) =
        drover_node::NodeIdentity::load_or_init(pki, args.enrol_secret_file.as_deref())
            .map_err(|e| e.to_string())?;
    if let Some(secret) = secret {
        // Shown once; it is also in the file, readable by the node's user only.
        println!("enrolment secret (one-time): {secret}");
        println!(
            "(also in {})",
            pki.join(drover_node::identity::SECRET_FILE).display()
        );
    }
    if !identity.is_enrolled() {
        tracing::info!(listen = %args.listen, "node waiting for enrolment by an engine");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("{}: {e}", args.listen))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let pidfile = args.data_dir.join(power::NODE_PIDFILE);
    std::fs::write(&pidfile, format!("{}\n", std::process::id()))
        .map_err(|e| format!("{}: {e}", pidfile.display()))?;
    tracing::info!(listen = %bound, data_dir = %args.data_dir.display(), "node ready");
    drover_node::serve(listener, host, Arc::new(identity))
        .await
        .map_err(|e| e.to_string())
}
