//! The `drover` command: `drover serve` runs the engine with its API servers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use drover_agent::{find_qemu, Accel, AccelChoice, AgentConfig, QemuHost};
use drover_core::{Engine, EngineConfig};
use drover_host::sim::{SimConfig, SimHost};
use drover_host::HostDriver;

#[derive(Parser)]
#[command(
    name = "drover",
    version,
    about = "Manage virtual machines through XenAPI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine and its API servers.
    Serve(ServeArgs),
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
enum Driver {
    /// Real QEMU guests.
    Qemu,
    /// A simulated host.
    Sim,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Directory of the store and other state.
    #[arg(long, default_value = "./var")]
    data_dir: PathBuf,
    /// Address of the XenAPI server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
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

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DROVER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
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

async fn host_driver(args: &ServeArgs) -> Result<Arc<dyn HostDriver>, String> {
    let sim = || -> Arc<dyn HostDriver> {
        Arc::new(SimHost::new(SimConfig {
            hostname: hostname(),
            memory: args.sim_memory_mib << 20,
            sr_capacity: args.sim_sr_capacity_mib << 20,
            op_delay: Duration::from_millis(args.sim_op_delay_ms),
            state_file: Some(args.data_dir.join("sim-host.json")),
            ..SimConfig::default()
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
    let mut config = AgentConfig::new(&args.data_dir);
    config.qemu = qemu;
    config.accel = match args.accel {
        AccelArg::Auto => AccelChoice::Auto,
        AccelArg::Kvm => AccelChoice::Fixed(Accel::Kvm),
        AccelArg::Tcg => AccelChoice::Fixed(Accel::Tcg),
    };
    config.probe_kernel = tiny_guest(args).map(|d| d.join("vmlinuz"));
    config.shutdown_timeout = Duration::from_secs(args.shutdown_timeout_secs);
    config.netns = args.netns.clone();
    let host = QemuHost::open(config).await.map_err(|e| e.to_string())?;
    tracing::info!(accel = host.accel().qemu_arg(), "QEMU host agent ready");
    Ok(Arc::new(host))
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
fn tiny_guest(args: &ServeArgs) -> Option<PathBuf> {
    let dir = args
        .tiny_guest
        .clone()
        .unwrap_or_else(|| args.data_dir.join("tiny-guest"));
    let dir = dir.canonicalize().ok()?;
    dir.join("vmlinuz").is_file().then_some(dir)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    if let Some(name) = &args.netns {
        check_netns(name)?;
    }
    let host = host_driver(&args).await?;
    let config = EngineConfig {
        data_dir: args.data_dir.clone(),
        admin_password: std::env::var("DROVER_ADMIN_PASSWORD").ok(),
        console_base: format!("http://{}", args.listen),
        tiny_guest: tiny_guest(&args),
    };
    let engine = Engine::open(config, host)
        .await
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("{}: {e}", args.listen))?;
    tracing::info!(listen = %args.listen, data_dir = %args.data_dir.display(), "XenAPI server ready");
    axum::serve(listener, drover_xenapi::router(engine))
        .await
        .map_err(|e| e.to_string())
}
