//! Answering aggregates from file summaries ([`crate::summary`]).
//!
//! [`SummaryRule`] rewrites an aggregate over an Ingot table when every
//! part of it can be computed from per-window summary rows:
//!
//! - it groups by tags, summary-key fields, and `date_bin(interval, time)`
//!   with an interval that is a whole number of summary windows (and an
//!   origin on a window boundary);
//! - it filters on tags and key fields, and on time only by `time >= t` and
//!   `time < t` with `t` on a window boundary;
//! - it computes `count(*)`, `count`, `sum`, `min`, `max` and `avg` of
//!   numeric fields, or `sum` (of integers), `count`, `min` and `max` of
//!   expressions over tags and key fields (`sum(CASE WHEN status = 2 THEN 1
//!   ELSE 0 END)`).
//!
//! The rewritten plan aggregates in two parts and combines them:
//!
//! ```text
//! Projection (the original aggregate's columns)
//!   Aggregate (final: sums of counts and sums, min of mins, ...)
//!     Union
//!       Aggregate (partial) <- Filter <- the table, less the summarized files
//!       Aggregate (partial) <- Filter <- the summaries of those files
//! ```
//!
//! The summarized files are the ones whose rows need no deduplication (no
//! other file or memtable chunk may share a series and time with them), no
//! delete and no retention filter; both parts read the table as of the same
//! instant. The answer is therefore the one a full scan gives, up to the
//! order in which floats are added.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::provider_as_source;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::functions::core::expr_fn::{coalesce, nullif};
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Case, Cast, Expr, ExprSchemable, Filter, LogicalPlan,
    LogicalPlanBuilder, Operator, Projection, TableProviderFilterPushDown, TableScanBuilder,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::lit;

use crate::catalog::{ColumnKind, TableSchema};
use crate::dedup::align;
use crate::last_rows::ingot_table;
use crate::manifest::FileMeta;
use crate::query::{IngotTable, STORE_URL, TimeRange, is_time, tags_may_match, timestamp_ns};
use crate::readers::ReadPin;
use crate::summary::{
    ROWS, Stat, has_stats, may_be_key, stat_column, summary_path, summary_schema,
};
use crate::summary_cache::rows_in_range;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct SummaryRule;

