//! `ingot-bench soak`: days of plant telemetry written the way a plant sends
//! them, with the background compaction on, to show that the files, the
//! bytes written and the memory stay bounded and the queries stay fast.
//!
//! Each simulated day is a `small` day (1 000 devices every 10 s, 8.64 M
//! rows). Rows come in time order, except that a share of them arrives late
//! (from one minute to `--max-lag-minutes` after their time, so that some
//! land in yesterday's partition) and a share is sent twice (the second copy
//! up to ten minutes later, as a gateway re-sends after a lost
//! acknowledgement). Which rows, and how late, follows from the row's number
//! alone, so every run sends the same requests.
//!
//! The run writes the days as fast as the engine takes them; a day then lasts
//! seconds rather than a day, so the compactor's "cold partition" delay is
//! scaled down with it (`--cold-after-ms`). At the end it waits for the
//! compactor to finish, then reports the files per partition, the write
//! amplification (Parquet bytes written by flushes and compactions over the
//! bytes that remain) and the peak RSS, and runs q1..q8 (their day moved to
//! the last day) against the same rows loaded in one go into another data
//! directory and flushed (without compaction, as `ingot-bench query` loads
//! them): the answers must agree, and the times are compared.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use ingot_bench::{Generator, splitmix64};
use ingot_engine::{Engine, Options};

/// Devices and steps of one simulated day: a `small` day.
const DEVICES: u64 = 1_000;
const STEPS_PER_DAY: u64 = 8_640;
/// Rows per request: ten steps of every device (100 s of readings).
const BATCH_ROWS: usize = 10_000;
const DAY_NS: i64 = 86_400_000_000_000;
/// Seed of the choice of late and duplicate rows.
const SEED: u64 = 0x50A4;

pub struct Config {
    pub days: u64,
    /// Late rows, percent.
    pub late_percent: f64,
    /// Rows sent twice, percent.
    pub duplicate_percent: f64,
    /// The latest a late row arrives, minutes after its time.
    pub max_lag_minutes: u64,
    pub memtable_mib: usize,
    pub cold_after: Duration,
    /// Warm runs per query.
    pub runs: usize,
    /// `Options::time_slice` of both engines.
    pub time_slice: Option<Duration>,
}

/// Why a row is held back, and until which request.
struct Held {
    /// Rows to send with request number `key`, in the order they were held.
    by_request: BTreeMap<u64, Vec<RecordBatch>>,
}

impl Held {
    fn hold(&mut self, request: u64, rows: RecordBatch) {
        self.by_request.entry(request).or_default().push(rows);
    }

