//! Gap filling with InfluxDB 3's names, so that its dashboards' queries run
//! unchanged:
//!
//! ```sql
//! SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS minute, device_id,
//!        locf(avg(temperature)), interpolate(max(pressure)), count(*)
//! FROM readings
//! WHERE time >= '2024-06-01T08:00:00Z' AND time < '2024-06-01T09:00:00Z'
//! GROUP BY minute, device_id
//! ```
//!
//! - `date_bin_gapfill(interval, time [, origin])` groups as `date_bin`
//!   does (in local time on a zoned timestamp, see [`crate::local_time`]),
//!   and the answer has a row for every bucket of the `WHERE` time range for
//!   each group that has any row: a bucket without rows gets NULL aggregates;
//! - `locf(aggregate)` fills those NULLs, and NULL aggregates, with the last
//!   value before them in the group (nothing before the first value);
//! - `interpolate(aggregate)` fills them on the straight line between the
//!   values on either side (nothing before the first value or after the
//!   last), for numeric aggregates.
//!
//! The range comes from the conjuncts of `WHERE` that bound the time column
//! (`>=`, `>`, `<`, `<=`, `BETWEEN`); the first bucket holds the lower
//! bound. Without a lower bound the query is refused; without an upper
//! bound it ends at `now()`.
//!
//! An analyzer rule ([`GapFillRule`]) turns `date_bin_gapfill` into
//! `date_bin`, puts a [`GapFill`] node above the aggregate and unwraps
//! `locf`/`interpolate` in the projection into fill modes of that node;
//! [`GapFillExec`] reads the aggregate sorted by group and bucket and
//! streams the filled answer in batches.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, RecordBatch, RecordBatchOptions,
    TimestampNanosecondArray, UInt32Array,
};
use arrow::compute::{cast, concat_batches, partition, take};
use arrow::datatypes::{DataType, Float64Type};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    Column, DFSchema, DFSchemaRef, Result as DfResult, ScalarValue, exec_err, plan_err,
};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Between, BinaryExpr, ColumnarValue, Expr, Extension, LogicalPlan, Operator, Projection,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::OrderingRequirements;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::{StreamExt, TryStreamExt};

use crate::local_time::{self, LocalClock};

const GAPFILL: &str = "date_bin_gapfill";
const LOCF: &str = "locf";
const INTERPOLATE: &str = "interpolate";

/// The functions, for a session to register. They are markers that
/// [`GapFillRule`] rewrites; evaluated anywhere else they fail with an
/// explanation.
pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(DateBinGapfill {
            date_bin: local_time::date_bin(),
        }),
        ScalarUDF::new_from_impl(FillMarker::new(LOCF)),
        ScalarUDF::new_from_impl(FillMarker::new(INTERPOLATE)),
    ]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateBinGapfill {
    date_bin: ScalarUDF,
}

impl ScalarUDFImpl for DateBinGapfill {
    fn name(&self) -> &str {
        GAPFILL
    }

