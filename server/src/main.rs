//! `ingot`: run a server (`serve`), query one (`sql`) or load files into one
//! (`import`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ingot_engine::{Engine, Options, Precision, WalSync};
use ingot_server::client::Client;
use ingot_server::export::ExportOptions;
use ingot_server::import::{FileFormat, ImportOptions, Target, import_export, import_file};
use ingot_server::{ServeConfig, Server, SqlLimits, TlsFiles};
use tracing::{error, info, warn};

#[derive(Debug, Parser)]
#[command(name = "ingot", version, about = "Ingot, a time-series database")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC ingestion + Flight SQL and the HTTP API over a data directory.
    Serve(Box<ServeArgs>),
    /// Run SQL against a server (Flight SQL) or a data directory; reads
    /// statements from stdin, one per line, when no query is given.
    Sql(SqlArgs),
    /// Load Parquet, CSV or line-protocol files, or a directory written by
    /// `ingot export`, into a server or a data directory.
    Import(ImportArgs),
    /// Back up a table (or a time range of it) as Parquet files in a
    /// directory, from one consistent snapshot; `ingot import DIR` restores it.
    Export(ExportArgs),
    /// One HTTP write address for a cluster of writer nodes (--node-id):
    /// splits line-protocol writes by the node that owns each series and
    /// forwards each node its share.
    Route(RouteArgs),
    /// Compact a data directory offline (no server may hold it): every
    /// partition with more than one file becomes one sorted, deduplicated file.
    Compact(CompactArgs),
}

#[derive(Debug, Args)]
struct RouteArgs {
    /// HTTP address to take writes on; port 0 picks a free port.
    #[arg(long, env = "INGOT_HTTP_ADDR", default_value = "127.0.0.1:8090")]
    http_addr: String,
    /// A writer node: ID=URL, its --node-id and its HTTP address
    /// (a=http://10.0.0.1:8080); once per node, every node of the cluster.
    #[arg(long = "node", required = true, value_parser = parse_node)]
    nodes: Vec<(String, String)>,
    /// Largest HTTP body accepted (after gzip decompression).
    #[arg(long, env = "INGOT_MAX_BODY_BYTES", default_value_t = 64 << 20)]
    max_body_bytes: usize,
}

fn parse_node(text: &str) -> Result<(String, String), String> {
    let (id, url) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not ID=URL (a=http://127.0.0.1:8080)"))?;
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(format!(
            "node {id}: {url:?} is not an http:// or https:// URL"
        ));
    }
    Ok((id.to_string(), url.to_string()))
}

async fn route(args: RouteArgs) -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind(&args.http_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.http_addr))?;
    let addr = listener.local_addr()?;
    let app = ingot_server::route::router(ingot_server::route::RouteConfig {
        nodes: args.nodes,
        max_body_bytes: args.max_body_bytes,
    });
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "ingot routing http={addr}")?;
        stdout.flush()?;
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = wait_for_signal().await;
        })
        .await?;
    Ok(())
}

