//! `ingot-bench`: measures Ingot on the plant-telemetry workload.
//!
//! `ingot-bench ingest --preset small --target embedded` streams the preset
//! into an engine in a temporary directory and reports rows/s, points/s,
//! acknowledgement latency, peak RSS and bytes per point on disk after flush.

mod delta;
mod mqtt;
mod postgres;
mod remote;
mod replay;
mod rollup;
mod soak;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use ingot_bench::{Generator, Preset};
use ingot_engine::{Engine, Options, WalSync};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "ingot-bench",
    about = "Benchmarks Ingot on the plant-telemetry workload"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Streams a preset into Ingot and reports the ingest rate and bytes on disk.
    Ingest(IngestArgs),
    /// Loads a preset through the embedded API, flushes it, and times q1..q8.
    Query(QueryArgs),
    /// Builds a data directory of many small files (one flush each) and
    /// times opening it: the manifest's checkpoint and edit log at scale.
    Open(OpenArgs),
    /// Writes days of `small`-sized telemetry with late and duplicate rows,
    /// compaction on; reports files per partition, write amplification, peak
    /// RSS, and q1..q8 against the same rows loaded in one go.
    Soak(SoakArgs),
    /// Crashes a writer with a full memtable in the WAL (a child process
    /// that aborts), then times the open that replays it.
    Replay(ReplayArgs),
    /// Writes a preset, compacts it, and times publishing it to Delta Lake.
    Delta(delta::DeltaArgs),
    /// Loads a preset with and without a continuous rollup, and times a
    /// q4-style query against the raw table and the rollup.
    Rollup(rollup::RollupArgs),
    /// Points/s through a Mosquitto broker into `ingot serve --mqtt-url`.
    Mqtt(mqtt::MqttArgs),
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Memtable MiB to leave in the WAL at the crash.
    #[arg(long, default_value_t = 1024)]
    memtable_mib: u64,
    /// Crashes and opens.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where the data directories go (default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Be the writer that crashes (run by the parent).
    #[arg(long, hide = true)]
    crash_child: bool,
}

fn replay(args: ReplayArgs) -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let memtable_bytes = args.memtable_mib << 20;
    if args.crash_child {
        return replay::crash_child(&dir, memtable_bytes);
    }
    let config = replay::Config {
        memtable_bytes,
        runs: args.runs,
    };
    replay::run(&config, &dir)
}

#[derive(clap::Args)]
struct SoakArgs {
    /// Simulated days, each a `small` day (1 000 devices, 8.64 M rows).
    #[arg(long, default_value_t = 7)]
    days: u64,
    /// Rows that arrive late, percent.
    #[arg(long, default_value_t = 5.0)]
    late_percent: f64,
    /// Rows sent twice, percent.
    #[arg(long, default_value_t = 1.0)]
    duplicate_percent: f64,
    /// The latest a late row arrives, minutes after its time.
    #[arg(long, default_value_t = 360)]
    max_lag_minutes: u64,
    /// The memtable budget, MiB.
    #[arg(long, default_value_t = 256)]
    memtable_mib: usize,
    /// How long a partition goes without writes before it is compacted
    /// whole, ms (scaled down with the simulated days).
    #[arg(long, default_value_t = 2_000)]
    cold_after_ms: u64,
    /// Warm runs per query; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Where the two data directories go (default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Width in minutes of the time slices files order rows by (default:
    /// the engine's, none).
    #[arg(long)]
    time_slice_minutes: Option<u64>,
}

#[derive(clap::Args)]
struct OpenArgs {
    /// Files to create, one row and one flush each.
    #[arg(long, default_value_t = 20_000)]
    files: usize,
    /// Times to reopen the directory.
    #[arg(long, default_value_t = 3)]
    opens: usize,
}