    fn signature(&self) -> &Signature {
        self.date_bin.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.date_bin.return_type(arg_types)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        exec_err!(
            "date_bin_gapfill(interval, time) works only in the GROUP BY of an aggregate \
             with a time range in WHERE; elsewhere use date_bin"
        )
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FillMarker {
    name: &'static str,
    signature: Signature,
}

impl FillMarker {
    fn new(name: &'static str) -> FillMarker {
        FillMarker {
            name,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FillMarker {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        exec_err!(
            "{}(aggregate) works only around an aggregate in the SELECT list of a query \
             grouped by date_bin_gapfill",
            self.name
        )
    }
}

/// How a column of the aggregate is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub(crate) enum Fill {
    /// The last value before, in the group.
    Locf,
    /// On the line between the values on either side.
    Interpolate,
}

/// Rewrites `date_bin_gapfill` queries into [`GapFill`] plans.
#[derive(Debug, Default)]
pub(crate) struct GapFillRule;

impl AnalyzerRule for GapFillRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Aggregate(_) => rewrite_aggregate(node),
            LogicalPlan::Projection(_) => rewrite_projection(node),
            node => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "ingot_gapfill"
    }
}

fn is_call(expr: &Expr, name: &str) -> bool {
    matches!(expr, Expr::ScalarFunction(f) if f.func.name() == name)
}

fn mentions(expr: &Expr, name: &str) -> bool {
    expr.exists(|e| Ok(is_call(e, name))).unwrap_or(false)
}

/// An aggregate grouped by `date_bin_gapfill`: group by `date_bin` under
/// the same name, sort, and fill above.
fn rewrite_aggregate(node: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    let LogicalPlan::Aggregate(mut aggregate) = node else {
        unreachable!("called on aggregates")
    };
    let at: Vec<usize> = (0..aggregate.group_expr.len())
        .filter(|&i| mentions(&aggregate.group_expr[i], GAPFILL))
        .collect();
    let time = match at.as_slice() {
        [] => return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate))),
        [one] => *one,
        _ => return plan_err!("a query can group by only one date_bin_gapfill"),
    };
    let Expr::ScalarFunction(ScalarFunction { args, .. }) = &aggregate.group_expr[time] else {
        return plan_err!(
            "date_bin_gapfill must be a GROUP BY expression of its own, not part of one \
             (found {})",
            aggregate.group_expr[time]
        );
    };
    if aggregate
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return plan_err!("date_bin_gapfill does not work with GROUPING SETS, CUBE or ROLLUP");
    }
    let args = args.clone();
    let Some(time_column) = args.get(1).and_then(single_column) else {
        return plan_err!(
            "date_bin_gapfill bins a time column, as in date_bin_gapfill(INTERVAL '1 minute', time)"
        );
    };
    let range = time_range(&aggregate.input, &time_column.name);
    if range.lower.is_empty() {
        let name = &time_column.name;
        return plan_err!(
            "date_bin_gapfill needs a time range to fill: add a lower bound such as \
             `WHERE {name} >= '2024-06-01T00:00:00Z'` (and an upper bound such as \
             `AND {name} < '2024-06-02T00:00:00Z'`; without one the range ends now)"
        );
    }
    let name = aggregate.group_expr[time].schema_name().to_string();
    let date_bin = Arc::new(local_time::date_bin());
    aggregate.group_expr[time] =
        Expr::ScalarFunction(ScalarFunction::new_udf(date_bin, args.clone())).alias(name);
    let groups: Vec<usize> = (0..aggregate.group_expr.len())
        .filter(|&i| i != time)
        .collect();
    let input = LogicalPlan::Aggregate(aggregate.rebuild()?);
    let schema = filled_schema(input.schema(), time, &groups)?;
    let upper = if range.upper.is_empty() {
        vec![(datafusion::functions::datetime::expr_fn::now(), true)]
    } else {
        range.upper
    };
    Ok(Transformed::yes(LogicalPlan::Extension(Extension {
        node: Arc::new(GapFill {
            input: Arc::new(input),
            schema,
            time,
            groups,
            stride: args[0].clone(),
            origin: args.get(2).cloned(),
            lower: range.lower,
            upper,
            fills: Vec::new(),
        }),
    })))
}

trait Rebuild {
    fn rebuild(self) -> DfResult<datafusion::logical_expr::Aggregate>;
}

impl Rebuild for datafusion::logical_expr::Aggregate {
    /// The aggregate again, with its schema derived from its expressions.
    fn rebuild(self) -> DfResult<datafusion::logical_expr::Aggregate> {
        datafusion::logical_expr::Aggregate::try_new(self.input, self.group_expr, self.aggr_expr)
    }
}

