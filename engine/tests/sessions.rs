//! Every query's session is a copy of one template: what a session changes
//! (a setting, a function, a schema of its own) stays in that session.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use ingot_engine::{CATALOG_NAME, Engine, Options};

mod common;
use common::{runtime, write};

#[test]
fn what_a_session_changes_stays_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options::default()).unwrap();
    write(&engine, "m,device=d1 v=1i 1000000000\n");
    let rt = runtime();

    let changed = engine.session();
    changed.register_udf(create_udf(
        "only_here",
        vec![],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::Int64(Some(7)),
            ))
        }),
    ));
    changed
        .catalog(CATALOG_NAME)
        .unwrap()
        .register_schema("scratch", Arc::new(MemorySchemaProvider::new()))
        .unwrap();
    changed
        .state_ref()
        .write()
        .config_mut()
        .options_mut()
        .catalog
        .information_schema = false;
    let seven = rt
        .block_on(async { changed.sql("SELECT only_here()").await?.collect().await })
        .unwrap();
    assert_eq!(seven[0].num_rows(), 1);

    let other = engine.session();
    let unknown = rt.block_on(async { other.sql("SELECT only_here()").await });
    assert!(unknown.is_err(), "a function of another session resolved");
    let schemas = other.catalog(CATALOG_NAME).unwrap().schema_names();
    assert!(!schemas.contains(&"scratch".to_string()), "{schemas:?}");
    assert!(other.state().config().information_schema());
    let rows = rt
        .block_on(async {
            other
                .sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'm'")
                .await?
                .collect()
                .await
        })
        .unwrap();
    assert_eq!(rows[0].num_rows(), 1);
    // The data is the same to both.
    let counted = rt
        .block_on(async { other.sql("SELECT count(*) FROM m").await?.collect().await })
        .unwrap();
    assert_eq!(counted[0].num_rows(), 1);
}
