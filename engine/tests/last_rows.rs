//! Latest-value queries after a restart read the table's checkpointed last
//! rows and the last rows kept beside each file (`<id>.last` beside
//! `<id>.parquet`), never the files themselves: the tests spoil every data
//! file before reopening, so a read of one would fail.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{manual, query, write};
use ingot_engine::{Engine, FileMeta, Options};

const LATEST: &str = "SELECT dev, max(time) AS t, last_value(v ORDER BY time) AS v, \
                      last_value(w ORDER BY time) AS w FROM m GROUP BY dev ORDER BY dev";

fn options() -> Options {
    let mut o = manual();
    // A minute's slices: the first file holds each series in two of them.
    o.time_slice = Some(Duration::from_secs(60));
    o
}

/// Two files: three series over 100 s, then one series re-sent at its last
/// instant with one field only, and a later row of another.
fn load(engine: &Engine) {
    let lp: String = (0..100)
        .flat_map(|t| ["a", "b", "c"].map(move |d| format!("m,dev={d} v={t}.5,w={t}i {t}\n")))
        .collect();
    write(engine, &lp);
    engine.flush().unwrap();
    write(engine, "m,dev=a w=-7i 99\nm,dev=b v=150.5,w=150i 150");
    engine.flush().unwrap();
}

fn expected() -> Vec<&'static str> {
    vec![
        "| a   | 1970-01-01T00:01:39Z | 99.5  | -7  |",
        "| b   | 1970-01-01T00:02:30Z | 150.5 | 150 |",
        "| c   | 1970-01-01T00:01:39Z | 99.5  | 99  |",
    ]
}

fn assert_latest(engine: &Engine) {
    let text = query(engine, LATEST);
    for row in expected() {
        assert!(text.contains(row), "missing {row} in\n{text}");
    }
}

/// Overwrites every data file, not its summary or last rows, with bytes no
/// Parquet reader accepts.
fn spoil_data_files(dir: &Path, files: &[FileMeta]) {
    for f in files {
        std::fs::write(dir.join(&f.path), b"not parquet").unwrap();
    }
}

fn sidecars(dir: &Path) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, n);
            } else if path.to_string_lossy().ends_with(".last") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&dir.join("tables"), &mut n);
    n
}

#[test]
fn after_a_restart_latest_values_come_from_the_last_rows_beside_flushed_files() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    load(&engine);
    assert_latest(&engine);
    let files = engine.files();
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|f| f.last_rows.is_some()));
    assert_eq!(
        files
            .iter()
            .map(|f| f.last_rows.as_ref().unwrap().rows)
            .sum::<u64>(),
        5
    );
    engine.close().unwrap();

    spoil_data_files(dir.path(), &files);
    let engine = Engine::open(dir.path(), options()).unwrap();
    assert_latest(&engine);
    // A query that needs the rows themselves does read the files.
    let whole = common::runtime().block_on(engine.sql("SELECT count(*) FROM m"));
    assert!(whole.is_err(), "the spoiled files were not read");
}

#[test]
fn a_merged_file_keeps_the_last_rows_of_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    load(&engine);
    engine.compact().unwrap();
    let files = engine.files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].last_rows.as_ref().map(|l| l.rows), Some(3));
    // The inputs' last rows went with them.
    assert_eq!(sidecars(dir.path()), 1);
    engine.close().unwrap();

    spoil_data_files(dir.path(), &files);
    let engine = Engine::open(dir.path(), options()).unwrap();
    assert_latest(&engine);
}

fn remove_last_rows_of(dir: &Path, files: &[FileMeta]) {
    for f in files {
        let last = dir.join(f.path.replace(".parquet", ".last"));
        std::fs::remove_file(&last).unwrap();
    }
}

#[test]
fn after_a_restart_the_checkpoint_covers_the_files_flushed_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    load(&engine);
    let checkpointed = engine.files();
    engine.close().unwrap();

    // Reopened, a flush with no latest-value query since leaves the
    // checkpoint as it was: it covers the first two files only.
    let engine = Engine::open(dir.path(), options()).unwrap();
    write(&engine, "m,dev=c v=200.5,w=200i 200");
    engine.flush().unwrap();
    let files = engine.files();
    assert_eq!(files.len(), 3);
    engine.close().unwrap();

    // Without the first two files' own last rows, only the checkpoint has
    // theirs; the third file's come from beside it.
    spoil_data_files(dir.path(), &files);
    remove_last_rows_of(dir.path(), &checkpointed);
    let engine = Engine::open(dir.path(), options()).unwrap();
    let text = query(&engine, LATEST);
    for row in &expected()[..2] {
        assert!(text.contains(row), "missing {row} in\n{text}");
    }
    assert!(
        text.contains("| c   | 1970-01-01T00:03:20Z | 200.5 | 200 |"),
        "{text}"
    );
}

#[test]
fn a_file_whose_summary_and_last_rows_are_gone_is_read_as_a_file_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    load(&engine);
    let files = engine.files();
    assert!(files.iter().all(|f| f.summary.is_some()));
    engine.close().unwrap();
    for f in &files {
        for sidecar in [".summary", ".last"] {
            std::fs::remove_file(dir.path().join(f.path.replace(".parquet", sidecar))).unwrap();
        }
    }
    std::fs::remove_dir_all(dir.path().join("last_rows")).unwrap();

    let engine = Engine::open(dir.path(), options()).unwrap();
    assert!(
        engine
            .files()
            .iter()
            .all(|f| f.summary.is_none() && f.last_rows.is_none())
    );
    assert_latest(&engine);
    let counts = query(
        &engine,
        "SELECT dev, count(*) AS n FROM m GROUP BY dev ORDER BY dev",
    );
    for row in ["| a   | 100 |", "| b   | 101 |", "| c   | 100 |"] {
        assert!(counts.contains(row), "missing {row} in\n{counts}");
    }
}