/// The aggregate's schema with every aggregate nullable: new rows have
/// none.
fn filled_schema(input: &DFSchema, time: usize, groups: &[usize]) -> DfResult<DFSchemaRef> {
    let fields = input
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let aggregate = i != time && !groups.contains(&i);
            let field = if aggregate && !field.is_nullable() {
                Arc::new(field.as_ref().clone().with_nullable(true))
            } else {
                field.clone()
            };
            (qualifier.cloned(), field)
        })
        .collect();
    let schema = DFSchema::new_with_metadata(fields, input.metadata().clone())?
        .with_functional_dependencies(input.functional_dependencies().clone())?;
    Ok(Arc::new(schema))
}

/// The one column an expression reads (`time`, or `time AT TIME ZONE ...`).
fn single_column(expr: &Expr) -> Option<Column> {
    let columns = expr.column_refs();
    (columns.len() == 1).then(|| (*columns.iter().next().unwrap()).clone())
}

/// The time bounds a plan's filters put on a column.
#[derive(Debug, Default)]
struct Range {
    lower: Vec<Expr>,
    /// Each bound, and whether it is inclusive.
    upper: Vec<(Expr, bool)>,
}

/// Collects the bounds that the filters below an aggregate put on `time`.
fn time_range(plan: &LogicalPlan, time: &str) -> Range {
    let mut range = Range::default();
    let mut node = plan;
    loop {
        if let LogicalPlan::Filter(filter) = node {
            for conjunct in split_conjunction(&filter.predicate) {
                add_bound(&mut range, conjunct, time);
            }
        }
        match node {
            LogicalPlan::Filter(_)
            | LogicalPlan::Projection(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Sort(_) => node = node.inputs()[0],
            _ => return range,
        }
    }
}

fn is_column(expr: &Expr, name: &str) -> bool {
    matches!(expr, Expr::Column(c) if c.name == name)
}

fn add_bound(range: &mut Range, conjunct: &Expr, time: &str) {
    match conjunct {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, bound) = if is_column(left, time) && right.column_refs().is_empty() {
                (*op, right.as_ref())
            } else if is_column(right, time) && left.column_refs().is_empty() {
                match op.swap() {
                    Some(op) => (op, left.as_ref()),
                    None => return,
                }
            } else {
                return;
            };
            match op {
                Operator::GtEq | Operator::Gt => range.lower.push(bound.clone()),
                Operator::Lt => range.upper.push((bound.clone(), false)),
                Operator::LtEq => range.upper.push((bound.clone(), true)),
                Operator::Eq => {
                    range.lower.push(bound.clone());
                    range.upper.push((bound.clone(), true));
                }
                _ => {}
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_column(expr, time) => {
            range.lower.push(low.as_ref().clone());
            range.upper.push((high.as_ref().clone(), true));
        }
        _ => {}
    }
}

/// A projection with `locf(...)` or `interpolate(...)`: drop the wrappers
/// and tell the [`GapFill`] below which columns to fill, and how.
fn rewrite_projection(node: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    let LogicalPlan::Projection(projection) = node else {
        unreachable!("called on projections")
    };
    let wraps = |e: &Expr| mentions(e, LOCF) || mentions(e, INTERPOLATE);
    if !projection.expr.iter().any(wraps) {
        return Ok(Transformed::no(LogicalPlan::Projection(projection)));
    }
    let mut fills = Vec::new();
    let mut exprs = Vec::with_capacity(projection.expr.len());
    for expr in projection.expr {
        let name = expr.schema_name().to_string();
        let (inner, alias) = match expr {
            Expr::Alias(a) => (*a.expr, Some(a.name)),
            e => (e, None),
        };
        let fill = if is_call(&inner, LOCF) {
            Some(Fill::Locf)
        } else if is_call(&inner, INTERPOLATE) {
            Some(Fill::Interpolate)
        } else {
            None
        };
        let Some(fill) = fill else {
            if wraps(&inner) {
                return plan_err!(
                    "locf and interpolate must wrap an aggregate directly and stand alone in \
                     the SELECT list (found {inner})"
                );
            }
            exprs.push(match alias {
                Some(a) => inner.alias(a),
                None => inner,
            });
            continue;
        };
        let Expr::ScalarFunction(ScalarFunction { mut args, .. }) = inner else {
            unreachable!("is_call matched a function")
        };
        let column = match args.pop() {
            Some(Expr::Column(c)) => c,
            other => {
                return plan_err!(
                    "locf and interpolate take an aggregate of the query, such as \
                     locf(avg(temperature)) (found {})",
                    other.map(|e| e.to_string()).unwrap_or_default()
                );
            }
        };
        fills.push((column.clone(), fill));
        exprs.push(Expr::Column(column).alias(alias.unwrap_or(name)));
    }
    let input = with_fills(Arc::unwrap_or_clone(projection.input), &fills)?;
    Ok(Transformed::yes(LogicalPlan::Projection(
        Projection::try_new(exprs, Arc::new(input))?,
    )))
}

/// Records `fills` in the [`GapFill`] at or below `plan` (through HAVING).
fn with_fills(plan: LogicalPlan, fills: &[(Column, Fill)]) -> DfResult<LogicalPlan> {
    match plan {
        LogicalPlan::Extension(Extension { node }) => {
            let Some(gapfill) = node.as_any().downcast_ref::<GapFill>() else {
                return plan_err!("locf and interpolate need a GROUP BY date_bin_gapfill");
            };
            let mut gapfill = gapfill.clone();
            for (column, fill) in fills {
                let index = gapfill.schema.index_of_column(column)?;
                if index == gapfill.time || gapfill.groups.contains(&index) {
                    return plan_err!(
                        "locf and interpolate fill aggregates, not the GROUP BY column {column}"
                    );
                }
                let data_type = gapfill.schema.field(index).data_type();
                if *fill == Fill::Interpolate && !data_type.is_numeric() {
                    return plan_err!(
                        "interpolate fills numbers; {column} is {data_type} (locf fills any type)"
                    );
                }
                gapfill.fills.retain(|(i, _)| *i != index);
                gapfill.fills.push((index, *fill));
            }
            Ok(LogicalPlan::Extension(Extension {
                node: Arc::new(gapfill),
            }))
        }
        LogicalPlan::Filter(mut filter) => {
            let input = with_fills(Arc::unwrap_or_clone(filter.input), fills)?;
            filter.input = Arc::new(input);
            Ok(LogicalPlan::Filter(filter))
        }
        _ => plan_err!("locf and interpolate need a GROUP BY date_bin_gapfill"),
    }
}

/// Fills the buckets an aggregate grouped by `date_bin` has no rows for.
/// Its output has the aggregate's columns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct GapFill {
    input: Arc<LogicalPlan>,
    schema: DFSchemaRef,
    /// Index of the bucket column.
    time: usize,
    /// Indices of the other grouping columns.
    groups: Vec<usize>,
    stride: Expr,
    origin: Option<Expr>,
    /// The range's lower bounds (the latest counts).
    lower: Vec<Expr>,
    /// Its upper bounds and whether each is inclusive (the earliest counts).
    upper: Vec<(Expr, bool)>,
    /// Filled aggregate columns; the others are NULL in new rows.
    fills: Vec<(usize, Fill)>,
}