    /// Everything due by request `request`, as one batch.
    fn due(&mut self, request: u64) -> Result<Option<RecordBatch>, String> {
        let later = self.by_request.split_off(&(request + 1));
        let due = std::mem::replace(&mut self.by_request, later);
        let batches: Vec<RecordBatch> = due.into_values().flatten().collect();
        match batches.first() {
            None => Ok(None),
            Some(first) => concat_batches(&first.schema(), &batches)
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }
}

/// What the soak found at one day's end.
struct DayReport {
    day: u64,
    files: usize,
    /// Most files in one partition older than a day.
    max_old_partition_files: usize,
    bytes_written: u64,
    bytes_live: u64,
    rss: u64,
    elapsed: Duration,
    /// q1..q8 on that day, ms (the second run of each).
    query_ms: Vec<f64>,
}

pub fn run(config: &Config, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut options = Options::default();
    options.memtable_budget_bytes = config.memtable_mib << 20;
    options.compaction_cold_after = config.cold_after;
    options.time_slice = config.time_slice;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let engine = Engine::open(dir.join("soak"), options.clone())?;
    let rows_per_day = DEVICES * STEPS_PER_DAY;
    let late_threshold = (config.late_percent / 100.0 * 1e6) as u64;
    let duplicate_threshold = (config.duplicate_percent / 100.0 * 1e6) as u64;
    // Lags in requests (one request = 10 steps = 100 s).
    let max_lag = (config.max_lag_minutes * 60 / 100).max(2);
    let mut generator = Generator::with_size(DEVICES, STEPS_PER_DAY * config.days);
    let mut held = Held {
        by_request: BTreeMap::new(),
    };
    let (mut sent_rows, mut late_rows, mut duplicate_rows, mut requests) = (0u64, 0u64, 0u64, 0u64);
    let mut days = Vec::new();
    let mut position = 0u64;
    let mut request = 0u64;
    while let Some(batch) = generator.next_batch(BATCH_ROWS) {
        let mut on_time = Vec::with_capacity(batch.num_rows());
        let mut later: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for i in 0..batch.num_rows() {
            let h = splitmix64((position + i as u64) ^ SEED);
            if h % 1_000_000 < late_threshold {
                // One minute (a request) to the longest lag.
                let lag = 1 + (h >> 20) % max_lag;
                later.entry(request + lag).or_default().push(i as u32);
                late_rows += 1;
            } else {
                on_time.push(i as u32);
            }
            if (h >> 40) % 1_000_000 < duplicate_threshold {
                // Sent again within ten minutes (six requests).
                let lag = (h >> 8) % 7;
                later.entry(request + lag).or_default().push(i as u32);
                duplicate_rows += 1;
            }
        }
        for (due, rows) in later {
            held.hold(due, take_record_batch(&batch, &UInt32Array::from(rows))?);
        }
        let on_time = take_record_batch(&batch, &UInt32Array::from(on_time))?;
        engine.write_batch("public", "readings", &on_time)?;
        sent_rows += on_time.num_rows() as u64;
        requests += 1;
        if let Some(due) = held.due(request)? {
            engine.write_batch("public", "readings", &due)?;
            sent_rows += due.num_rows() as u64;
            requests += 1;
        }
        position += batch.num_rows() as u64;
        request += 1;
        if position.is_multiple_of(rows_per_day) {
            let day = position / rows_per_day - 1;
            let mut report = day_report(&engine, day, started.elapsed());
            report.query_ms = day_queries(&engine, &runtime, day)?;
            eprintln!(
                "day {:>2}: {:>4} files, at most {} in a partition older than a day, \
                 {:.0} MB written for {:.0} MB live, RSS {:.0} MiB, {:.0} s",
                report.day,
                report.files,
                report.max_old_partition_files,
                report.bytes_written as f64 / 1e6,
                report.bytes_live as f64 / 1e6,
                report.rss as f64 / (1 << 20) as f64,
                report.elapsed.as_secs_f64(),
            );
            days.push(report);
        }
    }
    // The late rows still held arrive now.
    if let Some(rest) = held.due(u64::MAX - 1)? {
        engine.write_batch("public", "readings", &rest)?;
        sent_rows += rest.num_rows() as u64;
        requests += 1;
    }
    let write_seconds = started.elapsed().as_secs_f64();
    engine.flush()?;
    let settle_started = Instant::now();
    settle(&engine, config.cold_after);
    let settle_seconds = settle_started.elapsed().as_secs_f64();
    let last = day_report(&engine, config.days, started.elapsed());
    let stats = engine.stats();
    let rss_after_soak = peak_rss();

    println!(
        "soak  days={} late={}% duplicates={}% max_lag={} min memtable={} MiB cold_after={} ms",
        config.days,
        config.late_percent,
        config.duplicate_percent,
        config.max_lag_minutes,
        config.memtable_mib,
        config.cold_after.as_millis()
    );
    println!(
        "  rows sent       {:>14} ({} late, {} duplicates) in {} requests",
        sent_rows, late_rows, duplicate_rows, requests
    );
    println!(
        "  write time      {:>14.1} s ({:.2} M rows/s), compaction settled {:.1} s later",
        write_seconds,
        sent_rows as f64 / write_seconds / 1e6,
        settle_seconds
    );
    println!("  files           {:>14}", last.files);
    println!(
        "  files per partition older than a day, at most {:>3}",
        last.max_old_partition_files
    );
    println!(
        "  flushed         {:>14.1} MB in {} files",
        stats.bytes_flushed as f64 / 1e6,
        stats.files_written
    );
    println!(
        "  compacted       {:>14.1} MB written ({} compactions, {:.1} MB read)",
        stats.compaction_bytes_written as f64 / 1e6,
        stats.compactions,
        stats.bytes_compacted as f64 / 1e6
    );
    println!(
        "  live            {:>14.1} MB",
        last.bytes_live as f64 / 1e6
    );
    println!(
        "  write amplification {:>10.2} (Parquet bytes written / live)",
        last.bytes_written as f64 / last.bytes_live.max(1) as f64
    );
    println!(
        "  peak RSS        {:>14.0} MiB (writes, compaction, flushes)",
        rss_after_soak as f64 / (1 << 20) as f64
    );
    println!(
        "  per day (at its end; queries on that day, ms):\n    day files old_max   WA rss_MiB elapsed_s       q1     q2     q3     q4     q5     q6     q7     q8"
    );
    for d in &days {
        let queries: String = d.query_ms.iter().map(|ms| format!(" {ms:>6.1}")).collect();
        println!(
            "    {:>3} {:>5} {:>7} {:>4.2} {:>7.0} {:>9.1} {queries}",
            d.day,
            d.files,
            d.max_old_partition_files,
            d.bytes_written as f64 / d.bytes_live.max(1) as f64,
            d.rss as f64 / (1 << 20) as f64,
            d.elapsed.as_secs_f64()
        );
    }

    // The same rows, in order, once, flushed: what the queries are measured
    // against (as `ingot-bench query` loads them; no compaction).
    options.compaction = false;
    let one_go = Engine::open(dir.join("one-go"), options)?;
    let mut generator = Generator::with_size(DEVICES, STEPS_PER_DAY * config.days);
    while let Some(batch) = generator.next_batch(BATCH_ROWS) {
        one_go.write_batch("public", "readings", &batch)?;
    }
    one_go.flush()?;
    println!("  one-go load     {:>14} files", one_go.files().len());
    compare_queries(&engine, &one_go, &runtime, config)?;
    engine.close()?;
    one_go.close()?;
    Ok(())
}

/// Files, bytes and memory at the end of `day` (0-based).
fn day_report(engine: &Engine, day: u64, elapsed: Duration) -> DayReport {
    let files = engine.files();
    let start = ingot_bench::START_S * 1_000_000_000;
    // Partitions whose day ended a day or more before this one's end.
    let old_before = start + day as i64 * DAY_NS;
    let mut per_partition: BTreeMap<i64, usize> = BTreeMap::new();
    for f in files.iter().filter(|f| f.partition < old_before) {
        *per_partition.entry(f.partition).or_default() += 1;
    }
    let stats = engine.stats();
    DayReport {
        day,
        files: files.len(),
        max_old_partition_files: per_partition.values().copied().max().unwrap_or(0),
        bytes_written: stats.bytes_flushed + stats.compaction_bytes_written,
        bytes_live: files.iter().map(|f| f.bytes).sum(),
        rss: current_rss(),
        elapsed,
        query_ms: Vec::new(),
    }
}

/// q1..q8 with their day moved to `day`, each run twice: the second run's
/// time, ms.
fn day_queries(
    engine: &Engine,
    runtime: &tokio::runtime::Runtime,
    day: u64,
) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let date = date_of(day);
    let mut out = Vec::new();
    for (_, sql) in ingot_bench::workload_queries() {
        let sql = sql.replace("2026-01-01", &date);
        runtime.block_on(engine.sql(&sql))?;
        let t = Instant::now();
        runtime.block_on(engine.sql(&sql))?;
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(out)
}

/// Waits until the compactor has had nothing to do for longer than the cold
/// delay (at most two minutes).
fn settle(engine: &Engine, cold_after: Duration) {
    let quiet_for = cold_after + Duration::from_secs(2);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = engine.stats().compactions;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let stats = engine.stats();
        if stats.compactions != last || stats.compactions_running > 0 {
            last = stats.compactions;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= quiet_for {
            return;
        }
    }
    eprintln!("soak: compaction still busy after two minutes; measuring anyway");
}

/// Runs q1..q8 on both engines, checks that they agree, and prints the
/// times side by side.
fn compare_queries(
    soak: &Engine,
    one_go: &Engine,
    runtime: &tokio::runtime::Runtime,
    config: &Config,
) -> Result<(), Box<dyn std::error::Error>> {
    let last_day = date_of(config.days - 1);
    println!(
        "  queries (their day moved to {last_day}), warm median of {}:",
        config.runs
    );
    println!("    query      soak ms    one-go ms   ratio  answers");
    let mut worst: f64 = 0.0;
    for (name, sql) in ingot_bench::workload_queries() {
        let sql = sql.replace("2026-01-01", &last_day);
        let time =
            |engine: &Engine| -> Result<(f64, Vec<RecordBatch>), Box<dyn std::error::Error>> {
                let mut batches = runtime.block_on(engine.sql(&sql))?;
                let mut times = Vec::new();
                for _ in 0..config.runs.max(1) {
                    let t = Instant::now();
                    batches = runtime.block_on(engine.sql(&sql))?;
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
                times.sort_by(f64::total_cmp);
                Ok((times[times.len() / 2], batches))
            };
        let (soak_ms, soak_rows) = time(soak)?;
        let (one_go_ms, one_go_rows) = time(one_go)?;
        ingot_bench::same_rows(
            &ingot_bench::result_rows(&soak_rows)?,
            &ingot_bench::result_rows(&one_go_rows)?,
        )
        .map_err(|e| format!("{name}: the soak's answer differs from the one-go load's: {e}"))?;
        let ratio = soak_ms / one_go_ms;
        worst = worst.max(ratio);
        println!("    {name:<6} {soak_ms:>10.1} {one_go_ms:>12.1} {ratio:>7.2}  same");
    }
    println!("  slowest ratio   {worst:>14.2}");
    Ok(())
}

/// `2026-01-01` plus `days`, as `YYYY-MM-DD`.
fn date_of(days: u64) -> String {
    arrow::temporal_conversions::timestamp_s_to_datetime(
        ingot_bench::START_S + days as i64 * 86_400,
    )
    .expect("a day in range")
    .format("%Y-%m-%d")
    .to_string()
}

/// Resident set size of this process now (VmRSS), 0 where unavailable.
fn current_rss() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// Peak resident set size of this process (VmHWM), 0 where unavailable.
pub fn peak_rss() -> u64 {
    status_kib("VmHWM:") * 1024
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
}
