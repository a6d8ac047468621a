//! DataFusion's settings come from `DATAFUSION_*` environment variables, as
//! in DataFusion's own CLI; a value of the wrong type is ignored. The test
//! is alone in its binary: it changes the process's environment.

use ingot_engine::Engine;

mod common;
use common::{count, manual, write};

#[test]
fn datafusion_settings_come_from_the_environment() {
    // SAFETY: no other thread of this test binary reads the environment.
    unsafe {
        std::env::set_var("DATAFUSION_EXECUTION_BATCH_SIZE", "1234");
        std::env::set_var("DATAFUSION_EXECUTION_TARGET_PARTITIONS", "lots");
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), manual()).unwrap();
    let state = engine.session().state();
    let options = state.config().options();
    assert_eq!(state.config().batch_size(), 1234);
    assert_eq!(
        options.execution.target_partitions,
        datafusion::prelude::SessionConfig::new().target_partitions()
    );
    // Ingot's own settings stay.
    assert!(options.execution.parquet.pushdown_filters);

    write(&engine, "m,dev=a v=1 1767225600\nm,dev=b v=2 1767225601");
    assert_eq!(count(&engine, "SELECT count(*) FROM m"), 2);
}
