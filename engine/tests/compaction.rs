//! Compaction merges a partition's files into one and changes no answer:
//! with duplicates, late rows, schema evolution and rows re-sent with some
//! fields null; within its memory budget; while queries run across it; in the
//! background; and through SIGKILL at any moment.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{Array, Int64Array};
use futures::StreamExt;
use ingot_engine::{Engine, Options, Precision};
use rand::{Rng, SeedableRng};

mod common;
use common::{count, manual, query, runtime, write};

fn files_per_partition(engine: &Engine) -> BTreeMap<(String, i64), usize> {
    let mut out = BTreeMap::new();
    for f in engine.files() {
        *out.entry((f.table.clone(), f.partition)).or_default() += 1;
    }
    out
}

/// Every data file under the data directory's tables, and what is kept
/// beside each (its summary and last rows).
fn table_objects(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if ["parquet", "summary", "last"]
                .iter()
                .any(|x| path.extension().is_some_and(|e| e == *x))
            {
                out.insert(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, &dir.join("tables"), &mut out);
    out
}

fn live_paths(engine: &Engine) -> BTreeSet<String> {
    engine
        .files()
        .iter()
        .flat_map(|f| f.objects().collect::<Vec<_>>())
        .collect()
}

const DAY: i64 = 86_400;

/// The queries whose answers compaction must not change.
const CHECKS: &[&str] = &[
    "SELECT * FROM m ORDER BY s, time",
    "SELECT s, count(*), sum(x), max(y), count(note), count(zone) FROM m GROUP BY s ORDER BY s",
    "SELECT s, max(time) AS t, last_value(x ORDER BY time) AS x FROM m GROUP BY s ORDER BY s",
    "SELECT count(*) FROM m WHERE time >= '1970-01-02T00:00:00Z'",
];

fn answers(engine: &Engine) -> Vec<String> {
    CHECKS.iter().map(|q| query(engine, q)).collect()
}

#[test]
fn merges_files_and_keeps_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    // Day 0: four flushes, each a different slice of series and times.
    for f in 0..4 {
        let lp: String = (0..200)
            .map(|i| {
                format!(
                    "m,s=s{} x={}.5,y={}i {}\n",
                    i % 7,
                    f * 1000 + i,
                    i,
                    f * 300 + i
                )
            })
            .collect();
        write(&engine, &lp);
        engine.flush().unwrap();
    }
    // Re-sent rows: the same (series, time) with a new x and no y; y keeps
    // its earlier value, x takes the later one.
    write(&engine, "m,s=s1 x=-1 1\nm,s=s2 x=-2 2\nm,s=s1 x=-3 301");
    engine.flush().unwrap();
    // Schema evolution: a new field and a new tag, on old and new series.
    write(
        &engine,
        "m,s=s3,zone=north x=7,note=\"late\" 3\nm,s=s9,zone=south note=\"new\" 5000",
    );
    engine.flush().unwrap();
    // Late rows into day 1 and back into day 0, and a duplicate within one request.
    write(
        &engine,
        &format!(
            "m,s=s0 x=1 {}\nm,s=s0 x=2 {}\nm,s=s4 y=99i 10\nm,s=s4 y=98i 10",
            DAY + 5,
            DAY + 5
        ),
    );
    engine.flush().unwrap();
    // And something left in the memtable, overlapping the files.
    write(&engine, "m,s=s5 x=123 20\nm,s=s6 y=5i 6000");

    let before = answers(&engine);
    assert!(files_per_partition(&engine).values().any(|&n| n > 4));
    let records = engine.compact().unwrap();
    assert!(!records.is_empty());
    assert!(
        files_per_partition(&engine).values().all(|&n| n == 1),
        "{:?}",
        files_per_partition(&engine)
    );
    assert_eq!(answers(&engine), before);
    // The replaced files are gone from the disk, the output is there.
    assert_eq!(table_objects(dir.path()), live_paths(&engine));
    // No (series, time) is stored twice: the rows in files are the distinct rows.
    engine.flush().unwrap();
    engine.compact().unwrap();
    let stored: u64 = engine.files().iter().map(|f| f.rows).sum();
    assert_eq!(stored as i64, count(&engine, "SELECT count(*) FROM m"));
    let after_second = answers(&engine);
    assert_eq!(after_second, before);

    // The compacted layout is what a reopen finds.
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    assert_eq!(answers(&engine), before);
    assert!(files_per_partition(&engine).values().all(|&n| n == 1));
    let stats = engine.stats();
    assert_eq!(stats.files, engine.files().len() as u64);
}

