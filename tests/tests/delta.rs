//! Delta Lake publishing, read back by readers that know nothing of Ingot:
//! Python `deltalake` and Polars (`tests/delta/read.sh`), on the local file
//! system and in an S3 bucket (moto on 127.0.0.1). What they read must be
//! what Ingot answers, through duplicates, late rows, a delete, a new column,
//! a restart and a drop.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ingot_bench::{Preset, result_rows, same_rows};
use ingot_engine::{Engine, Options, Precision, TIME_NS_COLUMN};
use ingot_tests::s3::S3Server;
use ingot_tests::{load_preset, query};
use serde_json::Value;

/// What the outside readers saw of one Delta table.
struct Read {
    version: i64,
    columns: Vec<String>,
    schema: serde_json::Map<String, Value>,
    rows: Vec<Vec<Value>>,
}

/// Reads the Delta table at `uri` with Python deltalake and Polars, or
/// `None` when the Python environment cannot be set up here.
fn read_delta(uri: &str, env: &[(&'static str, String)]) -> Option<Read> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("delta/read.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(uri)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run tests/delta/read.sh");
    if out.status.code() == Some(77) {
        eprintln!("skipped: no Python environment for the Delta readers (tests/delta/read.sh)");
        return None;
    }
    assert!(
        out.status.success(),
        "read.sh {uri} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("read.py prints JSON");
    let polars_rows = v["polars_rows"].as_u64().unwrap();
    let rows: Vec<Vec<Value>> = serde_json::from_value(v["rows"].clone()).unwrap();
    assert_eq!(
        polars_rows as usize,
        rows.len(),
        "Polars and deltalake disagree"
    );
    Some(Read {
        version: v["version"].as_i64().unwrap(),
        columns: serde_json::from_value(v["columns"].clone()).unwrap(),
        schema: v["schema"].as_object().unwrap().clone(),
        rows,
    })
}

/// Checks that the Delta table holds exactly Ingot's rows of `table`: the
/// same rows, with `time_ns` the exact time and `time` its microseconds.
fn assert_same_as_ingot(engine: &Engine, table: &str, read: &Read) {
    assert_eq!(read.columns[0], "time");
    assert_eq!(read.columns[1], TIME_NS_COLUMN);
    assert_eq!(
        read.schema["time"], "Datetime(time_unit='us', time_zone='UTC')",
        "Polars reads time as a timestamp"
    );
    let mut delta: Vec<Vec<Value>> = read
        .rows
        .iter()
        .map(|row| {
            let (us, ns) = (row[0].as_i64().unwrap(), row[1].as_i64().unwrap());
            assert_eq!(us, ns.div_euclid(1000), "time is time_ns in microseconds");
            // `result_rows` gives Ingot's booleans as text.
            row[1..]
                .iter()
                .map(|v| match v {
                    Value::Bool(b) => Value::String(b.to_string()),
                    v => v.clone(),
                })
                .collect()
        })
        .collect();
    let columns: Vec<String> = read.columns[2..]
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect();
    let sql = format!("SELECT time, {} FROM {table}", columns.join(", "));
    let mut ingot = result_rows(&query(engine, &sql)).unwrap();
    let key = |r: &Vec<Value>| serde_json::to_string(r).unwrap();
    delta.sort_by_key(key);
    ingot.sort_by_key(key);
    same_rows(&delta, &ingot).unwrap_or_else(|e| panic!("{table} in Delta: {e}"));
}

fn local_options() -> Options {
    let mut options = Options::default();
    options.delta_lake = true;
    // Compactions and publishing only when the test asks, so that what is
    // published is known.
    options.compaction = false;
    options.delta_interval = Duration::from_secs(3600);
    // A partition that is one file is settled at once.
    options.compaction_cold_after = Duration::ZERO;
    // Removed copies are deleted at once.
    options.replica_grace = Duration::ZERO;
    options.wal_sync = ingot_engine::WalSync::None;
    options
}

const DAY: i64 = 86_400_000_000_000;
/// 2026-11-30T00:00:00Z.
const START: i64 = 1_796_083_200_000_000_000;

/// Press readings over two days: a string, a float, an unsigned and a
/// boolean field.
fn press_lines() -> String {
    let mut lines = String::new();
    for day in 0..2 {
        for minute in 0..30 {
            for press in ["p1", "p2", "p3"] {
                let t = START + day * DAY + minute * 60_000_000_000 + 123_456;
                let state = if minute % 7 == 0 { "fault" } else { "run" };
                lines += &format!(
                    "press,line=L{},press={press} state=\"{state}\",temp={}.25,strokes={}u,ok={} {t}\n",
                    day + 1,
                    60 + minute % 5,
                    1000 + minute,
                    minute % 7 != 0,
                );
            }
        }
    }
    lines
}

/// Rows written again on both days, one field changed.
fn duplicate_lines() -> String {
    let mut lines = String::new();
    for day in 0..2 {
        for minute in [3, 4] {
            let t = START + day * DAY + minute * 60_000_000_000 + 123_456;
            lines += &format!("press,line=L{},press=p2 temp=99.5 {t}\n", day + 1);
        }
    }
    lines
}

#[test]
fn published_tables_read_by_deltalake_and_polars_match_ingot() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), local_options()).unwrap();
    for lines in [press_lines(), duplicate_lines()] {
        engine
            .write_lines("public", &lines, Precision::Nanosecond)
            .unwrap();
        engine.flush().unwrap();
    }
    // Each partition is two files that overlap: not settled, not published.
    assert!(engine.publish_delta().unwrap().is_empty());
    engine.compact().unwrap();
    let records = engine.publish_delta().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!((records[0].files_added, records[0].files_removed), (2, 0));
    assert_eq!(records[0].rows_added, 180);
    let table = dir.path().join("delta/public/press");
    let uri = table.to_str().unwrap().to_string();
    let Some(read) = read_delta(&uri, &[]) else {
        return;
    };
    assert_eq!(read.rows.len(), 180);
    assert_eq!(read.schema["strokes"], "Decimal(precision=20, scale=0)");
    assert_same_as_ingot(&engine, "press", &read);

    // A late row with a new field, and a delete: both partitions are merged
    // again, and the next publish swaps their files in one commit.
    let late = START + 10 * 60_000_000_000 + 1;
    engine
        .write_lines(
            "public",
            &format!("press,line=L1,press=p9 temp=70.5,vibration=0.03 {late}\n"),
            Precision::Nanosecond,
        )
        .unwrap();
    query(
        &engine,
        "DELETE FROM press WHERE press = 'p3' AND line = 'L2'",
    );
    engine.flush().unwrap();
    engine.compact().unwrap();
    let old_copies = copies(&table);
    let records = engine.publish_delta().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!((records[0].files_added, records[0].files_removed), (2, 2));
    let read = read_delta(&uri, &[]).unwrap();
    assert!(read.columns.contains(&"vibration".to_string()));
    assert_eq!(read.rows.len(), 180 + 1 - 30);
    assert_same_as_ingot(&engine, "press", &read);
    // The replaced copies are deleted once the grace period (zero here) has
    // passed; the current ones stay.
    let now = copies(&table);
    assert!(
        old_copies.iter().all(|c| !now.contains(c)),
        "{old_copies:?} {now:?}"
    );
    assert_eq!(now.len(), 2, "{now:?}");

    // A restart finds the published table as it was: nothing to commit.
    let version = read.version;
    engine.close().unwrap();
    drop(engine);
    let engine = Engine::open(dir.path(), local_options()).unwrap();
    assert!(engine.publish_delta().unwrap().is_empty());
    assert_eq!(read_delta(&uri, &[]).unwrap().version, version);

    // A dropped table leaves the Delta table empty.
    engine.drop_table("public", "press").unwrap();
    let records = engine.publish_delta().unwrap();
    assert_eq!((records[0].files_added, records[0].files_removed), (0, 2));
    assert!(read_delta(&uri, &[]).unwrap().rows.is_empty());
}

