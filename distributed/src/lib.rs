//! Distributed SQL over Ingot tables in object storage, on Apache DataFusion
//! Ballista: a scheduler plans, executors read, and Ingot's own scan runs
//! inside the executors.
//!
//! **How a query runs.** A client's context ([`remote_context`]) holds one
//! [`DistributedTable`] per Ingot table of a bucket prefix
//! ([`register_tables`]). Ballista sends the logical plan to the scheduler
//! (the table crosses with [`IngotLogicalCodec`]), whose planner turns each
//! table scan into a file scan of `shares` partitions over an
//! [`IngotShareSource`]: partition `i` reads share `i` of the table.
//! Ballista cuts the plan into stages, restricts each task's scan to its
//! own partitions (as it does for Parquet files), and sends the task to an
//! executor, encoded by [`IngotPhysicalCodec`]. The executor reads each of
//! its shares through a read-only Ingot engine on the same prefix (one per
//! prefix and process, following the writers' manifests like any query
//! replica): [`ingot_engine::Engine::scan_share`] reads the table's time
//! partitions that a hash of their start gives the share, with Ingot's
//! pruning by time and tags, its duplicate rule where files overlap,
//! deletes and retention. A time partition is read whole by one share, so
//! the answers are exact where files overlap, as on one node. Tags cross
//! the cluster as strings ([`plain_schema`]).
//!
//! **What each process needs.** The scheduler needs nothing of the bucket.
//! Executors and the client reach it with the usual `AWS_*` variables. The
//! binary `ingot-ballista` runs either process (`scheduler`, `executor`).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use ballista::extension::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult, TableReference};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileGroup, FileOpenFuture, FileOpener, FileScanConfig, FileScanConfigBuilder, FileSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::{SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::{DisplayFormatType, ExecutionPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::bytes::Serializeable;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use futures::{StreamExt, TryStreamExt};
use ingot_engine::{DEFAULT_DATABASE, Engine, Options};
use prost::Message;
use serde::{Deserialize, Serialize};

/// What starts every encoded Ingot node, so the codecs can tell theirs
/// from Ballista's and DataFusion's.
const MAGIC: &[u8] = b"INGOT1";

/// An Ingot table in a bucket prefix, as the client and the scheduler know
/// it: names and a schema, no engine.
#[derive(Debug, Clone)]
pub struct DistributedTable {
    /// The prefix the table's writers use: `s3://bucket/prefix`.
    pub store_url: String,
    pub database: String,
    pub table: String,
    pub schema: SchemaRef,
    /// How many tasks read the table (the scan's partitions).
    pub shares: usize,
}

#[async_trait]
impl TableProvider for DistributedTable {
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
        // Ingot's scan prunes with them; DataFusion still applies them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let source =
            IngotShareSource::new(self.clone(), projection.cloned(), filters.to_vec(), limit)?;
        Ok(source.exec(0..self.shares.max(1)))
    }
}

/// Ingot's scan as the file source of a DataFusion file scan, so that
/// Ballista's scheduler can hand each task its own shares: each "file" of
/// the scan names one share of the table (`ingot-share/{i}`), and the
/// scheduler restricts a task's scan to the file groups of its partitions,
/// as it does for Parquet files. Opening a share reads it through a
/// read-only engine in the executor ([`Engine::scan_share`]).
#[derive(Debug, Clone)]
pub struct IngotShareSource {
    table: DistributedTable,
    projection: Option<Vec<usize>>,
    filters: Vec<Expr>,
    limit: Option<usize>,
    /// The projected (plain) schema the shares return.
    table_schema: datafusion::datasource::table_schema::TableSchema,
    metrics: ExecutionPlanMetricsSet,
}

/// The path that names share `i` in a scan's file groups.
fn share_path(i: usize) -> String {
    format!("ingot-share/{i}")
}

