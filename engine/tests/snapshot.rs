//! Queries see one consistent state while writes and flushes go on, and a
//! time-range query opens only the files that overlap it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::collections::BTreeSet;

use arrow::array::{Float64Array, Int64Array, RecordBatch};
use arrow::util::pretty::pretty_format_batches;
use datafusion::physical_plan::displayable;
use datafusion::physical_plan::metrics::MetricsSet;
use ingot_engine::{Engine, Options, Precision};

mod common;
use common::{metric, run_with_scan_metrics, runtime};

fn count(engine: &Engine, rt: &tokio::runtime::Runtime) -> i64 {
    let b = rt.block_on(engine.sql("SELECT count(*) FROM m")).unwrap();
    b[0].column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

/// Writes line protocol (second precision) and persists it as files.
fn write_and_flush(engine: &Engine, lp: &str) {
    engine.write_lines("public", lp, Precision::Second).unwrap();
    engine.flush().unwrap();
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

/// The files the scan read bytes from.
fn files_read(metrics: &MetricsSet) -> BTreeSet<String> {
    metrics
        .iter()
        .filter(|m| m.value().name() == "bytes_scanned" && m.value().as_usize() > 0)
        .flat_map(|m| m.labels().iter())
        .filter(|l| l.name() == "filename")
        .map(|l| l.value().to_string())
        .collect()
}

fn first_i64(batches: &[RecordBatch]) -> i64 {
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

/// Options under which aggregates scan files (no summaries stand in).
fn raw_scans() -> Options {
    let mut o = Options::default();
    o.summary_window = None;
    o
}

#[test]
fn a_time_range_query_opens_only_the_overlapping_files() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), raw_scans()).unwrap();
    let day = 86_400i64;
    for d in 0..10 {
        let lp: String = (0..24)
            .map(|h| format!("m,s=a v={h} {}\n", 1_767_225_600 + d * day + h * 3600))
            .collect();
        write_and_flush(&engine, &lp);
    }
    assert_eq!(engine.files().len(), 10);
    let rt = runtime();
    let sql = "SELECT sum(v) AS n FROM m WHERE time >= '2026-01-04T00:00:00Z' AND time < '2026-01-05T00:00:00Z'";
    let (batches, metrics) = run_with_scan_metrics(&engine, &rt, sql);
    let sum = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .value(0);
    assert_eq!(sum, (0..24).sum::<i32>() as f64);
    assert_eq!(metric(&metrics, "files_pruned_by_time"), 9);
    assert_eq!(metric(&metrics, "files_scanned"), 1);
    let read = files_read(&metrics);
    assert_eq!(read.len(), 1, "{read:?}");
    assert!(
        read.iter().all(|f| f.contains("day=2026-01-04")),
        "{read:?}"
    );

    // EXPLAIN ANALYZE shows the same counts.
    let text = rt
        .block_on(engine.sql(&format!("EXPLAIN ANALYZE {sql}")))
        .map(|b| pretty_format_batches(&b).unwrap().to_string())
        .unwrap();
    assert!(text.contains("files_pruned_by_time=9"), "{text}");
    assert!(text.contains("files_scanned=1"), "{text}");
}

#[test]
fn a_tag_query_opens_only_the_files_that_hold_the_tag() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), raw_scans()).unwrap();
    // Four files over the same hour, one device each (as when devices are
    // written by different collectors); the last one also has a late tag.
    for (i, dev) in ["d0", "d1", "d2", "d3"].iter().enumerate() {
        let extra = if i == 3 { ",zone=z9" } else { "" };
        let lp: String = (0..60)
            .map(|s| format!("m,dev={dev}{extra} v={s} {}\n", 1_767_225_600 + s))
            .collect();
        write_and_flush(&engine, &lp);
    }
    let rt = runtime();
    let cases = [
        ("dev = 'd1'", 1, 60),
        ("dev IN ('d0', 'd2', 'x')", 2, 120),
        ("dev > 'd2'", 1, 60),
        ("dev <= 'd0'", 1, 60),
        ("zone = 'z9'", 1, 60),
        ("dev = 'none'", 0, 0),
        ("dev <> 'd1'", 4, 180),
    ];
    for (filter, files, rows) in cases {
        let sql = format!("SELECT count(*) FROM m WHERE {filter}");
        let (batches, metrics) = run_with_scan_metrics(&engine, &rt, &sql);
        assert_eq!(first_i64(&batches), rows, "{filter}");
        assert_eq!(metric(&metrics, "files_scanned"), files, "{filter}");
        assert_eq!(
            metric(&metrics, "files_pruned_by_tags"),
            4 - files,
            "{filter}"
        );
        assert!(files_read(&metrics).len() <= files, "{filter}");
    }
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
        write_and_flush(&engine, &lp);
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