impl OptimizerRule for SummaryRule {
    fn name(&self) -> &str {
        "ingot_summaries"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = &plan else {
            return Ok(Transformed::no(plan));
        };
        match rewrite_aggregate(aggregate)? {
            Some(new) => Ok(Transformed::yes(new)),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// How one aggregate of the query is computed from partial aggregates.
enum Combine {
    /// Sum of the partial counts, 0 when there are none.
    Count(usize),
    /// Sum of the partial sums.
    Sum(usize),
    Min(usize),
    Max(usize),
    /// Sum of the partial sums over sum of the partial counts.
    Avg {
        sum: usize,
        count: usize,
    },
}

/// The partial aggregates both parts compute, by position.
#[derive(Default)]
struct Partials {
    /// Over the table's rows.
    raw: Vec<Expr>,
    /// Over the summary rows.
    summary: Vec<Expr>,
    /// How each combines: `sum`, `min` or `max`.
    combine: Vec<&'static str>,
}

impl Partials {
    fn add(&mut self, raw: Expr, summary: Expr, combine: &'static str) -> usize {
        self.raw.push(raw);
        self.summary.push(summary);
        self.combine.push(combine);
        self.raw.len() - 1
    }
}

fn rewrite_aggregate(aggregate: &Aggregate) -> DfResult<Option<LogicalPlan>> {
    // Projections of plain columns (the optimizer narrows the input) change
    // nothing the aggregate reads.
    let mut input = aggregate.input.as_ref();
    while let LogicalPlan::Projection(p) = input
        && p.expr.iter().all(|e| matches!(e, Expr::Column(_)))
    {
        input = p.input.as_ref();
    }
    let (predicate, scan) = match input {
        LogicalPlan::TableScan(scan) => (None, scan),
        LogicalPlan::Filter(Filter {
            predicate, input, ..
        }) => match input.as_ref() {
            LogicalPlan::TableScan(scan) => (Some(predicate.clone()), scan),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let Some(table) = ingot_table(scan) else {
        return Ok(None);
    };
    if table.is_fixed() || scan.fetch.is_some() {
        return Ok(None);
    }
    let Some(window) = table.shared().file_shape().summary_window_ns else {
        return Ok(None);
    };
    let schema = table.table_schema();
    let mut keys = BTreeSet::new();
    for g in &aggregate.group_expr {
        if !groups_by_windows(unalias(g), &schema, window, &mut keys) {
            return Ok(None);
        }
    }
    let filters: Vec<&Expr> = predicate
        .iter()
        .flat_map(split_conjunction)
        .chain(scan.filters.iter().flat_map(split_conjunction))
        .collect();
    for f in &filters {
        if !filters_by_windows(f, &schema, window, &mut keys) {
            return Ok(None);
        }
    }
    let qualifier = scan.table_name.clone();
    let summary_col = |name: &str| Expr::Column(Column::new(Some(qualifier.clone()), name));
    let input_schema = aggregate.input.schema();
    let mut partials = Partials::default();
    let mut combines = Vec::with_capacity(aggregate.aggr_expr.len());
    for a in &aggregate.aggr_expr {
        let Expr::AggregateFunction(AggregateFunction { func, params }) = unalias(a) else {
            return Ok(None);
        };
        if params.distinct
            || params.filter.is_some()
            || !params.order_by.is_empty()
            || params.null_treatment.is_some()
        {
            return Ok(None);
        }
        let [arg] = params.args.as_slice() else {
            return Ok(None);
        };
        // A field: the summary counts its values, and keeps the sum,
        // minimum and maximum of numbers.
        let (field, counted) = match arg {
            Expr::Column(c) => match schema.column(&c.name) {
                Some(col) if has_stats(col.kind) => (Some(col.name.clone()), None),
                Some(col) if matches!(col.kind, ColumnKind::Field(_)) => {
                    (None, Some(col.name.clone()))
                }
                _ => (None, None),
            },
            _ => (None, None),
        };
        // An expression over tags and key fields, which has one value in a
        // summary row.
        let mut arg_keys = BTreeSet::new();
        let over_keys = reads_tags_and_keys(arg, &schema, &mut arg_keys);
        // An integer field averaged is cast to a float first.
        let cast_integer = match arg {
            Expr::Cast(Cast { expr, field }) if *field.data_type() == DataType::Float64 => {
                match expr.as_ref() {
                    Expr::Column(c) => schema
                        .column(&c.name)
                        .filter(|col| {
                            has_stats(col.kind) && col.kind.data_type() != DataType::Float64
                        })
                        .map(|col| col.name.clone()),
                    _ => None,
                }
            }
            _ => None,
        };
        let combine = match (func.name(), &field) {
            ("count", _) if is_constant(arg) => {
                Combine::Count(partials.add(count(arg.clone()), sum(summary_col(ROWS)), "sum"))
            }
            ("count", _) if field.is_some() || counted.is_some() => {
                let f = field.as_ref().or(counted.as_ref()).expect("a field");
                Combine::Count(partials.add(
                    count(arg.clone()),
                    sum(summary_col(&stat_column(Stat::Count, f))),
                    "sum",
                ))
            }
            ("count", None) if over_keys => {
                let rows_if_valid = Expr::Case(Case::new(
                    None,
                    vec![(
                        Box::new(arg.clone().is_not_null()),
                        Box::new(summary_col(ROWS)),
                    )],
                    Some(Box::new(lit(0i64))),
                ));
                Combine::Count(partials.add(count(arg.clone()), sum(rows_if_valid), "sum"))
            }
            ("sum", Some(f)) => Combine::Sum(partials.add(
                sum(arg.clone()),
                sum(summary_col(&stat_column(Stat::Sum, f))),
                "sum",
            )),
            ("sum", None)
                if over_keys && arg.get_type(input_schema.as_ref())? == DataType::Int64 =>
            {
                let times_rows = Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(arg.clone()),
                    Operator::Multiply,
                    Box::new(summary_col(ROWS)),
                ));
                Combine::Sum(partials.add(sum(arg.clone()), sum(times_rows), "sum"))
            }
            ("min", Some(f)) => Combine::Min(partials.add(
                min(arg.clone()),
                min(summary_col(&stat_column(Stat::Min, f))),
                "min",
            )),
            ("max", Some(f)) => Combine::Max(partials.add(
                max(arg.clone()),
                max(summary_col(&stat_column(Stat::Max, f))),
                "max",
            )),
            ("min", None) if over_keys => {
                Combine::Min(partials.add(min(arg.clone()), min(arg.clone()), "min"))
            }
            ("max", None) if over_keys => {
                Combine::Max(partials.add(max(arg.clone()), max(arg.clone()), "max"))
            }
            ("avg", Some(f)) => Combine::Avg {
                sum: partials.add(
                    sum(arg.clone()),
                    sum(summary_col(&stat_column(Stat::Sum, f))),
                    "sum",
                ),
                count: partials.add(
                    count(arg.clone()),
                    sum(summary_col(&stat_column(Stat::Count, f))),
                    "sum",
                ),
            },
            ("avg", None) if cast_integer.is_some() => {
                let f = cast_integer.as_ref().expect("a field");
                let float_sum = Expr::Cast(Cast::new(
                    Box::new(summary_col(&stat_column(Stat::Sum, f))),
                    DataType::Float64,
                ));
                Combine::Avg {
                    sum: partials.add(sum(arg.clone()), sum(float_sum), "sum"),
                    count: partials.add(
                        count(arg.clone()),
                        sum(summary_col(&stat_column(Stat::Count, f))),
                        "sum",
                    ),
                }
            }
            _ => return Ok(None),
        };
        if over_keys && field.is_none() && counted.is_none() && cast_integer.is_none() {
            // The summary computes the expression on its rows: the fields
            // it reads must be keys.
            keys.extend(arg_keys);
        }
        combines.push(combine);
    }

    let Some((raw_table, files, pin)) = table.split_summarized(window, &keys) else {
        return Ok(None);
    };
    let raw_is_empty = !raw_table.has_sources();
    let summaries = SummaryTable {
        table: table.clone(),
        schema: summary_schema(&schema).arrow_schema().clone(),
        files,
        pin,
    };

    // The raw part: the original scan, of the table less the summarized
    // files.
    let mut raw_scan = scan.clone();
    raw_scan.source = provider_as_source(Arc::new(raw_table));
    let raw_input = with_filter(predicate.clone(), LogicalPlan::TableScan(raw_scan))?;
    let summary_scan =
        TableScanBuilder::new(qualifier.clone(), provider_as_source(Arc::new(summaries)))
            .with_filters(scan.filters.clone())
            .build()?;
    let summary_input = with_filter(predicate, LogicalPlan::TableScan(summary_scan))?;

    let group_names: Vec<String> = (0..aggregate.group_expr.len())
        .map(|i| format!("__group_{i}"))
        .collect();
    let partial_names: Vec<String> = (0..partials.raw.len())
        .map(|i| format!("__partial_{i}"))
        .collect();
    let part = |input: LogicalPlan, aggregates: &[Expr]| -> DfResult<LogicalPlan> {
        let groups = aggregate
            .group_expr
            .iter()
            .zip(&group_names)
            .map(|(g, name)| unalias(g).clone().alias(name));
        let aggregates = aggregates
            .iter()
            .zip(&partial_names)
            .map(|(a, name)| a.clone().alias(name));
        LogicalPlanBuilder::from(input)
            .aggregate(groups, aggregates)?
            .build()
    };
    let summarized = part(summary_input, &partials.summary)?;
    // With no rows left to read raw, the summaries' aggregate is the whole
    // answer.
    let (combined, final_name): (LogicalPlan, fn(usize) -> String) =
        if raw_is_empty {
            (summarized, |i| format!("__partial_{i}"))
        } else {
            let raw = part(raw_input, &partials.raw)?;
            let union = LogicalPlanBuilder::from(raw).union(summarized)?.build()?;
            let finals = partial_names.iter().zip(&partials.combine).enumerate().map(
                |(i, (name, combine))| {
                    let c = Expr::Column(Column::from_name(name));
                    let e = match *combine {
                        "min" => min(c),
                        "max" => max(c),
                        _ => sum(c),
                    };
                    e.alias(format!("__final_{i}"))
                },
            );
            let combined = LogicalPlanBuilder::from(union)
                .aggregate(
                    group_names
                        .iter()
                        .map(|n| Expr::Column(Column::from_name(n))),
                    finals,
                )?
                .build()?;
            (combined, |i| format!("__final_{i}"))
        };

    let fin = |i: usize| Expr::Column(Column::from_name(final_name(i)));
    let mut exprs: Vec<Expr> = group_names
        .iter()
        .map(|n| Expr::Column(Column::from_name(n)))
        .collect();
    for (combine, field) in combines
        .iter()
        .zip(aggregate.schema.fields().iter().skip(group_names.len()))
    {
        let e = match *combine {
            Combine::Count(i) => coalesce(vec![fin(i), lit(0i64)]),
            Combine::Sum(i) | Combine::Min(i) | Combine::Max(i) => fin(i),
            Combine::Avg { sum, count } => {
                let float = |e: Expr| Expr::Cast(Cast::new(Box::new(e), DataType::Float64));
                float(fin(sum)) / float(nullif(fin(count), lit(0i64)))
            }
        };
        // The column's type, as the original aggregate had it.
        exprs.push(Expr::Cast(Cast::new(
            Box::new(e),
            field.data_type().clone(),
        )));
    }
    let exprs = exprs
        .into_iter()
        .zip(aggregate.schema.iter())
        .map(|(e, (qualifier, f))| e.alias_qualified(qualifier.cloned(), f.name()))
        .collect();
    Ok(Some(LogicalPlan::Projection(
        Projection::try_new_with_schema(exprs, Arc::new(combined), aggregate.schema.clone())?,
    )))
}

fn with_filter(predicate: Option<Expr>, input: LogicalPlan) -> DfResult<LogicalPlan> {
    Ok(match predicate {
        Some(p) => LogicalPlan::Filter(Filter::try_new(p, Arc::new(input))?),
        None => input,
    })
}

fn unalias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unalias(&alias.expr),
        e => e,
    }
}

fn is_constant(expr: &Expr) -> bool {
    matches!(expr, Expr::Literal(v, _) if !v.is_null())
}

/// Whether a grouping expression has one value per summary row: a tag, a
/// key field, or a `date_bin` of time in whole windows.
fn groups_by_windows(
    expr: &Expr,
    schema: &TableSchema,
    window: i64,
    keys: &mut BTreeSet<String>,
) -> bool {
    if let Expr::ScalarFunction(ScalarFunction { func, args }) = expr
        && func.name() == "date_bin"
    {
        let width = match args.first() {
            Some(Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(i)), _)) if i.months == 0 => {
                (i.days as i64)
                    .checked_mul(86_400_000_000_000)
                    .and_then(|d| d.checked_add(i.nanoseconds))
            }
            _ => None,
        };
        let origin = match args.get(2) {
            None => Some(0),
            Some(e) => timestamp_ns(e),
        };
        return matches!(args.get(1), Some(t) if is_time(t))
            && args.len() <= 3
            && width.is_some_and(|w| w > 0 && w % window == 0)
            && origin.is_some_and(|o| o.rem_euclid(window) == 0);
    }
    matches!(expr, Expr::Column(_)) && reads_tags_and_keys(expr, schema, keys)
}

