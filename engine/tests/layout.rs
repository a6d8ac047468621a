//! Files can order their rows by (time slice, series, time): a query of one
//! hour over every series then reads that hour's pages only, and the layout
//! changes no answer, through duplicates, late rows, re-sent fields, deletes
//! and compaction. A cold partition's one file is in slices of about a row
//! group each, whatever the flushes wrote.

use std::time::Duration;

use arrow::array::{Array, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use ingot_engine::{Engine, Options};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::{Rng, SeedableRng};

mod common;
use common::{manual, metric, query, run_with_scan_metrics, runtime, write};

const HOUR_NS: i64 = 3_600_000_000_000;
/// 2026-01-01T00:00:00Z in seconds.
const START: i64 = 1_767_225_600;

fn options(time_slice: Option<Duration>) -> Options {
    let mut o = manual();
    o.time_slice = time_slice;
    // The layout of rows is under test, not the summaries that would
    // answer these aggregates instead.
    o.summary_window = None;
    o
}

/// A row's (slice, device, time).
type RowKey = (i64, String, i64);

/// `(slice, device, time)` of every row of every file, in file order, for
/// slices `width` wide, with the file's recorded slice width.
fn file_rows(
    dir: &std::path::Path,
    engine: &Engine,
    width: i64,
) -> Vec<(Option<i64>, Vec<RowKey>)> {
    let mut out = Vec::new();
    for f in engine.files() {
        let file = std::fs::File::open(dir.join(&f.path)).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let dev = cast(batch.column_by_name("dev").unwrap(), &DataType::Utf8).unwrap();
            let dev = dev.as_any().downcast_ref::<StringArray>().unwrap();
            let time = cast(batch.column_by_name("time").unwrap(), &DataType::Int64).unwrap();
            let time = time.as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..batch.num_rows() {
                let t = time.value(i);
                rows.push((t.div_euclid(width), dev.value(i).to_string(), t));
            }
        }
        out.push((f.time_slice_ns, rows));
    }
    out
}

fn assert_sliced(dir: &std::path::Path, engine: &Engine) {
    assert_sliced_by(dir, engine, HOUR_NS);
}

fn assert_sliced_by(dir: &std::path::Path, engine: &Engine, width: i64) {
    let files = file_rows(dir, engine, width);
    assert!(!files.is_empty());
    for (slice, rows) in files {
        assert_eq!(slice, Some(width));
        assert!(
            rows.windows(2).all(|w| w[0] < w[1]),
            "rows are not in (slice, device, time) order, or repeat a key"
        );
        assert!(
            rows.first().map(|r| r.0) != rows.last().map(|r| r.0),
            "the test's files should span several hours"
        );
    }
}

const CHECKS: &[&str] = &[
    "SELECT * FROM m ORDER BY dev, time",
    "SELECT dev, count(*), round(sum(v), 4), max(w), count(note) FROM m GROUP BY dev ORDER BY dev",
    "SELECT dev, max(time) AS t, last_value(v ORDER BY time) AS v FROM m GROUP BY dev ORDER BY dev",
    "SELECT dev, max(v) AS top FROM m WHERE time >= '2026-01-01T02:00:00Z' AND time < '2026-01-01T03:00:00Z' GROUP BY dev ORDER BY top DESC, dev LIMIT 5",
    "SELECT count(*) FROM m WHERE dev = 'd03' AND time >= '2026-01-01T01:30:00Z' AND time < '2026-01-01T04:10:00Z'",
];

fn answers(engine: &Engine) -> Vec<String> {
    CHECKS.iter().map(|q| query(engine, q)).collect()
}

/// Asserts that two engines answer alike, showing the first line that differs.
fn assert_same(got: &[String], expected: &[String]) {
    for ((sql, a), b) in CHECKS.iter().zip(got).zip(expected) {
        if let Some((x, y)) = a.lines().zip(b.lines()).find(|(x, y)| x != y) {
            panic!("{sql}\n  got      {x}\n  expected {y}");
        }
        assert_eq!(a.lines().count(), b.lines().count(), "{sql}");
    }
}