#[test]
fn latest_value_queries_read_only_the_last_rows() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options::default()).unwrap();
    for day in 0..2i64 {
        let lp: String = (0..100)
            .flat_map(|s| (0..3).map(move |d| (s, d)))
            .map(|(s, d)| format!("m,dev=d{d} v={} {}\n", day * 1000 + s, day * 86_400 + s))
            .collect();
        write_and_flush(&engine, &lp);
    }
    let rt = runtime();
    let latest = "SELECT dev, max(time) AS t, last_value(v ORDER BY time) AS v FROM m GROUP BY dev ORDER BY dev";
    let plan = plan_text(&engine, &rt, latest);
    assert!(!plan.contains(".parquet"), "reads files:\n{plan}");
    let text = rt
        .block_on(engine.sql(latest))
        .map(|b| pretty_format_batches(&b).unwrap().to_string())
        .unwrap();
    for d in 0..3 {
        assert!(
            text.contains(&format!("| d{d}  | 1970-01-02T00:01:39Z | 1099.0 |")),
            "{text}"
        );
    }
    // With a time filter the last rows are not enough: the files are read.
    let bounded = "SELECT dev, last_value(v ORDER BY time) FROM m WHERE time < '1970-01-02T00:00:00Z' GROUP BY dev";
    let plan = plan_text(&engine, &rt, bounded);
    assert!(plan.contains(".parquet"), "{plan}");
}

#[test]
fn files_that_share_an_instant_merge_only_the_rows_there() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options::default()).unwrap();
    // Two flushes whose time ranges share t = 99; the second rewrites v there.
    for (from, to, base) in [(0, 100, 0), (99, 200, 1000)] {
        let lp: String = (from..to)
            .flat_map(|t| ["a", "b"].map(|s| format!("m,s={s} v={}i {t}\n", base + t)))
            .collect();
        write_and_flush(&engine, &lp);
    }
    // And a late write into the first file's range, still in the memtable.
    engine
        .write_lines("public", "m,s=a v=-1i 50", Precision::Second)
        .unwrap();
    let rt = runtime();
    let sql = "SELECT count(*) AS n, sum(v) AS total FROM m";
    let (batches, metrics) = run_with_scan_metrics(&engine, &rt, sql);
    assert_eq!(first_i64(&batches), 400);
    let total = batches[0]
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    let expected: i64 = ["a", "b"]
        .iter()
        .map(|s| {
            (0..99)
                .map(|t| if *s == "a" && t == 50 { -1 } else { t })
                .sum::<i64>()
                + (99..200).map(|t| 1000 + t).sum::<i64>()
        })
        .sum();
    assert_eq!(total, expected);
    // Rows at t = 99 (two series, two files) and at t = 50 (two series in
    // the first file) are merged; everything else streams from the files.
    assert_eq!(metric(&metrics, "rows_merged_from_files"), 6);
    assert_eq!(metric(&metrics, "files_partly_merged"), 2);
}

#[test]
fn a_declared_file_order_lets_ordered_queries_skip_the_sort() {
    let plan_of = |declare_file_order: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut options = Options::default();
        options.declare_file_order = declare_file_order;
        let engine = Engine::open(dir.path(), options).unwrap();
        let lp: String = (0..50)
            .flat_map(|t| ["b", "a", "c"].map(|d| format!("m,dev={d} v={t} {t}\n")))
            .collect();
        write_and_flush(&engine, &lp);
        let rt = runtime();
        plan_text(
            &engine,
            &rt,
            "SELECT dev, time, v FROM m ORDER BY dev, time",
        )
    };
    let declared = plan_of(true);
    assert!(!declared.contains("SortExec"), "{declared}");
    assert!(
        declared.contains("output_ordering=[dev@0 ASC NULLS LAST, time@1 ASC NULLS LAST]"),
        "{declared}"
    );
    let plain = plan_of(false);
    assert!(plain.contains("SortExec"), "{plain}");
}
