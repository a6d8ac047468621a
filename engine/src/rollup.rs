//! Continuous rollups: `CREATE MATERIALIZED VIEW`.
//!
//! ```sql
//! CREATE MATERIALIZED VIEW archive.readings_1m AS
//! SELECT date_bin(INTERVAL '1 minute', time) AS time, plant, device_id,
//!        avg(temperature) AS avg_temperature, max(temperature) AS max_temperature
//! FROM plant.readings GROUP BY 1, plant, device_id
//! ```
//!
//! A rollup groups one table by a `date_bin` of its time, named `time`, and
//! by tags; every other column of its SELECT is named. It is kept as an
//! ordinary table of its own database (the stored rows: tags, `time`, and a
//! field per aggregate), so it has that database's retention: raw readings in
//! a database that keeps 30 days, rollups in one that keeps two years.
//!
//! **Maintenance** recomputes whole windows from the raw rows, so any
//! aggregate is exact. Every write and delete has a WAL sequence number; a
//! rollup records `caught_up_seq`, below which every change of its source is
//! in the stored rows. The maintainer (a thread of the engine) looks at the
//! files and deletes of the source above that mark and persisted by a flush,
//! takes the windows their time ranges touch, recomputes those windows a
//! piece at a time (a day, or one window if longer), replaces them in the
//! stored table (a delete of the windows' range, then the new rows, both
//! logged in the WAL), and then moves the mark. A crash in between leaves the
//! mark where it was, and the windows are recomputed again. Deletes of the
//! source stay in the manifest until every rollup of it has passed them.
//!
//! **Reads** see every acknowledged write: a query of the rollup reads the
//! stored rows outside the *pending* windows (those that changes above the
//! mark touch, the memtable's included) and computes the pending windows from
//! the raw rows, in one plan (TimescaleDB's real-time aggregates do the
//! same). Windows older than the source's retention are never recomputed:
//! there the rollup keeps what it had.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result as DfResult, ScalarValue, TableReference};
use datafusion::datasource::TableType;
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, cast as cast_expr,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionContext, lit};
use serde::{Deserialize, Serialize};

use crate::catalog::{ColumnKind, FieldType, TIME_COLUMN, arrow_field, time_type};
use crate::delete::Tombstone;
use crate::engine::{Shared, State};
use crate::error::{Error, Result};
use crate::query::{CATALOG_NAME, timestamp_literal, timestamp_ns};

/// A continuous rollup, as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RollupDef {
    pub database: String,
    pub name: String,
    pub source_database: String,
    pub source_table: String,
    /// The SELECT, as written.
    pub query: String,
    /// The database the query's unqualified names are in.
    pub query_database: String,
    /// Window width and origin (ns).
    pub stride_ns: i64,
    pub origin_ns: i64,
    /// The output columns that are tags (the GROUP BY columns besides time).
    pub tags: Vec<String>,
    /// Every change of the source with a sequence number up to this one is
    /// in the stored rows.
    pub caught_up_seq: u64,
}

impl RollupDef {
    /// The window that holds `t`.
    fn window(&self, t: i64) -> i64 {
        let offset = t.saturating_sub(self.origin_ns);
        self.origin_ns.saturating_add(
            offset
                .div_euclid(self.stride_ns)
                .saturating_mul(self.stride_ns),
        )
    }