/// Whether a filter conjunct keeps or drops whole summary rows: it reads
/// only tags and key fields, or bounds time at a window boundary.
fn filters_by_windows(
    expr: &Expr,
    schema: &TableSchema,
    window: i64,
    keys: &mut BTreeSet<String>,
) -> bool {
    if let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr {
        let bound = match (is_time(left), is_time(right)) {
            (true, false) => Some((*op, timestamp_ns(right))),
            (false, true) => op.swap().map(|op| (op, timestamp_ns(left))),
            _ => None,
        };
        if let Some((op, value)) = bound {
            // `time >= t` and `time < t` split rows where windows split
            // when `t` is a boundary; `>` and `<=` split a window.
            return matches!(op, Operator::GtEq | Operator::Lt)
                && value.is_some_and(|t| t.rem_euclid(window) == 0);
        }
    }
    reads_tags_and_keys(expr, schema, keys)
}

/// Whether `expr` reads only tags and fields that may be summary keys (and
/// no time); records those fields in `keys`.
fn reads_tags_and_keys(expr: &Expr, schema: &TableSchema, keys: &mut BTreeSet<String>) -> bool {
    if expr.is_volatile() {
        return false;
    }
    let mut ok = true;
    for c in expr.column_refs() {
        match schema.column(&c.name).map(|col| col.kind) {
            Some(ColumnKind::Tag) => {}
            Some(kind) if may_be_key(kind) => {
                keys.insert(c.name.clone());
            }
            _ => ok = false,
        }
    }
    ok
}