#[test]
fn publishing_off_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options::default()).unwrap();
    let err = engine.publish_delta().unwrap_err().to_string();
    assert!(err.contains("--delta-lake"), "{err}");
}

#[test]
fn a_table_in_a_bucket_is_published_beside_its_files() {
    let Some(s3) = S3Server::start() else { return };
    let store = s3.store("plant-delta");
    let disk = tempfile::tempdir().unwrap();
    let mut options = local_options();
    options.object_store = Some(store);
    let engine = Engine::open(disk.path(), options).unwrap();
    load_preset(&engine, Preset::by_name("tiny").unwrap(), 5_000).unwrap();
    engine.flush().unwrap();
    engine.compact().unwrap();
    let records = engine.publish_delta().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    let Some(read) = read_delta("s3://ingot/plant-delta/delta/public/readings", &s3.env()) else {
        return;
    };
    assert!(!read.rows.is_empty());
    assert_same_as_ingot(&engine, "readings", &read);
    // The local disk holds no Delta file: the table is in the bucket.
    assert!(!disk.path().join("delta").exists());
}

/// The data files of a Delta table on disk, relative to it.
fn copies(table: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for day in std::fs::read_dir(table).unwrap() {
        let day = day.unwrap();
        if day.file_name().to_string_lossy().starts_with('_') {
            continue;
        }
        for file in std::fs::read_dir(day.path()).unwrap() {
            let file = file.unwrap();
            found.push(format!(
                "{}/{}",
                day.file_name().to_string_lossy(),
                file.file_name().to_string_lossy()
            ));
        }
    }
    found.sort();
    found
}