/// Creates `--files` files through the engine, one flush each, then closes
/// and reopens the directory and reports how long each open took.
fn open_many_files(args: OpenArgs) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let options = || {
        let mut o = ingot_engine::Options::default();
        o.compaction = false;
        o
    };
    let engine = ingot_engine::Engine::open(dir.path(), options())?;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..args.files {
        engine.write_lines(
            "public",
            &format!(
                "readings,device_id=dev-{i} temperature=21.5 {}\n",
                1_767_225_600 + i
            ),
            ingot_engine::Precision::Second,
        )?;
        let t = Instant::now();
        engine.flush()?;
        slowest = slowest.max(t.elapsed());
    }
    let building = started.elapsed();
    engine.close()?;
    drop(engine);
    let size = |name: &str| std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len());
    println!(
        "open  files={} built in {:.1} s ({:.2} ms per flush, slowest {:.1} ms)",
        args.files,
        building.as_secs_f64(),
        building.as_secs_f64() * 1e3 / args.files.max(1) as f64,
        slowest.as_secs_f64() * 1e3,
    );
    println!(
        "  MANIFEST {} bytes, MANIFEST.log {} bytes",
        size("MANIFEST"),
        size("MANIFEST.log")
    );
    let mut times = Vec::new();
    for _ in 0..args.opens.max(1) {
        let t = Instant::now();
        let engine = ingot_engine::Engine::open(dir.path(), options())?;
        times.push(t.elapsed());
        assert_eq!(
            engine.files().len(),
            args.files,
            "every file is in the manifest"
        );
        engine.close()?;
    }
    times.sort();
    println!(
        "  open            {:>8.1} ms median of {} ({})",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times.len(),
        times
            .iter()
            .map(|t| format!("{:.1}", t.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

#[derive(clap::Args)]
struct QueryArgs {
    /// Workload preset: tiny, small, medium or billion.
    #[arg(long, default_value = "small")]
    preset: String,
    /// Warm runs per query; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// A query file in the form of `bench/workload/queries.sql` (`-- qN` names
    /// the query on the next line); default: the workload's q1..q8, built in.
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Reference results (`bench/expected.py`); default bench/expected/PRESET
    /// when it exists. A mismatch fails the run.
    #[arg(long)]
    expected: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the loaded data here and reuse it on the next run (it is loaded
    /// only when the directory holds no table yet); default: a temporary
    /// directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run only these queries (q1, q5, ...).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Print each query's `EXPLAIN ANALYZE` after its runs.
    #[arg(long)]
    explain: bool,
    /// After each query's runs, time its phases (a session, SQL to logical
    /// plan, optimizer, physical planning, execution) over as many more runs, and
    /// print their medians (embedded only).
    #[arg(long)]
    phases: bool,
    /// Time partition width in hours (default: the engine's, one day).
    #[arg(long)]
    partition_hours: Option<u64>,
    /// Width in minutes of the time slices files order rows by (default:
    /// the engine's, none; 0 is none).
    #[arg(long)]
    time_slice_minutes: Option<u64>,
    /// Width in minutes of the windows of the summaries written beside
    /// each file (default: the engine's, 15; 0 writes none).
    #[arg(long)]
    summary_minutes: Option<u64>,
    /// Where the queries run.
    #[arg(long, value_enum, default_value = "embedded")]
    target: QueryTarget,
    /// Keep the files and the manifest in object storage (s3://bucket/prefix,
    /// with AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY set; `tests/s3/serve.sh` starts a local S3
    /// server); embedded only.
    #[arg(long)]
    object_store: Option<String>,
    /// With --object-store: local disk for the cache of its files, bytes
    /// (default: the engine's; 0 reads every file from the store each time).
    #[arg(long)]
    cache_bytes: Option<u64>,
    /// With --target ballista: the scheduler.
    #[arg(long, default_value = "df://127.0.0.1:50050")]
    ballista_scheduler: String,
    /// With --target ballista: the tasks each table scan is split into.
    #[arg(long, default_value_t = 4)]
    shares: usize,
}

#[derive(Serialize)]
struct QueryReport {
    name: String,
    rows: usize,
    checked: bool,
    cold_ms: f64,
    warm_median_ms: f64,
}

#[derive(Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Target {
    /// `Engine::write_batch` in this process.
    Embedded,
    /// `ingot serve`, gRPC `Write` with the columnar `Rows` payload.
    GrpcRows,
    /// `ingot serve`, gRPC `Write` with an Arrow IPC payload.
    GrpcArrow,
    /// `ingot serve`, Flight SQL `CommandStatementIngest` (what ADBC sends).
    Flight,
    /// `ingot serve`, HTTP line protocol (`/api/v3/write_lp`).
    HttpLp,
    /// `ingot serve`, Prometheus remote write (`/api/v1/write`): a metric
    /// per field, a series per device; points are samples.
    PrometheusRemoteWrite,
}

impl Target {
    fn protocol(self) -> Option<remote::Protocol> {
        match self {
            Target::Embedded => None,
            Target::GrpcRows => Some(remote::Protocol::GrpcRows),
            Target::GrpcArrow => Some(remote::Protocol::GrpcArrow),
            Target::Flight => Some(remote::Protocol::Flight),
            Target::HttpLp => Some(remote::Protocol::HttpLp),
            Target::PrometheusRemoteWrite => Some(remote::Protocol::PrometheusRemoteWrite),
        }
    }
}

/// Where `ingot-bench query` sends its queries.
#[derive(Clone, Copy, ValueEnum)]
enum QueryTarget {
    /// `Engine::sql` in this process.
    Embedded,
    /// Flight SQL to an `ingot serve` child on the same data directory.
    Flight,
    /// The PostgreSQL wire protocol (tokio-postgres, extended protocol with
    /// binary results) to an `ingot serve --pg-addr` child.
    Postgres,
    /// A Ballista cluster (`ingot-ballista scheduler` and executors, started
    /// beforehand) at --ballista-scheduler, over the --object-store prefix.
    Ballista,
}

/// The command-line form of a WAL sync policy, for `ingot serve`.
fn wal_sync_arg(sync: WalSync) -> String {
    match sync {
        WalSync::Always => "always".into(),
        WalSync::Interval(d) => format!("interval:{}us", d.as_micros()),
        _ => "none".into(),
    }
}

#[derive(clap::Args)]
struct IngestArgs {
    /// Workload preset: tiny, small, medium or billion.
    #[arg(long, default_value = "small")]
    preset: String,
    /// Width in minutes of the windows of the summaries written beside
    /// each file (default: the engine's, 15; 0 writes none).
    #[arg(long)]
    summary_minutes: Option<u64>,
    #[arg(long, value_enum, default_value = "embedded")]
    target: Target,
    /// Concurrent writers.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Rows per write request. `--batch-rows 1 --clients 1` is a gateway
    /// forwarding each reading as it arrives: the requests/s and the ack
    /// latency of single-point writes.
    #[arg(long, default_value_t = 10_000)]
    batch_rows: usize,
    /// Stop after this many rows (default: the whole preset).
    #[arg(long)]
    rows: Option<u64>,
    /// WAL sync policy: always, none, or interval:<N>ms.
    #[arg(long, default_value = "always")]
    wal_sync: WalSync,
    /// Data directory (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the files and the manifest in object storage (s3://bucket/prefix,
    /// with AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY set; `tests/s3/serve.sh` starts a local S3
    /// server); embedded only.
    #[arg(long)]
    object_store: Option<String>,
    /// With --object-store: local disk for the cache of its files, bytes
    /// (default: the engine's; 0 reads every file from the store each time).
    #[arg(long)]
    cache_bytes: Option<u64>,
    /// Embedded: the memtable's budget in MiB (default: the engine's, 1024).
    /// A flush starts when half of it is written, so a smaller budget
    /// flushes smaller pieces more often.
    #[arg(long)]
    memtable_mib: Option<usize>,
}

#[derive(Serialize)]
struct IngestReport {
    preset: String,
    target: Target,
    clients: usize,
    batch_rows: usize,
    wal_sync: String,
    rows: u64,
    points: u64,
    write_seconds: f64,
    rows_per_second: f64,
    points_per_second: f64,
    requests_per_second: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    flush_seconds: f64,
    bytes_on_disk: u64,
    bytes_per_point: f64,
    files: usize,
    peak_rss_bytes: u64,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ingest(args) => ingest(args),
        Command::Query(args) => run_queries(args),
        Command::Open(args) => open_many_files(args),
        Command::Soak(args) => soak(args),
        Command::Replay(args) => replay(args),
        Command::Delta(args) => delta::run(args),
        Command::Rollup(args) => rollup::run(args),
        Command::Mqtt(args) => mqtt::run(args).map_err(|e| e.to_string().into()),
    };
    if let Err(e) = result {
        eprintln!("ingot-bench: {e}");
        std::process::exit(1);
    }
}

/// What the writers of one ingest run did.
struct Outcome {
    latencies: Vec<Duration>,
    rows: u64,
    points: u64,
    write_seconds: f64,
    /// Until everything written is in Parquet files.
    flush_seconds: f64,
    bytes_on_disk: u64,
    files: usize,
    peak_rss_bytes: u64,
}

type Shared<T> = Arc<Mutex<T>>;

fn ingest(args: IngestArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.object_store.is_some() && !matches!(args.target, Target::Embedded) {
        return Err("--object-store works with --target embedded only".into());
    }
    if args.memtable_mib.is_some() && !matches!(args.target, Target::Embedded) {
        return Err("--memtable-mib works with --target embedded only".into());
    }
    let preset = Preset::by_name(&args.preset).ok_or_else(|| {
        format!(
            "unknown preset {:?}: expected tiny, small, medium or billion",
            args.preset
        )
    })?;
    let temp = tempfile::tempdir()?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("data"));
    let total_rows = args.rows.unwrap_or(u64::MAX).min(preset.rows());
    let generator = Arc::new(Mutex::new(Generator::new(preset).limit(total_rows)));
    let progress = std::thread::spawn({
        let generator = generator.clone();
        move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let left = generator.lock().map(|g| g.rows_left()).unwrap_or(0);
            eprint!(
                "\ringest {}: {:5.1}%",
                preset.name,
                100.0 * (total_rows - left) as f64 / total_rows as f64
            );
            if left == 0 {
                eprintln!();
                break;
            }
        }
    });
    let outcome = match args.target.protocol() {
        None => ingest_embedded(&args, &dir, generator.clone()),
        Some(protocol) => ingest_remote(&args, protocol, &dir, generator.clone()),
    };
    if outcome.is_err() {
        // Let the progress thread finish.
        while generator
            .lock()
            .map(|mut g| g.next_batch(1 << 20).is_some())
            .unwrap_or(false)
        {}
    }
    let _ = progress.join();
    let Outcome {
        mut latencies,
        rows,
        points,
        write_seconds,
        flush_seconds,
        bytes_on_disk,
        files,
        peak_rss_bytes,
    } = outcome?;

    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(0.0)
    };
    let report = IngestReport {
        preset: preset.name.to_string(),
        target: args.target,
        clients: args.clients,
        batch_rows: args.batch_rows,
        wal_sync: format!("{:?}", args.wal_sync),
        rows,
        points,
        write_seconds,
        rows_per_second: rows as f64 / write_seconds,
        points_per_second: points as f64 / write_seconds,
        requests_per_second: latencies.len() as f64 / write_seconds,
        ack_p50_ms: pct(0.5),
        ack_p99_ms: pct(0.99),
        flush_seconds,
        bytes_on_disk,
        bytes_per_point: bytes_on_disk as f64 / points.max(1) as f64,
        files,
        peak_rss_bytes,
    };
    println!(
        "ingest  preset={} target={:?} clients={} batch_rows={} wal_sync={}",
        report.preset,
        args.target
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default(),
        report.clients,
        report.batch_rows,
        report.wal_sync
    );
    println!("  rows            {:>14}", report.rows);
    println!("  points          {:>14}", report.points);
    println!("  write time      {:>14.3} s", report.write_seconds);
    println!("  rows/s          {:>14.0}", report.rows_per_second);
    println!("  points/s        {:>14.0}", report.points_per_second);
    println!("  requests/s      {:>14.0}", report.requests_per_second);
    println!(
        "  ack p50 / p99   {:>8.2} / {:.2} ms",
        report.ack_p50_ms, report.ack_p99_ms
    );
    println!("  final flush     {:>14.3} s", report.flush_seconds);
    println!("  files           {:>14}", report.files);
    println!("  bytes on disk   {:>14}", report.bytes_on_disk);
    println!("  bytes/point     {:>14.3}", report.bytes_per_point);
    println!(
        "  peak RSS        {:>14.1} MiB",
        report.peak_rss_bytes as f64 / (1 << 20) as f64
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// Points `options` at the object store `url`, when given.
fn in_bucket(
    options: &mut Options,
    url: Option<&str>,
    cache_bytes: Option<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(url) = url {
        options.object_store = Some(ingot_engine::object_store_from_url(url)?);
    }
    if let Some(bytes) = cache_bytes {
        options.cache_bytes = bytes;
    }
    Ok(())
}

/// Writers calling `Engine::write_batch` in this process.
fn ingest_embedded(
    args: &IngestArgs,
    dir: &std::path::Path,
    generator: Shared<Generator>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let mut options = Options::default();
    options.wal_sync = args.wal_sync;
    if let Some(minutes) = args.summary_minutes {
        options.summary_window = (minutes > 0).then(|| Duration::from_secs(minutes * 60));
    }
    if let Some(mib) = args.memtable_mib {
        options.memtable_budget_bytes = mib << 20;
    }
    in_bucket(&mut options, args.object_store.as_deref(), args.cache_bytes)?;
    let engine = Engine::open(dir, options)?;
    let started = Instant::now();
    // The batches are made on a thread of their own, a few ahead of the
    // writers, as a plant's arrive from the network while the last is
    // written: the generator shares the machine's cores with the engine,
    // but does not wait for it (the remote targets encode their requests
    // before the clock starts).
    const AHEAD: usize = 4;
    let (ready, batches) = std::sync::mpsc::sync_channel::<arrow::array::RecordBatch>(AHEAD);
    let batches = Arc::new(Mutex::new(batches));
    let batch_rows = args.batch_rows;
    let producer = std::thread::spawn(move || -> Result<(), String> {
        loop {
            let batch = generator
                .lock()
                .map_err(|e| e.to_string())?
                .next_batch(batch_rows);
            // The end, or every writer gone (one failed): nothing more to make.
            let Some(batch) = batch else { return Ok(()) };
            if ready.send(batch).is_err() {
                return Ok(());
            }
        }
    });
    let writers: Vec<_> = (0..args.clients.max(1))
        .map(|_| {
            let (engine, batches) = (engine.clone(), batches.clone());
            std::thread::spawn(move || -> Result<(Vec<Duration>, u64, u64), String> {
                let mut latencies = Vec::new();
                let (mut rows, mut points) = (0, 0);
                loop {
                    let batch = batches.lock().map_err(|e| e.to_string())?.recv();
                    let Ok(batch) = batch else { break };
                    let t = Instant::now();
                    let summary = engine
                        .write_batch("public", "readings", &batch)
                        .map_err(|e| e.to_string())?;
                    latencies.push(t.elapsed());
                    rows += summary.rows;
                    points += summary.points;
                }
                Ok((latencies, rows, points))
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut rows, mut points) = (0, 0);
    for w in writers {
        let (l, r, p) = w.join().map_err(|_| "a writer panicked")??;
        latencies.extend(l);
        rows += r;
        points += p;
    }
    drop(batches);
    producer
        .join()
        .map_err(|_| "the batch generator panicked")??;
    let write_seconds = started.elapsed().as_secs_f64();
    let flush_started = Instant::now();
    engine.flush()?;
    let flush_seconds = flush_started.elapsed().as_secs_f64();
    let files = engine.files();
    engine.close()?;
    Ok(Outcome {
        latencies,
        rows,
        points,
        write_seconds,
        flush_seconds,
        // Data files and the summaries beside them.
        bytes_on_disk: files.iter().map(|f| f.total_bytes()).sum(),
        files: files.len(),
        peak_rss_bytes: peak_rss(),
    })
}

/// Clients sending to an `ingot serve` child; the server flushes when it
/// stops, and its data directory is measured after that.
fn ingest_remote(
    args: &IngestArgs,
    protocol: remote::Protocol,
    dir: &std::path::Path,
    generator: Shared<Generator>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    // Encoding requests costs the client as much CPU as the server spends
    // on them, and both share the machine: up to this size, every request
    // is encoded before the clock starts (as the peers' batches are).
    const PREENCODE_MAX_ROWS: u64 = 50_000_000;
    let feed = Arc::new(Mutex::new(Feed {
        queue: None,
        generator,
        protocol,
        batch_rows: args.batch_rows,
    }));
    if feed
        .lock()
        .map_err(|e| e.to_string())?
        .generator
        .lock()
        .map_err(|e| e.to_string())?
        .rows_left()
        <= PREENCODE_MAX_ROWS
    {
        let mut f = feed.lock().map_err(|e| e.to_string())?;
        let mut queue = std::collections::VecDeque::new();
        while let Some(request) = f.generate().map_err(|e| e.to_string())? {
            queue.push_back(request);
        }
        f.queue = Some(queue);
    }
    let server = remote::ServerProcess::start(dir, &wal_sync_arg(args.wal_sync))
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.clients.clamp(1, 4))
        .enable_all()
        .build()?;
    let started = Instant::now();
    let results = runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..args.clients.max(1) {
            let mut sender = remote::Sender::connect(&server).await?;
            let feed = feed.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let (mut rows, mut points) = (0u64, 0u64);
                loop {
                    let next = match feed.lock() {
                        Ok(mut f) => f.next()?,
                        Err(e) => return Err(e.to_string().into()),
                    };
                    let Some((n, request)) = next else { break };
                    let t = Instant::now();
                    sender.send(request).await?;
                    latencies.push(t.elapsed());
                    release_sent_requests();
                    rows += n;
                    points += n * 7;
                }
                Ok::<_, remote::BoxError>((latencies, rows, points))
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await??);
        }
        Ok::<_, remote::BoxError>(out)
    });
    let results = results.map_err(|e| e.to_string())?;
    let write_seconds = started.elapsed().as_secs_f64();
    let (peak_rss_bytes, stop) = server.stop().map_err(|e| e.to_string())?;
    let mut latencies = Vec::new();
    let (mut rows, mut points) = (0, 0);
    for (l, r, p) in results {
        latencies.extend(l);
        rows += r;
        points += p;
    }
    let (bytes_on_disk, files) = parquet_files(&dir.join("tables"))?;
    Ok(Outcome {
        latencies,
        rows,
        points,
        write_seconds,
        flush_seconds: stop.as_secs_f64(),
        bytes_on_disk,
        files,
        peak_rss_bytes,
    })
}