    /// `[lo, hi]` (inclusive, ns) as the windows that hold it: `[start, end)`.
    fn windows(&self, lo: i64, hi: i64) -> (i64, i64) {
        (
            self.window(lo),
            self.window(hi).saturating_add(self.stride_ns),
        )
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidInput(message.into())
}

/// A session whose unqualified names are in `database`.
fn session_in(shared: &Arc<Shared>, database: &str) -> SessionContext {
    let ctx = crate::query::session(shared.clone());
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .catalog
        .default_schema = database.to_string();
    ctx
}

/// Plans a rollup's query, unoptimized.
async fn plan(shared: &Arc<Shared>, query: &str, database: &str) -> Result<LogicalPlan> {
    let ctx = session_in(shared, database);
    Ok(ctx.sql(query).await?.into_unoptimized_plan())
}

/// Checks that `query` can be a rollup, and works out what it reads and
/// groups by.
pub(crate) async fn define(
    shared: &Arc<Shared>,
    database: &str,
    name: &str,
    query: &str,
    query_database: &str,
) -> Result<RollupDef> {
    let plan = plan(shared, query, query_database).await?;
    let shape = "a materialized view is SELECT date_bin(INTERVAL '...', time) AS time, \
                 <tags>, <named aggregates> FROM <table> [WHERE ...] GROUP BY <the same>";
    let LogicalPlan::Projection(projection) = &plan else {
        return Err(invalid(format!(
            "{shape}; this query ends with {} (no ORDER BY, LIMIT or UNION)",
            plan.display()
        )));
    };
    let mut below = projection.input.as_ref();
    while let LogicalPlan::Filter(f) = below {
        below = f.input.as_ref();
    }
    let LogicalPlan::Aggregate(aggregate) = below else {
        return Err(invalid(format!("{shape}: the query must GROUP BY")));
    };
    // The source: the one table below the aggregate.
    let mut scans = Vec::new();
    aggregate.input.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scans.push(scan.table_name.clone());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    let [source] = scans.as_slice() else {
        return Err(invalid(format!(
            "{shape}: a rollup reads exactly one table, this query reads {}",
            scans.len()
        )));
    };
    let resolved = source.clone().resolve(CATALOG_NAME, query_database);
    let (source_database, source_table) = (resolved.schema.to_string(), resolved.table.to_string());
    let source_schema = {
        let catalog = shared.catalog_read();
        if catalog.rollup(&source_database, &source_table).is_some() {
            return Err(invalid(format!(
                "{source_database}.{source_table} is a materialized view: a rollup reads a table"
            )));
        }
        catalog
            .table(&source_database, &source_table)
            .ok_or_else(|| {
                invalid(format!(
                    "table {source_database}.{source_table} does not exist"
                ))
            })?
    };
    // The grouping: one date_bin of time, and tags.
    let mut window = None;
    let mut group_names = Vec::new();
    for expr in &aggregate.group_expr {
        let name = expr.schema_name().to_string();
        match expr {
            Expr::ScalarFunction(f) if f.func.name() == "date_bin" => {
                if window.is_some() {
                    return Err(invalid("a rollup groups by one date_bin"));
                }
                let stride = match f.args.first() {
                    Some(Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(i)), _))
                        if i.months == 0 =>
                    {
                        (i.days as i64)
                            .checked_mul(86_400_000_000_000)
                            .and_then(|d| d.checked_add(i.nanoseconds))
                    }
                    _ => None,
                };
                let Some(stride) = stride.filter(|s| *s > 0) else {
                    return Err(invalid(
                        "a rollup's date_bin takes a fixed interval literal (days or less), such \
                         as INTERVAL '1 minute'",
                    ));
                };
                if !matches!(f.args.get(1), Some(Expr::Column(c)) if c.name == TIME_COLUMN) {
                    return Err(invalid(
                        "a rollup bins the time column itself: date_bin(INTERVAL '1 minute', time)",
                    ));
                }
                let origin = match f.args.get(2) {
                    None => 0,
                    Some(e) => timestamp_ns(e).ok_or_else(|| {
                        invalid("a rollup's date_bin origin must be a timestamp literal")
                    })?,
                };
                window = Some((name, stride, origin));
            }
            Expr::Column(c)
                if source_schema.column(&c.name).map(|col| col.kind) == Some(ColumnKind::Tag) =>
            {
                group_names.push((name, c.name.clone()));
            }
            other => {
                return Err(invalid(format!(
                    "{shape}: {other} is neither the date_bin nor a tag of {source_table}"
                )));
            }
        }
    }
    let Some((window_name, stride_ns, origin_ns)) = window else {
        return Err(invalid(format!(
            "{shape}: the query must GROUP BY date_bin(INTERVAL '...', time)"
        )));
    };
    // The outputs: the window as `time`, the tags, named aggregates.
    let mut tags = Vec::new();
    let mut saw_time = false;
    for (expr, field) in projection.expr.iter().zip(projection.schema.fields()) {
        let inner = match expr {
            Expr::Alias(a) => a.expr.as_ref(),
            e => e,
        };
        let reads = match inner {
            Expr::Column(c) => Some(c.flat_name()),
            _ => None,
        };
        let name = field.name();
        if reads.as_deref() == Some(window_name.as_str()) {
            if name != TIME_COLUMN {
                return Err(invalid(format!(
                    "name the rollup's window time: date_bin(...) AS time (it is {name})"
                )));
            }
            saw_time = true;
        } else if let Some((_, tag)) = group_names
            .iter()
            .find(|(n, _)| reads.as_deref() == Some(n.as_str()))
        {
            if name != tag {
                return Err(invalid(format!(
                    "a rollup keeps its tags' names: {tag} AS {name} renames one"
                )));
            }
            tags.push(name.clone());
        } else {
            if !matches!(expr, Expr::Alias(_)) || name == TIME_COLUMN {
                return Err(invalid(format!(
                    "name each of a rollup's values, as in avg(temperature) AS avg_temperature \
                     ({expr} has no name of its own)"
                )));
            }
            if stored_type(field.data_type()).is_none() {
                return Err(invalid(format!(
                    "{name} is {}; a rollup keeps numbers, booleans and strings",
                    field.data_type()
                )));
            }
        }
    }
    if !saw_time || tags.len() != group_names.len() {
        return Err(invalid(
            "a rollup's SELECT lists its window (AS time) and every tag it groups by: they name \
             its rows",
        ));
    }
    Ok(RollupDef {
        database: database.to_string(),
        name: name.to_string(),
        source_database,
        source_table,
        query: query.to_string(),
        query_database: query_database.to_string(),
        stride_ns,
        origin_ns,
        tags,
        caught_up_seq: 0,
    })
}