#[derive(Debug, Args)]
struct CompactArgs {
    #[arg(long, env = "INGOT_DATA_DIR", default_value = "./ingot-data")]
    data_dir: PathBuf,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[arg(long, env = "INGOT_DATA_DIR", default_value = "./ingot-data")]
    data_dir: PathBuf,
    /// gRPC (Ingest + Flight SQL) address; port 0 picks a free port.
    #[arg(long, env = "INGOT_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    grpc_addr: String,
    /// HTTP address; port 0 picks a free port.
    #[arg(long, env = "INGOT_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: String,
    /// Require this token (Authorization: Bearer/Token) on every request but /health.
    #[arg(long, env = "INGOT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// WAL fsync policy: always, interval:10ms, none.
    #[arg(long, env = "INGOT_WAL_SYNC", default_value = "always")]
    wal_sync: WalSync,
    /// PEM certificate chain; with --tls-key, both ports serve TLS.
    #[arg(long, env = "INGOT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "INGOT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest HTTP body accepted (after gzip decompression); larger gets 413.
    #[arg(long, env = "INGOT_MAX_BODY_BYTES", default_value_t = 64 << 20)]
    max_body_bytes: usize,
    /// Largest gRPC message accepted.
    #[arg(long, env = "INGOT_MAX_GRPC_MESSAGE_BYTES", default_value_t = 64 << 20)]
    max_grpc_message_bytes: usize,
    /// Longest SQL text accepted.
    #[arg(long, env = "INGOT_MAX_QUERY_BYTES", default_value_t = SqlLimits::default().max_query_bytes)]
    max_query_bytes: usize,
    /// Memory for written data not yet persisted; writes past it wait for a
    /// flush, then fail with RESOURCE_EXHAUSTED / 503.
    #[arg(long, env = "INGOT_MEMTABLE_BUDGET_BYTES")]
    memtable_budget_bytes: Option<usize>,
    /// Deepest SQL expression accepted.
    #[arg(long, env = "INGOT_MAX_EXPRESSION_DEPTH", default_value_t = SqlLimits::default().max_expression_depth)]
    max_expression_depth: usize,
    /// Retention period of databases created from now on (30d, 12h), or none
    /// to keep their rows forever. A database's own period is changed with
    /// ALTER DATABASE or PUT /api/v3/configure/database.
    #[arg(long, env = "INGOT_RETENTION_PERIOD", default_value = "none")]
    retention_period: Period,
    /// Keep the Parquet files and the manifest in object storage:
    /// s3://bucket/prefix (endpoint, region and keys from AWS_ENDPOINT,
    /// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or
    /// file:///path. The data directory then holds the WAL and the cache.
    #[arg(long, env = "INGOT_OBJECT_STORE")]
    object_store: Option<String>,
    /// Local disk for copies of the object store's files (default 4 GiB).
    #[arg(long, env = "INGOT_CACHE_BYTES")]
    cache_bytes: Option<u64>,
    /// Persist written rows to Parquet at least this often (10s, 1m), not
    /// only when the memtable fills: replicas see rows once they are
    /// persisted. Default 10s with --object-store, none without.
    #[arg(long, env = "INGOT_FLUSH_INTERVAL", value_parser = humantime::parse_duration)]
    flush_interval: Option<Duration>,
    /// This writer is one node of a cluster on --object-store: it keeps its
    /// files and manifest under nodes/ID/ there, and takes the series that
    /// clients route to it (ingot_proto::route); a --read-only replica of
    /// the same prefix serves every node's.
    #[arg(
        long,
        env = "INGOT_NODE_ID",
        requires = "object_store",
        conflicts_with = "read_only"
    )]
    node_id: Option<String>,
    /// A query replica: serve queries from --object-store, following the
    /// writer there, and refuse every write.
    #[arg(long, env = "INGOT_READ_ONLY", requires = "object_store")]
    read_only: bool,
    /// Publish each table's compacted partitions as a Delta Lake table at
    /// delta/DATABASE/TABLE/ beside the files (in the data directory or the
    /// --object-store prefix), for Spark, Trino, DuckDB and Polars.
    #[arg(long, env = "INGOT_DELTA_LAKE", conflicts_with = "read_only")]
    delta_lake: bool,
    /// How often a replica looks for the writer's new files (2s, 500ms).
    #[arg(long, env = "INGOT_REFRESH_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    refresh_interval: Duration,
    /// Subscribe to this MQTT broker (mqtt://host:port) and write the
    /// messages, line protocol or JSON; off when empty.
    #[arg(long, env = "INGOT_MQTT_URL", conflicts_with = "read_only")]
    mqtt_url: Option<String>,
    /// Topic filter to subscribe to with QoS 1; repeat for more.
    #[arg(
        long,
        env = "INGOT_MQTT_TOPIC",
        default_value = "#",
        value_delimiter = ','
    )]
    mqtt_topic: Vec<String>,
    /// The client id of Ingot's persistent MQTT session: keep it stable, so
    /// the broker holds messages while Ingot is down.
    #[arg(long, env = "INGOT_MQTT_CLIENT_ID", default_value = "ingot")]
    mqtt_client_id: String,
    /// Database MQTT messages are written to.
    #[arg(long, env = "INGOT_MQTT_DATABASE", default_value = "public")]
    mqtt_database: String,
    /// Where a JSON message's table and tags are in its topic, as in
    /// plant/{line}/{device}/{table} (default: the table is the last level).
    #[arg(long, env = "INGOT_MQTT_JSON_TOPIC")]
    mqtt_json_topic: Option<String>,
    /// Serve the PostgreSQL wire protocol on this host:port (psql, psycopg,
    /// Grafana, BI tools); off when empty.
    #[arg(long, env = "INGOT_PG_ADDR")]
    pg_addr: Option<String>,
}

