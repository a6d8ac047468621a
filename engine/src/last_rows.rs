//! The last row of every series, for "latest value" queries.
//!
//! `SELECT device_id, max(time), last_value(temperature ORDER BY time) ...
//! GROUP BY device_id` needs only the last row of each series: the row with
//! the greatest time, its fields merged by the duplicate rule. Files are
//! immutable and sorted by (series, time), so their last rows are kept per
//! table ([`LastRowsCache`]): gathered from a file when it is flushed, or
//! on first use after open from the small file beside each data file
//! (`<id>.last` beside `<id>.parquet`, one row per series, written with it by flush and
//! compaction). A query merges them with the memtable's rows. After each
//! flush the table's merged rows are also checkpointed
//! (`last_rows/{database}/{table}.last`, with the files they cover), so the
//! first latest-value query after an open reads one small file and the
//! last rows of the files flushed after it. [`LastRowsRule`] rewrites such an aggregate to read those
//! rows instead of the whole table; the aggregate itself is unchanged, so
//! the answer is the one the full scan would give.
//!
//! Why it is exact: a series' greatest time is the greatest of its last
//! times in each source, and every source holding a row at that time holds
//! it as its last row; merging the sources' last rows by write order is the
//! duplicate rule applied to exactly the rows that matter.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::kernels::partition::partition;
use arrow::compute::{concat_batches, filter_record_batch, take};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::Transformed;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::expr::NullTreatment;
use datafusion::logical_expr::{
    Aggregate, Expr, Filter, LogicalPlan, TableProviderFilterPushDown, TableScan,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::{ColumnKind, TIME_COLUMN, TableSchema};
use crate::dedup::{align, sort_dedup};
use crate::delete::Dropped;
use crate::error::Result;
use crate::flush::Storage;
use crate::manifest::FileMeta;
use crate::parquet_file::read_all;
use crate::query::IngotTable;
use crate::write::time_values;

/// What the manifest records of a file's last rows, kept beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRowsMeta {
    /// One per series of the file.
    pub rows: u64,
    pub bytes: u64,
}

/// How the name of a file's last rows ends (Parquet, named apart from data
/// files as summaries are).
pub(crate) const SUFFIX: &str = ".last";

/// Where the last rows of the data file at `path` live.
pub(crate) fn last_rows_path(path: &str) -> String {
    crate::manifest::sidecar_path(path, SUFFIX)
}

/// A file's last rows as Parquet: one row group, the batch's own schema.
pub(crate) fn encode(batch: &RecordBatch) -> Result<Vec<u8>> {
    encode_with(batch, None)
}

fn encode_with(batch: &RecordBatch, metadata: Option<Vec<KeyValue>>) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(batch.num_rows().max(1)))
        .set_key_value_metadata(metadata)
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// Key of a checkpoint's metadata: the ids of the files it covers (JSON).
const CHECKPOINT_FILES: &str = "ingot.last_rows.files";
/// Key of a checkpoint's metadata: the highest WAL sequence number of those
/// files.
const CHECKPOINT_SEQ: &str = "ingot.last_rows.seq";

/// Where a table's merged last rows are checkpointed.
fn checkpoint_path(database: &str, table: &str) -> StorePath {
    let name = format!("{table}{SUFFIX}");
    StorePath::from_iter(["last_rows", database, name.as_str()])
}

