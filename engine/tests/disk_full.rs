//! A full disk: a write whose WAL append fails gets an error that says so,
//! nothing of it is kept (not even part of its record), every acknowledged
//! write survives, and writes go on once space is back, across a reopen.
//! The disk is filled by a fault hook that makes the WAL's writes fail
//! half-way, as `write(2)` does when space runs out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ingot_engine::{Engine, Options, Precision};

mod common;
use common::query;

const ALL: &str = "SELECT device, v FROM m ORDER BY device";

#[test]
fn a_full_disk_refuses_the_write_and_the_engine_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let full = Arc::new(AtomicBool::new(false));
    let options = || {
        let mut o = Options::default();
        o.compaction = false;
        o.wal_write_fault = Some(full.clone());
        o
    };
    let engine = Engine::open(dir.path(), options()).unwrap();
    let write = |lp: &str| engine.write_lines("public", lp, Precision::Second);
    write("m,device=a v=1i 10\n").unwrap();

    full.store(true, Ordering::Release);
    for _ in 0..3 {
        let err = write("m,device=b v=2i 10\n").unwrap_err();
        assert!(err.is_storage_full(), "{err:?}");
        assert!(err.to_string().contains("no space left"), "{err}");
    }
    full.store(false, Ordering::Release);

    write("m,device=c v=3i 10\n").unwrap();
    let expected = "\
+--------+---+
| device | v |
+--------+---+
| a      | 1 |
| c      | 3 |
+--------+---+";
    assert_eq!(query(&engine, ALL).trim(), expected);
    // Dropped without a flush: the WAL alone must replay cleanly, without
    // the refused record or a gap in the sequence numbers.
    drop(engine);
    let engine = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(query(&engine, ALL).trim(), expected);
    engine
        .write_lines("public", "m,device=d v=4i 10\n", Precision::Second)
        .unwrap();
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    assert!(query(&engine, ALL).contains("| d      | 4 |"));
}
