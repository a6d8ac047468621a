//! Criterion micro-benchmarks of the hot spots, on workload rows:
//! line-protocol parsing, a WAL-durable write (append + fsync + memtable
//! insert), a flush to Parquet (with and without the summaries written
//! beside each file), and an hour of every device aggregated from summaries
//! in memory, from summaries in Parquet, and from rows.
//!
//! `cargo bench -p ingot-bench --bench hot_paths`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ingot_bench::{Generator, line_protocol_requests};
use ingot_engine::line_protocol::{ParsedLine, lines, parse_line};
use ingot_engine::{Engine, Options, WalSync};

fn parse(c: &mut Criterion) {
    let text = line_protocol_requests(1000, 10_000, 10_000).concat();
    let mut group = c.benchmark_group("line_protocol");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("parse 10k workload lines", |b| {
        let mut line = ParsedLine::default();
        b.iter(|| {
            for (n, l) in lines(&text) {
                parse_line(l, n, &mut line).expect("valid");
            }
        })
    });
    group.finish();
}

fn write(c: &mut Criterion) {
    let mut group = c.benchmark_group("write");
    group.throughput(Throughput::Elements(10_000));
    for (name, sync) in [("wal always", WalSync::Always), ("wal none", WalSync::None)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = Options::default();
        options.wal_sync = sync;
        let engine = Engine::open(dir.path(), options).expect("open");
        let mut generator = Generator::with_size(1000, 1_000_000);
        group.bench_function(format!("10k-row Arrow batch, {name}"), |b| {
            b.iter_batched(
                || generator.next_batch(10_000).expect("rows"),
                |batch| {
                    engine
                        .write_batch("public", "readings", &batch)
                        .expect("write")
                },
                BatchSize::SmallInput,
            )
        });
        engine.close().expect("close");
    }
    group.finish();
}

/// An engine holding `steps` of the workload's 1 000 devices, unflushed.
fn loaded(options: Options, steps: u64) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::open(dir.path(), options).expect("open");
    let mut generator = Generator::with_size(1000, steps);
    while let Some(batch) = generator.next_batch(10_000) {
        engine
            .write_batch("public", "readings", &batch)
            .expect("write");
    }
    (dir, engine)
}

fn flush(c: &mut Criterion) {
    let mut group = c.benchmark_group("flush");
    group.sample_size(10);
    group.throughput(Throughput::Elements(500_000));
    for (name, summaries) in [("with summaries", true), ("without summaries", false)] {
        group.bench_function(format!("500k workload rows to Parquet, {name}"), |b| {
            b.iter_batched(
                || {
                    let mut options = Options::default();
                    options.wal_sync = WalSync::None;
                    if !summaries {
                        options.summary_window = None;
                    }
                    loaded(options, 500)
                },
                |(_dir, engine)| engine.flush().expect("flush"),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// q5 of the workload over four hours of 1 000 devices in one file: the
/// hottest devices of one hour.
fn summaries(c: &mut Criterion) {
    const HOT: &str = "SELECT device_id, max(temperature) AS max_t FROM readings \
        WHERE time >= '2026-01-01T01:00:00Z' AND time < '2026-01-01T02:00:00Z' \
        GROUP BY device_id ORDER BY max_t DESC, device_id LIMIT 10";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("summaries");
    for (name, window, cache) in [
        ("summaries in memory", true, 256 << 20),
        ("summaries in Parquet", true, 0),
        ("rows", false, 0),
    ] {
        let mut options = Options::default();
        options.wal_sync = WalSync::None;
        options.compaction = false;
        if !window {
            options.summary_window = None;
        }
        options.summary_cache_bytes = cache;
        let (_dir, engine) = loaded(options, 1440);
        engine.flush().expect("flush");
        group.bench_function(format!("hottest devices of an hour, {name}"), |b| {
            b.iter(|| runtime.block_on(engine.sql(HOT)).expect("query"))
        });
    }
    group.finish();
}

criterion_group!(benches, parse, write, flush, summaries);
criterion_main!(benches);