impl PartialOrd for GapFill {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.input.partial_cmp(&other.input)
    }
}

impl UserDefinedLogicalNodeCore for GapFill {
    fn name(&self) -> &str {
        "GapFill"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    /// The constants, so that the optimizer folds them (`now()` included).
    fn expressions(&self) -> Vec<Expr> {
        let mut exprs = vec![self.stride.clone()];
        exprs.extend(self.origin.clone());
        exprs.extend(self.lower.iter().cloned());
        exprs.extend(self.upper.iter().map(|(e, _)| e.clone()));
        exprs
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "GapFill: stride={}, lower=[", self.stride)?;
        for (i, e) in self.lower.iter().enumerate() {
            write!(f, "{}{e}", if i > 0 { ", " } else { "" })?;
        }
        write!(f, "], upper=[")?;
        for (i, (e, inclusive)) in self.upper.iter().enumerate() {
            let op = if *inclusive { "<=" } else { "<" };
            write!(f, "{}{op} {e}", if i > 0 { ", " } else { "" })?;
        }
        write!(f, "], fills={:?}", self.fills)
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let mut exprs = exprs.into_iter();
        let mut next = || {
            exprs
                .next()
                .expect("as many expressions as expressions() gave")
        };
        let stride = next();
        let origin = self.origin.as_ref().map(|_| next());
        let lower = self.lower.iter().map(|_| next()).collect();
        let upper = self.upper.iter().map(|(_, inc)| (next(), *inc)).collect();
        let input = inputs.into_iter().next().expect("one input");
        Ok(GapFill {
            schema: filled_schema(input.schema(), self.time, &self.groups)?,
            input: Arc::new(input),
            stride,
            origin,
            lower,
            upper,
            ..self.clone()
        })
    }

    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        // Every column of the aggregate, so that the indices stay valid;
        // below it, projections are pruned as usual.
        Some(vec![(0..self.schema.fields().len()).collect()])
    }
}