impl IngotShareSource {
    fn new(
        table: DistributedTable,
        projection: Option<Vec<usize>>,
        filters: Vec<Expr>,
        limit: Option<usize>,
    ) -> DfResult<IngotShareSource> {
        let schema = match &projection {
            Some(p) => Arc::new(table.schema.project(p)?),
            None => table.schema.clone(),
        };
        Ok(IngotShareSource {
            table,
            projection,
            filters,
            limit,
            table_schema: schema.into(),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// A scan of the given shares, one partition each.
    fn exec(self, shares: impl IntoIterator<Item = usize>) -> Arc<dyn ExecutionPlan> {
        let groups: Vec<FileGroup> = shares
            .into_iter()
            .map(|i| FileGroup::new(vec![PartitionedFile::new(share_path(i), 0)]))
            .collect();
        // The scan reads nothing through DataFusion's object stores; the
        // local file system's URL is one every runtime has.
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(self))
            .with_file_groups(groups)
            .build();
        DataSourceExec::from_data_source(config)
    }
}

impl FileSource for IngotShareSource {
    fn create_file_opener(
        &self,
        _object_store: Arc<dyn object_store::ObjectStore>,
        _base_config: &FileScanConfig,
        _partition: usize,
    ) -> DfResult<Arc<dyn FileOpener>> {
        Ok(Arc::new(ShareOpener {
            source: self.clone(),
        }))
    }

    fn table_schema(&self) -> &datafusion::datasource::table_schema::TableSchema {
        &self.table_schema
    }

    fn with_batch_size(&self, _batch_size: usize) -> Arc<dyn FileSource> {
        Arc::new(self.clone())
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        &self.metrics
    }

    fn file_type(&self) -> &str {
        "ingot"
    }

    fn supports_repartitioning(&self) -> bool {
        false
    }

    fn fmt_extra(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            ", table={}.{}, shares={}, filters={}",
            self.table.database,
            self.table.table,
            self.table.shares,
            self.filters.len()
        )
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
}

/// Opens one share of a table: reads it through the executor's read-only
/// engine on the table's prefix.
struct ShareOpener {
    source: IngotShareSource,
}

impl FileOpener for ShareOpener {
    fn open(&self, file: PartitionedFile) -> DfResult<FileOpenFuture> {
        let path = file.object_meta.location.to_string();
        let share: u64 = path
            .strip_prefix("ingot-share/")
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| DataFusionError::Internal(format!("{path:?} names no Ingot share")))?;
        let source = self.source.clone();
        let schema = self.source.table_schema.file_schema().clone();
        Ok(Box::pin(async move {
            let engine = replica(&source.table.store_url).await?;
            let stream = engine
                .scan_share(
                    &source.table.database,
                    &source.table.table,
                    (share, source.table.shares as u64),
                    source.projection.as_ref(),
                    &source.filters,
                    source.limit,
                )
                .await
                .map_err(external)?;
            Ok(stream
                .and_then(move |batch| {
                    let schema = schema.clone();
                    async move { plain_batch(&batch, &schema) }
                })
                .boxed())
        }))
    }
}

/// A table's schema with its dictionary columns (tags) as their values'
/// type: what crosses Ballista's shuffles.
pub fn plain_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, value) => f.as_ref().clone().with_data_type(*value.clone()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with each column cast to `schema`'s type (tags from
/// dictionaries to strings).
fn plain_batch(batch: &RecordBatch, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| match c.data_type() == f.data_type() {
            true => Ok(c.clone()),
            false => cast(c, f.data_type()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}

fn external(e: ingot_engine::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Where this process keeps its read-only engines' data directories (their
/// caches of the bucket's files).
static REPLICA_DIR: OnceLock<PathBuf> = OnceLock::new();
/// One read-only engine per bucket prefix in this process. Held while one
/// opens, so that two tasks never open the same directory at once.
static REPLICAS: OnceLock<tokio::sync::Mutex<HashMap<String, Engine>>> = OnceLock::new();

/// Sets where this process's read-only engines keep their data directories
/// (by default a folder in the system's temporary directory). Call it
/// before the first query; later calls are ignored.
pub fn set_replica_dir(dir: PathBuf) {
    let _ = REPLICA_DIR.set(dir);
}

/// The read-only engine of `store_url` in this process, opened on first use.
async fn replica(store_url: &str) -> DfResult<Engine> {
    let mut replicas = REPLICAS
        .get_or_init(|| tokio::sync::Mutex::new(HashMap::new()))
        .lock()
        .await;
    if let Some(engine) = replicas.get(store_url) {
        return Ok(engine.clone());
    }
    let url = store_url.to_string();
    let engine = tokio::task::spawn_blocking(move || open_replica(&url))
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))??;
    replicas.insert(store_url.to_string(), engine.clone());
    Ok(engine)
}

fn open_replica(store_url: &str) -> DfResult<Engine> {
    let root = REPLICA_DIR.get_or_init(|| {
        std::env::temp_dir().join(format!("ingot-ballista-{}", std::process::id()))
    });
    let name: String = store_url
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut options = Options::default();
    options.object_store = Some(ingot_engine::object_store_from_url(store_url).map_err(external)?);
    options.read_only = true;
    Engine::open(root.join(name), options).map_err(external)
}

/// A Ballista client context on the scheduler at `scheduler_url`
/// (`df://host:port`) that knows Ingot's tables.
pub async fn remote_context(scheduler_url: &str) -> DfResult<SessionContext> {
    let config = SessionConfig::new_with_ballista()
        .with_ballista_logical_extension_codec(Arc::new(IngotLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(IngotPhysicalCodec::default()));
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build();
    SessionContext::remote_with_state(scheduler_url, state).await
}

/// Registers in `ctx` every table of `engine` (a read-only engine on
/// `store_url`, the prefix its writers use): the default database's tables
/// by their names, the others' as `database.table`. Each is read in
/// `shares` tasks.
pub async fn register_tables(
    ctx: &SessionContext,
    engine: &Engine,
    store_url: &str,
    shares: usize,
) -> DfResult<()> {
    let session = engine.session();
    for database in engine.databases() {
        if database != DEFAULT_DATABASE {
            let schema = Arc::new(datafusion::catalog::MemorySchemaProvider::new());
            ctx.catalog("datafusion")
                .ok_or_else(|| DataFusionError::Plan("no default catalog".into()))?
                .register_schema(&database, schema)?;
        }
        for table in engine.tables(&database) {
            let provider = session
                .table_provider(TableReference::partial(database.as_str(), table.as_str()))
                .await?;
            let distributed = DistributedTable {
                store_url: store_url.to_string(),
                database: database.clone(),
                table: table.clone(),
                schema: plain_schema(&provider.schema()),
                shares,
            };
            let name = match database.as_str() {
                DEFAULT_DATABASE => TableReference::bare(table),
                _ => TableReference::partial(database.as_str(), table.as_str()),
            };
            ctx.register_table(name, Arc::new(distributed))?;
        }
    }
    Ok(())
}

/// A table or a scan as encoded, after [`MAGIC`].
#[derive(Serialize, Deserialize)]
struct Encoded {
    store_url: String,
    database: String,
    table: String,
    shares: usize,
    /// The scan's: the table's schema (protobuf), projection, filters (each
    /// a protobuf expression) and limit; absent for a table.
    #[serde(default)]
    schema: Vec<u8>,
    #[serde(default)]
    projection: Option<Vec<usize>>,
    #[serde(default)]
    filters: Vec<Vec<u8>>,
    #[serde(default)]
    limit: Option<usize>,
    /// The shares the scan reads.
    #[serde(default)]
    scan_shares: Vec<usize>,
}

impl Encoded {
    fn write(&self, buf: &mut Vec<u8>) -> DfResult<()> {
        buf.extend_from_slice(MAGIC);
        serde_json::to_writer(buf, self).map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// The node in `buf`, or `None` when it is not Ingot's.
    fn read(buf: &[u8]) -> DfResult<Option<Encoded>> {
        let Some(body) = buf.strip_prefix(MAGIC) else {
            return Ok(None);
        };
        serde_json::from_slice(body)
            .map(Some)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    fn of_table(t: &DistributedTable) -> Encoded {
        Encoded {
            store_url: t.store_url.clone(),
            database: t.database.clone(),
            table: t.table.clone(),
            shares: t.shares,
            schema: Vec::new(),
            projection: None,
            filters: Vec::new(),
            limit: None,
            scan_shares: Vec::new(),
        }
    }

    fn table(&self, schema: SchemaRef) -> DistributedTable {
        DistributedTable {
            store_url: self.store_url.clone(),
            database: self.database.clone(),
            table: self.table.clone(),
            schema,
            shares: self.shares,
        }
    }
}

/// Ballista's logical codec, and Ingot's tables.
#[derive(Debug, Default)]
pub struct IngotLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for IngotLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> DfResult<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        match Encoded::read(buf)? {
            Some(encoded) => Ok(Arc::new(encoded.table(schema))),
            None => self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        match node.downcast_ref::<DistributedTable>() {
            Some(table) => Encoded::of_table(table).write(buf),
            None => self.inner.try_encode_table_provider(table_ref, node, buf),
        }
    }
}

/// Ballista's physical codec, and Ingot's scans.
#[derive(Debug, Default)]
pub struct IngotPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for IngotPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(encoded) = Encoded::read(buf)? else {
            return self.inner.try_decode(buf, inputs, ctx, proto_converter);
        };
        let schema = datafusion_proto::protobuf::Schema::decode(encoded.schema.as_slice())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let schema: arrow::datatypes::Schema = (&schema).try_into()?;
        let filters = encoded
            .filters
            .iter()
            .map(|bytes| Expr::from_bytes_with_ctx(bytes, ctx))
            .collect::<DfResult<Vec<_>>>()?;
        let source = IngotShareSource::new(
            encoded.table(Arc::new(schema)),
            encoded.projection.clone(),
            filters,
            encoded.limit,
        )?;
        Ok(source.exec(encoded.scan_shares.iter().copied()))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        let Some((config, source)) = share_scan(&node) else {
            return self.inner.try_encode(node, buf, proto_converter);
        };
        let schema = datafusion_proto::protobuf::Schema::try_from(source.table.schema.as_ref())?;
        let mut encoded = Encoded::of_table(&source.table);
        encoded.schema = schema.encode_to_vec();
        encoded.projection = source.projection.clone();
        encoded.limit = source.limit;
        encoded.filters = source
            .filters
            .iter()
            .map(|f| f.to_bytes().map(|b| b.to_vec()))
            .collect::<DfResult<_>>()?;
        // The shares this scan reads: all of them as planned, a task's own
        // once the scheduler has restricted the scan to its partitions.
        encoded.scan_shares = config
            .file_groups
            .iter()
            .flat_map(|g| g.files())
            .map(|f| {
                let path = f.object_meta.location.to_string();
                path.strip_prefix("ingot-share/")
                    .and_then(|i| i.parse().ok())
                    .ok_or_else(|| {
                        DataFusionError::Internal(format!("{path:?} names no Ingot share"))
                    })
            })
            .collect::<DfResult<_>>()?;
        encoded.write(buf)
    }
}

/// The file scan configuration and Ingot source of a scan of Ingot shares.
fn share_scan(node: &Arc<dyn ExecutionPlan>) -> Option<(&FileScanConfig, &IngotShareSource)> {
    let exec = node.downcast_ref::<DataSourceExec>()?;
    let data_source: &dyn std::any::Any = exec.data_source().as_ref();
    let config = data_source.downcast_ref::<FileScanConfig>()?;
    let file_source: &dyn std::any::Any = config.file_source().as_ref();
    let source = file_source.downcast_ref::<IngotShareSource>()?;
    Some((config, source))
}
