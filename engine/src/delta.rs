//! Delta Lake publishing: each table's compacted history as a Delta table,
//! which Spark, Trino, DuckDB, Polars and Databricks read without Ingot.
//!
//! With [`crate::Options::delta_lake`] on, the publisher thread keeps a Delta
//! table at `delta/{database}/{table}/`, beside `tables/` in the data
//! directory or the bucket prefix (under `nodes/{id}/` for a cluster node).
//! The `_delta_log` is written with the `deltalake` crate, each version by a
//! conditional put, as the manifest's are.
//!
//! **What an outside reader sees.** Settled partitions only: a partition is
//! published once it is a single file that no pending delete reaches, with
//! nothing for it in the memtable, and that file is a whole-partition merge
//! (level 2, which compaction writes once a partition goes cold, and at
//! [`crate::Engine::compact`]) or has been the partition's only file for
//! `Options::compaction_cold_after`. Such a file holds each row once,
//! duplicates collapsed and deletes applied, so the Delta table answers for
//! those partitions exactly what Ingot answered when the file was written.
//! Rows still in the memtable or in files not yet merged (today's
//! partition, late rows) are not there. A published file stays until it
//! leaves the manifest: when late rows or a `DELETE` make compaction merge
//! its partition again, one Delta commit removes it and adds the new file,
//! so a reader sees each partition as of its last merge, never half of one.
//! Files that retention expires and tables that are dropped leave the Delta
//! table at the publisher's next look (every `Options::delta_interval`).
//!
//! **The copies.** Delta's timestamps are microseconds, Ingot's nanoseconds,
//! and Ingot's files keep tags as dictionaries and many floats as decimals.
//! So the publisher writes a copy of each level-2 file with plain types
//! rather than point Delta at Ingot's own file:
//! - `time`: `timestamp` (microseconds, UTC), the nanoseconds truncated;
//! - `time_ns`: `long`, the exact nanoseconds (left out when the table has a
//!   column of that name);
//! - tags: `string`; float, integer, boolean and string fields: `double`,
//!   `long`, `boolean`, `string`; unsigned integer fields: `decimal(20,0)`,
//!   which holds every `u64`.
//!
//! The copies cost the compacted data's bytes a second time. Each carries
//! Delta statistics (row count, null counts, and the range of `time`,
//! `time_ns`, tags and integer fields), so readers skip files by time and
//! tag. Columns Ingot adds to a table are added to the Delta table (an `ADD
//! COLUMNS` commit) before the first file that has them. Files a commit
//! removes are deleted [`crate::Options::replica_grace`] later (a full-mode
//! `VACUUM`, which also removes copies left by an interrupted publish), so a
//! reader's time travel reaches back that far and no further.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, new_null_array};
use arrow::compute::{cast, max, max_string, min, min_string};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{
    Action, Add, DataType as DeltaType, PrimitiveType, Remove, StructField,
};
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore, logstore_for};
use deltalake_core::operations::vacuum::VacuumMode;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::{AsyncArrowWriter, ParquetRecordBatchStreamBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;
use tracing::{info, warn};

use crate::catalog::{ColumnKind, FieldType, TIME_COLUMN, TableSchema};
use crate::compaction::StoreReader;
use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::flush::Storage;
use crate::manifest::FileMeta;

/// The folder, beside `tables/`, that holds the Delta tables.
pub const DELTA_FOLDER: &str = "delta";
/// The column that keeps each row's exact time in nanoseconds.
pub const TIME_NS_COLUMN: &str = "time_ns";
/// Rows per batch while a file is copied.
const BATCH_ROWS: usize = 8192;

/// What the publisher thread is asked to do.
pub(crate) enum PublishMsg {
    /// Publish what changed now, and reply.
    Now(Sender<Result<Vec<PublishRecord>>>),
    Shutdown,
}

/// One Delta commit the publisher made.
#[derive(Debug, Clone, Serialize)]
pub struct PublishRecord {
    pub database: String,
    pub table: String,
    /// The Delta table's version after the commit.
    pub version: u64,
    pub files_added: usize,
    pub files_removed: usize,
    pub rows_added: u64,
    pub bytes_added: u64,
}

/// The publisher thread: publishes every `Options::delta_interval` and on
/// request.
pub(crate) fn run_publisher(shared: Arc<Shared>, runtime: Runtime, rx: Receiver<PublishMsg>) {
    let mut publisher = Publisher::default();
    loop {
        match rx.recv_timeout(shared.options.delta_interval) {
            Ok(PublishMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
            Ok(PublishMsg::Now(reply)) => {
                let _ = reply.send(publisher.publish(&shared, &runtime));
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = publisher.publish(&shared, &runtime) {
                    warn!(error = %e, "publishing to Delta Lake failed; tried again at the next look");
                }
            }
        }
    }
}

/// What the publisher knows of the Delta tables it keeps.
#[derive(Default)]
struct Publisher {
    /// By the table's folder (`delta/{database}/{table}`).
    tables: BTreeMap<String, Published>,
    /// Whether the Delta tables already in the store have been found.
    discovered: bool,
}

/// One Delta table as last committed.
struct Published {
    database: String,
    table: String,
    delta: DeltaTable,
    /// The data files the current version holds, relative to the table.
    files: BTreeSet<String>,
    /// When to delete the files earlier versions removed.
    vacuum_at: Option<Instant>,
}

impl Publisher {
    /// Brings every Delta table in line with the level-2 files in the
    /// manifest; returns the commits made. A table that fails is logged and
    /// tried again at the next look; the first error is returned.
    fn publish(&mut self, shared: &Shared, runtime: &Runtime) -> Result<Vec<PublishRecord>> {
        let store = shared.storage.store.clone();
        if !self.discovered {
            self.tables =
                runtime.block_on(discover(&shared.storage, shared.options.replica_grace))?;
            self.discovered = true;
        }
        let mut candidates = candidates(shared);
        let folders: BTreeSet<String> = candidates
            .keys()
            .chain(self.tables.keys())
            .cloned()
            .collect();
        let mut records = Vec::new();
        let mut first_error = None;
        for folder in folders {
            let found = candidates.remove(&folder).unwrap_or_default();
            let result = runtime.block_on(self.publish_table(shared, &store, &folder, found));
            match result {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                Err(e) => {
                    warn!(table = %folder, error = %e, "publishing a table to Delta Lake failed");
                    // Read the table again from its log next time.
                    self.tables.remove(&folder);
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(records),
        }
    }

    /// Commits the table's settled files that are not yet in its Delta
    /// version, and removes the ones that left the manifest; then deletes
    /// removed copies when due.
    async fn publish_table(
        &mut self,
        shared: &Shared,
        store: &Arc<dyn ObjectStore>,
        folder: &str,
        found: Candidates,
    ) -> Result<Option<PublishRecord>> {
        if !self.tables.contains_key(folder) {
            // A table with no settled partition gets no Delta table yet.
            let Some(first) = found.settled.values().next() else {
                return Ok(None);
            };
            let Some(schema) = shared.catalog_read().table(&first.database, &first.table) else {
                return Ok(None);
            };
            let published = open_or_create(&shared.storage, folder, &schema).await?;
            self.tables.insert(folder.to_string(), published);
        }
        let published = self.tables.get_mut(folder).expect("inserted above");
        let mut files = found.settled;
        for path in &published.files {
            if let Some(file) = found.live.get(path) {
                files.insert(path.clone(), file.clone());
            }
        }
        let record = if files.keys().eq(published.files.iter()) {
            None
        } else {
            published.commit(shared, store, files).await?
        };
        if published.vacuum_at.is_some_and(|at| at <= Instant::now()) {
            published.vacuum(shared.options.replica_grace).await?;
        }
        Ok(record)
    }
}

impl Published {
    /// One commit: adds a copy of each new level-2 file, removes the copies
    /// of the files that left the manifest.
    async fn commit(
        &mut self,
        shared: &Shared,
        store: &Arc<dyn ObjectStore>,
        files: BTreeMap<String, Arc<FileMeta>>,
    ) -> Result<Option<PublishRecord>> {
        let root = StorePath::from(table_folder(&self.database, &self.table));
        let mut actions = Vec::new();
        let (mut rows_added, mut bytes_added) = (0, 0);
        let adding: Vec<(&String, &Arc<FileMeta>)> = files
            .iter()
            .filter(|(path, _)| !self.files.contains(*path))
            .collect();
        if !adding.is_empty() {
            let Some(schema) = shared.catalog_read().table(&self.database, &self.table) else {
                return Ok(None);
            };
            let shape = Shape::new(&schema);
            self.add_columns(&shape).await?;
            for (path, file) in &adding {
                let dest = path.split('/').fold(root.clone(), |p, part| p.join(part));
                let add = write_copy(shared, store, file, &shape, &dest, path).await?;
                rows_added += file.rows;
                bytes_added += add.size as u64;
                actions.push(Action::Add(add));
            }
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let removed: Vec<String> = self
            .files
            .iter()
            .filter(|p| !files.contains_key(*p))
            .cloned()
            .collect();
        for path in &removed {
            actions.push(Action::Remove(Remove {
                path: path.clone(),
                data_change: true,
                deletion_timestamp: Some(now_ms),
                extended_file_metadata: Some(false),
                partition_values: None,
                size: None,
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
            }));
        }
        if actions.is_empty() {
            return Ok(None);
        }
        let files_added = adding.len();
        let mode = match removed.is_empty() {
            true => SaveMode::Append,
            false => SaveMode::Overwrite,
        };
        let operation = DeltaOperation::Write {
            mode,
            partition_by: None,
            predicate: None,
        };
        let commit = CommitBuilder::from(CommitProperties::default())
            .with_actions(actions)
            .build(
                Some(self.delta.snapshot().map_err(Box::new)?),
                self.delta.log_store(),
                operation,
            )
            .await
            .map_err(Box::new)?;
        let version = commit.version() as u64;
        self.delta.load().await.map_err(Box::new)?;
        self.files = files.into_keys().collect();
        if !removed.is_empty() && self.vacuum_at.is_none() {
            self.vacuum_at = Some(Instant::now() + shared.options.replica_grace);
        }
        let record = PublishRecord {
            database: self.database.clone(),
            table: self.table.clone(),
            version,
            files_added,
            files_removed: removed.len(),
            rows_added,
            bytes_added,
        };
        info!(
            database = %record.database,
            table = %record.table,
            version,
            files_added = record.files_added,
            files_removed = record.files_removed,
            rows_added,
            bytes_added,
            "published to Delta Lake"
        );
        Ok(Some(record))
    }

    /// Adds to the Delta table the columns Ingot's table gained since.
    async fn add_columns(&mut self, shape: &Shape) -> Result<()> {
        let current = self.delta.snapshot().map_err(Box::new)?.schema();
        let mut missing = Vec::new();
        for field in delta_fields(&shape.schema)? {
            match current.field(field.name()) {
                None => missing.push(field),
                Some(existing) if existing.data_type() != field.data_type() => {
                    return Err(Error::InvalidInput(format!(
                        "column {:?} of table {:?} is {} in Ingot but {} in its Delta table \
                         (the table was dropped and written again with another type): remove \
                         {DELTA_FOLDER}/{}/{}/ from the store to publish it anew",
                        field.name(),
                        self.table,
                        field.data_type(),
                        existing.data_type(),
                        self.database,
                        self.table,
                    )));
                }
                Some(_) => {}
            }
        }
        if !missing.is_empty() {
            self.delta = self
                .delta
                .clone()
                .add_columns()
                .with_fields(missing)
                .await
                .map_err(Box::new)?;
        }
        Ok(())
    }

    /// Deletes the copies earlier versions removed once they are older than
    /// `grace`, and any copy no version names.
    async fn vacuum(&mut self, grace: Duration) -> Result<()> {
        let retention = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let vacuum = |dry_run| {
            self.delta
                .clone()
                .vacuum()
                .with_retention_period(retention)
                .with_enforce_retention_duration(false)
                .with_mode(VacuumMode::Full)
                .with_dry_run(dry_run)
        };
        // A vacuum records two versions even when it deletes nothing, and
        // it counts the files of old removes again after they are gone.
        let (_, found) = vacuum(true).await.map_err(Box::new)?;
        let store = self.delta.log_store().object_store(None);
        let mut present = false;
        for path in &found.files_deleted {
            let gone = matches!(
                store.head(&StorePath::from(path.as_str())).await,
                Err(object_store::Error::NotFound { .. })
            );
            if !gone {
                present = true;
                break;
            }
        }
        if present {
            let (delta, metrics) = vacuum(false).await.map_err(Box::new)?;
            self.delta = delta;
            info!(
                database = %self.database,
                table = %self.table,
                files = metrics.files_deleted.len(),
                "deleted Delta files no longer in the table"
            );
        }
        self.vacuum_at = None;
        Ok(())
    }
}

/// The files of one table that the publisher may keep in its Delta table.
#[derive(Default)]
struct Candidates {
    /// Files of settled partitions, by their path in the Delta table.
    settled: BTreeMap<String, Arc<FileMeta>>,
    /// Every file of the table in the manifest, by the same path: a file
    /// already published stays until it leaves the manifest.
    live: BTreeMap<String, Arc<FileMeta>>,
}

/// Every table's candidates, by the Delta table's folder. A partition is
/// **settled** when it is one file that no delete still applies to, nothing
/// for it waits in the memtable, and the file is a whole-partition merge
/// (level 2) or has been alone for `Options::compaction_cold_after`. Files
/// of dropped tables are in neither set.
fn candidates(shared: &Shared) -> BTreeMap<String, Candidates> {
    let state = shared.state_read();
    let unflushed = state.unflushed_partitions();
    let cold_after =
        i64::try_from(shared.options.compaction_cold_after.as_nanos()).unwrap_or(i64::MAX);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let mut partitions: BTreeMap<(&str, &str, i64), Vec<&Arc<FileMeta>>> = BTreeMap::new();
    for file in &state.manifest.files {
        if !state.drops.iter().any(|d| d.covers_file(file)) {
            partitions
                .entry((&file.database, &file.table, file.partition))
                .or_default()
                .push(file);
        }
    }
    let mut found: BTreeMap<String, Candidates> = BTreeMap::new();
    for ((database, table, partition), files) in partitions {
        let entry = found.entry(table_folder(database, table)).or_default();
        let settled = match files.as_slice() {
            [file] => {
                !unflushed.contains(&(database.to_string(), table.to_string(), partition))
                    && !state.tombstones.iter().any(|t| t.applies_to_file(file))
                    && (file.level == 2 || now.saturating_sub(file.written_at) >= cold_after)
            }
            _ => false,
        };
        for file in files {
            let path = copy_path(file, shared.partition_width);
            if settled {
                entry.settled.insert(path.clone(), file.clone());
            }
            entry.live.insert(path, file.clone());
        }
    }
    found
}

/// `delta/{database}/{table}` as a store path.
fn table_folder(database: &str, table: &str) -> String {
    StorePath::from_iter([DELTA_FOLDER, database, table]).to_string()
}

/// Where a file's copy goes in its Delta table: a folder per partition
/// (`2026-12-01`, or `2026-12-01T05` for hour partitions) and the file's own
/// name. The folders carry no `key=value`, so no reader takes them for Hive
/// partitions: the table has no partition columns.
fn copy_path(file: &FileMeta, partition_width: i64) -> String {
    let name = file.path.rsplit('/').next().unwrap_or(&file.path);
    let folder = crate::flush::partition_dirs(file.partition, partition_width)
        .iter()
        .map(|d| d.split_once('=').map_or(d.as_str(), |(_, v)| v))
        .collect::<Vec<_>>()
        .join("T");
    format!("{folder}/{name}")
}

/// A Delta log store for the table in `folder` of the engine's storage. On
/// the local file system it is deltalake's own for the folder's `file://`
/// URL. In a bucket it goes through the engine's store (S3 lists in
/// order, as the Delta log needs), and the URL, which the store does not
/// know, only names the table.
fn log_store(storage: &Storage, folder: &str) -> Result<LogStoreRef> {
    if let Some(root) = &storage.local_root {
        let dir = root.join(folder);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let url = url::Url::from_directory_path(&dir).map_err(|()| {
            Error::Internal(format!("no file URL for the Delta table {}", dir.display()))
        })?;
        return Ok(logstore_for(&url, StorageConfig::default()).map_err(Box::new)?);
    }
    let url = url::Url::parse(&format!("ingot:///{folder}/"))
        .map_err(|e| Error::Internal(format!("Delta table folder {folder:?}: {e}")))?;
    let store = storage.store.clone();
    let prefixed: Arc<dyn ObjectStore> =
        Arc::new(PrefixStore::new(store.clone(), StorePath::from(folder)));
    Ok(default_logstore(
        prefixed,
        store,
        &url,
        &StorageConfig::default(),
    ))
}

/// Opens the Delta table in `folder`, creating it with `schema` if there is
/// none.
async fn open_or_create(
    storage: &Storage,
    folder: &str,
    schema: &TableSchema,
) -> Result<Published> {
    let (database, table) = names(folder);
    let mut delta = DeltaTable::new(log_store(storage, folder)?);
    match delta.load().await {
        Ok(()) => Published::loaded(database, table, delta),
        Err(DeltaTableError::NotATable(_)) => {
            let shape = Shape::new(schema);
            let delta = delta
                .create()
                .with_table_name(format!("{database}.{table}"))
                .with_comment(format!(
                    "Ingot table {database}.{table}: its compacted partitions, published by Ingot"
                ))
                .with_columns(delta_fields(&shape.schema)?)
                .await
                .map_err(Box::new)?;
            Published::loaded(database, table, delta)
        }
        Err(e) => Err(Box::new(e).into()),
    }
}

/// The database and table a Delta folder is for.
fn names(folder: &str) -> (String, String) {
    let path = StorePath::from(folder);
    let parts: Vec<String> = path.parts().map(|p| p.as_ref().to_string()).collect();
    match parts.as_slice() {
        [_, database, table] => (database.clone(), table.clone()),
        _ => (String::new(), folder.to_string()),
    }
}

impl Published {
    fn loaded(database: String, table: String, delta: DeltaTable) -> Result<Published> {
        let files = delta
            .snapshot()
            .map_err(Box::new)?
            .log_data()
            .into_iter()
            .map(|add| add.path().to_string())
            .collect();
        Ok(Published {
            database,
            table,
            delta,
            files,
            vacuum_at: None,
        })
    }
}

/// Finds the Delta tables already in the store (`delta/*/*`); each gets a
/// vacuum `grace` from now, for the copies an earlier run removed or left.
async fn discover(storage: &Storage, grace: Duration) -> Result<BTreeMap<String, Published>> {
    let store = &storage.store;
    let mut found = BTreeMap::new();
    let databases = store
        .list_with_delimiter(Some(&StorePath::from(DELTA_FOLDER)))
        .await?;
    for database in databases.common_prefixes {
        let tables = store.list_with_delimiter(Some(&database)).await?;
        for folder in tables.common_prefixes {
            let folder = folder.to_string();
            let (database, table) = names(&folder);
            let mut delta = DeltaTable::new(log_store(storage, &folder)?);
            match delta.load().await {
                Ok(()) => {
                    let mut published = Published::loaded(database, table, delta)?;
                    published.vacuum_at = Some(Instant::now() + grace);
                    found.insert(folder, published);
                }
                Err(DeltaTableError::NotATable(_)) => {}
                Err(e) => return Err(Box::new(e).into()),
            }
        }
    }
    Ok(found)
}

/// The columns of a table's copies, and how each comes from Ingot's.
struct Shape {
    schema: SchemaRef,
    /// Whether `time_ns` is the exact time (not a column of the table).
    time_ns: bool,
}

impl Shape {
    fn new(table: &TableSchema) -> Shape {
        let time_ns = table.column(TIME_NS_COLUMN).is_none();
        let mut fields = vec![Field::new(
            TIME_COLUMN,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        )];
        if time_ns {
            fields.push(Field::new(TIME_NS_COLUMN, DataType::Int64, false));
        }
        for column in table.columns() {
            let data_type = match column.kind {
                ColumnKind::Time => continue,
                ColumnKind::Tag => DataType::Utf8,
                ColumnKind::Field(FieldType::UInteger) => DataType::Decimal128(20, 0),
                ColumnKind::Field(t) => t.data_type(),
            };
            fields.push(Field::new(&column.name, data_type, true));
        }
        Shape {
            schema: Arc::new(Schema::new(fields)),
            time_ns,
        }
    }

    /// A batch of an Ingot file as the copy holds it. Columns the file
    /// predates are null.
    fn convert(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let time = batch
            .column_by_name(TIME_COLUMN)
            .ok_or_else(|| Error::Internal("a data file has no time column".into()))?;
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|field| {
                let source = match field.name().as_str() {
                    TIME_NS_COLUMN if self.time_ns => Some(time),
                    name => batch.column_by_name(name),
                };
                Ok(match source {
                    Some(column) => cast(column, field.data_type())?,
                    None => new_null_array(field.data_type(), batch.num_rows()),
                })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// The Delta schema of a copy's Arrow schema.
fn delta_fields(schema: &Schema) -> Result<Vec<StructField>> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let data_type = match f.data_type() {
                DataType::Timestamp(_, _) => DeltaType::Primitive(PrimitiveType::Timestamp),
                DataType::Int64 => DeltaType::Primitive(PrimitiveType::Long),
                DataType::Float64 => DeltaType::Primitive(PrimitiveType::Double),
                DataType::Boolean => DeltaType::Primitive(PrimitiveType::Boolean),
                DataType::Utf8 => DeltaType::Primitive(PrimitiveType::String),
                DataType::Decimal128(p, s) => DeltaType::decimal(*p, *s as u8)
                    .map_err(|e| Error::Internal(format!("Delta decimal({p},{s}): {e}")))?,
                other => {
                    return Err(Error::Internal(format!(
                        "no Delta type for column {:?} of type {other}",
                        f.name()
                    )));
                }
            };
            Ok(StructField::new(f.name(), data_type, f.is_nullable()))
        })
        .collect()
}

/// Writes the copy of `file` at `dest` (`path` inside the table) and
/// returns its `add` action, with statistics.
async fn write_copy(
    shared: &Shared,
    store: &Arc<dyn ObjectStore>,
    file: &FileMeta,
    shape: &Shape,
    dest: &StorePath,
    path: &str,
) -> Result<Add> {
    let reader = StoreReader {
        store: store.clone(),
        path: StorePath::from(file.path.as_str()),
        size: file.bytes,
    };
    let mut batches = ParquetRecordBatchStreamBuilder::new(reader)
        .await?
        .with_batch_size(BATCH_ROWS)
        .build()?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .build();
    let mut writer = AsyncArrowWriter::try_new(
        BufWriter::new(store.clone(), dest.clone()),
        shape.schema.clone(),
        Some(properties),
    )?;
    let mut stats = Stats::default();
    while let Some(batch) = batches.try_next().await? {
        let copy = shape.convert(&batch)?;
        stats.update(&copy)?;
        writer.write(&copy).await?;
    }
    writer.close().await?;
    shared.storage.sync_local(dest)?;
    let size = store.head(dest).await?.size;
    Ok(Add {
        path: path.to_string(),
        size: size as i64,
        partition_values: HashMap::new(),
        modification_time: chrono::Utc::now().timestamp_millis(),
        data_change: true,
        stats: Some(stats.json(shape).to_string()),
        tags: Some(HashMap::from([(
            "ingot.file".to_string(),
            Some(file.path.clone()),
        )])),
        ..Default::default()
    })
}

/// Delta file statistics, gathered batch by batch.
#[derive(Default)]
struct Stats {
    rows: i64,
    nulls: BTreeMap<String, i64>,
    ranges: BTreeMap<String, (Value, Value)>,
}

impl Stats {
    fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as i64;
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            *self.nulls.entry(field.name().clone()).or_default() += column.null_count() as i64;
            let range = match column.data_type() {
                DataType::Int64 => {
                    let a = column.as_primitive::<Int64Type>();
                    min(a).zip(max(a)).map(|(l, h)| (json!(l), json!(h)))
                }
                DataType::Utf8 => {
                    let a = column.as_string::<i32>();
                    min_string(a)
                        .zip(max_string(a))
                        .map(|(l, h)| (json!(l), json!(h)))
                }
                DataType::Timestamp(..) => {
                    let a = cast(column, &DataType::Int64)?;
                    let a = a.as_primitive::<Int64Type>();
                    min(a).zip(max(a)).map(|(l, h)| (json!(l), json!(h)))
                }
                _ => None,
            };
            if let Some((low, high)) = range {
                let entry = self
                    .ranges
                    .entry(field.name().clone())
                    .or_insert_with(|| (low.clone(), high.clone()));
                if less(&low, &entry.0) {
                    entry.0 = low;
                }
                if less(&entry.1, &high) {
                    entry.1 = high;
                }
            }
        }
        Ok(())
    }

    /// The `stats` of an `add` action. Times are written to the millisecond,
    /// as Delta writers do: the low end rounded down and the high end up, so
    /// that a reader skipping files by them never skips a matching row.
    fn json(&self, shape: &Shape) -> Value {
        let (mut low, mut high) = (Map::new(), Map::new());
        for (name, (l, h)) in &self.ranges {
            let timestamp = shape
                .schema
                .field_with_name(name)
                .is_ok_and(|f| matches!(f.data_type(), DataType::Timestamp(..)));
            if timestamp {
                let (l, h) = (l.as_i64().unwrap_or(0), h.as_i64().unwrap_or(0));
                low.insert(name.clone(), json!(millis(l.div_euclid(1000))));
                high.insert(name.clone(), json!(millis((h + 999).div_euclid(1000))));
            } else {
                low.insert(name.clone(), l.clone());
                high.insert(name.clone(), h.clone());
            }
        }
        json!({
            "numRecords": self.rows,
            "minValues": low,
            "maxValues": high,
            "nullCount": self.nulls,
        })
    }
}

/// Orders two statistics of one column (numbers or strings).
fn less(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_i64() < b.as_i64(),
        (Value::String(a), Value::String(b)) => a < b,
        _ => false,
    }
}

/// A time in milliseconds since the epoch as a Delta statistic.
fn millis(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
