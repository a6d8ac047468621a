//! SQL over the engine through Apache DataFusion.
//!
//! Catalog `ingot`, one schema per database, one [`IngotTable`] per table.
//! A scan takes a snapshot of the memtable chunks and the manifest's files
//! under one lock, and drops files whose time or tag ranges cannot match the
//! filters. Within a time partition, sources whose time ranges overlap (and
//! whose tag ranges do not rule out a shared series) may hold the same
//! (series, time): the rows in the windows where they overlap, and every
//! memtable row, are merged with the duplicate rule ([`crate::dedup`]); the
//! rest of each file, and every file that overlaps nothing, is read as it
//! is, through DataFusion's Parquet scan.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::readers::{PinnedReaderFactory, ReadPin};
use arrow::array::RecordBatch;
use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProviderList, SchemaProvider, Session, TableProvider,
};
use datafusion::common::stats::Precision;
use datafusion::common::{DFSchema, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::prelude::{col, lit};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;

use crate::catalog::{ColumnKind, TableSchema};
use crate::dedup::{align, sort_dedup};
use crate::delete::{Tombstone, remove_deleted};
use crate::engine::{DEFAULT_DATABASE, Shared};
use crate::last_rows::LastRowsRule;
use crate::manifest::FileMeta;
use crate::memtable::Chunk;
use crate::summary_rule::SummaryRule;
use crate::system::{SYSTEM_SCHEMA, SystemSchema};

/// Name of Ingot's DataFusion catalog.
pub const CATALOG_NAME: &str = "ingot";
pub(crate) const STORE_URL: &str = "ingot://store";

/// The DataFusion runtime all of an engine's queries share: one memory pool
/// bounded by `Options::query_memory_limit_bytes`, and the object store that
/// holds the table files.
pub(crate) fn runtime_env(
    limit_bytes: usize,
    store: Arc<dyn object_store::ObjectStore>,
) -> crate::error::Result<Arc<RuntimeEnv>> {
    let env = RuntimeEnvBuilder::new()
        .with_memory_limit(limit_bytes, 1.0)
        .build_arc()?;
    let url = ObjectStoreUrl::parse(STORE_URL)?;
    env.register_object_store(url.as_ref(), store);
    Ok(env)
}

pub(crate) fn session(shared: Arc<Shared>) -> SessionContext {
    let mut state = shared
        .session_template
        .get_or_init(|| session_template(&shared.runtime_env, &shared.options))
        .clone();
    // The copy shares the template's catalog list: it gets a list of its
    // own, holding a catalog of its own (with its own session schemas).
    state.register_catalog_list(Arc::new(MemoryCatalogProviderList::new()));
    let ctx = SessionContext::new_with_state(state);
    ctx.register_catalog(
        CATALOG_NAME,
        Arc::new(IngotCatalog {
            shared,
            local: Default::default(),
        }),
    );
    ctx
}

/// A session with Ingot's settings, functions and rules, and no catalog.
fn session_template(runtime_env: &Arc<RuntimeEnv>, options: &crate::Options) -> SessionState {
    let config = SessionConfig::new()
        .with_default_catalog_and_schema(CATALOG_NAME, DEFAULT_DATABASE)
        .with_information_schema(true)
        .with_create_default_catalog_and_schema(false)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true)
        .set_bool("datafusion.execution.parquet.reorder_filters", true)
        // Scans of table files come split by row group ([`crate::row_groups`]).
        .set_bool("datafusion.optimizer.repartition_file_scans", false);
    let config = with_environment(config);
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime_env.clone())
        .with_default_features()
        .with_query_planner(Arc::new(crate::gapfill::IngotQueryPlanner {
            one_partition_rows: options.one_partition_rows,
        }))
        .build();
    let ctx = SessionContext::new_with_state(state);
    for function in crate::functions::aggregates() {
        ctx.register_udaf(function);
    }
    for function in crate::functions::windows() {
        ctx.register_udwf(function);
    }
    ctx.register_udf(crate::local_time::date_bin());
    for function in crate::gapfill::functions() {
        ctx.register_udf(function);
    }
    ctx.add_analyzer_rule(Arc::new(crate::gapfill::GapFillRule));
    ctx.add_analyzer_rule(Arc::new(crate::table_totals::TableTotalsRule));
    ctx.add_optimizer_rule(Arc::new(LastRowsRule));
    ctx.add_optimizer_rule(Arc::new(SummaryRule));
    ctx.state()
}

/// `config` with every DataFusion setting named by an environment variable
/// taken from it, as DataFusion's own CLI does: `datafusion.a.b_c` is read
/// from `DATAFUSION_A_B_C`. A value of the wrong type is logged and ignored.
fn with_environment(mut config: SessionConfig) -> SessionConfig {
    for entry in config.options().entries() {
        let name = entry.key.to_uppercase().replace('.', "_");
        let Ok(value) = std::env::var(&name) else {
            continue;
        };
        match config.options_mut().set(&entry.key, &value) {
            Ok(()) => tracing::info!(setting = %entry.key, %value, "set from the environment"),
            Err(error) => tracing::warn!(variable = %name, %value, %error, "ignored"),
        }
    }
    config
}

/// Ingot's databases as DataFusion schemas, plus `system`.
#[derive(Debug)]
struct IngotCatalog {
    shared: Arc<Shared>,
    /// Schemas registered on this session only, never stored: the
    /// PostgreSQL front end's `pg_catalog`, say.
    local: std::sync::RwLock<BTreeMap<String, Arc<dyn SchemaProvider>>>,
}