/// Hands the memory of the requests sent so far back to the kernel.
///
/// This process links the server's allocator, which keeps freed memory for
/// reuse. A client on the server's machine that kept the gigabytes of
/// requests it had encoded up front would leave the server only memory the
/// kernel has not touched lately, which on a virtual machine whose host
/// reclaims the guest's free pages costs many times more to map; a client
/// elsewhere takes nothing from the server. So the client returns what it
/// has sent, as it goes.
fn release_sent_requests() {
    #[cfg(all(target_os = "linux", not(target_env = "musl")))]
    ingot_server::release_retained_memory();
}

/// The requests of a remote ingest run: encoded up front, or as they are
/// taken.
struct Feed {
    queue: Option<std::collections::VecDeque<(u64, remote::Request)>>,
    generator: Shared<Generator>,
    protocol: remote::Protocol,
    batch_rows: usize,
}

impl Feed {
    fn generate(&mut self) -> Result<Option<(u64, remote::Request)>, remote::BoxError> {
        let batch = self
            .generator
            .lock()
            .map_err(|e| e.to_string())?
            .next_batch(self.batch_rows);
        batch
            .map(|b| {
                Ok((
                    b.num_rows() as u64,
                    remote::Request::encode(self.protocol, b)?,
                ))
            })
            .transpose()
    }

