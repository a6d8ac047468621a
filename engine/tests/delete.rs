//! `DELETE FROM t WHERE <tag and time predicates>`: hides the rows written
//! before it at once (memtable and files, full scans and latest-value
//! queries), answers how many rows it removed, survives a crash before any
//! flush, leaves rows written after it visible and fresh, and is applied
//! physically by compaction.

use arrow::array::{Array, RecordBatch, UInt64Array};
use ingot_engine::{Engine, Error};

mod common;
use common::{manual, query, runtime, write};

fn sql(engine: &Engine, sql: &str) -> Result<Vec<RecordBatch>, Error> {
    runtime().block_on(engine.sql(sql))
}

/// Runs a DELETE and returns its count.
fn delete(engine: &Engine, text: &str) -> u64 {
    let batches = sql(engine, text).expect(text);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].schema().field(0).name(), "count");
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap()
        .value(0)
}

/// Devices a and b, times 10..40 s: 10 and 20 in a file, 20 again (a
/// re-send that overlaps the file), 30 and 40 in the memtable.
fn load(engine: &Engine) {
    write(
        engine,
        "m,device=a v=1i 10\nm,device=a v=2i 20\nm,device=b v=1i 10\nm,device=b v=2i 20\n",
    );
    engine.flush().unwrap();
    write(
        engine,
        "m,device=a v=2i 20\nm,device=a v=3i 30\nm,device=a v=4i 40\nm,device=b v=3i 30\n",
    );
}

const ALL: &str =
    "SELECT device, CAST(time AS BIGINT) / 1000000000 AS s, v FROM m ORDER BY device, s";
const LATEST: &str = "SELECT device, max(time) AS t, last_value(v ORDER BY time) AS v \
                      FROM m GROUP BY device ORDER BY device";

#[test]
fn a_delete_hides_rows_at_once_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    load(&engine);
    // The latest-value path is warm before the delete.
    assert!(query(&engine, LATEST).contains("| a      | 1970-01-01T00:00:40Z | 4 |"));

    // a at 20 s is in the file and in the memtable: one visible row.
    let n = delete(
        &engine,
        "DELETE FROM m WHERE device = 'a' AND time >= '1970-01-01T00:00:20Z'",
    );
    assert_eq!(n, 3);
    assert_eq!(
        query(&engine, ALL).trim(),
        "\
+--------+----+---+
| device | s  | v |
+--------+----+---+
| a      | 10 | 1 |
| b      | 10 | 1 |
| b      | 20 | 2 |
| b      | 30 | 3 |
+--------+----+---+"
    );
    // a's last row was deleted: the one before it is the latest now.
    let latest = query(&engine, LATEST);
    assert!(
        latest.contains("| a      | 1970-01-01T00:00:10Z | 1 |"),
        "{latest}"
    );
    assert!(
        latest.contains("| b      | 1970-01-01T00:00:30Z | 3 |"),
        "{latest}"
    );

    // IN lists, BETWEEN and a delete that matches nothing.
    assert_eq!(
        delete(
            &engine,
            "DELETE FROM m WHERE device IN ('b', 'c') AND time BETWEEN '1970-01-01T00:00:15Z' AND '1970-01-01T00:00:25Z'"
        ),
        1
    );
    assert_eq!(delete(&engine, "DELETE FROM m WHERE device = 'zzz'"), 0);
    assert_eq!(
        query(&engine, "SELECT count(*) AS n FROM m").trim(),
        "+---+\n| n |\n+---+\n| 3 |\n+---+"
    );
}

#[test]
fn a_row_written_after_a_delete_is_visible_and_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    write(&engine, "m,device=a x=1i,y=2i 10\n");
    engine.flush().unwrap();
    assert_eq!(delete(&engine, "DELETE FROM m WHERE device = 'a'"), 1);
    write(&engine, "m,device=a x=5i 10\n");
    let expected = "\
+---+---+
| x | y |
+---+---+
| 5 |   |
+---+---+";
    assert_eq!(query(&engine, "SELECT x, y FROM m").trim(), expected);
    engine.flush().unwrap();
    assert_eq!(query(&engine, "SELECT x, y FROM m").trim(), expected);
    engine.compact().unwrap();
    assert_eq!(query(&engine, "SELECT x, y FROM m").trim(), expected);
}

#[test]
fn a_delete_survives_a_crash_before_any_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path(), manual()).unwrap();
        load(&engine);
        assert_eq!(delete(&engine, "DELETE FROM m WHERE device = 'b'"), 3);
        write(&engine, "m,device=b v=9i 50\n");
        // Dropped without close: no flush, the delete is only in the WAL.
    }
    let engine = Engine::open(dir.path(), manual()).unwrap();
    let after = query(&engine, ALL);
    assert!(after.contains("| b      | 50 | 9 |"), "{after}");
    assert_eq!(after.matches("| b ").count(), 1, "{after}");
    // Flushed and reopened: the delete is in the manifest now.
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    assert_eq!(query(&engine, ALL), after);
}

#[test]
fn compaction_applies_deletes_and_retires_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    load(&engine);
    engine.flush().unwrap();
    let rows = |engine: &Engine| engine.files().iter().map(|f| f.rows).sum::<u64>();
    assert_eq!(rows(&engine), 8, "two files, a at 20 s in both");
    assert_eq!(delete(&engine, "DELETE FROM m WHERE device = 'a'"), 4);
    let before = query(&engine, ALL);
    engine.compact().unwrap();
    assert_eq!(rows(&engine), 3, "only b's rows are left in the files");
    assert_eq!(query(&engine, ALL), before);
    // Retired: the latest-value path is back, and still right.
    let latest = query(&engine, LATEST);
    assert!(!latest.contains("| a "), "{latest}");
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    assert_eq!(query(&engine, ALL), before);

    // Deleting every row leaves no file at all.
    assert_eq!(delete(&engine, "DELETE FROM m"), 3);
    engine.compact().unwrap();
    assert!(engine.files().is_empty(), "{:?}", engine.files());
    assert!(query(&engine, "SELECT count(*) AS n FROM m").contains("| 0 |"));
}

#[test]
fn a_delete_on_a_field_is_refused_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    load(&engine);
    for bad in [
        "DELETE FROM m WHERE v > 2",
        "DELETE FROM m WHERE device = 'a' OR time > '1970-01-01T00:00:20Z'",
        "DELETE FROM m WHERE device <> 'a'",
    ] {
        let err = sql(&engine, bad).unwrap_err().to_string();
        assert!(
            err.contains("DELETE takes only tag and time predicates"),
            "{bad}: {err}"
        );
    }
    assert!(query(&engine, "SELECT count(*) AS n FROM m").contains("| 7 |"));
}
