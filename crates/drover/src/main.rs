//! The `drover` command: `drover serve` runs the engine with its API servers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
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
    /// Host driver.
    #[arg(long, value_enum)]
    host_driver: Option<Driver>,
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

fn host_driver(args: &ServeArgs) -> Result<Arc<dyn HostDriver>, String> {
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
    match args.host_driver {
        Some(Driver::Sim) => Ok(sim()),
        Some(Driver::Qemu) => {
            Err("the qemu host driver is not available in this build; use --host-driver sim".into())
        }
        None => {
            tracing::warn!(
                "no real host driver in this build: using the simulated host (--host-driver sim)"
            );
            Ok(sim())
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let host = host_driver(&args)?;
    let config = EngineConfig {
        data_dir: args.data_dir.clone(),
        admin_password: std::env::var("DROVER_ADMIN_PASSWORD").ok(),
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