/// The field type a value of `data_type` is stored as, if a field can hold
/// it.
fn stored_type(data_type: &DataType) -> Option<FieldType> {
    Some(match data_type {
        DataType::Float64 | DataType::Float32 | DataType::Float16 => FieldType::Float,
        DataType::Decimal128(..) | DataType::Decimal256(..) => FieldType::Float,
        DataType::Int64 | DataType::Int32 | DataType::Int16 | DataType::Int8 => FieldType::Integer,
        DataType::UInt64 | DataType::UInt32 | DataType::UInt16 | DataType::UInt8 => {
            FieldType::UInteger
        }
        DataType::Boolean => FieldType::Boolean,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => FieldType::String,
        _ => return None,
    })
}

/// The time ranges `[lo, hi)` of the source that changes after `after`
/// touch: files and deletes, and the memtable when `memtable` is set.
fn changed(state: &State, def: &RollupDef, after: u64, memtable: bool) -> Vec<(i64, i64)> {
    let (db, table) = (&def.source_database, &def.source_table);
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for f in &state.manifest.files {
        if &f.database == db && &f.table == table && f.max_seq > after {
            ranges.push(def.windows(f.min_time, f.max_time));
        }
    }
    for t in &state.tombstones {
        if &t.database == db && &t.table == table && t.seq > after {
            ranges.push(def.windows(t.min_time, t.max_time));
        }
    }
    if memtable {
        for m in state
            .frozen
            .iter()
            .map(|m| m.as_ref())
            .chain([&state.active])
        {
            if let Some(partitions) = m.table(db, table) {
                for chunk in partitions.values().flatten() {
                    if chunk.seq > after {
                        ranges.push(def.windows(chunk.min_time, chunk.max_time));
                    }
                }
            }
        }
    }
    merge(ranges)
}

