//! Helpers the engine's integration tests share.

#![allow(dead_code)]

use arrow::array::{Int64Array, RecordBatch};
use arrow::util::pretty::pretty_format_batches;
use datafusion::physical_plan::collect;
use datafusion::physical_plan::metrics::MetricsSet;
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

/// The physical plan of `sql` in `ctx`.
pub async fn physical_plan(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan> {
    ctx.sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap()
}

/// Runs `sql`; returns its rows and the metrics of its table scans.
pub fn run_with_scan_metrics(
    engine: &Engine,
    rt: &tokio::runtime::Runtime,
    sql: &str,
) -> (Vec<RecordBatch>, MetricsSet) {
    rt.block_on(async {
        let ctx = engine.session();
        let plan = physical_plan(&ctx, sql).await;
        let batches = collect(plan.clone(), ctx.task_ctx()).await.unwrap();
        let mut metrics = MetricsSet::new();
        let mut stack = vec![plan];
        while let Some(node) = stack.pop() {
            if node.name() == "DataSourceExec" {
                for m in node.metrics().iter().flat_map(|set| set.iter()) {
                    metrics.push(m.clone());
                }
            }
            stack.extend(node.children().into_iter().cloned());
        }
        (batches, metrics)
    })
}

pub fn metric(metrics: &MetricsSet, name: &str) -> usize {
    metrics
        .sum_by_name(name)
        .map(|v| v.as_usize())
        .unwrap_or_else(|| panic!("no metric {name} in {metrics}"))
}