/// The summaries of some of a table's files, as a table.
pub(crate) struct SummaryTable {
    table: Arc<IngotTable>,
    schema: SchemaRef,
    files: Vec<Arc<FileMeta>>,
    /// Keeps the files (and their summaries) until the query is done.
    pin: Arc<ReadPin>,
}

impl std::fmt::Debug for SummaryTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SummaryTable")
            .field("files", &self.files.len())
            .finish()
    }
}

#[async_trait]
impl TableProvider for SummaryTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let range = TimeRange::from_filters(filters);
        let table = self.table.table_schema();
        // A summary row's time is its window's start: a window that starts
        // before the range may still end inside it.
        let files: Vec<&Arc<FileMeta>> = self
            .files
            .iter()
            .filter(|f| {
                let window = f.summary.as_ref().map_or(0, |s| s.window_ns);
                range.overlaps(f.min_time - window, f.max_time)
                    && tags_may_match(f, &table, filters)
            })
            .collect();
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let target = state.config().target_partitions().max(1);
        // Summaries in memory are sliced to the query's windows; the rest
        // are read from Parquet.
        let mut in_memory = Vec::new();
        let mut on_disk = Vec::new();
        for f in files {
            let window = f.summary.as_ref().map_or(0, |s| s.window_ns);
            match self.decoded(f).await? {
                Some(batch) => {
                    let rows = rows_in_range(&batch, window, range.min, range.max);
                    if rows.num_rows() > 0 {
                        in_memory.push(rows);
                    }
                }
                None => on_disk.push(f),
            }
        }
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !in_memory.is_empty() || on_disk.is_empty() {
            let partitions = split_rows(in_memory, target);
            let memory =
                MemorySourceConfig::try_new(&partitions, self.schema.clone(), projection.cloned())?;
            plans.push(DataSourceExec::from_data_source(memory));
        }
        if !on_disk.is_empty() {
            plans.push(self.parquet_scan(&on_disk, target, projection, limit)?);
        }
        UnionExec::try_new(plans)
    }
}

