//! `DROP TABLE` and `DROP DATABASE`: the rows go from queries at once, the
//! files from the disk, a later write of the same name starts a new table
//! (with a schema of its own), the drop survives a crash before any flush,
//! and writers, flushes and drops racing each other lose no acknowledged row
//! written after the last drop.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ingot_engine::{Engine, Error, Precision};

mod common;
use common::{count, manual, query, runtime, write};

fn sql(engine: &Engine, text: &str) -> Result<(), Error> {
    runtime().block_on(engine.sql(text)).map(|_| ())
}

/// Parquet data files (not their summaries) under
/// `tables/{database}/{table}` of the data directory.
fn files_on_disk(dir: &Path, database: &str, table: &str) -> usize {
    fn walk(p: &Path, n: &mut usize) {
        let Ok(entries) = std::fs::read_dir(p) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, n);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&dir.join("tables").join(database).join(table), &mut n);
    n
}

/// Waits (at most 10 s) until the background task has deleted every file of
/// a dropped table; returns how many are left.
fn files_left_after_drop(dir: &Path, database: &str, table: &str) -> usize {
    for _ in 0..100 {
        if files_on_disk(dir, database, table) == 0 {
            return 0;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    files_on_disk(dir, database, table)
}

/// Table m: two rows in a file, one in the memtable; table n: one row.
fn load(engine: &Engine) {
    write(engine, "m,device=a v=1i 10\nm,device=b v=2i 20\n");
    engine.flush().unwrap();
    write(engine, "m,device=a v=3i 30\nn,device=a v=1i 10\n");
}

#[test]
fn drop_table_hides_rows_frees_files_and_frees_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    load(&engine);
    assert_eq!(files_on_disk(dir.path(), "public", "m"), 1);
    // The latest-value path is warm before the drop.
    assert!(query(&engine, "SELECT max(time) FROM m").contains("00:00:30"));

    sql(&engine, "DROP TABLE m").unwrap();
    let err = sql(&engine, "SELECT * FROM m").unwrap_err().to_string();
    assert!(err.contains("not found") || err.contains("m"), "{err}");
    assert_eq!(engine.tables("public"), ["n"]);
    assert!(engine.files().iter().all(|f| f.table != "m"));
    assert_eq!(files_left_after_drop(dir.path(), "public", "m"), 0);
    // The other table is untouched.
    assert_eq!(count(&engine, "SELECT count(*) FROM n"), 1);

    // The name is free: a new m with another type for v, and none of the
    // old rows.
    write(&engine, "m,device=a v=\"on\" 40\n");
    assert_eq!(
        query(
            &engine,
            "SELECT device, v, max(time) OVER () AS t FROM m ORDER BY device"
        )
        .trim(),
        "\
+--------+----+----------------------+
| device | v  | t                    |
+--------+----+----------------------+
| a      | on | 1970-01-01T00:00:40Z |
+--------+----+----------------------+"
    );
    engine.flush().unwrap();
    engine.compact().unwrap();
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 1);
    engine.close().unwrap();

    let engine = Engine::open(dir.path(), manual()).unwrap();
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 1);
    assert_eq!(count(&engine, "SELECT count(*) FROM n"), 1);
    assert_eq!(files_on_disk(dir.path(), "public", "m"), 1);

    let err = sql(&engine, "DROP TABLE gone").unwrap_err().to_string();
    assert!(err.contains("\"gone\" does not exist"), "{err}");
    sql(&engine, "DROP TABLE IF EXISTS gone").unwrap();
}

#[test]
fn a_drop_survives_a_crash_before_any_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path(), manual()).unwrap();
        load(&engine);
        engine.drop_table("public", "m").unwrap();
        // A new m, with v a string now: the old rows of m before the drop
        // are still in the WAL, with v an integer.
        write(&engine, "m,device=c v=\"on\" 50\n");
        // Another change stores the catalog with the new m in the manifest.
        engine.create_database("other", None).unwrap();
        // Dropped without close: the memtable is only in the WAL.
    }
    for reopened in 0..2 {
        let engine = Engine::open(dir.path(), manual()).unwrap();
        assert_eq!(
            query(&engine, "SELECT device, v FROM m").trim(),
            "\
+--------+----+
| device | v  |
+--------+----+
| c      | on |
+--------+----+"
        );
        assert_eq!(count(&engine, "SELECT count(*) FROM n"), 1);
        // The old file is gone; after the close, the new m has one.
        assert_eq!(files_on_disk(dir.path(), "public", "m"), reopened);
        // Flushed and reopened, the drop is passed and forgotten.
        engine.close().unwrap();
    }
}