/// A retention period on the command line: a duration, or none.
#[derive(Debug, Clone, Copy)]
struct Period(Option<Duration>);

impl std::str::FromStr for Period {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        ingot_engine::parse_period(text)
            .map(Period)
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, Args)]
struct Connection {
    /// Server address (http://host:port, or https:// with --tls-ca).
    #[arg(long, env = "INGOT_ADDR", conflicts_with = "data_dir")]
    addr: Option<String>,
    #[arg(long, env = "INGOT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM certificate to check the server's TLS certificate against.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Open this data directory in-process instead of connecting to a server.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SqlArgs {
    #[command(flatten)]
    connection: Connection,
    /// Database for unqualified table names.
    #[arg(long, default_value = "public")]
    database: String,
    /// The query; without it, statements are read from stdin.
    query: Option<String>,
}

#[derive(Debug, Args)]
struct ImportArgs {
    #[command(flatten)]
    connection: Connection,
    /// Database to write into (default: public, or the database an export
    /// directory came from).
    #[arg(long)]
    database: Option<String>,
    /// Table for Parquet and CSV files (default: the file name without
    /// extension, or the table an export directory came from).
    #[arg(long)]
    table: Option<String>,
    /// parquet, csv or lp (default: from the extension).
    #[arg(long, value_parser = parse_format)]
    format: Option<FileFormat>,
    /// Line-protocol timestamp precision: ns, us, ms, s.
    #[arg(long, default_value = "ns", value_parser = parse_precision)]
    precision: Precision,
    /// Files, and directories written by `ingot export`.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct ExportArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long, default_value = "public")]
    database: String,
    #[arg(long)]
    table: String,
    /// Rows at or after this time (RFC 3339, 2026-01-01T00:00:00Z).
    #[arg(long)]
    from: Option<String>,
    /// Rows before this time (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// Rows per Parquet file.
    #[arg(long, default_value_t = ingot_server::export::DEFAULT_ROWS_PER_FILE)]
    rows_per_file: u64,
    /// Directory to write (created if missing; must not hold an export).
    dir: PathBuf,
}