/// Rows a partition of an in-memory summary scan holds at least, so that a
/// small read (an hour of summaries) is not spread over threads.
const MIN_PARTITION_ROWS: usize = 32 * 1024;

/// Splits batches into at most `target` partitions of about equal rows.
fn split_rows(batches: Vec<RecordBatch>, target: usize) -> Vec<Vec<RecordBatch>> {
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let n = target.min(total.div_ceil(MIN_PARTITION_ROWS)).max(1);
    let per = total.div_ceil(n).max(1);
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
    let (mut part, mut filled) = (0, 0);
    for batch in batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (per - filled).min(batch.num_rows() - offset);
            parts[part].push(batch.slice(offset, take));
            offset += take;
            filled += take;
            if filled == per && part + 1 < n {
                part += 1;
                filled = 0;
            }
        }
    }
    parts
}

impl SummaryTable {
    /// About how many summary rows a scan with `filters` reads: of each
    /// file the time range and the tags may match, its summary rows in
    /// proportion to the part of its time span the range covers.
    pub(crate) fn rows_read(&self, filters: &[Expr]) -> u64 {
        let range = TimeRange::from_filters(filters);
        let table = self.table.table_schema();
        self.files
            .iter()
            .filter(|f| tags_may_match(f, &table, filters))
            .filter_map(|f| {
                let summary = f.summary.as_ref()?;
                let (min, max) = (f.min_time - summary.window_ns, f.max_time);
                let covered = range.max.min(max).saturating_sub(range.min.max(min));
                let span = max.saturating_sub(min).max(1);
                let share = (covered.max(0) as f64 / span as f64).min(1.0);
                Some((summary.rows as f64 * share).ceil() as u64)
            })
            .sum()
    }

    /// The decoded summary of `file` in this table's summary schema: from
    /// the cache, or read whole into it when the cache would keep it;
    /// `None` when it is to be read from Parquet.
    async fn decoded(&self, file: &FileMeta) -> DfResult<Option<RecordBatch>> {
        let external = |e: crate::error::Error| DataFusionError::External(Box::new(e));
        let cache = &self.table.shared().summaries;
        if let Some(batch) = cache.get(file.id) {
            return align(&batch, &self.schema).map(Some).map_err(external);
        }
        let Some(summary) = &file.summary else {
            return Ok(None);
        };
        // Decoded, a summary row takes about 8 bytes a column.
        let estimate = summary.rows as usize * self.schema.fields().len() * 8;
        if !cache.would_keep(file, estimate) {
            return Ok(None);
        }
        let path = object_store::path::Path::from(summary_path(&file.path));
        let bytes = self
            .table
            .shared()
            .storage
            .read(&path)
            .await
            .map_err(external)?;
        let batches = crate::parquet_file::read_all(bytes).map_err(external)?;
        let Some(first) = batches.first() else {
            return Ok(None);
        };
        let batch = concat_batches(&first.schema(), &batches)?;
        let batch = align(&batch, &self.schema).map_err(external)?;
        Ok(Some(cache.offer(file, batch)))
    }

    /// A Parquet scan of the summaries of `files`.
    fn parquet_scan(
        &self,
        files: &[&Arc<FileMeta>],
        target: usize,
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut groups = vec![Vec::new(); target.min(files.len())];
        let n = groups.len();
        for (i, f) in files.iter().enumerate() {
            let bytes = f.summary.as_ref().map_or(0, |s| s.bytes);
            groups[i % n].push(PartitionedFile::new(summary_path(&f.path), bytes));
        }
        let source = Arc::new(self.table.parquet_source_of(self.schema.clone(), &self.pin));
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, source)
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}