    fn next(&mut self) -> Result<Option<(u64, remote::Request)>, remote::BoxError> {
        match &mut self.queue {
            Some(queue) => Ok(queue.pop_front()),
            None => self.generate(),
        }
    }
}

/// Total size of the files under `dir` (a data directory's `tables`: data
/// files, their summaries and last rows), and the number of data files.
fn parquet_files(dir: &std::path::Path) -> std::io::Result<(u64, usize)> {
    let (mut bytes, mut files) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                // Data files and what is kept beside them (summaries, last rows).
                bytes += entry.metadata()?.len();
                if path.extension().is_some_and(|e| e == "parquet") {
                    files += 1;
                }
            }
        }
    }
    Ok((bytes, files))
}

fn run_queries(args: QueryArgs) -> Result<(), Box<dyn std::error::Error>> {
    match (args.target, &args.object_store) {
        (QueryTarget::Flight | QueryTarget::Postgres, Some(_)) => {
            return Err("--object-store works with --target embedded or ballista".into());
        }
        (QueryTarget::Ballista, None) => {
            return Err("--target ballista reads the tables from --object-store".into());
        }
        _ => {}
    }
    let preset =
        Preset::by_name(&args.preset).ok_or_else(|| format!("unknown preset {:?}", args.preset))?;
    let queries = match &args.queries {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            ingot_bench::parse_queries(&text)
        }
        None => ingot_bench::workload_queries(),
    };
    let expected_dir = args.expected.clone().or_else(|| {
        let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("expected")
            .join(preset.name);
        d.exists().then_some(d)
    });
    let temp = tempfile::tempdir()?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("data"));
    let mut options = Options::default();
    if let Some(hours) = args.partition_hours {
        options.partition_duration = Duration::from_secs(hours * 3600);
    }
    if let Some(minutes) = args.time_slice_minutes {
        options.time_slice = (minutes > 0).then(|| Duration::from_secs(minutes * 60));
    }
    if let Some(minutes) = args.summary_minutes {
        options.summary_window = (minutes > 0).then(|| Duration::from_secs(minutes * 60));
    }
    in_bucket(&mut options, args.object_store.as_deref(), args.cache_bytes)?;
    let mut engine = Engine::open(&dir, options.clone())?;
    if engine.tables("public").is_empty() {
        let mut generator = Generator::new(preset);
        while let Some(batch) = generator.next_batch(10_000) {
            engine.write_batch("public", "readings", &batch)?;
        }
        engine.flush()?;
        eprintln!(
            "loaded {} rows in {} files",
            preset.rows(),
            engine.files().len()
        );
        if options.object_store.is_some() {
            // Queries start from an empty cache, as on a new node.
            engine.close()?;
            drop(engine);
            engine = Engine::open(temp.path().join("node"), options)?;
        }
    } else {
        eprintln!("reusing {} ({} files)", dir.display(), engine.files().len());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Over Flight SQL or PostgreSQL, the server opens the same directory.
    let mut remote = match args.target {
        QueryTarget::Embedded | QueryTarget::Ballista => None,
        QueryTarget::Flight => {
            engine.close()?;
            let server = remote::ServerProcess::start(&dir, "always").map_err(|e| e.to_string())?;
            let client = runtime.block_on(ingot_server::client::Client::connect(
                &server.grpc,
                None,
                None,
            ))?;
            Some((server, Remote::Flight(Box::new(client))))
        }
        QueryTarget::Postgres => {
            engine.close()?;
            let extra = ["--pg-addr".to_string(), "127.0.0.1:0".to_string()];
            let server = remote::ServerProcess::start_with(&dir, "always", &extra)
                .map_err(|e| e.to_string())?;
            let addr = server
                .pg
                .clone()
                .ok_or("ingot serve printed no pg address")?;
            let client = runtime.block_on(postgres::connect(&addr))?;
            Some((server, Remote::Postgres(client)))
        }
    };
    // On Ballista, this process only plans and collects: the node engine
    // gives the tables' schemas.
    let ballista = match (args.target, &args.object_store) {
        (QueryTarget::Ballista, Some(url)) => Some(runtime.block_on(async {
            let ctx = ingot_ballista::remote_context(&args.ballista_scheduler).await?;
            ingot_ballista::register_tables(&ctx, &engine, url, args.shares).await?;
            Ok::<_, datafusion::error::DataFusionError>(ctx)
        })?),
        _ => None,
    };
    let mut reports = Vec::new();
    for (name, sql) in queries
        .iter()
        .filter(|(name, _)| args.only.is_empty() || args.only.contains(name))
    {
        let mut run = || -> Result<(f64, Answer), Box<dyn std::error::Error>> {
            let t = Instant::now();
            let answer = match (&mut remote, &ballista) {
                (Some((_, Remote::Flight(client))), _) => {
                    Answer::Batches(runtime.block_on(client.query(sql))?.1)
                }
                (Some((_, Remote::Postgres(client))), _) => {
                    Answer::Rows(runtime.block_on(postgres::query(client, sql))?)
                }
                (None, Some(ctx)) => Answer::Batches(
                    runtime.block_on(async { ctx.sql(sql).await?.collect().await })?,
                ),
                (None, None) => Answer::Batches(runtime.block_on(engine.sql(sql))?),
            };
            Ok((t.elapsed().as_secs_f64() * 1e3, answer))
        };
        let (cold_ms, answer) = run()?;
        let got = answer.rows()?;
        let rows = got.len();
        let expected_file = expected_dir
            .as_ref()
            .map(|d| d.join(format!("{name}.jsonl")));
        let checked = match &expected_file {
            Some(f) if f.exists() => {
                let text = std::fs::read_to_string(f)?;
                ingot_bench::check_rows(&got, &text)
                    .map_err(|e| format!("{name} disagrees with {}: {e}", f.display()))?;
                true
            }
            _ => false,
        };
        let mut warm: Vec<f64> = (0..args.runs.max(1))
            .map(|_| run().map(|r| r.0))
            .collect::<Result<_, _>>()?;
        warm.sort_by(f64::total_cmp);
        let report = QueryReport {
            name: name.clone(),
            rows,
            checked,
            cold_ms,
            warm_median_ms: warm[warm.len() / 2],
        };
        println!(
            "{:<4} rows {:>7} {:<9} cold {:>9.1} ms  warm median {:>9.1} ms",
            report.name,
            report.rows,
            if report.checked {
                "checked"
            } else {
                "UNCHECKED"
            },
            report.cold_ms,
            report.warm_median_ms
        );
        reports.push(report);
        if args.phases && remote.is_none() && ballista.is_none() {
            let phases = (0..args.runs.max(1))
                .map(|_| runtime.block_on(query_phases(&engine, sql)))
                .collect::<Result<Vec<_>, _>>()?;
            let median = |i: usize| {
                let mut v: Vec<f64> = phases.iter().map(|p| p[i]).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            println!(
                "     phases (median ms): session {:.2}  sql {:.2}  optimize {:.2}  physical plan {:.2}  execute {:.2}",
                median(0),
                median(1),
                median(2),
                median(3),
                median(4)
            );
        }
        if args.explain && remote.is_none() && ballista.is_none() {
            let plan = runtime.block_on(engine.sql(&format!("EXPLAIN ANALYZE {sql}")))?;
            println!("{}", arrow::util::pretty::pretty_format_batches(&plan)?);
        }
    }
    if args.object_store.is_some() && remote.is_none() {
        let stats = engine.stats();
        eprintln!(
            "object store cache: {} hits, {} misses, {} bytes fetched, {} bytes held",
            stats.cache_hits, stats.cache_misses, stats.cache_fetched_bytes, stats.cache_bytes
        );
    }
    match remote {
        Some((server, client)) => {
            // The client goes first: the server would wait for its connection.
            drop(client);
            server.stop().map_err(|e| e.to_string())?;
        }
        None => engine.close()?,
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)?)?;
    }
    Ok(())
}