#[test]
fn re_sent_fields_merge_per_field_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    write(&engine, "m,s=a x=1,y=1i 1\nm,s=b x=1,y=1i 1");
    engine.flush().unwrap();
    write(&engine, "m,s=a x=2 1");
    engine.flush().unwrap();
    write(&engine, "m,s=a note=\"n\" 1\nm,s=b y=3i 1");
    engine.flush().unwrap();
    engine.compact().unwrap();
    assert_eq!(engine.files().len(), 1);
    assert_eq!(engine.files()[0].rows, 2);
    let all = query(&engine, "SELECT s, x, y, note FROM m ORDER BY s");
    assert_eq!(
        all,
        "+---+-----+---+------+\n\
         | s | x   | y | note |\n\
         +---+-----+---+------+\n\
         | a | 2.0 | 1 | n    |\n\
         | b | 1.0 | 3 |      |\n\
         +---+-----+---+------+"
    );
}

#[test]
fn a_partition_larger_than_the_budget_compacts_within_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = manual();
    options.compaction_memory_bytes = 4 << 20;
    options.row_group_rows = 16_384;
    let engine = Engine::open(dir.path(), options).unwrap();
    let mut batch_bytes = 0usize;
    for f in 0..6 {
        let lp: String = (0..40_000)
            .map(|i| {
                format!(
                    "m,s=dev-{:04} x={}.25,y={}i,z={} {}\n",
                    i % 500,
                    i,
                    f * i,
                    i % 13,
                    f * 40_000 + i
                )
            })
            .collect();
        // Milliseconds: one day partition.
        engine
            .write_lines("public", &lp, Precision::Millisecond)
            .unwrap();
        engine.flush().unwrap();
        batch_bytes += 40_000 * (8 + 4 + 8 + 8 + 8);
    }
    let before = answers_of(&engine);
    // The partition's rows take more memory than the budget.
    assert!(batch_bytes > 4 << 20, "{batch_bytes}");
    let records = engine.compact().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.files_in, 6);
    assert_eq!(r.rows_out, 240_000);
    assert!(
        r.peak_memory_bytes <= 4 << 20,
        "held {} bytes, budget {}",
        r.peak_memory_bytes,
        4 << 20
    );
    assert_eq!(answers_of(&engine), before);
}

fn answers_of(engine: &Engine) -> Vec<String> {
    [
        "SELECT count(*), sum(x), sum(y), min(time), max(time) FROM m",
        "SELECT s, count(*), max(z) FROM m GROUP BY s ORDER BY s LIMIT 20",
    ]
    .iter()
    .map(|q| query(engine, q))
    .collect()
}

#[test]
fn a_query_running_across_a_compaction_sees_one_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = manual();
    options.row_group_rows = 1024;
    let engine = Engine::open(dir.path(), options).unwrap();
    for f in 0..5 {
        let lp: String = (0..5000)
            .map(|i| format!("m,s=s{} x=1 {}\n", i % 10, f * 5000 + i))
            .collect();
        write(&engine, &lp);
        engine.flush().unwrap();
    }
    let rt = runtime();
    let rows = rt.block_on(async {
        let df = engine.session().sql("SELECT x FROM m").await.unwrap();
        let mut stream = df.execute_stream().await.unwrap();
        // Read some, compact underneath, read the rest.
        let first = stream.next().await.unwrap().unwrap().num_rows();
        let e = engine.clone();
        tokio::task::spawn_blocking(move || e.compact().unwrap())
            .await
            .unwrap();
        assert_eq!(engine.files().len(), 1);
        // The query's files wait for it.
        assert_eq!(engine.stats().files_awaiting_deletion, 5);
        let mut rows = first;
        while let Some(b) = stream.next().await {
            rows += b.unwrap().num_rows();
        }
        rows
    });
    assert_eq!(rows, 25_000);
    // Once it is done, the next look deletes them.
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine.stats().files_awaiting_deletion > 0 {
        assert!(
            Instant::now() < deadline,
            "replaced files were never deleted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(table_objects(dir.path()), live_paths(&engine));
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 25_000);
}

