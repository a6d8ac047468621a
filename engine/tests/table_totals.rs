//! `count(*)`, `min(time)` and `max(time)` of a whole table come from the
//! manifest when its figures are exact, with no scan planned; when a
//! memtable, duplicates across files or a delete make them inexact, the
//! query reads the rows. Either way the answer is the scan's.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;
use ingot_engine::{Engine, Options};

mod common;
use common::{manual, query, runtime, write};

const TOTALS: &str = "SELECT count(*) AS n, min(time) AS first, max(time) AS last FROM readings";
/// The same, with a filter no rule reads: the rows are scanned.
const SCANNED: &str = "SELECT count(*) AS n, min(time) AS first, max(time) AS last \
                       FROM readings WHERE concat(dev, '') <> ''";

fn options() -> Options {
    let mut o = manual();
    o.summary_window = None;
    o
}

/// Whether the optimized plan of `sql` still scans a table.
fn scans(engine: &Engine, sql: &str) -> bool {
    let state = engine.session().state();
    let plan = runtime().block_on(async {
        let logical = state.create_logical_plan(sql).await.unwrap();
        state.optimize(&logical).unwrap()
    });
    let mut found = false;
    plan.apply(|node| {
        found |= matches!(node, LogicalPlan::TableScan(_));
        Ok(TreeNodeRecursion::Continue)
    })
    .unwrap();
    found
}

/// Ten devices, a reading a second over `seconds` from `start` (s).
fn readings(start: i64, seconds: i64) -> String {
    let mut lp = String::new();
    for d in 0..10 {
        for s in start..start + seconds {
            lp.push_str(&format!("readings,dev=d{d} v={s} {}\n", 1_767_225_600 + s));
        }
    }
    lp
}

#[test]
fn files_that_share_no_row_answer_from_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    write(&engine, &readings(0, 100));
    engine.flush().unwrap();
    write(&engine, &readings(100, 50));
    engine.flush().unwrap();
    assert_eq!(engine.files().len(), 2);

    assert!(!scans(&engine, TOTALS));
    assert!(scans(&engine, SCANNED));
    let answer = query(&engine, TOTALS);
    assert!(
        answer.contains("| 1500 | 2026-01-01T00:00:00Z | 2026-01-01T00:02:29Z |"),
        "{answer}"
    );
    assert_eq!(answer, query(&engine, SCANNED));
    // count(time) too; a distinct count or another column is not a total.
    assert!(!scans(
        &engine,
        "SELECT count(time), max(time) FROM readings"
    ));
    assert!(scans(&engine, "SELECT count(DISTINCT time) FROM readings"));
    assert!(scans(&engine, "SELECT count(*), max(v) FROM readings"));
}

#[test]
fn rows_in_the_memtable_duplicates_or_a_delete_are_counted_from_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    write(&engine, &readings(0, 100));
    engine.flush().unwrap();

    // Rows in the memtable, some of them repeating flushed ones.
    write(&engine, &readings(90, 20));
    assert!(scans(&engine, TOTALS));
    let answer = query(&engine, TOTALS);
    assert!(answer.contains("| 1100 |"), "{answer}");
    assert_eq!(answer, query(&engine, SCANNED));

    // Flushed: two files that share 100 rows.
    engine.flush().unwrap();
    assert!(scans(&engine, TOTALS));
    assert_eq!(query(&engine, TOTALS), answer);

    // Compacted into one file, then a delete.
    engine.compact().unwrap();
    assert!(!scans(&engine, TOTALS));
    assert_eq!(query(&engine, TOTALS), answer);
    query(&engine, "DELETE FROM readings WHERE dev = 'd3'");
    assert!(scans(&engine, TOTALS));
    let answer = query(&engine, TOTALS);
    assert!(answer.contains("| 990 |"), "{answer}");
    assert_eq!(answer, query(&engine, SCANNED));
}
