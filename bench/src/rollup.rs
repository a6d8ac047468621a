//! `ingot-bench rollup`: what a continuous rollup costs and what it buys.
//! The preset is loaded twice, embedded with the WAL synced on every write:
//! once as it is, once with an hourly rollup of power and temperature per
//! device (created after the first batch). Each load is timed until every
//! row is in Parquet, and the second also until the rollup has caught up.
//! Then a q4-style query (every device of one plant, hourly average power)
//! is timed warm against the raw table and against the rollup, and the two
//! answers are compared.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow::util::pretty::pretty_format_batches;
use ingot_bench::{Generator, Preset};
use ingot_engine::{Engine, Options, WalSync};

#[derive(clap::Args)]
pub struct RollupArgs {
    /// Workload preset: tiny, small, medium or billion.
    #[arg(long, default_value = "small")]
    preset: String,
    /// Warm runs of each query; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

const ROLLUP: &str = "CREATE MATERIALIZED VIEW readings_1h AS \
     SELECT date_bin(INTERVAL '1 hour', time) AS time, plant, device_id, \
     avg(power_kw) AS avg_kw, max(temperature) AS max_t, count(*) AS n \
     FROM readings GROUP BY 1, plant, device_id";

/// q4 over the raw rows, and the same answer from the rollup; values
/// rounded so that the two summation orders compare equal.
const RAW_Q4: &str = "SELECT device_id, date_bin(INTERVAL '1 hour', time) AS hour, \
     round(avg(power_kw), 9) AS avg_kw FROM readings WHERE plant = 'plant-3' \
     GROUP BY 1, 2 ORDER BY 1, 2";
const ROLLUP_Q4: &str = "SELECT device_id, time AS hour, round(avg_kw, 9) AS avg_kw \
     FROM readings_1h WHERE plant = 'plant-3' ORDER BY 1, 2";

struct Load {
    points: u64,
    /// Until every row is in Parquet.
    seconds: f64,
    /// Until the rollup has caught up too.
    caught_up_seconds: f64,
}

fn load(preset: Preset, dir: &Path, rollup: bool) -> Result<Load, Box<dyn std::error::Error>> {
    let mut options = Options::default();
    options.wal_sync = WalSync::Always;
    let engine = Engine::open(dir, options)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let mut generator = Generator::new(preset);
    let mut points = 0;
    let mut first = true;
    while let Some(batch) = generator.next_batch(10_000) {
        points += engine.write_batch("public", "readings", &batch)?.points;
        if first && rollup {
            runtime.block_on(engine.sql(ROLLUP))?;
        }
        first = false;
    }
    engine.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    engine.refresh_rollups()?;
    let caught_up_seconds = started.elapsed().as_secs_f64();
    engine.close()?;
    Ok(Load {
        points,
        seconds,
        caught_up_seconds,
    })
}

/// The median warm time of `sql`, and its answer.
fn time_query(
    engine: &Engine,
    runtime: &tokio::runtime::Runtime,
    sql: &str,
    runs: usize,
) -> Result<(Duration, String), Box<dyn std::error::Error>> {
    let answer = pretty_format_batches(&runtime.block_on(engine.sql(sql))?)?.to_string();
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        runtime.block_on(engine.sql(sql))?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok((times[times.len() / 2], answer))
}

pub fn run(args: RollupArgs) -> Result<(), Box<dyn std::error::Error>> {
    let preset =
        Preset::by_name(&args.preset).ok_or_else(|| format!("unknown preset {:?}", args.preset))?;
    let temp = tempfile::tempdir()?;
    let plain = load(preset, &temp.path().join("plain"), false)?;
    std::fs::remove_dir_all(temp.path().join("plain"))?;
    let dir = temp.path().join("rollup");
    let with = load(preset, &dir, true)?;
    println!("rollup  preset={} wal_sync=always", preset.name);
    println!(
        "  without a rollup   {:>8.2} s until in Parquet   {:>6.2} M points/s",
        plain.seconds,
        plain.points as f64 / plain.seconds / 1e6
    );
    println!(
        "  with readings_1h   {:>8.2} s until in Parquet   {:>6.2} M points/s; caught up after {:.2} s ({:.2} M points/s)",
        with.seconds,
        with.points as f64 / with.seconds / 1e6,
        with.caught_up_seconds,
        with.points as f64 / with.caught_up_seconds / 1e6
    );

    let engine = Engine::open(&dir, Options::default())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stored = pretty_format_batches(&runtime.block_on(engine.sql(
        "SELECT r.caught_up_seq, r.pending_windows, sum(f.rows) AS stored_rows \
         FROM system.rollups r JOIN system.files f ON f.table_name = r.name \
         GROUP BY 1, 2",
    ))?)?;
    println!("  the rollup after the load:\n{stored}");
    let (raw_time, raw) = time_query(&engine, &runtime, RAW_Q4, args.runs)?;
    let (rollup_time, rolled) = time_query(&engine, &runtime, ROLLUP_Q4, args.runs)?;
    let rows = raw.lines().count().saturating_sub(4);
    println!(
        "  q4-style, {rows} rows, warm median of {}: raw {:.1} ms, rollup {:.1} ms ({:.1}x); answers {}",
        args.runs,
        raw_time.as_secs_f64() * 1e3,
        rollup_time.as_secs_f64() * 1e3,
        raw_time.as_secs_f64() / rollup_time.as_secs_f64().max(1e-9),
        if raw == rolled { "equal" } else { "DIFFER" }
    );
    engine.close()?;
    if raw != rolled {
        return Err("the rollup's answer differs from the raw table's".into());
    }
    Ok(())
}