fn parse_format(s: &str) -> Result<FileFormat, String> {
    FileFormat::parse(s).ok_or_else(|| format!("unknown format {s:?}: parquet, csv or lp"))
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    match s {
        "ns" => Ok(Precision::Nanosecond),
        "us" => Ok(Precision::Microsecond),
        "ms" => Ok(Precision::Millisecond),
        "s" => Ok(Precision::Second),
        _ => Err(format!("unknown precision {s:?}: ns, us, ms or s")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Sql(args) => sql(args).await,
            Command::Import(args) => import(args).await,
            Command::Export(args) => export(args).await,
            Command::Compact(args) => compact(args).await,
            Command::Route(args) => route(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Stack of the runtime's threads. DataFusion plans and runs queries by
/// recursion over the plan; deep plans (many joins or unions) need more than
/// the 2 MiB default. Only touched pages are backed by memory.
const THREAD_STACK_BYTES: usize = 64 << 20;

/// How often a writer on object storage persists its rows, unless told:
/// how far its replicas trail it.
const DEFAULT_BUCKET_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn compact(args: CompactArgs) -> Result<(), BoxError> {
    let records = tokio::task::spawn_blocking(move || {
        let mut options = ingot_engine::Options::default();
        options.compaction = false; // only what is asked for, here and now
        let engine = ingot_engine::Engine::open(&args.data_dir, options)?;
        let records = engine.compact()?;
        engine.close()?;
        Ok::<_, ingot_engine::Error>(records)
    })
    .await??;
    let (files_in, bytes_read, bytes_written) = records.iter().fold((0, 0, 0), |a, r| {
        (a.0 + r.files_in, a.1 + r.bytes_read, a.2 + r.bytes_written)
    });
    println!(
        "compacted {} partitions: {files_in} files ({bytes_read} bytes) into {} files ({bytes_written} bytes)",
        records.len(),
        records.iter().map(|r| r.files_out).sum::<usize>(),
    );
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    let mut config = ServeConfig::new(args.data_dir);
    config.grpc_addr = args.grpc_addr;
    config.http_addr = args.http_addr;
    config.token = args.token;
    config.wal_sync = args.wal_sync;
    config.tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    config.max_body_bytes = args.max_body_bytes;
    config.max_grpc_message_bytes = args.max_grpc_message_bytes;
    config.memtable_budget_bytes = args.memtable_budget_bytes;
    config.default_retention = args.retention_period.0;
    config.flush_interval = args.flush_interval.or(args
        .object_store
        .as_ref()
        .map(|_| DEFAULT_BUCKET_FLUSH_INTERVAL));
    config.object_store = args.object_store;
    config.node_id = args.node_id;
    config.cache_bytes = args.cache_bytes;
    config.read_only = args.read_only;
    config.delta_lake = args.delta_lake;
    config.refresh_interval = args.refresh_interval;
    config.mqtt =
        args.mqtt_url
            .filter(|u| !u.is_empty())
            .map(|url| ingot_server::mqtt::MqttConfig {
                url,
                topics: args.mqtt_topic,
                client_id: args.mqtt_client_id,
                database: args.mqtt_database,
                json_topic: args.mqtt_json_topic,
                max_message_bytes: args.max_body_bytes,
            });
    config.pg_addr = args.pg_addr.filter(|a| !a.is_empty());
    config.sql_limits = SqlLimits {
        max_query_bytes: args.max_query_bytes,
        max_expression_depth: args.max_expression_depth,
        ..SqlLimits::default()
    };
    let server = Server::start(config).await?;
    {
        let mut stdout = std::io::stdout().lock();
        write!(
            stdout,
            "ingot listening grpc={} http={}",
            server.grpc_addr(),
            server.http_addr()
        )?;
        match server.pg_addr() {
            Some(pg) => writeln!(stdout, " pg={pg}")?,
            None => writeln!(stdout)?,
        }
        stdout.flush()?;
    }
    wait_for_signal().await?;
    server.shutdown().await?;
    info!("stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT. A second one during the shutdown exits at
/// once: acknowledged writes are in the WAL and replay at the next start.
async fn wait_for_signal() -> Result<(), BoxError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => info!(signal = "SIGTERM", "shutdown requested"),
        _ = int.recv() => info!(signal = "SIGINT", "shutdown requested"),
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        warn!(
            "second signal: exiting without finishing the shutdown; the WAL replays at the next start"
        );
        std::process::exit(130);
    });
    Ok(())
}

async fn backend(connection: &Connection) -> Result<Target, BoxError> {
    if let Some(dir) = &connection.data_dir {
        let dir = dir.clone();
        let engine =
            tokio::task::spawn_blocking(move || Engine::open(dir, Options::default())).await??;
        return Ok(Target::Local(engine));
    }
    let addr = connection
        .addr
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:50051".to_string());
    let ca = match &connection.tls_ca {
        Some(path) => Some(std::fs::read(path)?),
        None => None,
    };
    let client = Client::connect(&addr, connection.token.as_deref(), ca).await?;
    Ok(Target::Server(Box::new(client)))
}

async fn close(backend: Target) -> Result<(), BoxError> {
    if let Target::Local(engine) = backend {
        tokio::task::spawn_blocking(move || engine.close()).await??;
    }
    Ok(())
}

async fn run_query(backend: &mut Target, database: &str, query: &str) -> Result<String, BoxError> {
    if let Some(statement) = ingot_engine::statement::parse(query)? {
        let database = database.to_string();
        match backend {
            Target::Server(client) => {
                client.execute_update(query).await?;
            }
            Target::Local(engine) => {
                let engine = engine.clone();
                tokio::task::spawn_blocking(move || engine.run_statement(&statement, &database))
                    .await??;
            }
        }
        return Ok("OK".to_string());
    }
    let batches = match backend {
        Target::Server(client) => client.query(query).await?.1,
        Target::Local(engine) => {
            let ctx = engine.session();
            if database != ingot_engine::DEFAULT_DATABASE {
                let state = ctx.state_ref();
                state
                    .write()
                    .config_mut()
                    .options_mut()
                    .catalog
                    .default_schema = database.to_string();
            }
            ctx.sql(query).await?.collect().await?
        }
    };
    Ok(arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
}

async fn sql(args: SqlArgs) -> Result<(), BoxError> {
    let mut backend = backend(&args.connection).await?;
    if let Target::Server(client) = &mut backend {
        client.set_flight_header(ingot_server::DATABASE_HEADER, &args.database);
    }
    let result = match &args.query {
        Some(query) => run_query(&mut backend, &args.database, query)
            .await
            .map(|table| println!("{table}")),
        None => repl(&mut backend, &args.database).await,
    };
    close(backend).await?;
    result
}

/// Reads statements from stdin, each ending with `;` or at the end of the
/// input, and prints each result; errors are printed and the loop goes on.
async fn repl(backend: &mut Target, database: &str) -> Result<(), BoxError> {
    use tokio::io::AsyncBufReadExt;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut statement = String::new();
    loop {
        if interactive {
            eprint!(
                "{}",
                if statement.is_empty() {
                    "ingot> "
                } else {
                    "  ...> "
                }
            );
        }
        let line = lines.next_line().await?;
        let done = match &line {
            Some(l) => {
                let l = l.trim();
                if statement.is_empty() && matches!(l, "exit" | "quit" | "\\q") {
                    break;
                }
                statement.push_str(l);
                statement.push('\n');
                l.ends_with(';')
            }
            None => true,
        };
        if done {
            let query = statement.trim().trim_end_matches(';').trim().to_string();
            statement.clear();
            if !query.is_empty() {
                match run_query(backend, database, &query).await {
                    Ok(table) => println!("{table}"),
                    Err(e) => eprintln!("error: {e}"),
                }
            }
        }
        if line.is_none() {
            break;
        }
    }
    Ok(())
}

async fn import(args: ImportArgs) -> Result<(), BoxError> {
    let mut target = backend(&args.connection).await?;
    let options = ImportOptions {
        database: args
            .database
            .clone()
            .unwrap_or_else(|| ingot_engine::DEFAULT_DATABASE.to_string()),
        table: args.table,
        format: args.format,
        precision: args.precision,
    };
    let mut failed = None;
    for file in &args.files {
        let imported = if file.is_dir() {
            import_export(&mut target, file, args.database.as_deref(), &options).await
        } else {
            import_file(&mut target, file, &options).await
        };
        match imported {
            Ok(s) => eprintln!("{}: {} rows, {} points", file.display(), s.rows, s.points),
            Err(e) => {
                error!(file = %file.display(), error = %e, "import failed");
                failed = Some(e);
                break;
            }
        }
    }
    close(target).await?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

async fn export(args: ExportArgs) -> Result<(), BoxError> {
    let mut target = backend(&args.connection).await?;
    let options = ExportOptions {
        database: args.database,
        table: args.table,
        from: args.from,
        to: args.to,
        rows_per_file: args.rows_per_file,
    };
    let exported = ingot_server::export::export(&mut target, &options, &args.dir).await;
    close(target).await?;
    let manifest = exported?;
    eprintln!(
        "{}.{}: {} rows in {} files, {}",
        manifest.database,
        manifest.table,
        manifest.rows,
        manifest.files.len(),
        args.dir.display()
    );
    Ok(())
}