/// A checkpoint's rows and what they cover; `None` when there is none.
async fn load_checkpoint(
    storage: &Storage,
    database: &str,
    table: &str,
) -> Result<Option<TableLastRows>> {
    let got = storage.store.get(&checkpoint_path(database, table)).await;
    let bytes = match got {
        Ok(g) => g.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let value = |key: &str| -> Option<String> {
        builder
            .metadata()
            .file_metadata()
            .key_value_metadata()?
            .iter()
            .find(|kv| kv.key == key)?
            .value
            .clone()
    };
    let (Some(files), Some(seq)) = (value(CHECKPOINT_FILES), value(CHECKPOINT_SEQ)) else {
        return Ok(None);
    };
    let files: BTreeSet<u64> = serde_json::from_str(&files)
        .map_err(|e| crate::error::Error::Internal(format!("last rows checkpoint: {e}")))?;
    let seq: u64 = seq
        .parse()
        .map_err(|e| crate::error::Error::Internal(format!("last rows checkpoint: {e}")))?;
    let schema = builder.schema().clone();
    let batches = builder
        .build()?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let batch = concat_batches(&schema, &batches)?;
    Ok(Some(TableLastRows { files, seq, batch }))
}

/// The last row of each series of rows that arrive in batches, each sorted
/// by series then time, the series of different batches in any order (a
/// merge's output, written a time slice at a time). Holds a bounded number
/// of candidate rows: they are merged down as they pass a threshold.
pub(crate) struct LastRowsBuilder {
    table: TableSchema,
    /// The tags the batches are sorted by.
    key: Vec<String>,
    candidates: Vec<RecordBatch>,
    rows: usize,
}

impl LastRowsBuilder {
    /// Candidates held before they are merged to one row per series.
    const MERGE_AT: usize = 1 << 16;

    pub fn new(table: TableSchema, key: Vec<String>) -> Self {
        Self {
            table,
            key,
            candidates: Vec::new(),
            rows: 0,
        }
    }

    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let last = last_per_series(std::slice::from_ref(batch), &self.key)?;
        self.rows += last.num_rows();
        self.candidates.push(last);
        if self.rows > Self::MERGE_AT && self.candidates.len() > 1 {
            let merged = self.merged()?;
            self.rows = merged.num_rows();
            self.candidates = vec![merged];
        }
        Ok(())
    }

    fn merged(&self) -> Result<RecordBatch> {
        let schema = self.candidates[0].schema();
        let all = concat_batches(&schema, &self.candidates)?;
        merge(&self.table, vec![(0, all)])
    }

    /// One row per series; `None` when no rows came.
    pub fn finish(self) -> Result<Option<RecordBatch>> {
        if self.candidates.is_empty() {
            return Ok(None);
        }
        self.merged().map(Some)
    }
}

/// For rows sorted by series then time, the last row of each series. A
/// series is a run of equal values in the `tags` columns; tags a batch lacks
/// are null throughout it and do not split runs.
pub(crate) fn last_per_series(batches: &[RecordBatch], tags: &[String]) -> Result<RecordBatch> {
    let Some(first) = batches.first() else {
        return Err(crate::error::Error::Internal(
            "last_per_series needs at least one batch".into(),
        ));
    };
    let schema = first.schema();
    let run_ends = |batch: &RecordBatch| -> Result<RecordBatch> {
        if batch.num_rows() == 0 {
            return Ok(batch.clone());
        }
        let keys: Vec<ArrayRef> = tags
            .iter()
            .filter_map(|t| batch.column_by_name(t).cloned())
            .collect();
        let ends: Vec<u32> = if keys.is_empty() {
            vec![batch.num_rows() as u32 - 1]
        } else {
            partition(&keys)?
                .ranges()
                .into_iter()
                .map(|r| r.end as u32 - 1)
                .collect()
        };
        let indices = UInt32Array::from(ends);
        let columns = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    };
    // The last row of each run within each batch, then once more across the
    // batches, since a run may continue from one batch into the next.
    let candidates = batches.iter().map(run_ends).collect::<Result<Vec<_>>>()?;
    let joined = concat_batches(&schema, &candidates)?;
    run_ends(&joined)
}

/// The last rows of the persisted files of one table.
#[derive(Debug)]
struct TableLastRows {
    /// The files they cover.
    files: BTreeSet<u64>,
    /// The highest WAL sequence number of those files.
    seq: u64,
    /// One row per series, sorted by series (table schema of the time it
    /// was built; aligned on use).
    batch: RecordBatch,
}

/// Per table, the last row of every series over its persisted files.
#[derive(Debug, Default)]
pub(crate) struct LastRowsCache {
    tables: Mutex<HashMap<(String, String), Arc<TableLastRows>>>,
}