/// Plans [`GapFill`] nodes as [`GapFillExec`].
#[derive(Debug, Default)]
pub(crate) struct GapFillPlanner;

#[async_trait]
impl ExtensionPlanner for GapFillPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(gapfill) = node.as_any().downcast_ref::<GapFill>() else {
            return Ok(None);
        };
        let constant = |expr: &Expr| -> DfResult<ScalarValue> {
            let physical =
                planner.create_physical_expr(expr, &DFSchema::empty(), session, planning_ctx)?;
            let batch = RecordBatch::try_new_with_options(
                Arc::new(arrow::datatypes::Schema::empty()),
                vec![],
                &RecordBatchOptions::new().with_row_count(Some(1)),
            )?;
            match physical.evaluate(&batch)? {
                ColumnarValue::Scalar(s) => Ok(s),
                ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0),
            }
        };
        let instant = |expr: &Expr| -> DfResult<i64> {
            let value = constant(expr)?;
            match local_time::instant_ns(&value.to_array()?) {
                Ok(ns) if ns.is_valid(0) => Ok(ns.value(0)),
                _ => plan_err!("date_bin_gapfill's time bound {expr} is not a timestamp"),
            }
        };
        let stride = match constant(&gapfill.stride)? {
            ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
                (i.days as i64 * 86_400_000_000_000).checked_add(i.nanoseconds)
            }
            ScalarValue::IntervalDayTime(Some(i)) => {
                Some(i.days as i64 * 86_400_000_000_000 + i.milliseconds as i64 * 1_000_000)
            }
            ScalarValue::IntervalMonthDayNano(Some(_)) => {
                return plan_err!(
                    "date_bin_gapfill takes a fixed interval (days, hours, minutes, seconds); \
                     months vary in length"
                );
            }
            other => return plan_err!("date_bin_gapfill's interval is {other}, not an interval"),
        };
        let Some(stride) = stride.filter(|s| *s > 0) else {
            return plan_err!("date_bin_gapfill's interval must be positive");
        };
        let time_type = gapfill.schema.field(gapfill.time).data_type().clone();
        let clock = LocalClock::of(&time_type)?;
        let origin_wall = match &gapfill.origin {
            Some(o) => match local_time::origin_wall(&constant(o)?) {
                Ok(Some(wall)) => wall,
                _ => return plan_err!("date_bin_gapfill's origin {o} is not a timestamp"),
            },
            None => 0,
        };
        let lower = gapfill
            .lower
            .iter()
            .map(instant)
            .collect::<DfResult<Vec<_>>>()?;
        let mut last: Option<i64> = None;
        for (expr, inclusive) in &gapfill.upper {
            // The last instant the range holds.
            let t = instant(expr)?;
            let t = if *inclusive { t } else { t.saturating_sub(1) };
            last = Some(last.map_or(t, |l| l.min(t)));
        }
        let grid = Grid {
            clock,
            stride,
            origin_wall,
            first: lower.into_iter().max().unwrap_or(0),
            last: last.unwrap_or(i64::MIN),
        };
        Ok(Some(Arc::new(GapFillExec::new(
            physical_inputs[0].clone(),
            gapfill.time,
            gapfill.groups.clone(),
            gapfill.fills.clone(),
            grid,
        ))))
    }
}

