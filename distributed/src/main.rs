//! `ingot-ballista`: a Ballista scheduler or executor that knows Ingot's
//! tables (see the crate documentation).
//!
//! ```sh
//! ingot-ballista scheduler --bind 127.0.0.1:50050
//! ingot-ballista executor --scheduler 127.0.0.1:50050 --port 50051 --grpc-port 50052
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use clap::{Parser, Subcommand};
use ingot_ballista::{IngotLogicalCodec, IngotPhysicalCodec, set_replica_dir};

#[derive(Parser)]
#[command(
    name = "ingot-ballista",
    version,
    about = "A Ballista scheduler or executor for Ingot tables"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Plans queries and hands their tasks to the executors.
    Scheduler {
        /// Address of the scheduler's gRPC service (clients: df://ADDR).
        #[arg(long, env = "INGOT_BALLISTA_BIND", default_value = "127.0.0.1:50050")]
        bind: SocketAddr,
    },
    /// Runs tasks; reads Ingot tables from the bucket (AWS_* variables).
    Executor(ExecutorArgs),
}

#[derive(clap::Args)]
struct ExecutorArgs {
    /// The scheduler's address.
    #[arg(
        long,
        env = "INGOT_BALLISTA_SCHEDULER",
        default_value = "127.0.0.1:50050"
    )]
    scheduler: SocketAddr,
    /// Host to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,
    /// Port of the executor's Arrow Flight service (results, shuffles).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// Port of the executor's gRPC service (tasks).
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks run at once (default: the machine's cores).
    #[arg(long)]
    concurrent_tasks: Option<usize>,
    /// Shuffle files, and the read-only Ingot engines' caches of the
    /// bucket's files (default: a folder in the temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Scheduler { bind } => scheduler(bind).await,
        Command::Executor(args) => executor(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingot-ballista: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn scheduler(bind: SocketAddr) -> ballista_core::error::Result<()> {
    let config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        external_host: bind.ip().to_string(),
        bind_port: bind.port(),
        override_logical_codec: Some(Arc::new(IngotLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(IngotPhysicalCodec::default())),
        ..Default::default()
    };
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, bind, Arc::new(config)).await
}

async fn executor(args: ExecutorArgs) -> ballista_core::error::Result<()> {
    let port = args.port;
    let work_dir = args
        .work_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("ingot-ballista-executor-{port}")));
    std::fs::create_dir_all(&work_dir)?;
    set_replica_dir(work_dir.join("ingot"));
    let mut config = ExecutorProcessConfig {
        bind_host: args.bind_host.clone(),
        external_host: Some(args.bind_host),
        port,
        grpc_port: args.grpc_port,
        scheduler_host: args.scheduler.ip().to_string(),
        scheduler_port: args.scheduler.port(),
        work_dir: Some(work_dir.join("shuffle").display().to_string()),
        override_logical_codec: Some(Arc::new(IngotLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(IngotPhysicalCodec::default())),
        ..Default::default()
    };
    if let Some(tasks) = args.concurrent_tasks {
        config.vcores = tasks;
    }
    start_executor_process(Arc::new(config)).await
}