impl LastRowsCache {
    fn get(&self, database: &str, table: &str) -> Option<Arc<TableLastRows>> {
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(database.to_string(), table.to_string()))
            .cloned()
    }

    fn put(&self, database: &str, table: &str, rows: TableLastRows) {
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((database.to_string(), table.to_string()), Arc::new(rows));
    }

    /// Writes the table's merged last rows, and the files they cover, where
    /// the next open finds them; nothing when they are not known.
    pub(crate) async fn checkpoint(
        &self,
        storage: &Storage,
        database: &str,
        table: &str,
    ) -> Result<()> {
        let Some(rows) = self.get(database, table) else {
            return Ok(());
        };
        let files = serde_json::to_string(&rows.files)
            .map_err(|e| crate::error::Error::Internal(format!("last rows checkpoint: {e}")))?;
        let metadata = vec![
            KeyValue::new(CHECKPOINT_FILES.to_string(), files),
            KeyValue::new(CHECKPOINT_SEQ.to_string(), rows.seq.to_string()),
        ];
        let bytes = encode_with(&rows.batch, Some(metadata))?;
        storage
            .put_durable(&checkpoint_path(database, table), bytes)
            .await
    }

    /// Forgets one table's rows (a compaction changed them: it applied a
    /// delete).
    pub(crate) fn forget_table(&self, database: &str, table: &str) {
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(database.to_string(), table.to_string()));
    }

    /// Forgets the tables a drop removes.
    pub(crate) fn forget(&self, dropped: &Dropped) {
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(database, table), _| !dropped.covers(database, table, 0));
    }

    /// Compaction replaced files `inputs` of a table by `output`, holding the
    /// same rows: when the table's last rows cover every input, they cover
    /// the output and stay as they are.
    pub(crate) fn files_replaced(
        &self,
        database: &str,
        table: &str,
        inputs: &[u64],
        output: Option<u64>,
    ) {
        let key = (database.to_string(), table.to_string());
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let Some(current) = tables.get(&key) else {
            return;
        };
        if !inputs.iter().all(|id| current.files.contains(id)) {
            return;
        }
        let mut files = current.files.clone();
        for id in inputs {
            files.remove(id);
        }
        files.extend(output);
        let replaced = TableLastRows {
            files,
            seq: current.seq,
            batch: current.batch.clone(),
        };
        tables.insert(key, Arc::new(replaced));
    }

    /// A file was flushed: fold its last rows into the table's, when the
    /// table has them or this is its first file (otherwise they are gathered
    /// on first use). Files are flushed in write order, so the new file's
    /// rows are the latest.
    pub(crate) fn file_flushed(
        &self,
        table: &TableSchema,
        file: &FileMeta,
        last_rows: &RecordBatch,
        first_file: bool,
    ) -> Result<()> {
        let Some(current) = self.get(&file.database, &file.table) else {
            if first_file {
                self.put(
                    &file.database,
                    &file.table,
                    TableLastRows {
                        files: BTreeSet::from([file.id]),
                        seq: file.max_seq,
                        batch: last_rows.clone(),
                    },
                );
            }
            return Ok(());
        };
        // Every row of a flushed file was written after every row of the
        // files flushed before it; the files of one flush are different
        // partitions and share no (series, time).
        if current.files.contains(&file.id) {
            return Ok(());
        }
        let batch = merge(
            table,
            vec![
                (current.seq, current.batch.clone()),
                (file.max_seq, last_rows.clone()),
            ],
        )?;
        let mut files = current.files.clone();
        files.insert(file.id);
        self.put(
            &file.database,
            &file.table,
            TableLastRows {
                files,
                seq: current.seq.max(file.max_seq),
                batch,
            },
        );
        Ok(())
    }
}

/// Merges sources' rows by the duplicate rule and keeps each series' last.
fn merge(table: &TableSchema, inputs: Vec<(u64, RecordBatch)>) -> Result<RecordBatch> {
    sort_dedup(table, &inputs)?.last_rows()
}