/// The same writes, flushes and deletes, to any engine.
fn load(engine: &Engine) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // Six hours of ten devices, every 30 s, written in four pieces out of
    // device order; each piece is flushed.
    for piece in 0..4i64 {
        let mut lp = String::new();
        for step in (piece * 180)..((piece + 1) * 180) {
            for d in (0..10).rev() {
                let v: f64 = rng.random_range(0.0..100.0);
                lp += &format!(
                    "m,dev=d{d:02} v={v:.2},w={}i {}\n",
                    step % 17,
                    START + step * 30
                );
            }
        }
        write(engine, &lp);
        engine.flush().unwrap();
    }
    // Late rows into every hour, a re-sent field (w stays, v changes), a
    // new field on old rows, and a duplicate within one request.
    let mut lp = String::new();
    for h in 0..6 {
        lp += &format!("m,dev=d0{h} v=-{h} {}\n", START + h * 3600 + 15);
        lp += &format!("m,dev=d01 v=500.5 {}\n", START + h * 3600 + 60);
    }
    lp += &format!("m,dev=d02 note=\"late\" {}\n", START + 7200);
    lp += &format!(
        "m,dev=d02 v=1 {}\nm,dev=d02 v=2 {}\n",
        START + 7230,
        START + 7230
    );
    write(engine, &lp);
    engine.flush().unwrap();
    // A delete across a slice boundary, and rows left in the memtable.
    runtime()
        .block_on(engine.sql(
            "DELETE FROM m WHERE dev = 'd04' AND time >= '2026-01-01T02:50:00Z' AND time < '2026-01-01T03:20:00Z'",
        ))
        .unwrap();
    write(
        engine,
        &format!("m,dev=d09 v=77 {}\n", START + 3 * 3600 + 5),
    );
}

