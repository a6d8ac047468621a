//! Helpers the engine's integration tests share.

#![allow(dead_code)]

use arrow::array::{Int64Array, RecordBatch};
use arrow::util::pretty::pretty_format_batches;
use ingot_engine::{Engine, Options, Precision};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `sql` and renders its result as a table.
pub fn query(engine: &Engine, sql: &str) -> String {
    let batches = runtime().block_on(engine.sql(sql)).expect(sql);
    pretty_format_batches(&batches).unwrap().to_string()
}

/// Runs `sql`, whose answer is one BIGINT.
pub fn count(engine: &Engine, sql: &str) -> i64 {
    let batches: Vec<RecordBatch> = runtime().block_on(engine.sql(sql)).expect(sql);
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

/// Default options with background compaction off, so that a test decides
/// when it runs.
pub fn manual() -> Options {
    let mut o = Options::default();
    o.compaction = false;
    o
}

/// Writes line protocol with second timestamps to `public`.
pub fn write(engine: &Engine, lp: &str) {
    engine
        .write_lines("public", lp, Precision::Second)
        .expect("write");
}