impl IngotTable {
    /// The last row of every series of the table, as of one instant.
    async fn last_rows(&self) -> DfResult<RecordBatch> {
        let table = self.table_schema();
        let schema = table.arrow_schema().clone();
        // The pin keeps the files while they are read below.
        let (files, chunks, _pin) = self.all_sources();
        let cache = &self.shared().last_rows;
        let live: BTreeSet<u64> = files.iter().map(|f| f.id).collect();
        let mut cached = cache
            .get(self.database(), table.name())
            .filter(|c| c.files.is_subset(&live));
        let mut from_checkpoint = false;
        if cached.is_none() {
            // First use since the open: start from the checkpoint, if it
            // covers only live files. It is only a cache: when it cannot be
            // read, the files' own last rows are.
            match load_checkpoint(&self.shared().storage, self.database(), table.name()).await {
                Ok(Some(c)) if c.files.is_subset(&live) => {
                    cached = Some(Arc::new(c));
                    from_checkpoint = true;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    table = table.name(),
                    error = %e,
                    "the last rows checkpoint cannot be read; reading each file's"
                ),
            }
        }
        // Files the cached rows lack; if one was written before what is
        // cached, start over, so that rows merge in write order.
        let (mut inputs, mut covered, mut seq) = match &cached {
            Some(c)
                if files
                    .iter()
                    .all(|f| c.files.contains(&f.id) || f.max_seq > c.seq) =>
            {
                (
                    vec![(c.seq, align(&c.batch, &schema).map_err(external)?)],
                    c.files.clone(),
                    c.seq,
                )
            }
            _ => (Vec::new(), BTreeSet::new(), 0),
        };
        let mut missing: Vec<&FileMeta> = files
            .iter()
            .filter(|f| !covered.contains(&f.id))
            .map(|f| f.as_ref())
            .collect();
        missing.sort_by_key(|f| f.max_seq);
        for f in missing {
            if f.last_rows.is_some() {
                let rows = self.read_last_rows(f).await?;
                inputs.push((f.max_seq, rows));
                covered.insert(f.id);
                seq = seq.max(f.max_seq);
                continue;
            }
            let batches = self.read_file(f).await?;
            if batches.is_empty() {
                continue;
            }
            let key = f.sort_key.clone().unwrap_or_else(|| {
                table
                    .columns()
                    .iter()
                    .filter(|c| c.kind == ColumnKind::Tag)
                    .map(|c| c.name.clone())
                    .collect()
            });
            let rows = last_per_series(&batches, &key).map_err(external)?;
            inputs.push((f.max_seq, rows));
            covered.insert(f.id);
            seq = seq.max(f.max_seq);
        }
        let persisted = if inputs.is_empty() {
            RecordBatch::new_empty(schema.clone())
        } else {
            merge(&table, inputs).map_err(external)?
        };
        if from_checkpoint || cached.as_ref().is_none_or(|c| c.files != covered) {
            cache.put(
                self.database(),
                table.name(),
                TableLastRows {
                    files: covered,
                    seq,
                    batch: persisted.clone(),
                },
            );
        }
        if chunks.is_empty() {
            return Ok(persisted);
        }
        let mut inputs = vec![(seq, persisted)];
        inputs.extend(chunks.iter().map(|c| (c.seq, c.batch.clone())));
        merge(&table, inputs).map_err(external)
    }
}

impl IngotTable {
    /// The last rows kept beside a file.
    async fn read_last_rows(&self, file: &FileMeta) -> DfResult<RecordBatch> {
        let path = StorePath::from(last_rows_path(&file.path));
        let bytes = self.shared().storage.read(&path).await.map_err(external)?;
        let batches = read_all(bytes).map_err(external)?;
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => {
                return Ok(RecordBatch::new_empty(
                    self.table_schema().arrow_schema().clone(),
                ));
            }
        };
        Ok(concat_batches(&schema, &batches)?)
    }
}

fn external(e: crate::error::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// A table that holds the last row of every series of an Ingot table.
#[derive(Debug)]
pub(crate) struct LastRowsTable {
    table: Arc<IngotTable>,
}

impl LastRowsTable {
    /// About how many rows a scan reads: the cached last rows and the
    /// memtable's rows; `None` before the cache holds the table's.
    pub(crate) fn rows_read(&self) -> Option<u64> {
        let table = self.table.table_schema();
        let cached = self
            .table
            .shared()
            .last_rows
            .get(self.table.database(), table.name())?;
        let (_, chunks, _) = self.table.all_sources();
        let memtable: usize = chunks.iter().map(|c| c.batch.num_rows()).sum();
        Some((cached.batch.num_rows() + memtable) as u64)
    }
}

#[async_trait]
impl TableProvider for LastRowsTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
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
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let rows = self.table.last_rows().await?;
        let mut rows = align(&rows, &self.schema()).map_err(external)?;
        if let Some(horizon) = self.table.horizon() {
            // A series whose last row is past the retention period has no
            // row a query may see.
            let keep: BooleanArray = time_values(&rows)
                .iter()
                .map(|&t| Some(t >= horizon))
                .collect();
            rows = filter_record_batch(&rows, &keep)?;
        }
        let memory =
            MemorySourceConfig::try_new(&[vec![rows]], self.schema(), projection.cloned())?;
        Ok(DataSourceExec::from_data_source(memory))
    }
}

/// Rewrites `Aggregate(TableScan)` and `Aggregate(Filter(TableScan))` over an
/// Ingot table to read only each series' last row, when the answer depends
/// on nothing else: every grouping key is a tag, every aggregate is
/// `max(time)` or `last_value(x ORDER BY time)`, and every filter reads tags
/// only (so it keeps or drops whole series).
#[derive(Debug, Default)]
pub(crate) struct LastRowsRule;