/// The buckets of a range: wall-clock starts `stride` apart from the
/// origin, as instants.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    clock: Option<LocalClock>,
    stride: i64,
    origin_wall: i64,
    /// The first and last instants of the range.
    first: i64,
    last: i64,
}

impl Grid {
    fn wall(&self, instant: i64) -> i64 {
        self.clock.map_or(instant, |c| c.to_wall(instant))
    }

    fn instant(&self, wall: i64) -> i64 {
        self.clock.map_or(wall, |c| c.to_instant(wall))
    }

    fn bin(&self, wall: i64) -> i64 {
        let offset = wall.saturating_sub(self.origin_wall);
        self.origin_wall + offset.div_euclid(self.stride) * self.stride
    }

    /// Bucket starts as walls: the first, and how many.
    fn walls(&self) -> (i64, i64) {
        if self.last < self.first {
            return (0, 0);
        }
        let first = self.bin(self.wall(self.first));
        let last = self.bin(self.wall(self.last));
        (first, (last - first) / self.stride + 1)
    }
}

/// Executes [`GapFill`]: reads its input (one partition, sorted by group
/// and bucket) whole, then streams the filled answer.
#[derive(Debug)]
pub(crate) struct GapFillExec {
    input: Arc<dyn ExecutionPlan>,
    time: usize,
    groups: Vec<usize>,
    fills: Vec<(usize, Fill)>,
    grid: Grid,
    properties: Arc<PlanProperties>,
}

impl GapFillExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        time: usize,
        groups: Vec<usize>,
        fills: Vec<(usize, Fill)>,
        grid: Grid,
    ) -> GapFillExec {
        let schema = input.schema();
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let aggregate = i != time && !groups.contains(&i);
                Arc::new(
                    f.as_ref()
                        .clone()
                        .with_nullable(f.is_nullable() || aggregate),
                )
            })
            .collect();
        let schema = Arc::new(arrow::datatypes::Schema::new_with_metadata(
            fields,
            schema.metadata().clone(),
        ));
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        GapFillExec {
            input,
            time,
            groups,
            fills,
            grid,
            properties,
        }
    }

    fn sort_order(&self) -> Option<LexOrdering> {
        let schema = self.input.schema();
        let column = |i: usize| {
            PhysicalSortExpr::new_default(Arc::new(PhysicalColumn::new(schema.field(i).name(), i)))
        };
        LexOrdering::new(self.groups.iter().copied().chain([self.time]).map(column))
    }
}

impl DisplayAs for GapFillExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "GapFillExec: stride={}ns, range=[{}, {}], fills={:?}",
            self.grid.stride, self.grid.first, self.grid.last, self.fills
        )
    }
}

