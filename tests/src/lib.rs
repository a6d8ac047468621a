//! End-to-end tests of Ingot across its crates, on the plant-telemetry
//! workload. The tests live in `tests/`; this library holds what they share.

pub mod s3;

use arrow::array::RecordBatch;
use ingot_bench::{Generator, Preset};
use ingot_engine::Engine;

/// Streams a whole preset into `engine` as `public.readings`, in batches of `batch_rows`.
pub fn load_preset(
    engine: &Engine,
    preset: Preset,
    batch_rows: usize,
) -> ingot_engine::Result<u64> {
    let mut generator = Generator::new(preset);
    let mut rows = 0;
    while let Some(batch) = generator.next_batch(batch_rows) {
        rows += engine.write_batch("public", "readings", &batch)?.rows;
    }
    Ok(rows)
}

/// Runs `sql` on a fresh single-threaded runtime.
pub fn query(engine: &Engine, sql: &str) -> Vec<RecordBatch> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(engine.sql(sql))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
