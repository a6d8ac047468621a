//! Criterion micro-benchmarks of the write path's hot spots, on workload
//! rows: line-protocol parsing, a WAL-durable write (append + fsync +
//! memtable insert), and a flush to Parquet.
//!
//! `cargo bench -p ingot-bench --bench hot_paths`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ingot_bench::{Generator, line_protocol, row};
use ingot_engine::line_protocol::{ParsedLine, lines, parse_line};
use ingot_engine::{Engine, Options, WalSync};

fn workload_lines(rows: u64) -> String {
    let devices = 1000;
    (0..rows)
        .map(|i| line_protocol(&row(i % devices, i / devices, 10)) + "\n")
        .collect()
}

fn parse(c: &mut Criterion) {
    let text = workload_lines(10_000);
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

fn flush(c: &mut Criterion) {
    let mut group = c.benchmark_group("flush");
    group.sample_size(10);
    group.throughput(Throughput::Elements(500_000));
    group.bench_function("500k workload rows to Parquet", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let mut options = Options::default();
                options.wal_sync = WalSync::None;
                let engine = Engine::open(dir.path(), options).expect("open");
                let mut generator = Generator::with_size(1000, 500);
                while let Some(batch) = generator.next_batch(10_000) {
                    engine
                        .write_batch("public", "readings", &batch)
                        .expect("write");
                }
                (dir, engine)
            },
            |(_dir, engine)| engine.flush().expect("flush"),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, parse, write, flush);
criterion_main!(benches);