impl ExecutionPlan for GapFillExec {
    fn name(&self) -> &str {
        "GapFillExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![self.sort_order().map(OrderingRequirements::from)]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(GapFillExec::new(
            children[0].clone(),
            self.time,
            self.groups.clone(),
            self.fills.clone(),
            self.grid,
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let schema = self.schema();
        let batch_size = context.session_config().batch_size();
        let reservation = MemoryConsumer::new("GapFillExec").register(context.memory_pool());
        let filler = Filler {
            time: self.time,
            groups: self.groups.clone(),
            fills: self.fills.clone(),
            grid: self.grid,
            batch_size,
        };
        let read_schema = schema.clone();
        let input_schema = self.input.schema();
        let stream = futures::stream::once(async move {
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            let input = concat_batches(&input_schema, &batches)?.with_schema(read_schema)?;
            reservation.try_grow(input.get_array_memory_size())?;
            let batches = filler.batches(input)?;
            // The reservation lives as long as the batches are made.
            Ok::<_, datafusion::error::DataFusionError>(futures::stream::iter(batches).map(
                move |b| {
                    let _held = &reservation;
                    b
                },
            ))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// What makes the filled batches.
#[derive(Debug, Clone)]
struct Filler {
    time: usize,
    groups: Vec<usize>,
    fills: Vec<(usize, Fill)>,
    grid: Grid,
    batch_size: usize,
}

/// One row of the answer: the group (rows of the input), the bucket, and the
/// input row that has it, if any.
#[derive(Debug, Clone, Copy)]
struct OutRow {
    group: (usize, usize),
    time: i64,
    source: Option<usize>,
}

impl Filler {
    /// The answer for `input`, made a batch at a time as it is read.
    fn batches(self, input: RecordBatch) -> DfResult<Batches> {
        let times = local_time::instant_ns(input.column(self.time))?
            .values()
            .to_vec();
        let groups: Vec<(usize, usize)> = if self.groups.is_empty() {
            vec![(0, input.num_rows())]
        } else {
            let columns: Vec<ArrayRef> = self
                .groups
                .iter()
                .map(|&i| input.column(i).clone())
                .collect();
            partition(&columns)?
                .ranges()
                .into_iter()
                .map(|r| (r.start, r.end))
                .collect()
        };
        let numbers = self
            .fills
            .iter()
            .map(|(i, fill)| match fill {
                Fill::Interpolate => cast(input.column(*i), &DataType::Float64)
                    .map(|a| Some(a.as_primitive::<Float64Type>().clone())),
                Fill::Locf => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (first_wall, buckets) = self.grid.walls();
        Ok(Batches {
            filler: self,
            input,
            times,
            numbers,
            groups,
            group: 0,
            bucket: 0,
            row: None,
            last_instant: None,
            first_wall,
            buckets,
        })
    }
}

/// The filled answer as an iterator of batches.
struct Batches {
    filler: Filler,
    input: RecordBatch,
    /// The bucket of each input row, in UTC nanoseconds.
    times: Vec<i64>,
    /// Interpolated columns as numbers, by position in `fills`.
    numbers: Vec<Option<Float64Array>>,
    groups: Vec<(usize, usize)>,
    /// Where the walk is: the group, the next bucket, the next input row of
    /// the group, and the last bucket emitted.
    group: usize,
    bucket: i64,
    row: Option<usize>,
    last_instant: Option<i64>,
    first_wall: i64,
    buckets: i64,
}

impl Iterator for Batches {
    type Item = DfResult<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let rows = self.walk();
        if rows.is_empty() {
            return None;
        }
        Some(self.build(&rows))
    }
}

impl Batches {
    /// The next rows of the answer, up to a batch.
    fn walk(&mut self) -> Vec<OutRow> {
        let mut out = Vec::new();
        while out.len() < self.filler.batch_size && self.group < self.groups.len() {
            let group = self.groups[self.group];
            let row = *self.row.get_or_insert(group.0);
            let bucket = (self.bucket < self.buckets).then(|| {
                self.filler
                    .grid
                    .instant(self.first_wall + self.bucket * self.filler.grid.stride)
            });
            let next_input = (row < group.1).then(|| self.times[row]);
            match (bucket, next_input) {
                (None, None) => {
                    self.group += 1;
                    self.bucket = 0;
                    self.row = None;
                    self.last_instant = None;
                }
                (Some(b), Some(t)) if t <= b => {
                    out.push(OutRow {
                        group,
                        time: t,
                        source: Some(row),
                    });
                    self.row = Some(row + 1);
                    if t == b {
                        self.bucket += 1;
                    }
                    self.last_instant = Some(t);
                }
                (None, Some(t)) => {
                    out.push(OutRow {
                        group,
                        time: t,
                        source: Some(row),
                    });
                    self.row = Some(row + 1);
                }
                (Some(b), _) => {
                    self.bucket += 1;
                    // A wall time skipped by a clock change maps onto the
                    // next bucket's instant: one row for both.
                    if self.last_instant != Some(b) {
                        out.push(OutRow {
                            group,
                            time: b,
                            source: None,
                        });
                        self.last_instant = Some(b);
                    }
                }
            }
        }
        out
    }

    fn build(&self, rows: &[OutRow]) -> DfResult<RecordBatch> {
        let schema = self.input.schema();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (i, field) in schema.fields().iter().enumerate() {
            let column = self.input.column(i);
            let array: ArrayRef = if i == self.filler.time {
                let tz = match field.data_type() {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                };
                let times =
                    TimestampNanosecondArray::from(rows.iter().map(|r| r.time).collect::<Vec<_>>())
                        .with_timezone_opt(tz);
                cast(&times, field.data_type())?
            } else if self.filler.groups.contains(&i) {
                let at = UInt32Array::from_iter_values(rows.iter().map(|r| r.group.0 as u32));
                take(column, &at, None)?
            } else {
                match self.filler.fills.iter().position(|(c, _)| *c == i) {
                    Some(f) => match self.filler.fills[f].1 {
                        Fill::Locf => take(column, &self.locf(column, rows), None)?,
                        Fill::Interpolate => {
                            let numbers = self.numbers[f].as_ref().expect("made for interpolate");
                            cast(&self.interpolate(numbers, rows), field.data_type())?
                        }
                    },
                    None => {
                        let at: UInt32Array =
                            rows.iter().map(|r| r.source.map(|s| s as u32)).collect();
                        take(column, &at, None)?
                    }
                }
            };
            columns.push(array);
        }
        Ok(RecordBatch::try_new_with_options(
            schema,
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )?)
    }

    /// For each row, the input row whose value it shows: its own when that
    /// is not NULL, else the group's last non-NULL one at or before it.
    fn locf(&self, column: &ArrayRef, rows: &[OutRow]) -> UInt32Array {
        rows.iter()
            .map(|r| {
                let (start, end) = r.group;
                let upto = start + self.times[start..end].partition_point(|&t| t <= r.time);
                (start..upto)
                    .rev()
                    .find(|&i| column.is_valid(i))
                    .map(|i| i as u32)
            })
            .collect()
    }

    /// For each row, its own value when not NULL, else the value on the line
    /// between the group's nearest non-NULL values on either side.
    fn interpolate(&self, numbers: &Float64Array, rows: &[OutRow]) -> Float64Array {
        rows.iter()
            .map(|r| {
                if let Some(s) = r.source
                    && numbers.is_valid(s)
                {
                    return Some(numbers.value(s));
                }
                let (start, end) = r.group;
                let split = start + self.times[start..end].partition_point(|&t| t < r.time);
                let before = (start..split).rev().find(|&i| numbers.is_valid(i))?;
                let after =
                    (split..end).find(|&i| numbers.is_valid(i) && self.times[i] > r.time)?;
                let (t0, v0) = (self.times[before] as f64, numbers.value(before));
                let (t1, v1) = (self.times[after] as f64, numbers.value(after));
                Some(v0 + (v1 - v0) * (r.time as f64 - t0) / (t1 - t0))
            })
            .collect()
    }
}

/// The query planner of Ingot's sessions: DataFusion's, with [`GapFill`],
/// planning small queries on one partition ([`crate::scan_size`]).
#[derive(Debug, Default)]
pub(crate) struct IngotQueryPlanner {
    /// [`crate::Options::one_partition_rows`].
    pub one_partition_rows: u64,
}

#[async_trait]
impl datafusion::execution::context::QueryPlanner for IngotQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let planner =
            datafusion::physical_planner::DefaultPhysicalPlanner::with_extension_planners(vec![
                Arc::new(GapFillPlanner),
            ]);
        match crate::scan_size::one_partition(logical_plan, session, self.one_partition_rows)
            .await?
        {
            Some(state) => planner.create_physical_plan(logical_plan, &state).await,
            None => planner.create_physical_plan(logical_plan, session).await,
        }
    }
}
