//! Every query of `bench/workload/queries.sql` runs as written on the `tiny`
//! preset, with data split across Parquet files and the memtable; the ones
//! whose answer the generator can give directly are checked against it.

use std::collections::BTreeMap;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::DataType;
use ingot_bench::{Preset, model_of, row};
use ingot_engine::{Engine, Options};
use ingot_tests::{load_preset, query};

/// (name, sql) for q1..q8, as `bench/workload/queries.sql` holds them.
fn workload_queries() -> Vec<(String, String)> {
    let queries = ingot_bench::workload_queries();
    assert_eq!(
        queries.len(),
        8,
        "expected q1..q8 in bench/workload/queries.sql"
    );
    queries
}

fn one(batches: &[RecordBatch]) -> RecordBatch {
    concat_batches(&batches[0].schema(), batches).unwrap()
}

fn strings(b: &RecordBatch, i: usize) -> Vec<String> {
    let a = cast(b.column(i), &DataType::Utf8).unwrap();
    let a = a.as_any().downcast_ref::<StringArray>().unwrap();
    (0..a.len()).map(|r| a.value(r).to_string()).collect()
}

fn ints(b: &RecordBatch, i: usize) -> Vec<i64> {
    b.column(i)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec()
}

fn floats(b: &RecordBatch, i: usize) -> Vec<f64> {
    b.column(i)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

#[test]
fn q1_to_q8_run_on_tiny_and_agree_with_duckdb_and_the_generator() {
    let preset = Preset::by_name("tiny").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.memtable_budget_bytes = 2 << 20;
    let engine = Engine::open(dir.path(), options).unwrap();
    load_preset(&engine, preset, 2_000).unwrap();

    let mut results = BTreeMap::new();
    for (name, sql) in workload_queries() {
        let batches = query(&engine, &sql);
        results.insert(name, batches);
    }
    let last_step = preset.steps - 1;

    // Every result agrees with DuckDB's on the same data (bench/expected.py).
    for (name, batches) in &results {
        let path = format!(
            "{}/../bench/expected/tiny/{name}.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        if let Err(e) = ingot_bench::check_result(batches, &expected) {
            panic!("{name} disagrees with DuckDB ({path}): {e}");
        }
    }

    // q1: the last reading of every device.
    let q1 = one(&results["q1"]);
    assert_eq!(q1.num_rows() as u64, preset.devices);
    let devices = strings(&q1, 0);
    let temps = floats(&q1, 2);
    let status = ints(&q1, 3);
    for d in 0..preset.devices {
        let r = row(d, last_step, 10);
        assert_eq!(devices[d as usize], format!("dev-{d:06}"));
        assert_eq!(
            temps[d as usize].to_bits(),
            r.temperature.to_bits(),
            "q1 device {d}"
        );
        assert_eq!(status[d as usize], r.status);
    }

    // q7: faults by model, with their average vibration.
    let mut expected: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    for k in 0..preset.steps {
        for d in 0..preset.devices {
            let r = row(d, k, 10);
            if r.status == 2 {
                let e = expected
                    .entry(format!("model-{}", model_of(d)))
                    .or_default();
                e.0 += 1;
                e.1 += r.vibration;
            }
        }
    }
    let q7 = one(&results["q7"]);
    let got: Vec<(String, i64, f64)> = strings(&q7, 0)
        .into_iter()
        .zip(ints(&q7, 1))
        .zip(floats(&q7, 2))
        .map(|((m, n), v)| (m, n, v))
        .collect();
    assert_eq!(got.len(), expected.len());
    for ((m, n, v), (em, (en, esum))) in got.iter().zip(&expected) {
        assert_eq!((m, *n), (em, *en));
        let ev = esum / *en as f64;
        assert!((v - ev).abs() <= 1e-9 * ev.abs(), "q7 {m}: {v} vs {ev}");
    }

    // q8: count and time span.
    let q8 = one(&results["q8"]);
    assert_eq!(ints(&q8, 0), [preset.rows() as i64]);
    let span = strings(&q8, 1)
        .into_iter()
        .chain(strings(&q8, 2))
        .collect::<Vec<_>>();
    assert_eq!(span, ["2026-01-01T00:00:00Z", "2026-01-01T00:59:50Z"]);

    // q3 covers the whole hour: 60 one-minute bins of one device.
    assert_eq!(one(&results["q3"]).num_rows(), 60);
    // q4: 100 devices / 8 plants, one hourly bin each.
    assert_eq!(one(&results["q4"]).num_rows(), 13);
    // q6: 8 plants x their lines, 4 fifteen-minute bins each.
    assert!(one(&results["q6"]).num_rows() > 0);
    // q2 and q5 ask for hours the tiny preset does not reach.
    assert_eq!(results["q2"].iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    assert_eq!(results["q5"].iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}