#[test]
fn background_compaction_merges_flushed_files_while_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.compaction_trigger_files = 3;
    options.compaction_cold_after = Duration::from_secs(3600);
    let engine = Engine::open(dir.path(), options).unwrap();
    let mut written = 0i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Keep flushing small files until the compactor has merged some.
    while engine.stats().compactions == 0 {
        assert!(
            Instant::now() < deadline,
            "no background compaction in 60 s"
        );
        let lp: String = (0..100)
            .map(|i| format!("m,s=s{} x=1 {}\n", i % 4, written + i))
            .collect();
        write(&engine, &lp);
        written += 100;
        engine.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(count(&engine, "SELECT count(*) FROM m"), written);
    }
    let levels: Vec<u8> = engine.files().iter().map(|f| f.level).collect();
    assert!(levels.contains(&1), "{levels:?}");
    assert_eq!(engine.compactions().last().unwrap().level, 1);
    engine.close().unwrap();
}

/// Flushed files of half a row group or more are not merged while the
/// partition is hot: a merge would write them again without reading them any
/// faster, and the cold merge writes them once more anyway.
#[test]
fn large_flushed_files_wait_for_the_cold_merge() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.compaction_trigger_files = 2;
    options.compaction_cold_after = Duration::from_secs(3600);
    // 100 rows a file: half a row group of 200.
    options.row_group_rows = 200;
    let engine = Engine::open(dir.path(), options).unwrap();
    for f in 0..6i64 {
        let lp: String = (0..100)
            .map(|i| format!("m,s=s{} x=1 {}\n", i % 4, f * 100 + i))
            .collect();
        write(&engine, &lp);
        engine.flush().unwrap();
    }
    // The compactor looks every second; give it a few looks.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(engine.stats().compactions, 0);
    assert_eq!(files_per_partition(&engine).values().sum::<usize>(), 6);
    // Small files still merge.
    for f in 6..8i64 {
        write(&engine, &format!("m,s=s0 x=1 {}\n", f * 100));
        engine.flush().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine.stats().compactions == 0 {
        assert!(Instant::now() < deadline, "the small files were not merged");
        std::thread::sleep(Duration::from_millis(50));
    }
    let last = engine.compactions().last().unwrap().clone();
    assert_eq!((last.level, last.files_in), (1, 2));
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 602);
}

#[test]
fn a_cold_partition_becomes_one_file_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.compaction_cold_after = Duration::from_millis(200);
    let engine = Engine::open(dir.path(), options).unwrap();
    for f in 0..3 {
        write(
            &engine,
            &format!("m,s=a x={f} {f}\nm,s=b x={f} {}", DAY + f),
        );
        engine.flush().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while files_per_partition(&engine).values().any(|&n| n > 1) {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            files_per_partition(&engine)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(engine.files().iter().all(|f| f.level == 2));
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 6);
}

// --- SIGKILL during compaction --------------------------------------------

const ROWS_PER_BATCH: i64 = 40;

/// A writer whose files compact all the time, run as a child process.
#[test]
#[ignore = "run as a child process by crash_during_compaction"]
fn compaction_crash_child() {
    let Ok(dir) = std::env::var("INGOT_CRASH_DIR") else {
        return;
    };
    let first: i64 = std::env::var("INGOT_CRASH_FIRST").unwrap().parse().unwrap();
    let mut o = Options::default();
    o.memtable_budget_bytes = 512 << 10;
    o.compaction_trigger_files = 2;
    o.compaction_cold_after = Duration::ZERO;
    o.row_group_rows = 256;
    let engine = Engine::open(&dir, o).unwrap();
    let mut out = std::io::stdout().lock();
    for n in first.. {
        let lp: String = (0..ROWS_PER_BATCH)
            .map(|i| format!("crash,w=w{} batch={n}i,v={i} {}\n", i % 3, n * 1000 + i))
            .collect();
        engine
            .write_lines("public", &lp, Precision::Millisecond)
            .unwrap();
        writeln!(out, "ack {n}").unwrap();
        out.flush().unwrap();
        if n % 5 == 0 {
            engine.flush().unwrap();
        }
    }
}