impl OptimizerRule for LastRowsRule {
    fn name(&self) -> &str {
        "ingot_last_rows"
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
        let input = match aggregate.input.as_ref() {
            LogicalPlan::TableScan(scan) => {
                last_rows_scan(scan, aggregate)?.map(LogicalPlan::TableScan)
            }
            LogicalPlan::Filter(filter) => match filter.input.as_ref() {
                LogicalPlan::TableScan(scan) => match last_rows_scan(scan, aggregate)? {
                    Some(new_scan)
                        if reads_only_tags(&filter.predicate, table_of(scan)?.as_ref()) =>
                    {
                        Some(LogicalPlan::Filter(Filter::try_new(
                            filter.predicate.clone(),
                            Arc::new(LogicalPlan::TableScan(new_scan)),
                        )?))
                    }
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        let Some(input) = input else {
            return Ok(Transformed::no(plan));
        };
        Ok(Transformed::yes(LogicalPlan::Aggregate(
            Aggregate::try_new_with_schema(
                Arc::new(input),
                aggregate.group_expr.clone(),
                aggregate.aggr_expr.clone(),
                aggregate.schema.clone(),
            )?,
        )))
    }
}

/// The Ingot table a scan reads, if it is one.
pub(crate) fn ingot_table(scan: &TableScan) -> Option<Arc<IngotTable>> {
    let provider = source_as_provider(&scan.source).ok()?;
    let any: Arc<dyn std::any::Any + Send + Sync> = provider;
    any.downcast::<IngotTable>().ok()
}

fn table_of(scan: &TableScan) -> DfResult<Arc<TableSchema>> {
    ingot_table(scan)
        .map(|t| t.table_schema())
        .ok_or_else(|| DataFusionError::Internal("not an Ingot table".into()))
}

/// The scan rewritten to read last rows, if `aggregate` over it allows.
fn last_rows_scan(scan: &TableScan, aggregate: &Aggregate) -> DfResult<Option<TableScan>> {
    let Some(table) = ingot_table(scan) else {
        return Ok(None);
    };
    // A delete may have removed a series' last row, and then the row before
    // it is the answer: read the table whole until the delete is applied.
    if table.has_deletes() {
        return Ok(None);
    }
    let schema = table.table_schema();
    let groups_are_tags = aggregate
        .group_expr
        .iter()
        .all(|e| matches!(e, Expr::Column(c) if is_tag(&schema, &c.name)));
    let aggregates_need_last_rows =
        !aggregate.aggr_expr.is_empty() && aggregate.aggr_expr.iter().all(is_last_row_aggregate);
    let filters_are_tags = scan.filters.iter().all(|f| reads_only_tags(f, &schema));
    if !(groups_are_tags && aggregates_need_last_rows && filters_are_tags && scan.fetch.is_none()) {
        return Ok(None);
    }
    let mut new_scan = scan.clone();
    new_scan.source = provider_as_source(Arc::new(LastRowsTable { table }));
    Ok(Some(new_scan))
}

fn is_tag(schema: &TableSchema, name: &str) -> bool {
    schema
        .column(name)
        .is_some_and(|c| c.kind == ColumnKind::Tag)
}

fn is_time(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(c) if c.name == TIME_COLUMN)
}

/// `max(time)`, or `last_value(x ORDER BY time)` that respects nulls.
fn is_last_row_aggregate(expr: &Expr) -> bool {
    let expr = match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        e => e,
    };
    let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
        return false;
    };
    if params.distinct || params.filter.is_some() {
        return false;
    }
    match func.name() {
        "max" => params.order_by.is_empty() && matches!(params.args.as_slice(), [a] if is_time(a)),
        "last_value" => {
            params.args.len() == 1
                && params.null_treatment != Some(NullTreatment::IgnoreNulls)
                && matches!(params.order_by.as_slice(), [s] if s.asc && is_time(&s.expr))
        }
        _ => false,
    }
}

/// Whether `expr` reads no column but tags: such a filter keeps or drops
/// whole series.
fn reads_only_tags(expr: &Expr, schema: &TableSchema) -> bool {
    let columns = expr.column_refs();
    !expr.is_volatile() && columns.iter().all(|c| is_tag(schema, &c.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn last_row_of_each_run_across_batches() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("dev", DataType::Utf8, true),
            Field::new("v", DataType::Int64, false),
        ]));
        let batch = |devs: Vec<&str>, vs: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(devs)),
                    Arc::new(Int64Array::from(vs)),
                ],
            )
            .unwrap()
        };
        let batches = [
            batch(vec!["a", "a", "b"], vec![1, 2, 3]),
            batch(vec!["b", "c"], vec![4, 5]),
        ];
        let out = last_per_series(&batches, &["dev".to_string()]).unwrap();
        let v = out.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(v.values(), &[2, 4, 5]);
        let whole = last_per_series(&batches, &[]).unwrap();
        assert_eq!(whole.num_rows(), 1);
    }
}