/// Sorted, merged ranges.
fn merge(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// Drops what lies before `from` (the windows the source no longer has).
fn clamp(ranges: Vec<(i64, i64)>, from: Option<i64>) -> Vec<(i64, i64)> {
    let Some(from) = from else {
        return ranges;
    };
    ranges
        .into_iter()
        .filter(|r| r.1 > from)
        .map(|(lo, hi)| (lo.max(from), hi))
        .collect()
}

/// The first window start whose rows the source and the rollup both still
/// keep: windows before it are never recomputed.
fn kept_from(shared: &Shared, def: &RollupDef) -> Option<i64> {
    let now = crate::flush::now_ns();
    let catalog = shared.catalog_read();
    let source = crate::retention::horizon(catalog.retention(&def.source_database), now);
    let own = crate::retention::horizon(catalog.retention(&def.database), now);
    let from = source.into_iter().chain(own).max()?;
    // The first whole window at or after the horizon.
    let w = def.window(from);
    Some(if w < from {
        w.saturating_add(def.stride_ns)
    } else {
        w
    })
}

/// `time` within one of `ranges`.
fn within(time: Expr, ranges: &[(i64, i64)]) -> Expr {
    ranges
        .iter()
        .map(|(lo, hi)| {
            time.clone()
                .gt_eq(timestamp_literal(*lo))
                .and(time.clone().lt(timestamp_literal(*hi)))
        })
        .reduce(Expr::or)
        .unwrap_or(lit(false))
}

/// The rollup's query over the raw rows of `ranges` only.
async fn plan_over(
    shared: &Arc<Shared>,
    def: &RollupDef,
    ranges: &[(i64, i64)],
) -> Result<LogicalPlan> {
    let plan = plan(shared, &def.query, &def.query_database).await?;
    let source = TableReference::full(
        CATALOG_NAME,
        def.source_database.as_str(),
        def.source_table.as_str(),
    );
    let restricted = plan.transform_up(|node| match node {
        LogicalPlan::TableScan(scan)
            if scan
                .table_name
                .clone()
                .resolve(CATALOG_NAME, &def.query_database)
                == source.clone().resolve(CATALOG_NAME, &def.query_database) =>
        {
            let time = Expr::Column(Column::new(Some(scan.table_name.clone()), TIME_COLUMN));
            let filtered = LogicalPlanBuilder::from(LogicalPlan::TableScan(scan))
                .filter(within(time, ranges))?
                .build()?;
            Ok(Transformed::yes(filtered))
        }
        node => Ok(Transformed::no(node)),
    })?;
    Ok(restricted.data)
}

/// The rollup's columns as queries see them: `time`, tags as strings, and
/// the values as stored.
async fn output_schema(shared: &Arc<Shared>, def: &RollupDef) -> Result<SchemaRef> {
    let plan = plan(shared, &def.query, &def.query_database).await?;
    let fields: Vec<Field> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let name = f.name();
            let data_type = if name == TIME_COLUMN {
                time_type()
            } else if def.tags.contains(name) {
                crate::catalog::tag_type()
            } else {
                stored_type(f.data_type()).map_or(DataType::Float64, FieldType::data_type)
            };
            Field::new(name, data_type, name != TIME_COLUMN)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// The rows of one recomputed piece as the stored table takes them: each
/// column with its role and stored type.
fn to_stored(def: &RollupDef, batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = field.name();
        let kind = if name == TIME_COLUMN {
            ColumnKind::Time
        } else if def.tags.contains(name) {
            ColumnKind::Tag
        } else {
            ColumnKind::Field(stored_type(field.data_type()).unwrap_or(FieldType::Float))
        };
        columns.push(cast(column, &kind.data_type())?);
        fields.push(arrow_field(name, kind));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// What one look of the maintainer did for one rollup.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refreshed {
    pub windows_recomputed: u64,
    pub rows_written: u64,
}

/// Brings a rollup up to the source's persisted changes; `write` stores a
/// batch in the rollup's table.
pub(crate) fn refresh(
    shared: &Arc<Shared>,
    runtime: &tokio::runtime::Runtime,
    def: &RollupDef,
    write: &dyn Fn(&RecordBatch) -> Result<()>,
) -> Result<Refreshed> {
    let (target, ranges) = {
        let state = shared.state_read();
        let target = mark_reachable(&state, def);
        // Files and deletes only: the memtable's rows stay pending until a
        // flush has them.
        (target, changed(&state, def, def.caught_up_seq, false))
    };
    if target <= def.caught_up_seq {
        return Ok(Refreshed::default());
    }
    let ranges = clamp(ranges, kept_from(shared, def));
    // Pieces of a day (or one window if longer), to bound each query.
    let piece = (shared.partition_width / def.stride_ns).max(1) * def.stride_ns;
    let mut done = Refreshed::default();
    for (lo, hi) in ranges {
        let mut start = lo;
        while start < hi {
            let end = start.saturating_add(piece).min(hi);
            let plan = runtime.block_on(plan_over(shared, def, &[(start, end)]))?;
            let ctx = session_in(shared, &def.query_database);
            let mut batches = runtime
                .block_on(async { ctx.execute_logical_plan(plan).await?.execute_stream().await })?;
            let has_stored = shared
                .catalog_read()
                .table(&def.database, &def.name)
                .is_some();
            if has_stored {
                shared.commit_delete(Tombstone {
                    database: def.database.clone(),
                    table: def.name.clone(),
                    seq: 0,
                    min_time: start,
                    max_time: end - 1,
                    tags: Vec::new(),
                    node: None,
                })?;
            }
            // The new rows, a batch at a time as the query makes them. A
            // failure leaves the mark where it was: the range stays pending
            // (answered from the raw rows) and is recomputed next time.
            while let Some(batch) = runtime.block_on(futures::StreamExt::next(&mut batches)) {
                let batch = batch?;
                if batch.num_rows() > 0 {
                    write(&to_stored(def, &batch)?)?;
                    done.rows_written += batch.num_rows() as u64;
                }
            }
            done.windows_recomputed += ((end - start) / def.stride_ns) as u64;
            start = end;
        }
    }
    shared
        .catalog_mut()
        .set_rollup_caught_up(&def.database, &def.name, target);
    shared.edit_manifest(|_| Ok(()), |_| {})?;
    Ok(done)
}

/// The highest mark a refresh can reach now: every change of the source
/// up to it is in a file or a delete, none in the memtable.
fn mark_reachable(state: &State, def: &RollupDef) -> u64 {
    let (db, table) = (&def.source_database, &def.source_table);
    let newest_change = state
        .manifest
        .files
        .iter()
        .filter(|f| &f.database == db && &f.table == table)
        .map(|f| f.max_seq)
        .chain(
            state
                .tombstones
                .iter()
                .filter(|t| &t.database == db && &t.table == table)
                .map(|t| t.seq),
        )
        .chain([state.manifest.persisted_seq])
        .max()
        .unwrap_or(0);
    let oldest_unflushed = state
        .frozen
        .iter()
        .map(|m| m.as_ref())
        .chain([&state.active])
        .filter_map(|m| m.table(db, table))
        .flat_map(|partitions| partitions.values().flatten().map(|c| c.seq))
        .min();
    match oldest_unflushed {
        Some(seq) => newest_change.min(seq.saturating_sub(1)),
        None => newest_change,
    }
}

/// The pending windows of a rollup now: what changes of its source above
/// its mark touch, the memtable's included.
pub(crate) fn pending(shared: &Shared, def: &RollupDef) -> Vec<(i64, i64)> {
    let ranges = {
        let state = shared.state_read();
        changed(&state, def, def.caught_up_seq, true)
    };
    clamp(ranges, kept_from(shared, def))
}

/// A rollup as queries read it: stored rows outside the pending windows,
/// the raw rows' answer inside them.
#[derive(Debug)]
pub(crate) struct RollupTable {
    shared: Arc<Shared>,
    database: String,
    name: String,
    schema: SchemaRef,
}

impl RollupTable {
    pub(crate) async fn open(
        shared: Arc<Shared>,
        database: &str,
        name: &str,
    ) -> DfResult<Option<RollupTable>> {
        let def = shared.catalog_read().rollup(database, name).cloned();
        let Some(def) = def else {
            return Ok(None);
        };
        let schema = output_schema(&shared, &def)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(RollupTable {
            shared,
            database: database.to_string(),
            name: name.to_string(),
            schema,
        }))
    }

    /// Each column of the rollup, cast to its type, from `available`
    /// columns (NULL where one is missing).
    fn shaped(
        &self,
        available: &datafusion::common::DFSchema,
        qualifier: Option<&TableReference>,
    ) -> Vec<Expr> {
        self.schema
            .fields()
            .iter()
            .map(|f| {
                let column = Column::new(qualifier.cloned(), f.name());
                let value = if available.has_column(&column) {
                    cast_expr(Expr::Column(column), f.data_type().clone())
                } else {
                    match ScalarValue::try_from(f.data_type()) {
                        Ok(null) => lit(null),
                        Err(_) => lit(ScalarValue::Null),
                    }
                };
                value.alias(f.name())
            })
            .collect()
    }

    async fn logical(&self) -> Result<LogicalPlan> {
        let def = self
            .shared
            .catalog_read()
            .rollup(&self.database, &self.name)
            .cloned()
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "materialized view {}.{} does not exist",
                    self.database, self.name
                ))
            })?;
        let pending = pending(&self.shared, &def);
        let stored = crate::query::ingot_table(&self.shared, &def.database, &def.name);
        let mut parts = Vec::new();
        if let Some(stored) = stored {
            let reference =
                TableReference::full(CATALOG_NAME, def.database.as_str(), def.name.as_str());
            let time = Expr::Column(Column::new(Some(reference.clone()), TIME_COLUMN));
            let mut builder =
                LogicalPlanBuilder::scan(reference.clone(), provider_as_source(stored), None)?;
            if !pending.is_empty() {
                builder = builder.filter(!within(time, &pending))?;
            }
            let schema = builder.schema().clone();
            parts.push(
                builder
                    .project(self.shaped(&schema, Some(&reference)))?
                    .build()?,
            );
        }
        let source_exists = self
            .shared
            .catalog_read()
            .table(&def.source_database, &def.source_table)
            .is_some();
        if !pending.is_empty() && source_exists {
            let fresh = plan_over(&self.shared, &def, &pending).await?;
            let schema = fresh.schema().clone();
            parts.push(
                LogicalPlanBuilder::from(fresh)
                    .project(self.shaped(&schema, None))?
                    .build()?,
            );
        }
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return Ok(LogicalPlanBuilder::empty(false)
                .project(
                    self.schema
                        .fields()
                        .iter()
                        .map(|f| {
                            lit(ScalarValue::try_from(f.data_type()).unwrap_or(ScalarValue::Null))
                                .alias(f.name())
                        })
                        .collect::<Vec<_>>(),
                )?
                .build()?);
        };
        let mut builder = LogicalPlanBuilder::from(first);
        for part in parts {
            builder = builder.union(part)?;
        }
        Ok(builder.build()?)
    }
}