#[test]
fn sliced_files_answer_as_files_in_series_order_do() {
    let (sliced_dir, plain_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sliced = Engine::open(sliced_dir.path(), options(Some(Duration::from_secs(3600)))).unwrap();
    let plain = Engine::open(plain_dir.path(), options(None)).unwrap();
    load(&sliced);
    load(&plain);
    assert!(plain.files().iter().all(|f| f.time_slice_ns.is_none()));
    assert_sliced(sliced_dir.path(), &sliced);
    let expected = answers(&plain);
    assert_same(&answers(&sliced), &expected);

    // Compaction merges sliced files into one sliced file.
    sliced.compact().unwrap();
    plain.compact().unwrap();
    assert_eq!(sliced.files().len(), 1);
    assert_sliced(sliced_dir.path(), &sliced);
    assert_same(&answers(&sliced), &expected);
    assert_same(&answers(&plain), &expected);

    // And through a reopen (the memtable row comes back from the WAL).
    sliced.close().unwrap();
    let sliced = Engine::open(sliced_dir.path(), options(Some(Duration::from_secs(3600)))).unwrap();
    assert_same(&answers(&sliced), &expected);
}

#[test]
fn a_query_of_one_hour_reads_the_pages_of_that_hour() {
    let (sliced_dir, plain_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sliced = Engine::open(sliced_dir.path(), options(Some(Duration::from_secs(3600)))).unwrap();
    let plain = Engine::open(plain_dir.path(), options(None)).unwrap();
    // Six hours of 200 devices every 10 s: 432 000 rows, one file each,
    // with pages of up to 20 000 rows (an hour is 72 000).
    let mut lp = String::new();
    for step in 0..2160i64 {
        for d in 0..200 {
            lp += &format!(
                "m,dev=d{d:03} v={}.5 {}\n",
                (step * 7 + d) % 1000,
                START + step * 10
            );
        }
    }
    for engine in [&sliced, &plain] {
        write(engine, &lp);
        engine.flush().unwrap();
        assert_eq!(engine.files().len(), 1);
    }
    let rt = runtime();
    let sql = "SELECT dev, max(v) AS top FROM m WHERE time >= '2026-01-01T05:00:00Z' AND time < '2026-01-01T06:00:00Z' GROUP BY dev ORDER BY top DESC, dev LIMIT 10";
    let (sliced_rows, sliced_metrics) = run_with_scan_metrics(&sliced, &rt, sql);
    let (plain_rows, plain_metrics) = run_with_scan_metrics(&plain, &rt, sql);
    assert_eq!(sliced_rows, plain_rows);
    let sliced_bytes = metric(&sliced_metrics, "bytes_scanned");
    let plain_bytes = metric(&plain_metrics, "bytes_scanned");
    // One hour of six: the sliced file's pages for it, against pages that
    // each hold all six hours of a few devices.
    assert!(
        sliced_bytes * 2 < plain_bytes,
        "sliced read {sliced_bytes} bytes, series order {plain_bytes}"
    );
    // A query of one device still reads a small part of the sliced file.
    let one = "SELECT count(*), max(v) FROM m WHERE dev = 'd007'";
    let (a, sliced_one) = run_with_scan_metrics(&sliced, &rt, one);
    let (b, _) = run_with_scan_metrics(&plain, &rt, one);
    assert_eq!(a, b);
    let file_bytes = sliced.files()[0].bytes as usize;
    let one_bytes = metric(&sliced_one, "bytes_scanned");
    assert!(
        one_bytes * 2 < file_bytes,
        "one device read {one_bytes} of {file_bytes} bytes"
    );
}

#[test]
fn a_cold_partition_is_compacted_into_slices_of_a_row_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(None);
    o.row_group_rows = 2_000;
    let engine = Engine::open(dir.path(), o.clone()).unwrap();
    // Twelve hours of 20 devices every minute (14 400 rows: about seven row
    // groups, so three-hour slices), flushed in (device, time) order in
    // three pieces of four hours, with late rows and a re-sent one.
    for piece in 0..3i64 {
        let mut lp = String::new();
        for step in (piece * 240)..((piece + 1) * 240) {
            for d in 0..20 {
                lp += &format!(
                    "m,dev=d{d:02} v={}.25,w={d}i,note=\"n\" {}\n",
                    step % 97,
                    START + step * 60
                );
            }
        }
        lp += &format!("m,dev=d03 v=-1 {}\n", START + 30);
        write(&engine, &lp);
        engine.flush().unwrap();
    }
    write(&engine, &format!("m,dev=d05 w=99i {}\n", START + 7 * 3600));
    engine.flush().unwrap();
    assert!(engine.files().iter().all(|f| f.time_slice_ns.is_none()));
    let before = answers(&engine);
    engine.compact().unwrap();
    let files = engine.files();
    assert_eq!(files.len(), 1);
    let width = 3 * HOUR_NS;
    assert_sliced_by(dir.path(), &engine, width);
    assert_same(&answers(&engine), &before);
    // No row group spans two slices.
    let file = std::fs::File::open(dir.path().join(&files[0].path)).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let metadata = reader.metadata().clone();
    let time = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.name() == "time")
        .unwrap();
    let mut slices = Vec::new();
    for rg in metadata.row_groups() {
        let Some(parquet::file::statistics::Statistics::Int64(s)) = rg.column(time).statistics()
        else {
            panic!("no time statistics");
        };
        let (min, max) = (*s.min_opt().unwrap(), *s.max_opt().unwrap());
        assert_eq!(
            min.div_euclid(width),
            max.div_euclid(width),
            "a row group spans slices"
        );
        slices.push(min.div_euclid(width));
    }
    assert!(slices.windows(2).all(|w| w[0] <= w[1]), "{slices:?}");
    assert_eq!(
        slices.first(),
        Some(&(START * 1_000_000_000).div_euclid(width))
    );
    assert!(slices.len() >= 4, "{slices:?}");

    // A late row makes the partition merge again, into the same slices.
    write(&engine, &format!("m,dev=d07 v=5 {}\n", START + 3600));
    engine.flush().unwrap();
    let before = answers(&engine);
    engine.compact().unwrap();
    assert_eq!(engine.files().len(), 1);
    assert_sliced_by(dir.path(), &engine, width);
    assert_same(&answers(&engine), &before);
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), o).unwrap();
    assert_same(&answers(&engine), &before);
}
