//! A whole table's row count and time span, answered from the manifest.
//!
//! `SELECT count(*), min(time), max(time) FROM readings` (how much is
//! stored, over what span) needs no row when the manifest's figures are
//! exact ([`crate::query::IngotTable::totals`]): every row is in a file, no two files
//! may hold the same series and time, and no delete or retention hides a
//! row. [`TableTotalsRule`] then replaces the aggregate with one row of
//! those figures as the plan is analyzed, so that neither the optimizer
//! nor the physical planner sees a scan. Otherwise the query is planned as
//! any other (and DataFusion may still answer it from the scan's
//! statistics).

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, Projection};
use datafusion::optimizer::AnalyzerRule;

use crate::last_rows::ingot_table;
use crate::query::is_time;

/// Rewrites an aggregate of `count(*)`, `count(time)`, `min(time)` and
/// `max(time)`, with no grouping, over an unfiltered Ingot table whose
/// totals the manifest knows, into one row of literals.
#[derive(Debug, Default)]
pub(crate) struct TableTotalsRule;

/// What an aggregate expression of the rewrite computes.
enum Total {
    Count,
    Min,
    Max,
}

impl AnalyzerRule for TableTotalsRule {
    fn name(&self) -> &str {
        "ingot_table_totals"
    }

    /// Runs last among the analyzer rules, after type coercion, so that the
    /// optimizer only ever sees the one row.
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match &node {
            LogicalPlan::Aggregate(aggregate) => match answer(aggregate)? {
                Some(answer) => Ok(Transformed::yes(answer)),
                None => Ok(Transformed::no(node)),
            },
            _ => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }
}

/// One row holding `aggregate`'s answer, when the manifest gives it.
fn answer(aggregate: &Aggregate) -> DfResult<Option<LogicalPlan>> {
    let LogicalPlan::TableScan(scan) = aggregate.input.as_ref() else {
        return Ok(None);
    };
    if !aggregate.group_expr.is_empty() || !scan.filters.is_empty() || scan.fetch.is_some() {
        return Ok(None);
    }
    let Some(totals) = aggregate
        .aggr_expr
        .iter()
        .map(total)
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(None);
    };
    let Some((rows, span)) = ingot_table(scan).and_then(|t| t.totals()) else {
        return Ok(None);
    };
    let fields = aggregate.schema.fields();
    let values = totals
        .iter()
        .zip(fields.iter().skip(aggregate.group_expr.len()))
        .map(|(total, field)| {
            let time = |ns: i64| match field.data_type() {
                DataType::Timestamp(_, tz) => {
                    Ok(ScalarValue::TimestampNanosecond(Some(ns), tz.clone()))
                }
                other => ScalarValue::try_from(other),
            };
            let value = match (total, span) {
                (Total::Count, _) => ScalarValue::Int64(Some(rows as i64)),
                (Total::Min, Some((min, _))) => time(min)?,
                (Total::Max, Some((_, max))) => time(max)?,
                (Total::Min | Total::Max, None) => ScalarValue::try_from(field.data_type())?,
            };
            Ok(Expr::Literal(value, None).alias(field.name()))
        })
        .collect::<DfResult<Vec<_>>>()?;
    let one_row = LogicalPlanBuilder::empty(true).build()?;
    Ok(Some(LogicalPlan::Projection(
        Projection::try_new_with_schema(values, Arc::new(one_row), aggregate.schema.clone())?,
    )))
}

/// What `expr` computes, if it is a total the manifest knows: `count` of
/// a non-null literal or of `time` (never null), `min(time)`, `max(time)`;
/// none distinct, filtered or ordered.
fn total(expr: &Expr) -> Option<Total> {
    let expr = match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        e => e,
    };
    let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
        return None;
    };
    if params.distinct || params.filter.is_some() || !params.order_by.is_empty() {
        return None;
    }
    let [arg] = params.args.as_slice() else {
        return None;
    };
    let of_time = is_time(arg);
    match func.name() {
        "count" if of_time || matches!(arg, Expr::Literal(v, _) if !v.is_null()) => {
            Some(Total::Count)
        }
        "min" if of_time => Some(Total::Min),
        "max" if of_time => Some(Total::Max),
        _ => None,
    }
}
