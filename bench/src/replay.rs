//! `ingot-bench replay`: how fast an engine opens after a crash that left a
//! full memtable in the WAL.
//!
//! A child process writes `small` telemetry (10 000-row batches, WAL sync
//! `always`, a memtable budget large enough that nothing is flushed) until
//! the memtable holds the bytes asked for, prints how many rows it wrote, and
//! aborts: no flush, no clean close, every acknowledged write in the WAL
//! only. The parent then opens the directory, timing `Engine::open` (which
//! replays every record into the memtable), checks that every row is there,
//! and reports the WAL bytes replayed per second.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use ingot_bench::{Generator, Preset};
use ingot_engine::{Engine, Options};

pub struct Config {
    /// Memtable bytes to leave in the WAL.
    pub memtable_bytes: u64,
    pub runs: usize,
}

/// Options of both the crashing writer and the reopening engine: the whole
/// memtable stays in memory, and nothing is compacted.
fn options(memtable_bytes: u64) -> Options {
    let mut o = Options::default();
    o.memtable_budget_bytes = (memtable_bytes as usize).saturating_mul(3);
    o.compaction = false;
    o
}

/// The child: writes until the memtable holds `memtable_bytes`, prints the
/// rows written, and aborts.
pub fn crash_child(dir: &Path, memtable_bytes: u64) -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::open(dir, options(memtable_bytes))?;
    let preset = Preset::by_name("small").ok_or("no small preset")?;
    // `small`'s devices, for as many days as it takes.
    let mut generator = Generator::with_size(preset.devices, preset.steps * 365);
    let mut rows = 0u64;
    while let Some(batch) = generator.next_batch(10_000) {
        engine.write_batch("public", "readings", &batch)?;
        rows += batch.num_rows() as u64;
        if engine.stats().memtable_bytes >= memtable_bytes {
            break;
        }
    }
    let stats = engine.stats();
    println!("{rows} {}", stats.memtable_bytes);
    std::io::stdout().flush()?;
    std::process::abort();
}

pub fn run(config: &Config, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "replay  memtable={} MiB runs={}",
        config.memtable_bytes >> 20,
        config.runs
    );
    let mut rates = Vec::new();
    for run in 0..config.runs.max(1) {
        let data = dir.join(format!("run-{run}"));
        let _ = std::fs::remove_dir_all(&data);
        let mut child = Command::new(std::env::current_exe()?)
            .args(["replay", "--crash-child", "--data-dir"])
            .arg(&data)
            .args(["--memtable-mib", &(config.memtable_bytes >> 20).to_string()])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no child stdout")?).read_line(&mut line)?;
        let status = child.wait()?;
        let mut fields = line.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(rows)), Some(Ok(memtable))) = (fields.next(), fields.next()) else {
            return Err(format!("the writer stopped without a count ({status}): {line:?}").into());
        };
        if status.success() {
            return Err("the writer exited cleanly instead of crashing".into());
        }
        let wal_bytes = dir_bytes(&data.join("wal"))?;
        let started = Instant::now();
        let engine = Engine::open(&data, options(config.memtable_bytes))?;
        let open = started.elapsed().as_secs_f64();
        let replayed = engine.stats().memtable_bytes;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let batches = runtime.block_on(engine.sql("SELECT count(*) FROM readings"))?;
        let count = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .ok_or("count(*) is not an Int64")?
            .value(0) as u64;
        if count != rows {
            return Err(
                format!("{rows} rows acknowledged before the crash, {count} after it").into(),
            );
        }
        drop(engine);
        let rate = wal_bytes as f64 / open / 1e9;
        println!(
            "  run {run}: {rows} rows ({memtable} memtable bytes at the crash), WAL {:.1} MiB, \
             open {:.2} s, {:.2} GB/s of WAL, memtable after replay {:.1} MiB, every row back",
            wal_bytes as f64 / (1 << 20) as f64,
            open,
            rate,
            replayed as f64 / (1 << 20) as f64,
        );
        rates.push(rate);
        std::fs::remove_dir_all(&data)?;
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "  median          {:.2} GB/s of WAL replayed",
        rates[rates.len() / 2]
    );
    Ok(())
}

/// Bytes of the WAL segments in `dir` (`*.wal`; retired segments kept for
/// reuse, `*.free`, are not replayed).
fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() && entry.path().extension().is_some_and(|e| e == "wal") {
            total += meta.len();
        }
    }
    Ok(total)
}