#[test]
fn drop_database_drops_its_tables_and_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    sql(
        &engine,
        "CREATE DATABASE plant WITH (retention_period = '100000d')",
    )
    .unwrap();
    let lp = "m,device=a v=1i 10\nk,device=a v=1i 10\n";
    engine.write_lines("plant", lp, Precision::Second).unwrap();
    engine.flush().unwrap();
    engine
        .write_lines("plant", "m,device=b v=2i 20\n", Precision::Second)
        .unwrap();
    write(&engine, "m,device=a v=1i 10\n");
    assert_eq!(files_on_disk(dir.path(), "plant", "m"), 1);

    sql(&engine, "DROP DATABASE plant").unwrap();
    assert_eq!(engine.databases(), ["public"]);
    assert!(sql(&engine, "SELECT * FROM plant.m").is_err());
    assert_eq!(files_left_after_drop(dir.path(), "plant", "m"), 0);
    assert_eq!(files_left_after_drop(dir.path(), "plant", "k"), 0);
    // public.m is another table.
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 1);

    // Written to again, it is a new database with the default retention.
    engine
        .write_lines("plant", "m,device=c v=3i 30\n", Precision::Second)
        .unwrap();
    assert_eq!(engine.retention("plant").unwrap(), None);
    assert_eq!(count(&engine, "SELECT count(*) FROM plant.m"), 1);
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    assert_eq!(count(&engine, "SELECT count(*) FROM plant.m"), 1);
    assert_eq!(engine.tables("plant"), ["m"]);

    let err = sql(&engine, "DROP DATABASE public")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot be dropped"), "{err}");
    let err = sql(&engine, "DROP DATABASE lab").unwrap_err().to_string();
    assert!(err.contains("\"lab\" does not exist"), "{err}");
    sql(&engine, "DROP DATABASE IF EXISTS lab").unwrap();
}

/// Writers keep writing m while it is dropped again and again and the
/// memtable is flushed under them: no write fails, every write acknowledged
/// after the last drop is there, before and after a reopen, and nothing from
/// before it is.
#[test]
fn drops_racing_writes_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Rows are numbered; a writer records the number of its last row
    // acknowledged before the final drop starts, and counts the rest.
    let next = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let engine = engine.clone();
            let stop = stop.clone();
            let next = next.clone();
            std::thread::spawn(move || {
                let mut after_stop = 0u64;
                loop {
                    let stopping = stop.load(Ordering::Acquire);
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let lp = format!("m,writer=w{w} v={i}i {}\n", i + 1);
                    engine
                        .write_lines("public", &lp, Precision::Second)
                        .expect("a write racing a drop");
                    if stopping {
                        after_stop += 1;
                        if after_stop == 50 {
                            return after_stop;
                        }
                    }
                }
            })
        })
        .collect();
    for round in 0..6 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        if round % 2 == 0 {
            engine.flush().unwrap();
        }
        match engine.drop_table("public", "m") {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => panic!("drop: {e}"),
        }
    }
    stop.store(true, Ordering::Release);
    let written_after: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    // Every write that started after the last drop returned is visible; a
    // write racing it may or may not have been dropped.
    let visible = count(&engine, "SELECT count(*) FROM m") as u64;
    assert!(visible >= written_after, "{visible} < {written_after}");
    let total = next.load(Ordering::Relaxed);
    assert!(
        visible < total,
        "the drops removed nothing: {visible} of {total}"
    );
    engine.flush().unwrap();
    assert_eq!(count(&engine, "SELECT count(*) FROM m") as u64, visible);
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    assert_eq!(count(&engine, "SELECT count(*) FROM m") as u64, visible);
    let files: u64 = engine
        .files()
        .iter()
        .filter(|f| f.table == "m")
        .map(|f| f.rows)
        .sum();
    assert_eq!(files, visible);
}

/// A write checked against the catalog just before a drop of its table and
/// committed just after it re-creates the table: whichever way each race
/// goes, the memtable never holds rows of a table the catalog lacks, so the
/// flush and the reopen after it succeed.
#[test]
fn a_write_racing_a_drop_re_creates_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    for round in 0..20 {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let engine = engine.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        let lp = format!("m,writer=w{w} v={i}i {}\n", round * 100_000 + i);
                        engine
                            .write_lines("public", &lp, Precision::Second)
                            .expect("a write racing a drop");
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(5));
        match engine.drop_table("public", "m") {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => panic!("drop: {e}"),
        }
        stop.store(true, Ordering::Release);
        for w in writers {
            w.join().unwrap();
        }
        engine.flush().expect("the flush after a racing drop");
    }
    let tables = engine.tables("public");
    let visible = if tables.is_empty() {
        0
    } else {
        count(&engine, "SELECT count(*) FROM m")
    };
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    assert_eq!(engine.tables("public"), tables);
    if visible > 0 {
        assert_eq!(count(&engine, "SELECT count(*) FROM m"), visible);
    }
}
