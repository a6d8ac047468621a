//! The `tiny` workload through the embedded engine: written, flushed in
//! several files, reopened, and counted against the generator itself.

use arrow::array::{Array, Int64Array, TimestampNanosecondArray};
use ingot_bench::{Preset, row};
use ingot_engine::{Engine, Options};
use ingot_tests::{load_preset, query};

#[test]
fn tiny_preset_survives_flush_and_reopen_with_exact_counts() {
    let preset = Preset::by_name("tiny").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.memtable_budget_bytes = 2 << 20; // several flushes along the way
    let engine = Engine::open(dir.path(), options.clone()).unwrap();
    assert_eq!(load_preset(&engine, preset, 1_000).unwrap(), preset.rows());
    let files_before = engine.files().len();
    drop(engine); // part in Parquet, part only in the WAL
    let engine = Engine::open(dir.path(), options).unwrap();
    assert!(files_before >= 1, "expected a flush during the load");

    // Expected status counts, straight from the generator's formulas.
    let mut expected = [0i64; 3];
    for k in 0..preset.steps {
        for d in 0..preset.devices {
            expected[row(d, k, 10).status as usize] += 1;
        }
    }
    let check = |engine: &Engine| {
        let batches = query(
            engine,
            "SELECT status, count(*) AS n FROM readings GROUP BY status ORDER BY status",
        );
        let mut got = [0i64; 3];
        for b in &batches {
            let s = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let n = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                got[s.value(i) as usize] = n.value(i);
            }
        }
        assert_eq!(got, expected);
        let b = &query(
            engine,
            "SELECT count(*) AS n, min(time) AS first, max(time) AS last FROM readings",
        )[0];
        let n = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        let first = b
            .column(1)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        let last = b
            .column(2)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        assert_eq!(n as u64, preset.rows());
        assert_eq!(first.value(0), row(0, 0, 10).time);
        assert_eq!(last.value(0), row(0, preset.steps - 1, 10).time);
        assert!(first.is_valid(0) && last.is_valid(0));
    };
    check(&engine);
    engine.flush().unwrap();
    check(&engine);
    engine.close().unwrap();
}