use soak::peak_rss;

/// The server a remote query target talks to.
enum Remote {
    Flight(Box<ingot_server::client::Client>),
    Postgres(tokio_postgres::Client),
}

/// A query's answer: Arrow batches, or rows already in `result_rows` form
/// (what the PostgreSQL client decodes).
enum Answer {
    Batches(Vec<arrow::array::RecordBatch>),
    Rows(Vec<Vec<serde_json::Value>>),
}

impl Answer {
    fn rows(self) -> Result<Vec<Vec<serde_json::Value>>, String> {
        match self {
            Answer::Batches(batches) => ingot_bench::result_rows(&batches),
            Answer::Rows(rows) => Ok(rows),
        }
    }
}

/// One run of `sql`, timed by phase (ms): a session, SQL to logical plan,
/// optimizer, physical planning (with the physical optimizer), execution.
async fn query_phases(engine: &Engine, sql: &str) -> Result<[f64; 5], Box<dyn std::error::Error>> {
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let ctx = engine.session();
    let session_ms = ms(t);
    let t = Instant::now();
    let logical = ctx.state().create_logical_plan(sql).await?;
    let sql_ms = ms(t);
    let state = ctx.state();
    let t = Instant::now();
    let optimized = state.optimize(&logical)?;
    let optimize_ms = ms(t);
    let t = Instant::now();
    let physical = state
        .query_planner()
        .create_physical_plan(&optimized, &state)
        .await?;
    let physical_ms = ms(t);
    let t = Instant::now();
    datafusion::physical_plan::collect(physical, ctx.task_ctx()).await?;
    Ok([session_ms, sql_ms, optimize_ms, physical_ms, ms(t)])
}

fn soak(args: SoakArgs) -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let config = soak::Config {
        days: args.days.max(2),
        late_percent: args.late_percent,
        duplicate_percent: args.duplicate_percent,
        max_lag_minutes: args.max_lag_minutes,
        memtable_mib: args.memtable_mib,
        cold_after: Duration::from_millis(args.cold_after_ms),
        runs: args.runs,
        time_slice: args
            .time_slice_minutes
            .filter(|&m| m > 0)
            .map(|m| Duration::from_secs(m * 60)),
    };
    soak::run(&config, &dir)
}