impl IngotCatalog {
    fn local(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<dyn SchemaProvider>>> {
        self.local.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl CatalogProvider for IngotCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.shared.catalog_read().database_names();
        names.push(SYSTEM_SCHEMA.to_string());
        names.extend(self.local().keys().cloned());
        names
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        let taken = name == SYSTEM_SCHEMA
            || self
                .shared
                .catalog_read()
                .database_names()
                .iter()
                .any(|d| d == name);
        if taken {
            return Err(DataFusionError::Plan(format!(
                "schema {name:?} is an Ingot database: a session cannot replace it"
            )));
        }
        let mut local = self.local.write().unwrap_or_else(|e| e.into_inner());
        Ok(local.insert(name.to_string(), schema))
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(schema) = self.local().get(name) {
            return Some(schema.clone());
        }
        if name == SYSTEM_SCHEMA {
            return Some(Arc::new(SystemSchema {
                shared: self.shared.clone(),
            }));
        }
        let exists = self
            .shared
            .catalog_read()
            .database_names()
            .iter()
            .any(|d| d == name);
        exists.then(|| {
            Arc::new(IngotSchema {
                shared: self.shared.clone(),
                database: name.to_string(),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

#[derive(Debug)]
struct IngotSchema {
    shared: Arc<Shared>,
    database: String,
}

#[async_trait]
impl SchemaProvider for IngotSchema {
    fn table_names(&self) -> Vec<String> {
        let catalog = self.shared.catalog_read();
        let mut names = catalog.table_names(&self.database);
        names.extend(catalog.rollup_names(&self.database));
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(rollup) =
            crate::rollup::RollupTable::open(self.shared.clone(), &self.database, name).await?
        {
            return Ok(Some(Arc::new(rollup)));
        }
        Ok(ingot_table(&self.shared, &self.database, name).map(|t| t as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        let catalog = self.shared.catalog_read();
        catalog.table(&self.database, name).is_some()
            || catalog.rollup(&self.database, name).is_some()
    }
}

/// The stored table `name` of `database`, as queries read it.
pub(crate) fn ingot_table(
    shared: &Arc<Shared>,
    database: &str,
    name: &str,
) -> Option<Arc<IngotTable>> {
    let schema = shared.catalog_read().table(database, name)?;
    Some(Arc::new(IngotTable {
        shared: shared.clone(),
        database: database.to_string(),
        schema,
        horizon: crate::retention::horizon(
            shared.catalog_read().retention(database),
            crate::flush::now_ns(),
        ),
        fixed: None,
        share: None,
    }))
}

/// One Ingot table as a DataFusion table.
#[derive(Debug)]
pub(crate) struct IngotTable {
    shared: Arc<Shared>,
    database: String,
    schema: Arc<TableSchema>,
    /// Rows older than this (ns) are past the database's retention period
    /// and hidden; fixed when the query names the table.
    horizon: Option<i64>,
    /// Set when summaries answer part of a query: this table then reads
    /// the sources as of when the query was planned, less the files whose
    /// summaries are read instead.
    fixed: Option<Arc<FixedSources>>,
    /// `(share, shares)`: read only the time partitions [`share_of`] gives
    /// to `share` (see [`scan_share`]); `None` reads them all.
    share: Option<(u64, u64)>,
}

/// Every source of one table as of one instant, with the pin that keeps
/// its files readable.
#[derive(Clone)]
struct Captured {
    files: Vec<Arc<FileMeta>>,
    /// Memtable chunks, with the start of their partition.
    chunks: Vec<(i64, Arc<Chunk>)>,
    tombstones: Vec<Arc<Tombstone>>,
    pin: Arc<ReadPin>,
}

/// The sources a query reads raw, beside the summaries it reads.
pub(crate) struct FixedSources {
    captured: Captured,
    /// Files whose summaries the query reads instead of their rows.
    summarized: std::collections::HashSet<u64>,
}

impl std::fmt::Debug for FixedSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedSources")
            .field("files", &self.captured.files.len())
            .field("chunks", &self.captured.chunks.len())
            .field("summarized", &self.summarized.len())
            .finish()
    }
}

/// What a scan reads, as of one instant.
struct Snapshot {
    /// The sources, by partition.
    parts: BTreeMap<i64, Vec<Source>>,
    /// Files the time range pruned.
    pruned: usize,
    /// Keeps the files readable until the reads are done.
    pin: Arc<ReadPin>,
    /// The table's deletes that may still hide rows.
    tombstones: Vec<Arc<Tombstone>>,
}

/// One thing a scan reads: a Parquet file or a memtable chunk.
#[derive(Clone)]
enum Source {
    File(Arc<FileMeta>),
    Chunk(Arc<Chunk>),
}

impl Source {
    fn range(&self) -> (i64, i64) {
        match self {
            Source::File(f) => (f.min_time, f.max_time),
            Source::Chunk(c) => (c.min_time, c.max_time),
        }
    }
}

impl IngotTable {
    pub(crate) fn table_schema(&self) -> Arc<TableSchema> {
        self.schema.clone()
    }

    pub(crate) fn database(&self) -> &str {
        &self.database
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The oldest time the database's retention period lets queries see.
    pub(crate) fn horizon(&self) -> Option<i64> {
        self.horizon
    }

    /// `time >= horizon`, the filter retention puts on every scan.
    fn retention_filter(&self, horizon: i64) -> Expr {
        col(crate::catalog::TIME_COLUMN).gt_eq(timestamp_literal(horizon))
    }

    /// Every source of the table, as of one instant, with a pin that keeps
    /// the files readable while it is held.
    pub(crate) fn all_sources(&self) -> (Vec<Arc<FileMeta>>, Vec<Arc<Chunk>>, Arc<ReadPin>) {
        let Snapshot { parts, pin, .. } = self.snapshot(TimeRange::ALL);
        let mut files = Vec::new();
        let mut chunks = Vec::new();
        for source in parts.into_values().flatten() {
            match source {
                Source::File(f) => files.push(f),
                Source::Chunk(c) => chunks.push(c),
            }
        }
        (files, chunks, pin)
    }

    /// The table's sources that may hold rows in `range`, by partition, as
    /// of one instant; also how many files the range pruned, and the pin
    /// that keeps those files until the reads are done.
    fn snapshot(&self, range: TimeRange) -> Snapshot {
        let Captured {
            files,
            chunks,
            tombstones,
            pin,
        } = match &self.fixed {
            Some(fixed) => fixed.captured.clone(),
            None => self.capture(),
        };
        let mut parts: BTreeMap<i64, Vec<Source>> = BTreeMap::new();
        let mut pruned = 0;
        let mine = |start: i64| {
            self.share
                .is_none_or(|(share, shares)| share_of(start, shares) == share)
        };
        let files = files.into_iter().filter(|f| mine(f.partition));
        let chunks = chunks.into_iter().filter(|(start, _)| mine(*start));
        for f in files {
            if self
                .fixed
                .as_ref()
                .is_some_and(|fixed| fixed.summarized.contains(&f.id))
            {
                continue;
            }
            if range.overlaps(f.min_time, f.max_time) {
                parts.entry(f.partition).or_default().push(Source::File(f));
            } else {
                pruned += 1;
            }
        }
        for (start, c) in chunks {
            if range.overlaps(c.min_time, c.max_time) {
                parts.entry(start).or_default().push(Source::Chunk(c));
            }
        }
        Snapshot {
            parts,
            pruned,
            pin,
            tombstones,
        }
    }

    /// Every source of the table, now.
    fn capture(&self) -> Captured {
        let state = self.shared.state_read();
        let pin = self.shared.readers.pin(state.version);
        let tombstones = state
            .tombstones
            .iter()
            .filter(|t| t.database == self.database && t.table == self.schema.name())
            .cloned()
            .collect();
        let files = state
            .manifest
            .files
            .iter()
            .filter(|f| f.database == self.database && f.table == self.schema.name())
            .filter(|f| !state.drops.iter().any(|d| d.covers_file(f)))
            .cloned()
            .collect();
        let mut chunks = Vec::new();
        let memtables = state
            .frozen
            .iter()
            .map(|m| m.as_ref())
            .chain([&state.active]);
        for m in memtables {
            if let Some(partitions) = m.table(&self.database, self.schema.name()) {
                for (start, part) in partitions {
                    chunks.extend(part.iter().map(|c| (*start, c.clone())));
                }
            }
        }
        Captured {
            files,
            chunks,
            tombstones,
            pin,
        }
    }

    /// The table's row count and time span (`None` when it has no row),
    /// from the manifest alone, when that is exact: the rows are all in
    /// files, no two of which may hold the same series and time, no delete
    /// applies to them and retention hides none. `None` otherwise.
    pub(crate) fn totals(&self) -> Option<(u64, Option<(i64, i64)>)> {
        if self.fixed.is_some() || self.share.is_some() {
            return None;
        }
        let Captured {
            files,
            chunks,
            tombstones,
            ..
        } = self.capture();
        let deleted = |f: &FileMeta| tombstones.iter().any(|t| t.applies_to_file(f));
        let hidden = |f: &FileMeta| self.horizon.is_some_and(|h| f.min_time < h);
        if !chunks.is_empty() || files.iter().any(|f| deleted(f) || hidden(f)) {
            return None;
        }
        let rows = files.iter().map(|f| f.rows).sum();
        let span = files
            .iter()
            .map(|f| (f.min_time, f.max_time))
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
        let sources = files.into_iter().map(Source::File).collect();
        overlap_groups(sources)
            .iter()
            .all(|group| group.len() == 1)
            .then_some((rows, span))
    }

    /// Whether the table has any source to read (files the summaries do
    /// not stand for, or memtable chunks).
    pub(crate) fn has_sources(&self) -> bool {
        match &self.fixed {
            Some(fixed) => {
                !fixed.captured.chunks.is_empty()
                    || fixed
                        .captured
                        .files
                        .iter()
                        .any(|f| !fixed.summarized.contains(&f.id))
            }
            None => true,
        }
    }

    /// Whether this table reads fixed sources (the raw part of a query
    /// that summaries answer in part).
    pub(crate) fn is_fixed(&self) -> bool {
        self.fixed.is_some()
    }

    /// Splits the table's sources, as of now, into files whose summaries
    /// can stand for their rows, and the rest: this table reading only the
    /// rest, as of the same instant. A file qualifies when its summary has
    /// windows `window_ns` wide keyed by every field in `keys`, no other
    /// source may hold one of its (series, time), no delete applies to it,
    /// and retention hides none of its rows. `None` when no file does.
    pub(crate) fn split_summarized(
        &self,
        window_ns: i64,
        keys: &std::collections::BTreeSet<String>,
    ) -> Option<(IngotTable, Vec<Arc<FileMeta>>, Arc<ReadPin>)> {
        let captured = self.capture();
        let sources: Vec<Source> = captured
            .files
            .iter()
            .cloned()
            .map(Source::File)
            .chain(
                captured
                    .chunks
                    .iter()
                    .map(|(_, c)| Source::Chunk(c.clone())),
            )
            .collect();
        let summarized: Vec<Arc<FileMeta>> = overlap_groups(sources)
            .into_iter()
            .filter_map(|group| match <[Source; 1]>::try_from(group) {
                Ok([Source::File(f)]) => Some(f),
                _ => None,
            })
            .filter(|f| {
                f.summary.as_ref().is_some_and(|s| {
                    s.window_ns == window_ns && keys.iter().all(|k| s.keys.contains(k))
                }) && !captured.tombstones.iter().any(|t| t.applies_to_file(f))
                    && self.horizon.is_none_or(|h| f.min_time >= h)
            })
            .collect();
        if summarized.is_empty() {
            return None;
        }
        let pin = captured.pin.clone();
        let fixed = FixedSources {
            captured,
            summarized: summarized.iter().map(|f| f.id).collect(),
        };
        let table = IngotTable {
            shared: self.shared.clone(),
            database: self.database.clone(),
            schema: self.schema.clone(),
            horizon: self.horizon,
            fixed: Some(Arc::new(fixed)),
            share: self.share,
        };
        Some((table, summarized, pin))
    }

    /// Whether a delete may still hide rows of this table.
    pub(crate) fn has_deletes(&self) -> bool {
        self.shared
            .state_read()
            .tombstones
            .iter()
            .any(|t| t.database == self.database && t.table == self.schema.name())
    }

    /// `exec` (rows of this table) without the rows `deletes` remove.
    fn without_deleted(
        &self,
        state: &dyn Session,
        exec: Arc<dyn ExecutionPlan>,
        deletes: &[&Tombstone],
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(keep) = deletes
            .iter()
            .map(|t| Expr::IsNotTrue(Box::new(t.to_expr())))
            .reduce(Expr::and)
        else {
            return Ok(exec);
        };
        let df_schema = DFSchema::try_from(exec.schema())?;
        let predicate = state.create_physical_expr(keep, &df_schema)?;
        Ok(Arc::new(FilterExec::try_new(predicate, exec)?))
    }

    pub(crate) async fn read_file(&self, file: &FileMeta) -> DfResult<Vec<RecordBatch>> {
        let path = StorePath::from(file.path.as_str());
        let bytes = self
            .shared
            .storage
            .read(&path)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        crate::parquet_file::read_all(bytes).map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// Merges rows from several sources by the duplicate rule; returns them
    /// sorted, with the tags they are sorted by (then time).
    fn merge_rows(&self, inputs: &[(u64, RecordBatch)]) -> DfResult<(RecordBatch, Vec<String>)> {
        let sorted =
            sort_dedup(&self.schema, inputs).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let key = sorted
            .key_order
            .iter()
            .map(|&i| self.schema.columns()[i].name.clone())
            .collect();
        Ok((sorted.batch, key))
    }

    /// A Parquet source over the table's files. Files never change once
    /// written, so their footers (with page indexes) are parsed once and kept
    /// in the runtime's metadata cache.
    /// Its readers hold `pin`, so the files stay while they are read.
    fn parquet_source(&self, pin: &Arc<ReadPin>) -> ParquetSource {
        self.parquet_source_of(self.schema(), pin)
    }

    /// A Parquet source over files of another schema (summaries).
    pub(crate) fn parquet_source_of(&self, schema: SchemaRef, pin: &Arc<ReadPin>) -> ParquetSource {
        let factory = CachedParquetFileReaderFactory::new(
            self.shared.storage.store.clone(),
            self.shared
                .runtime_env
                .cache_manager
                .get_file_metadata_cache(),
        );
        let factory = PinnedReaderFactory {
            inner: Arc::new(factory),
            pin: pin.clone(),
        };
        ParquetSource::new(schema).with_parquet_file_reader_factory(Arc::new(factory))
    }

    /// The row groups of `files` that may hold rows in `range` passing
    /// `filters`, from the footers in the runtime's metadata cache; with
    /// `count_pages`, the rows of their pages that may match too.
    async fn row_groups(
        &self,
        files: &[Arc<FileMeta>],
        (range, filters): (TimeRange, &[Expr]),
        count_pages: bool,
    ) -> DfResult<Vec<crate::row_groups::FileRowGroups>> {
        let cache = self
            .shared
            .runtime_env
            .cache_manager
            .get_file_metadata_cache();
        let store = &self.shared.storage.store;
        futures::stream::iter(files.iter().cloned())
            .map(|f| {
                let (store, cache) = (store.clone(), cache.clone());
                let query = (range, filters);
                crate::row_groups::prune(store, cache, f, &self.schema, query, count_pages)
            })
            .buffered(FOOTERS_AT_ONCE)
            .try_collect()
            .await
    }

    /// About how many rows a scan with `filters` decodes, counted until
    /// past `enough`: the rows of the memtable chunks in the time range,
    /// and of the file pages whose bounds may match ([`crate::row_groups`]).
    /// Footers come from the runtime's metadata cache, which keeps them for
    /// the scan; a wide scan stops after its first few files.
    pub(crate) async fn rows_read(&self, filters: &[Expr], enough: u64) -> DfResult<u64> {
        let range = TimeRange::from_filters(filters);
        let mut files = Vec::new();
        let mut rows = 0;
        for source in self.snapshot(range).parts.into_values().flatten() {
            match source {
                Source::File(f) if tags_may_match(&f, &self.schema, filters) => files.push(f),
                Source::File(_) => {}
                Source::Chunk(c) => rows += c.batch.num_rows() as u64,
            }
        }
        for some in files.chunks(FOOTERS_AT_ONCE) {
            if rows > enough {
                break;
            }
            let groups = self.row_groups(some, (range, filters), true).await?;
            rows += groups.iter().map(|f| f.may_match).sum::<u64>();
        }
        Ok(rows)
    }

    /// A scan of one file (all columns) that reads its row groups with
    /// times in `range`, dealt to the session's partitions.
    async fn file_exec(
        &self,
        state: &dyn Session,
        file: &Arc<FileMeta>,
        range: TimeRange,
        pin: &Arc<ReadPin>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let files = self
            .row_groups(std::slice::from_ref(file), (range, &[]), false)
            .await?;
        let target = state.config().target_partitions().max(1);
        let groups = crate::row_groups::spread(&files, target, false);
        let source = Arc::new(self.parquet_source(pin));
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, source)
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }

    /// The rows of `file` whose time lies in one of `windows`, or outside
    /// all of them.
    async fn file_rows_exec(
        &self,
        state: &dyn Session,
        file: &Arc<FileMeta>,
        windows: &[(i64, i64)],
        inside: bool,
        pin: &Arc<ReadPin>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        let df_schema = DFSchema::try_from(schema.clone())?;
        let ts = timestamp_literal;
        let in_windows = windows
            .iter()
            .map(|&(lo, hi)| {
                col(crate::catalog::TIME_COLUMN)
                    .gt_eq(ts(lo))
                    .and(col(crate::catalog::TIME_COLUMN).lt_eq(ts(hi)))
            })
            .reduce(Expr::or)
            .unwrap_or(lit(false));
        let predicate = if inside { in_windows } else { !in_windows };
        let predicate = state.create_physical_expr(predicate, &df_schema)?;
        // Rows inside the windows lie between the earliest and the latest.
        let range = match inside {
            true => TimeRange {
                min: windows.iter().map(|w| w.0).min().unwrap_or(i64::MIN),
                max: windows.iter().map(|w| w.1).max().unwrap_or(i64::MAX),
            },
            false => TimeRange::ALL,
        };
        Ok(Arc::new(FilterExec::try_new(
            predicate,
            self.file_exec(state, file, range, pin).await?,
        )?))
    }
}

/// A literal of the time column's type.
pub(crate) fn timestamp_literal(ns: i64) -> Expr {
    lit(ScalarValue::TimestampNanosecond(
        Some(ns),
        Some("UTC".into()),
    ))
}

/// The inclusive time intervals where at least two of `sources` overlap.
fn shared_windows(sources: &[Source]) -> Vec<(i64, i64)> {
    // Opens sort before closes at the same instant: ranges are inclusive.
    let mut events: Vec<(i64, u8)> = sources
        .iter()
        .flat_map(|s| {
            let (lo, hi) = s.range();
            [(lo, 0), (hi, 1)]
        })
        .collect();
    events.sort_unstable();
    let mut windows = Vec::new();
    let (mut open, mut start) = (0usize, 0i64);
    for (t, kind) in events {
        if kind == 0 {
            open += 1;
            if open == 2 {
                start = t;
            }
        } else {
            if open == 2 {
                windows.push((start, t));
            }
            open -= 1;
        }
    }
    windows
}

/// `windows` clipped to `[lo, hi]`.
fn clip(windows: &[(i64, i64)], lo: i64, hi: i64) -> Vec<(i64, i64)> {
    windows
        .iter()
        .filter(|&&(a, b)| a <= hi && b >= lo)
        .map(|&(a, b)| (a.max(lo), b.min(hi)))
        .collect()
}

/// The inclusive range of `time` that a query's filters allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeRange {
    pub min: i64,
    pub max: i64,
}

impl TimeRange {
    pub(crate) const ALL: TimeRange = TimeRange {
        min: i64::MIN,
        max: i64::MAX,
    };

    pub(crate) fn overlaps(&self, min: i64, max: i64) -> bool {
        min <= self.max && max >= self.min
    }

    /// Narrows the range with every top-level conjunct of the form
    /// `time <op> literal` (either side), `time BETWEEN a AND b`.
    pub(crate) fn from_filters(filters: &[Expr]) -> TimeRange {
        let mut range = TimeRange::ALL;
        for f in filters {
            range.narrow(f);
        }
        range
    }

    fn narrow(&mut self, expr: &Expr) {
        match expr {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And,
                right,
            }) => {
                self.narrow(left);
                self.narrow(right);
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, value) = match (is_time(left), is_time(right)) {
                    (true, false) => (*op, timestamp_ns(right)),
                    (false, true) => match op.swap() {
                        Some(op) => (op, timestamp_ns(left)),
                        None => return,
                    },
                    _ => return,
                };
                let Some(v) = value else { return };
                match op {
                    Operator::Eq => {
                        self.min = self.min.max(v);
                        self.max = self.max.min(v);
                    }
                    Operator::Gt => self.min = self.min.max(v.saturating_add(1)),
                    Operator::GtEq => self.min = self.min.max(v),
                    Operator::Lt => self.max = self.max.min(v.saturating_sub(1)),
                    Operator::LtEq => self.max = self.max.min(v),
                    _ => {}
                }
            }
            Expr::Between(b) if !b.negated && is_time(&b.expr) => {
                if let (Some(lo), Some(hi)) = (timestamp_ns(&b.low), timestamp_ns(&b.high)) {
                    self.min = self.min.max(lo);
                    self.max = self.max.min(hi);
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn is_time(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(c) if c.name == crate::catalog::TIME_COLUMN)
}

/// A timestamp literal as nanoseconds since the epoch.
pub(crate) fn timestamp_ns(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

/// What the manifest knows of a set of files: their row count and time span,
/// exact when no filter narrows the scan (files hold each (series, time) once
/// and do not overlap one another), which lets DataFusion answer `count(*)`,
/// `min(time)` and `max(time)` without reading them.
fn files_statistics(schema: &SchemaRef, files: &[Arc<FileMeta>], exact: bool) -> Statistics {
    let mut stats = Statistics::new_unknown(schema);
    let rows: usize = files.iter().map(|f| f.rows as usize).sum();
    let bytes: usize = files.iter().map(|f| f.bytes as usize).sum();
    let min = files.iter().map(|f| f.min_time).min();
    let max = files.iter().map(|f| f.max_time).max();
    stats.num_rows = known(exact, rows);
    stats.total_byte_size = Precision::Inexact(bytes);
    if let (Some(min), Some(max), Ok(i)) = (min, max, schema.index_of(crate::catalog::TIME_COLUMN))
    {
        let ts = |v: i64| ScalarValue::TimestampNanosecond(Some(v), Some("UTC".into()));
        let col = &mut stats.column_statistics[i];
        col.null_count = Precision::Exact(0);
        col.min_value = known(exact, ts(min));
        col.max_value = known(exact, ts(max));
    }
    stats
}

fn known<T: std::fmt::Debug + Clone + PartialEq + Eq + PartialOrd>(
    exact: bool,
    v: T,
) -> Precision<T> {
    if exact {
        Precision::Exact(v)
    } else {
        Precision::Inexact(v)
    }
}

/// Splits sources into groups that may hold the same (series, time):
/// sources whose time ranges overlap, transitively, then split further where
/// the files' tag ranges show they hold different series.
fn overlap_groups(mut sources: Vec<Source>) -> Vec<Vec<Source>> {
    sources.sort_by_key(|s| s.range());
    let mut groups: Vec<Vec<Source>> = Vec::new();
    let mut group_end = i64::MIN;
    for s in sources {
        let (lo, hi) = s.range();
        match groups.last_mut() {
            Some(g) if lo <= group_end => {
                g.push(s);
                group_end = group_end.max(hi);
            }
            _ => {
                groups.push(vec![s]);
                group_end = hi;
            }
        }
    }
    groups.into_iter().flat_map(split_by_series).collect()
}

/// Splits a group of time-overlapping sources into the connected parts of
/// "may share a series and a time"; a group larger than this is left whole,
/// as the pairwise check grows with its square.
fn split_by_series(group: Vec<Source>) -> Vec<Vec<Source>> {
    const MAX_SPLIT: usize = 64;
    if group.len() < 2 || group.len() > MAX_SPLIT {
        return vec![group];
    }
    let n = group.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..n {
        for j in i + 1..n {
            if may_share_rows(&group[i], &group[j]) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut parts: BTreeMap<usize, Vec<Source>> = BTreeMap::new();
    for (i, s) in group.into_iter().enumerate() {
        let r = root(&mut parent, i);
        parts.entry(r).or_default().push(s);
    }
    parts.into_values().collect()
}

/// Whether two sources may hold a row with the same (series, time).
fn may_share_rows(a: &Source, b: &Source) -> bool {
    let ((a_lo, a_hi), (b_lo, b_hi)) = (a.range(), b.range());
    if a_hi < b_lo || b_hi < a_lo {
        return false;
    }
    let (Source::File(a), Source::File(b)) = (a, b) else {
        return true;
    };
    // A series lives on one writer node of a cluster.
    if a.node != b.node {
        return false;
    }
    let (Some(a), Some(b)) = (&a.tag_ranges, &b.tag_ranges) else {
        return true;
    };
    // A tag whose values in the two files do not overlap separates every
    // series of one from every series of the other.
    !a.iter().any(|(tag, (a_min, a_max))| {
        b.get(tag)
            .is_some_and(|(b_min, b_max)| a_max < b_min || b_max < a_min)
    })
}

/// Whether `file` may hold a row that passes every filter, judged by the
/// manifest's tag ranges: a conjunct `tag = 'v'`, `tag IN (...)` or
/// `tag <op> 'v'` that no value in the file's range satisfies prunes it.
pub(crate) fn tags_may_match(file: &FileMeta, table: &TableSchema, filters: &[Expr]) -> bool {
    let Some(ranges) = &file.tag_ranges else {
        return true;
    };
    ranges_may_match(ranges, table, filters)
}

/// Whether rows whose tags lie in `ranges` (a tag missing there is null)
/// may pass every filter.
pub(crate) fn ranges_may_match(
    ranges: &BTreeMap<String, (String, String)>,
    table: &TableSchema,
    filters: &[Expr],
) -> bool {
    filters.iter().all(|f| conjunct_may_match(f, table, ranges))
}

fn conjunct_may_match(
    expr: &Expr,
    table: &TableSchema,
    ranges: &BTreeMap<String, (String, String)>,
) -> bool {
    // A tag that has no value in the file is null in every row there, and a
    // comparison with null is never true.
    let range_of = |name: &str| ranges.get(name).map(|(lo, hi)| (lo.as_str(), hi.as_str()));
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => conjunct_may_match(left, table, ranges) && conjunct_may_match(right, table, ranges),
        // DataFusion turns short IN lists into chains of OR.
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => conjunct_may_match(left, table, ranges) || conjunct_may_match(right, table, ranges),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (tag, op, value) = match (tag_column(left, table), string_literal(right)) {
                (Some(tag), Some(value)) => (tag, *op, value),
                _ => match (tag_column(right, table), string_literal(left), op.swap()) {
                    (Some(tag), Some(value), Some(op)) => (tag, op, value),
                    _ => return true,
                },
            };
            let Some((lo, hi)) = range_of(tag) else {
                return !matches!(
                    op,
                    Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
                );
            };
            match op {
                Operator::Eq => lo <= value && value <= hi,
                Operator::Lt => lo < value,
                Operator::LtEq => lo <= value,
                Operator::Gt => hi > value,
                Operator::GtEq => hi >= value,
                _ => true,
            }
        }
        Expr::InList(list) if !list.negated => {
            let Some(tag) = tag_column(&list.expr, table) else {
                return true;
            };
            let Some(values) = list
                .list
                .iter()
                .map(string_literal)
                .collect::<Option<Vec<_>>>()
            else {
                return true;
            };
            match range_of(tag) {
                Some((lo, hi)) => values.iter().any(|v| lo <= *v && *v <= hi),
                None => false,
            }
        }
        _ => true,
    }
}

/// The tag a (possibly cast) column reference names.
pub(crate) fn tag_column<'a>(expr: &'a Expr, table: &TableSchema) -> Option<&'a str> {
    match expr {
        Expr::Column(c) => table
            .column(&c.name)
            .filter(|col| col.kind == ColumnKind::Tag)
            .map(|_| c.name.as_str()),
        Expr::Cast(cast) => tag_column(&cast.expr, table),
        Expr::TryCast(cast) => tag_column(&cast.expr, table),
        _ => None,
    }
}

pub(crate) fn string_literal(expr: &Expr) -> Option<&str> {
    fn string(value: &ScalarValue) -> Option<&str> {
        match value {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Some(s),
            ScalarValue::Dictionary(_, inner) => string(inner),
            _ => None,
        }
    }
    match expr {
        Expr::Literal(value, _) => string(value),
        Expr::Cast(cast) => string_literal(&cast.expr),
        _ => None,
    }
}

/// The order rows come in from a source sorted by `sort_key` then time.
fn lex_ordering(schema: &SchemaRef, sort_key: &[String]) -> Option<LexOrdering> {
    let mut exprs = Vec::with_capacity(sort_key.len() + 1);
    for name in sort_key
        .iter()
        .map(String::as_str)
        .chain([crate::catalog::TIME_COLUMN])
    {
        let index = schema.index_of(name).ok()?;
        exprs.push(PhysicalSortExpr::new(
            Arc::new(Column::new(name, index)),
            SortOptions {
                descending: false,
                nulls_first: false,
            },
        ));
    }
    LexOrdering::new(exprs)
}

/// Files beyond this many are read without a declared order: one partition
/// per file is what lets DataFusion rely on each file's order, and merging
/// more streams than this costs more than the order saves.
const MAX_ORDERED_FILES: usize = 256;

/// Footers a scan's planning reads at once when they are not cached (from
/// an object store, each is a request).
const FOOTERS_AT_ONCE: usize = 16;

/// How one scan was planned; shown by `EXPLAIN ANALYZE` on the file scan.
#[derive(Debug, Default)]
struct ScanCounts {
    files_pruned_by_time: usize,
    files_pruned_by_tags: usize,
    files_scanned: usize,
    /// Row groups of the scanned files that Ingot's planning left out.
    row_groups_pruned: usize,
    files_partly_merged: usize,
    sources_merged: usize,
    rows_merged_from_files: usize,
}

impl ScanCounts {
    fn record(&self, metrics: &ExecutionPlanMetricsSet) {
        let counts = [
            ("files_pruned_by_time", self.files_pruned_by_time),
            ("files_pruned_by_tags", self.files_pruned_by_tags),
            ("files_scanned", self.files_scanned),
            ("row_groups_pruned_by_ingot", self.row_groups_pruned),
            ("files_partly_merged", self.files_partly_merged),
            ("sources_merged", self.sources_merged),
            ("rows_merged_from_files", self.rows_merged_from_files),
        ];
        for (name, value) in counts {
            MetricBuilder::new(metrics).global_counter(name).add(value);
        }
    }
}

#[async_trait]
impl TableProvider for IngotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.arrow_schema().clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters prune files and row groups; DataFusion still applies them to
        // the rows that remain.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    /// `DELETE FROM t WHERE ...`: logs a delete of the matching rows in the
    /// WAL and answers how many visible rows it removed, one per (series,
    /// time), in DataFusion's DML shape (one row, column `count`).
    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let external = |e: crate::error::Error| DataFusionError::External(Box::new(e));
        let tombstone =
            Tombstone::from_filters(&self.database, &self.schema, &filters).map_err(external)?;
        let mut deleted = 0u64;
        if !tombstone.is_empty() {
            // The visible rows it matches, counted just before it commits.
            let plan = self.scan(state, None, &filters, None).await?;
            let df_schema = DFSchema::try_from(plan.schema())?;
            let matches = filters
                .iter()
                .cloned()
                .reduce(Expr::and)
                .unwrap_or(lit(true));
            let predicate = state.create_physical_expr(matches, &df_schema)?;
            let plan = Arc::new(
                FilterExecBuilder::new(predicate, plan)
                    .apply_projection(Some(vec![self.schema.time_index()]))?
                    .build()?,
            );
            let mut stream = execute_stream(plan, state.task_ctx())?;
            while let Some(batch) = stream.next().await {
                deleted += batch?.num_rows() as u64;
            }
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || shared.commit_delete(tombstone))
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
                .map_err(external)?;
            self.shared
                .stats
                .rows_deleted
                .fetch_add(deleted, std::sync::atomic::Ordering::Relaxed);
        }
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("count", arrow::datatypes::DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow::array::UInt64Array::from(vec![deleted]))],
        )?;
        let memory = MemorySourceConfig::try_new(&[vec![batch]], schema, None)?;
        Ok(DataSourceExec::from_data_source(memory))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(horizon) = self.horizon else {
            return self.scan_sources(state, projection, filters, limit).await;
        };
        // Retention: the sources are read with the horizon as one more
        // filter (pruning files, row groups and pages before it), and a
        // filter on top drops the older rows that remain. The time column is
        // read for that filter and projected away after it; the limit cannot
        // go below the filter.
        let time = self.schema.time_index();
        let inner = projection.map(|p| {
            let mut p = p.clone();
            if !p.contains(&time) {
                p.push(time);
            }
            p
        });
        let mut filters = filters.to_vec();
        let retention = self.retention_filter(horizon);
        filters.push(retention.clone());
        let plan = self
            .scan_sources(state, inner.as_ref(), &filters, None)
            .await?;
        let df_schema = DFSchema::try_from(plan.schema())?;
        let predicate = state.create_physical_expr(retention, &df_schema)?;
        let mut filter = FilterExecBuilder::new(predicate, plan);
        if let (Some(p), Some(i)) = (projection, &inner)
            && p.len() < i.len()
        {
            filter = filter.apply_projection(Some((0..p.len()).collect()))?;
        }
        Ok(Arc::new(filter.build()?))
    }
}

impl IngotTable {
    /// Plans the read of every source that may match `filters`: plain file
    /// scans, and merges where sources overlap.
    async fn scan_sources(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        let range = TimeRange::from_filters(filters);
        let Snapshot {
            parts: snapshot,
            pruned: files_pruned_by_time,
            pin,
            tombstones,
        } = self.snapshot(range);
        let file_deletes = |f: &FileMeta| -> Vec<&Tombstone> {
            tombstones
                .iter()
                .filter(|t| t.applies_to_file(f))
                .map(|t| t.as_ref())
                .collect()
        };
        let mut counts = ScanCounts {
            files_pruned_by_time,
            ..ScanCounts::default()
        };
        let mut plain_files = Vec::new();
        // Parts of files outside the windows they share with other sources.
        let mut partial_files: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let mut merged = Vec::new();
        for (_, sources) in snapshot {
            let sources: Vec<Source> = sources
                .into_iter()
                .filter(|s| match s {
                    Source::File(f) if !tags_may_match(f, &self.schema, filters) => {
                        counts.files_pruned_by_tags += 1;
                        false
                    }
                    _ => true,
                })
                .collect();
            for group in overlap_groups(sources) {
                if let [Source::File(f)] = group.as_slice() {
                    let deletes = file_deletes(f);
                    if deletes.is_empty() {
                        plain_files.push(f.clone());
                    } else {
                        let exec = self.file_exec(state, f, range, &pin).await?;
                        partial_files.push(self.without_deleted(state, exec, &deletes)?);
                    }
                    continue;
                }
                // Only rows in the windows where sources overlap can be
                // duplicates, plus whatever is in the memtable (a write may
                // repeat a key within itself): those are merged; the rest of
                // each file is read as it is.
                counts.sources_merged += group.len();
                let windows = shared_windows(&group);
                let mut inputs = Vec::new();
                for source in &group {
                    match source {
                        Source::Chunk(c) => {
                            let deletes: Vec<&Tombstone> = tombstones
                                .iter()
                                .filter(|t| {
                                    t.applies_to_chunk(&self.database, self.schema.name(), c.seq)
                                })
                                .map(|t| t.as_ref())
                                .collect();
                            let batch = remove_deleted(&c.batch, &deletes)
                                .map_err(|e| DataFusionError::External(Box::new(e)))?;
                            inputs.push((c.seq, batch));
                        }
                        Source::File(f) => {
                            let deletes = file_deletes(f);
                            let inside = clip(&windows, f.min_time, f.max_time);
                            if inside.is_empty() {
                                if deletes.is_empty() {
                                    plain_files.push(f.clone());
                                } else {
                                    let exec = self.file_exec(state, f, range, &pin).await?;
                                    partial_files
                                        .push(self.without_deleted(state, exec, &deletes)?);
                                }
                                continue;
                            }
                            if inside != [(f.min_time, f.max_time)] {
                                let outside =
                                    self.file_rows_exec(state, f, &inside, false, &pin).await?;
                                partial_files.push(self.without_deleted(state, outside, &deletes)?);
                            }
                            let rows = self.file_rows_exec(state, f, &inside, true, &pin).await?;
                            let rows = self.without_deleted(state, rows, &deletes)?;
                            for b in collect(rows, state.task_ctx()).await? {
                                counts.rows_merged_from_files += b.num_rows();
                                inputs.push((f.max_seq, b));
                            }
                        }
                    }
                }
                if !inputs.is_empty() {
                    merged.push(self.merge_rows(&inputs)?);
                }
            }
        }
        counts.files_scanned = plain_files.len();
        counts.files_partly_merged = partial_files.len();
        let any_files = counts.files_scanned
            + counts.files_partly_merged
            + counts.files_pruned_by_time
            + counts.files_pruned_by_tags
            > 0;
        // One order for everything the scan reads, when every source has it.
        let sort_key = plain_files
            .iter()
            // Files in time slices are not in one (series, time) order.
            .map(|f| f.sort_key.clone().filter(|_| f.time_slice_ns.is_none()))
            .chain(merged.iter().map(|m| Some(m.1.clone())))
            .reduce(|a, b| if a == b { a } else { None })
            .flatten()
            .filter(|_| {
                self.shared.options.declare_file_order && plain_files.len() <= MAX_ORDERED_FILES
            });
        let ordering = sort_key.and_then(|key| lex_ordering(&schema, &key));
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if any_files {
            // Ingot deals the row groups that may match to the partitions
            // itself ([`crate::row_groups`]); DataFusion's own split of
            // files into byte ranges is off.
            let files = self
                .row_groups(&plain_files, (range, filters), false)
                .await?;
            counts.row_groups_pruned = files.iter().map(|f| f.total - f.kept.len()).sum();
            let target = state.config().target_partitions().max(1);
            let groups = crate::row_groups::spread(&files, target, ordering.is_some());
            // DataFusion pushes the query's filters into the source itself
            // (`pushdown_filters`), for row-group, page and row pruning.
            let blooms = crate::row_groups::blooms_may_prune(&plain_files, &self.schema, filters);
            let source = self.parquet_source(&pin).with_bloom_filter_on_read(blooms);
            counts.record(source.metrics());
            let source = Arc::new(source);
            let config = FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, source)
                .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                .with_statistics(files_statistics(&schema, &plain_files, filters.is_empty()))
                .with_output_ordering(ordering.iter().cloned().collect())
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }
        for exec in partial_files {
            inputs.push(match projection {
                Some(p) => Arc::new(ProjectionExec::try_new(
                    p.iter().map(|&i| {
                        let field = schema.field(i);
                        (
                            Arc::new(Column::new(field.name(), i))
                                as Arc<dyn datafusion::physical_expr::PhysicalExpr>,
                            field.name().clone(),
                        )
                    }),
                    exec,
                )?),
                None => exec,
            });
        }
        if !merged.is_empty() {
            let partitions = merged
                .iter()
                .map(|(b, _)| align(b, &schema).map(|b| vec![b]))
                .collect::<crate::error::Result<Vec<_>>>()
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let mut memory =
                MemorySourceConfig::try_new(&partitions, schema.clone(), projection.cloned())?
                    .with_limit(limit);
            if let Some(ordering) = &ordering {
                memory = memory.try_with_sort_information(vec![ordering.clone()])?;
            }
            inputs.push(DataSourceExec::from_data_source(memory));
        }
        tracing::debug!(table = self.schema.name(), ?counts, "scan planned");
        Ok(match inputs.len() {
            0 => {
                let projected = match projection {
                    Some(p) => Arc::new(schema.project(p)?),
                    None => schema,
                };
                Arc::new(EmptyExec::new(projected))
            }
            1 => inputs.pop().expect("one input"),
            _ => UnionExec::try_new(inputs)?,
        })
    }
}

/// Which of `shares` shares reads the time partition starting at `start`
/// (ns): a hash of the start, so that consecutive partitions spread over
/// the shares whatever the partition width (which a reader need not know).
pub(crate) fn share_of(start: i64, shares: u64) -> u64 {
    // splitmix64's finalizer.
    let mut z = start as u64;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % shares.max(1)
}

/// Reads one share of a table's rows for a distributed engine that splits
/// a scan across its workers: the time partitions that [`share_of`] gives
/// to `share`. Each partition is read
/// whole by one share, so Ingot's own scan (pruning, the duplicate rule
/// where files overlap, deletes, retention) gives each share exactly its
/// rows, and the shares together are the table. Runs on the engine's own
/// runtime and object store.
pub(crate) async fn scan_share(
    shared: Arc<Shared>,
    database: &str,
    table: &str,
    (share, shares): (u64, u64),
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> crate::error::Result<datafusion::execution::SendableRecordBatchStream> {
    if shares == 0 || share >= shares {
        return Err(crate::error::Error::InvalidInput(format!(
            "share {share} of {shares}: a share is a number below the count of shares"
        )));
    }
    let schema = shared
        .catalog_read()
        .table(database, table)
        .ok_or_else(|| {
            crate::error::Error::NotFound(format!("table {database}.{table} does not exist"))
        })?;
    let horizon = crate::retention::horizon(
        shared.catalog_read().retention(database),
        crate::flush::now_ns(),
    );
    let ctx = session(shared.clone());
    let provider = IngotTable {
        shared,
        database: database.to_string(),
        schema,
        horizon,
        fixed: None,
        share: Some((share, shares)),
    };
    let state = ctx.state();
    let plan = provider.scan(&state, projection, filters, limit).await?;
    Ok(execute_stream(plan, ctx.task_ctx())?)
}
