//! Queries see one consistent state while writes and flushes go on, and a
//! time-range query opens only the files that overlap it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::Int64Array;
use datafusion::physical_plan::displayable;
use ingot_engine::{Engine, Options, Precision};

fn count(engine: &Engine, rt: &tokio::runtime::Runtime) -> i64 {
    let b = rt.block_on(engine.sql("SELECT count(*) FROM m")).unwrap();
    b[0].column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The physical plan of `sql`, as EXPLAIN shows it.
fn plan_text(engine: &Engine, rt: &tokio::runtime::Runtime, sql: &str) -> String {
    let plan = rt.block_on(async {
        let df = engine.session().sql(sql).await.unwrap();
        df.create_physical_plan().await.unwrap()
    });
    displayable(plan.as_ref()).indent(true).to_string()
}

#[test]
fn counts_during_writes_and_flushes_are_whole_and_monotone() {
    const BATCH: i64 = 50;
    const BATCHES: i64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.memtable_budget_bytes = 256 << 10; // flushes all the time
    let engine = Engine::open(dir.path(), options).unwrap();
    engine
        .write_lines("public", "m,s=x v=0 0", Precision::Nanosecond)
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (engine, done) = (engine.clone(), done.clone());
        std::thread::spawn(move || {
            for n in 0..BATCHES {
                let lp: String = (0..BATCH)
                    .map(|i| format!("m,s=s{} v={n} {}\n", i % 7, 1 + n * BATCH + i))
                    .collect();
                engine
                    .write_lines("public", &lp, Precision::Nanosecond)
                    .unwrap();
                if n % 25 == 0 {
                    engine.flush().unwrap();
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let rt = runtime();
    let mut last = 0;
    let mut observed = 0;
    while !done.load(Ordering::Acquire) {
        let n = count(&engine, &rt) - 1;
        assert_eq!(n % BATCH, 0, "a count of {n} rows splits a write");
        assert!(n >= last, "count went back from {last} to {n}");
        last = n;
        observed += 1;
    }
    writer.join().unwrap();
    assert_eq!(count(&engine, &rt) - 1, BATCH * BATCHES);
    assert!(observed > 3, "the reader only got {observed} counts in");
}

#[test]
fn a_time_range_query_opens_only_the_overlapping_files() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options::default()).unwrap();
    let day = 86_400i64;
    for d in 0..10 {
        let lp: String = (0..24)
            .map(|h| format!("m,s=a v={h} {}\n", 1_767_225_600 + d * day + h * 3600))
            .collect();
        engine
            .write_lines("public", &lp, Precision::Second)
            .unwrap();
        engine.flush().unwrap();
    }
    assert_eq!(engine.files().len(), 10);
    let rt = runtime();
    let sql = "SELECT count(*) FROM m WHERE time >= '2026-01-04T00:00:00Z' AND time < '2026-01-05T00:00:00Z'";
    let text = plan_text(&engine, &rt, sql);
    let opened: Vec<&str> = text.matches(".parquet").collect();
    assert_eq!(opened.len(), 1, "expected one file in the plan:\n{text}");
    assert!(text.contains("day=2026-01-04"), "{text}");
    let b = rt.block_on(engine.sql(sql)).unwrap();
    assert_eq!(
        b[0].column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0),
        24
    );
}

#[test]
fn a_query_over_its_memory_limit_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.query_memory_limit_bytes = 256 << 10;
    let engine = Engine::open(dir.path(), options).unwrap();
    let lp: String = (0..50_000)
        .map(|i| format!("m,s=s{} v={i} {i}\n", i % 10))
        .collect();
    engine
        .write_lines("public", &lp, Precision::Nanosecond)
        .unwrap();
    engine.flush().unwrap();
    let rt = runtime();
    // A hash join's build side cannot spill.
    let err = rt
        .block_on(engine.sql("SELECT count(*) FROM m a JOIN m b ON a.v = b.v AND a.time = b.time"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Resources exhausted"), "{err}");
    // The engine goes on answering queries that fit.
    assert_eq!(count(&engine, &rt), 50_000);
}

#[test]
fn count_and_time_span_of_persisted_files_come_from_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options::default()).unwrap();
    for d in 0..3i64 {
        let lp: String = (0..10)
            .map(|i| format!("m,s=s{i} v=1 {}\n", d * 86_400 + i))
            .collect();
        engine
            .write_lines("public", &lp, Precision::Second)
            .unwrap();
        engine.flush().unwrap();
    }
    let rt = runtime();
    let sql = "SELECT count(*) AS n, min(time) AS first, max(time) AS last FROM m";
    let text = plan_text(&engine, &rt, sql);
    assert!(
        !text.contains(".parquet"),
        "no file should be read:\n{text}"
    );
    let b = rt.block_on(engine.sql(sql)).unwrap();
    let out = arrow::util::pretty::pretty_format_batches(&b)
        .unwrap()
        .to_string();
    assert!(
        out.contains("| 30 | 1970-01-01T00:00:00Z | 1970-01-03T00:00:09Z |"),
        "{out}"
    );
    // With unflushed rows as well, the answer still counts them.
    engine
        .write_lines("public", "m,s=x v=1 1000000", Precision::Second)
        .unwrap();
    let b = rt.block_on(engine.sql(sql)).unwrap();
    let out = arrow::util::pretty::pretty_format_batches(&b)
        .unwrap()
        .to_string();
    assert!(
        out.contains("| 31 |") && out.contains("1970-01-12T13:46:40Z"),
        "{out}"
    );
}

#[test]
fn concurrent_writers_share_wal_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options::default()).unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                for n in 0..40 {
                    let lp = format!("m,w=w{w} v={n} {}", w * 1000 + n);
                    engine
                        .write_lines("public", &lp, Precision::Nanosecond)
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let stats = engine.stats();
    assert_eq!(stats.wal_records, 320);
    assert!(
        stats.wal_fsyncs < stats.wal_records,
        "every write had its own fsync: {stats:?}"
    );
    let rt = runtime();
    assert_eq!(count(&engine, &rt), 320);
    engine.flush().unwrap();
    let stats = engine.stats();
    assert_eq!((stats.flushes, stats.files_written, stats.files), (1, 1, 1));
    assert_eq!(stats.memtable_bytes, 0);
}