#[async_trait]
impl TableProvider for RollupTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
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
        let plan = self
            .logical()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut builder = LogicalPlanBuilder::from(plan);
        if let Some(filter) = conjunction(filters.iter().map(unqualified)) {
            builder = builder.filter(filter)?;
        }
        if let Some(projection) = projection {
            let columns: Vec<Expr> = projection
                .iter()
                .map(|&i| Expr::Column(Column::from_name(self.schema.field(i).name())))
                .collect();
            builder = builder.project(columns)?;
        }
        if let Some(limit) = limit {
            builder = builder.limit(0, Some(limit))?;
        }
        state.create_physical_plan(&builder.build()?).await
    }
}

/// A filter on the rollup's columns, with the query's qualifier removed.
fn unqualified(expr: &Expr) -> Expr {
    expr.clone()
        .transform(|e| match e {
            Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::from_name(c.name)))),
            e => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| expr.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_clamp() {
        assert_eq!(
            merge(vec![(5, 7), (0, 2), (1, 3), (7, 9)]),
            vec![(0, 3), (5, 9)]
        );
        assert_eq!(clamp(vec![(0, 3), (5, 9)], Some(6)), vec![(6, 9)]);
        assert_eq!(clamp(vec![(0, 3)], None), vec![(0, 3)]);
    }

    #[test]
    fn windows_cover_their_range() {
        let def = RollupDef {
            database: "d".into(),
            name: "n".into(),
            source_database: "d".into(),
            source_table: "t".into(),
            query: String::new(),
            query_database: "d".into(),
            stride_ns: 60,
            origin_ns: 0,
            tags: vec![],
            caught_up_seq: 0,
        };
        assert_eq!(def.windows(61, 61), (60, 120));
        assert_eq!(def.windows(-1, 120), (-60, 180));
    }
}