#[test]
fn crash_during_compaction_loses_and_duplicates_nothing() {
    let seed: u64 = std::env::var("INGOT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash_during_compaction: seed {seed} (set INGOT_CRASH_SEED to repeat)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked_total: BTreeSet<i64> = BTreeSet::new();
    let mut compactions_seen = 0;
    for round in 0..8 {
        let first = round as i64 * 1_000_000;
        let log = dir.path().join(format!("child-{round}.log"));
        let mut child = Command::new(&exe)
            .args([
                "compaction_crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("INGOT_CRASH_DIR", dir.path())
            .env("INGOT_CRASH_FIRST", first.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ack ") {
                    let _ = tx.send(n.parse::<i64>().unwrap());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while rx.recv_timeout(Duration::from_millis(10)).is_err() {
            assert!(Instant::now() < deadline, "child made no progress in 30 s");
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "child exited early: {status}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1500)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let acked: Vec<i64> = rx.try_iter().collect();
        acked_total.extend(first..=acked.last().copied().unwrap_or(first));

        let engine = Engine::open(dir.path(), manual()).expect("reopen after crash");
        // No file the manifest does not name survives the open.
        assert_eq!(
            table_objects(dir.path()),
            live_paths(&engine),
            "round {round}"
        );
        let batches = runtime()
            .block_on(engine.sql("SELECT batch, count(*) AS n FROM crash GROUP BY batch"))
            .unwrap();
        let mut present = BTreeSet::new();
        for b in batches {
            let batch = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let n = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                assert!(batch.is_valid(i));
                assert_eq!(
                    n.value(i),
                    ROWS_PER_BATCH,
                    "round {round}: batch {} partial",
                    batch.value(i)
                );
                present.insert(batch.value(i));
            }
        }
        for batch in &acked_total {
            assert!(
                present.contains(batch),
                "round {round}: acknowledged batch {batch} is missing (seed {seed})"
            );
        }
        // Nothing is stored twice: the files hold each row once.
        engine.flush().unwrap();
        let stored: u64 = engine.files().iter().map(|f| f.rows).sum();
        assert_eq!(
            stored as i64,
            count(&engine, "SELECT count(*) FROM crash"),
            "round {round}: rows stored twice (seed {seed})"
        );
        compactions_seen += engine.files().iter().filter(|f| f.level > 0).count();
        engine.close().unwrap();
    }
    assert!(compactions_seen > 0, "the children never compacted");
}

/// Each column chunk of the engine's data files, as (file path, column,
/// whether Ingot's own chunk writers wrote it). arrow-rs' column writer
/// records size statistics (a nullable column's definition level
/// histogram, a string column's unencoded bytes); Ingot's do not.
fn chunk_writers(dir: &Path, engine: &Engine) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for f in engine.files() {
        let file = std::fs::File::open(dir.join(&f.path)).unwrap();
        let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
        let metadata = parquet::file::reader::FileReader::metadata(&reader);
        for group in metadata.row_groups() {
            for chunk in group.columns() {
                let ingot = chunk.definition_level_histogram().is_none()
                    && chunk.unencoded_byte_array_data_bytes().is_none();
                out.push((f.path.clone(), chunk.column_path().string(), ingot));
            }
        }
    }
    out
}

#[test]
fn a_compacted_file_is_encoded_as_a_flushed_one() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    for f in 0..3 {
        let lp: String = (0..2_000)
            .map(|i| {
                format!(
                    "m,s=s{} x={}.25,y={}i {}\n",
                    i % 5,
                    (i * 37) % 101,
                    i,
                    f * 2_000 + i
                )
            })
            .collect();
        write(&engine, &lp);
        engine.flush().unwrap();
    }
    let flushed = chunk_writers(dir.path(), &engine);
    assert_eq!(flushed.len(), 3 * 4, "{flushed:?}");
    assert!(flushed.iter().all(|c| c.2), "{flushed:?}");
    let before = query(&engine, "SELECT * FROM m ORDER BY s, time");

    engine.compact().unwrap();
    let compacted = chunk_writers(dir.path(), &engine);
    assert_eq!(engine.files().len(), 1);
    // The tag, the time, the decimal and the integer column.
    assert_eq!(compacted.len(), 4, "{compacted:?}");
    assert!(compacted.iter().all(|c| c.2), "{compacted:?}");
    assert_eq!(query(&engine, "SELECT * FROM m ORDER BY s, time"), before);
}
