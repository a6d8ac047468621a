//! Compaction: merging a partition's files into fewer, larger files that do
//! not overlap, sorted as flushes sort (by series and time, within time
//! slices) and deduplicated with the write rule.
//!
//! **Which files** ([`pick`]). A partition's files, in write order (`max_seq`),
//! are a run of compacted files followed by the files flushes added since.
//! When the small flushed files (under half a row group of rows each) reach
//! `Options::compaction_trigger_files`, they are merged into one level-1
//! file; flushed files of a row group or so are read as well as a merge of
//! them would be, and wait for the partition's one merge when it goes cold,
//! which keeps the bytes each row is written near two (a flush and that
//! merge). A partition is cold once it has had no new file for
//! `Options::compaction_cold_after` and the memtable holds none of its rows
//! (late rows keep yesterday's partition warm until they stop coming, rather
//! than have it rewritten after every flush that brings a few); then, or
//! when [`crate::Engine::compact`] asks, all of its files become one level-2
//! file, in time slices of about a row group each ([`cold_slice_ns`]), no
//! row group holding more than one slice, so that a query of a few hours
//! over every series reads only those hours' row groups. Either way the inputs are
//! consecutive in write order, so the output, ranked by the largest `max_seq`
//! of its inputs, sits exactly where they did: every file written before it
//! holds older writes, every file written after it newer ones.
//!
//! **How** ([`merge`]). Every input streams in batches. Each file is sorted by
//! its series tags, then time (within time slices, `FileMeta::time_slice_ns`,
//! when it has them). A sliced output is merged one slice at a time, each
//! pass reading only that slice's rows of every input, which are then in
//! (series, time) order whatever the input's slices. The merge compares rows
//! in Arrow's row format on (tags, time, input rank) and takes, from the
//! input whose next row is smallest, the whole run of rows that sort before
//! every other input's next row (found by binary search), so rows are
//! compared per run, not per row.
//! Rows of the same (series, time) from several inputs come out next to each
//! other, oldest first, and collapse to one row: per field, the latest
//! non-null value. The merged rows are encoded a row group at a time
//! (`parquet_file::Layout`) and streamed to the object store. What the merge
//! holds at once (a batch per input, the rows on their way out, the row group
//! being encoded) is sized from `Options::compaction_memory_bytes`, and
//! measured: [`Merged::peak_memory_bytes`].
//!
//! **Swap.** The engine records the output and drops the inputs in one
//! manifest change; readers that took their snapshot before it keep reading
//! the inputs, which are deleted only once no such reader is left
//! (`engine::Readers`). A crash before the change leaves the output as an
//! orphan that the next open removes; after it, the inputs are the orphans.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::array::{AsArray, BooleanArray};
use arrow::compute::SortOptions;
use arrow::compute::{concat_batches, take};
use arrow::datatypes::DataType;
use arrow::datatypes::TimestampNanosecondType;
use arrow::error::ArrowError;
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Runtime;
use tracing::{info, warn};

use crate::catalog::{ColumnKind, FieldType, TableSchema, tag_type};
use crate::dedup::align;
use crate::delete::{Tombstone, remove_deleted};
use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::flush::{Storage, now_ns, spanned_slice, write_last_rows, write_summary};
use crate::last_rows::{self, LastRowsBuilder};
use crate::manifest::{FileMeta, Manifest};
use crate::parquet_file::{FileWriter, Layout};
use crate::summary;
use crate::write::time_values;

/// Most files one merge reads at once; a partition with more is merged in
/// rounds, oldest files first.
const MAX_INPUTS: usize = 32;
/// Fewest rows per input batch, whatever the budget.
const MIN_BATCH_ROWS: usize = 1024;
/// Most rows per input batch.
const MAX_BATCH_ROWS: usize = 65_536;

/// How often the compactor looks for cold partitions when nothing wakes it.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Compactions kept for `system.compactions`.
const RECENT: usize = 100;

/// What the compactor thread is asked to do.
pub(crate) enum CompactMsg {
    /// Files changed: see whether a partition needs compacting.
    Look,
    /// Compact every partition with more than one file; reply when done.
    Everything(Sender<Result<Vec<CompactionRecord>>>),
    Shutdown,
}

/// The compactor thread: merges partitions as the background policy asks
/// (when `Options::compaction` is on) or everything on request, and deletes
/// the replaced files once no read can reach them.
pub(crate) fn run_compactor(shared: Arc<Shared>, runtime: Runtime, rx: Receiver<CompactMsg>) {
    loop {
        let msg = match rx.recv_timeout(LOOK_EVERY) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            Some(CompactMsg::Shutdown) => break,
            Some(CompactMsg::Everything(reply)) => {
                // Expired files first: merging them would be wasted work.
                let result = crate::retention::expire(&shared, now_ns())
                    .and_then(|_| compact(&shared, &runtime, Policy::Everything));
                delete_unreachable(&shared, &runtime);
                let _ = reply.send(result);
            }
            Some(CompactMsg::Look) | None => {
                if shared.options.compaction
                    && !shared.closed.load(AtomicOrdering::Acquire)
                    && let Err(e) = crate::retention::expire(&shared, now_ns())
                {
                    warn!(error = %e, "removing expired files failed; tried again in a second");
                }
                if shared.options.compaction && !shared.closed.load(AtomicOrdering::Acquire) {
                    let policy = Policy::Background {
                        trigger_files: shared.options.compaction_trigger_files,
                        small_file_rows: (shared.options.row_group_rows / 2) as u64,
                        cold_after_ns: i64::try_from(
                            shared.options.compaction_cold_after.as_nanos(),
                        )
                        .unwrap_or(i64::MAX),
                        now_ns: now_ns(),
                    };
                    if let Err(e) = compact(&shared, &runtime, policy) {
                        warn!(error = %e, "compaction failed; the partition keeps its files and is tried again later");
                    }
                }
                delete_unreachable(&shared, &runtime);
            }
        }
    }
    delete_unreachable(&shared, &runtime);
}

/// Runs every merge `policy` picks, again until none is left for
/// [`Policy::Everything`] (a partition with many files takes several rounds).
fn compact(shared: &Shared, runtime: &Runtime, policy: Policy) -> Result<Vec<CompactionRecord>> {
    let mut done = Vec::new();
    loop {
        let (manifest, tombstones, drops, unflushed) = {
            let state = shared.state_read();
            (
                state.manifest.clone(),
                state.tombstones.clone(),
                state.drops.clone(),
                state.unflushed_partitions(),
            )
        };
        let mut jobs = pick(&manifest, policy, &tombstones, &unflushed);
        // The files of a dropped table leave at the next manifest change.
        jobs.retain(|j| {
            !j.inputs
                .iter()
                .any(|f| drops.iter().any(|d| d.covers_file(f)))
        });
        if jobs.is_empty() {
            break;
        }
        let mut progress = false;
        for job in jobs {
            if shared.closed.load(AtomicOrdering::Acquire) {
                return Err(Error::Closed);
            }
            if let Some(record) = run_job(shared, runtime, &job)? {
                progress = true;
                done.push(record);
            }
            delete_unreachable(shared, runtime);
        }
        if !progress || policy != Policy::Everything {
            break;
        }
    }
    Ok(done)
}

/// Merges one job's files and swaps the result into the manifest.
fn run_job(shared: &Shared, runtime: &Runtime, job: &Job) -> Result<Option<CompactionRecord>> {
    let Some(table) = shared.catalog_read().table(&job.database, &job.table) else {
        return Ok(None);
    };
    let _running = Running::start(&shared.stats.compactions_running);
    let started = Instant::now();
    let id = shared.reserve_file_ids(1);
    let path = shared.storage.file_path(
        &job.database,
        &job.table,
        job.partition,
        shared.partition_width,
        id,
    );
    let mut settings = Settings {
        budget: shared.options.compaction_memory_bytes,
        row_group_rows: shared.options.row_group_rows,
        floats_only: false,
        cold_slice_ns: (job.level == 2)
            .then(|| {
                cold_slice_ns(
                    job.inputs.iter().map(|f| f.rows).sum(),
                    shared.partition_width,
                    shared.options.row_group_rows,
                )
            })
            .flatten(),
        summary_window_ns: shared.file_shape().summary_window_ns,
        cancel: &shared.closed,
    };
    let mut result = runtime.block_on(merge(&shared.storage, &table, job, id, &path, &settings));
    if matches!(&result, Err(Error::Internal(m)) if m.contains("not exact at the decimal scale")) {
        // A value too large for the inputs' largest scale: store floats.
        remove_output(shared, runtime, &path);
        settings.floats_only = true;
        result = runtime.block_on(merge(&shared.storage, &table, job, id, &path, &settings));
    }
    let merged = match result {
        Ok(m) => m,
        Err(e) => {
            remove_output(shared, runtime, &path);
            return Err(e);
        }
    };
    let input_ids: Vec<u64> = job.inputs.iter().map(|f| f.id).collect();
    let swapped = shared.edit_manifest(
        |m| {
            // A file another change removed meanwhile (a dropped table, an
            // expired partition) must not come back inside the output.
            let live = input_ids
                .iter()
                .all(|id| m.files.iter().any(|f| f.id == *id));
            if live {
                m.files.retain(|f| !input_ids.contains(&f.id));
                m.files.extend(merged.file.clone().map(Arc::new));
            }
            Ok(live)
        },
        |_| {},
    );
    match swapped {
        Ok(true) => {}
        Ok(false) => {
            remove_output(shared, runtime, &path);
            return Ok(None);
        }
        Err(e) => {
            // The manifest may or may not name the output now: leave it for
            // the next open's orphan check rather than delete a live file.
            return Err(e);
        }
    }
    if job.tombstones.is_empty() {
        shared.last_rows.files_replaced(
            &job.database,
            &job.table,
            &input_ids,
            merged.file.as_ref().map(|f| f.id),
        );
    } else {
        // A delete applied may have removed a last row.
        shared.last_rows.forget_table(&job.database, &job.table);
    }
    checkpoint_last_rows(shared, runtime, &job.database, &job.table);
    let bytes_read: u64 = job.inputs.iter().map(|f| f.bytes).sum();
    let bytes_written = merged.file.as_ref().map_or(0, |f| f.bytes);
    let record = CompactionRecord {
        database: job.database.clone(),
        table: job.table.clone(),
        partition: job.partition,
        level: job.level,
        files_in: job.inputs.len(),
        files_out: usize::from(merged.file.is_some()),
        rows_in: merged.rows_read,
        rows_out: merged.file.as_ref().map_or(0, |f| f.rows),
        bytes_read,
        bytes_written,
        peak_memory_bytes: merged.peak_memory_bytes,
        finished_at: now_ns(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let stats = &shared.stats;
    stats.compactions.fetch_add(1, AtomicOrdering::Relaxed);
    stats
        .bytes_compacted
        .fetch_add(bytes_read, AtomicOrdering::Relaxed);
    stats
        .compaction_bytes_written
        .fetch_add(bytes_written, AtomicOrdering::Relaxed);
    {
        let mut recent = shared.compactions.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(record.clone());
    }
    info!(
        database = %job.database,
        table = %job.table,
        partition = job.partition,
        level = job.level,
        files_in = record.files_in,
        rows_in = record.rows_in,
        rows_out = record.rows_out,
        bytes_read,
        bytes_written,
        peak_memory_bytes = record.peak_memory_bytes,
        elapsed_ms = record.duration_ms,
        "compacted"
    );
    Ok(Some(record))
}

/// Checkpoints a table's last rows (see [`crate::last_rows`]); a failure
/// costs only the next open's first latest-value query, so it is logged.
pub(crate) fn checkpoint_last_rows(
    shared: &Shared,
    runtime: &Runtime,
    database: &str,
    table: &str,
) {
    let done = runtime.block_on(
        shared
            .last_rows
            .checkpoint(&shared.storage, database, table),
    );
    if let Err(e) = done {
        warn!(database, table, error = %e, "could not checkpoint the last rows");
    }
}

/// Deletes a merge's output that the manifest does not name: the data file,
/// its summary and its last rows.
fn remove_output(shared: &Shared, runtime: &Runtime, path: &StorePath) {
    remove(shared, runtime, path);
    for sidecar in [
        summary::summary_path(path.as_ref()),
        last_rows::last_rows_path(path.as_ref()),
    ] {
        remove(shared, runtime, &StorePath::from(sidecar));
    }
}

/// Deletes an object, logging (not failing) when that does not work: a file
/// the manifest does not name is removed at the next open anyway.
fn remove(shared: &Shared, runtime: &Runtime, path: &StorePath) {
    if let Err(e) = runtime.block_on(shared.storage.store.delete(path))
        && !matches!(e, object_store::Error::NotFound { .. })
    {
        warn!(%path, error = %e, "could not delete a file the manifest no longer names");
    }
}

/// Deletes the files replaced by manifest changes that no read can reach.
fn delete_unreachable(shared: &Shared, runtime: &Runtime) {
    let files = shared.readers.take_unreachable();
    for path in &files {
        remove(shared, runtime, path);
    }
    shared.readers.deleted(&files);
}

/// Counts a compaction as under way while it lives.
struct Running<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> Running<'a> {
    fn start(counter: &'a std::sync::atomic::AtomicU64) -> Self {
        counter.fetch_add(1, AtomicOrdering::Relaxed);
        Running(counter)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AtomicOrdering::Relaxed);
    }
}

/// One merge to run: files of one partition, consecutive in write order.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub database: String,
    pub table: String,
    pub partition: i64,
    /// By `max_seq`, oldest first.
    pub inputs: Vec<FileMeta>,
    /// The level of the output: 1 for merged flushes, 2 for a whole partition.
    pub level: u8,
    /// Every delete known when the job was picked; the merge applies each
    /// to the inputs it still applies to.
    pub tombstones: Vec<Arc<Tombstone>>,
}

/// Why a partition is compacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The background schedule: trigger counts and cold partitions.
    Background {
        trigger_files: usize,
        /// Flushed files with this many rows or more are not merged until
        /// the partition goes cold.
        small_file_rows: u64,
        cold_after_ns: i64,
        now_ns: i64,
    },
    /// Everything that has more than one file, now.
    Everything,
}

/// The merges the manifest needs under `policy`, the partitions with the most
/// files first.
pub(crate) fn pick(
    manifest: &Manifest,
    policy: Policy,
    tombstones: &[Arc<Tombstone>],
    unflushed: &HashSet<(String, String, i64)>,
) -> Vec<Job> {
    let mut partitions: BTreeMap<(&str, &str, i64), Vec<&FileMeta>> = BTreeMap::new();
    for f in &manifest.files {
        partitions
            .entry((&f.database, &f.table, f.partition))
            .or_default()
            .push(f);
    }
    let mut jobs = Vec::new();
    for ((database, table, partition), mut files) in partitions {
        // A file that a delete still applies to is rewritten without the
        // deleted rows, alone if need be.
        let deleting = files
            .iter()
            .any(|f| tombstones.iter().any(|t| t.applies_to_file(f)));
        if files.len() < 2 && !deleting {
            continue;
        }
        files.sort_by_key(|f| f.max_seq);
        let cold = match policy {
            Policy::Everything => true,
            Policy::Background { .. } if deleting => true,
            Policy::Background {
                cold_after_ns,
                now_ns,
                ..
            } => {
                let newest = files.iter().map(|f| f.written_at).max().unwrap_or(0);
                now_ns.saturating_sub(newest) >= cold_after_ns
                    && !unflushed.contains(&(database.to_string(), table.to_string(), partition))
            }
        };
        let (inputs, level): (Vec<&FileMeta>, u8) = if cold {
            (files, 2)
        } else {
            let Policy::Background {
                trigger_files,
                small_file_rows,
                ..
            } = policy
            else {
                unreachable!("only the background policy has partitions that are not cold");
            };
            let flushed = files
                .iter()
                .rev()
                .take_while(|f| f.level == 0 && f.rows < small_file_rows)
                .count();
            if flushed < trigger_files.max(2) {
                continue;
            }
            (files[files.len() - flushed..].to_vec(), 1)
        };
        // The oldest files first: a prefix of a run consecutive in write
        // order is consecutive too.
        let inputs: Vec<FileMeta> = inputs.into_iter().take(MAX_INPUTS).cloned().collect();
        jobs.push(Job {
            database: database.to_string(),
            table: table.to_string(),
            partition,
            inputs,
            level,
            tombstones: tombstones
                .iter()
                .filter(|t| t.database == database && t.table == table)
                .cloned()
                .collect(),
        });
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.inputs.len()));
    jobs
}

/// What a merge wrote.
#[derive(Debug, Clone)]
pub(crate) struct Merged {
    /// The output file, or `None` when the inputs held no rows.
    pub file: Option<FileMeta>,
    /// Rows read from the inputs (before duplicates collapsed).
    pub rows_read: u64,
    /// The most memory the merge held at once.
    pub peak_memory_bytes: usize,
}

/// A record of one compaction, for `system.compactions` and the metrics.
#[derive(Debug, Clone, Serialize)]
pub struct CompactionRecord {
    pub database: String,
    pub table: String,
    /// Start of the partition (ns since the epoch).
    pub partition: i64,
    pub level: u8,
    pub files_in: usize,
    pub files_out: usize,
    pub rows_in: u64,
    pub rows_out: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub peak_memory_bytes: usize,
    /// When it finished (ns since the epoch).
    pub finished_at: i64,
    pub duration_ms: u64,
}

/// How a merge runs.
pub(crate) struct Settings<'a> {
    /// Memory the merge may hold.
    pub budget: usize,
    /// Most rows per row group of the output.
    pub row_group_rows: usize,
    /// Store every float field as a float, even where the inputs hold decimals
    /// (the fallback when a value does not fit the scale).
    pub floats_only: bool,
    /// The slices to order the output by when no input has any
    /// ([`cold_slice_ns`] for a cold partition's one file).
    pub cold_slice_ns: Option<i64>,
    /// Width of the output's summary windows; `None` writes no summary.
    pub summary_window_ns: Option<i64>,
    /// Set to stop the merge (the engine is closing).
    pub cancel: &'a AtomicBool,
}

/// Merges `job`'s inputs into one file at `path` (id `id`). Stops with an
/// error when `settings.cancel` is set; the caller removes whatever was
/// written.
pub(crate) async fn merge(
    storage: &Storage,
    table: &TableSchema,
    job: &Job,
    id: u64,
    path: &StorePath,
    settings: &Settings<'_>,
) -> Result<Merged> {
    let Settings {
        budget,
        row_group_rows,
        floats_only,
        cold_slice_ns,
        summary_window_ns,
        cancel,
    } = *settings;
    let schema = table.arrow_schema().clone();
    let mut files = Vec::with_capacity(job.inputs.len());
    for f in &job.inputs {
        let mut reader = StoreReader {
            store: storage.store.clone(),
            path: StorePath::from(f.path.as_str()),
            size: f.bytes,
        };
        let metadata = ArrowReaderMetadata::load_async(&mut reader, Default::default()).await?;
        files.push((reader, metadata));
    }
    // Floats stay decimals where every input stored them as decimals, at the
    // largest scale any used: a value exact at one scale is exact at a larger
    // one (the integer times a power of ten, over a power of ten, is the same
    // rational number, and division rounds correctly).
    let scales: Vec<Option<i8>> = table
        .columns()
        .iter()
        .map(|c| {
            if floats_only || c.kind != ColumnKind::Field(FieldType::Float) {
                return None;
            }
            let mut scale = Some(0i8);
            for (_, metadata) in &files {
                if let Ok(field) = metadata.schema().field_with_name(&c.name) {
                    scale = match field.data_type() {
                        DataType::Decimal128(_, s) => scale.map(|x| x.max(*s)),
                        _ => None,
                    };
                }
            }
            scale
        })
        .collect();
    let (key_names, slice_ns) = merge_order(table, &job.inputs, cold_slice_ns);
    let order = MergeOrder::new(table, &key_names, slice_ns)?;
    let row_bytes = estimated_row_bytes(table);
    let k = files.len().max(1);
    // A quarter of the budget for the inputs' batches, a quarter for the
    // rows on their way out, half for the row group being encoded.
    let batch_rows = (budget / 4 / k / row_bytes).clamp(MIN_BATCH_ROWS, MAX_BATCH_ROWS);
    let out_rows = (budget / 4 / row_bytes).clamp(MIN_BATCH_ROWS, 1 << 20);
    let group_rows = (budget / 2 / row_bytes)
        .max(MIN_BATCH_ROWS)
        .min(row_group_rows)
        .max(1);

    let mut out = Output {
        pending: Vec::new(),
        pending_rows: 0,
        pending_bytes: 0,
        dup_groups: Vec::new(),
        last: None,
        writer: None,
        layout: None,
        min_time: i64::MAX,
        max_time: i64::MIN,
        rows: 0,
        peak: 0,
        writer_budget: budget / 2,
        summary: summary_window_ns.map(|w| summary::Builder::new(Arc::new(table.clone()), w)),
        last_rows: LastRowsBuilder::new(table.clone(), key_names.clone()),
    };
    let mut rows_read = 0u64;
    // Sliced output is merged a slice at a time, each slice's rows read from
    // every input that holds some: the inputs need not be in slices, and the
    // merge holds what it would for one slice. Each slice ends a row group.
    let passes: Vec<Option<(i64, i64)>> = match slice_ns {
        None => vec![None],
        Some(width) => {
            let first = job.inputs.iter().map(|f| f.min_time).min().unwrap_or(0);
            let last = job.inputs.iter().map(|f| f.max_time).max().unwrap_or(0);
            (first.div_euclid(width)..=last.div_euclid(width))
                .map(|k| (k.saturating_mul(width), (k + 1).saturating_mul(width)))
                .filter(|&(lo, hi)| {
                    job.inputs
                        .iter()
                        .any(|f| f.min_time < hi && f.max_time >= lo)
                })
                .map(Some)
                .collect()
        }
    };
    for range in passes {
        let mut inputs = Vec::with_capacity(k);
        for (rank, ((reader, metadata), f)) in files.iter().zip(&job.inputs).enumerate() {
            if range.is_some_and(|(lo, hi)| f.max_time < lo || f.min_time >= hi) {
                continue;
            }
            let sorted = is_prefix(f.sort_key.as_deref(), &key_names)
                && (f.time_slice_ns.is_none() || f.time_slice_ns == slice_ns);
            let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
                reader.clone(),
                metadata.clone(),
            );
            let builder = match range {
                Some((lo, hi)) => within(builder, lo, hi)?,
                None => builder,
            };
            // The reader fetches a row group's column chunks whole.
            let fetched = builder
                .metadata()
                .row_groups()
                .iter()
                .map(|rg| rg.compressed_size().max(0) as usize)
                .max()
                .unwrap_or(0);
            let stream = builder.with_batch_size(batch_rows).build()?;
            let deletes = job
                .tombstones
                .iter()
                .filter(|t| t.applies_to_file(f))
                .cloned()
                .collect();
            let mut input = Input::new(rank, stream, sorted, fetched, deletes);
            input.advance(&schema, &order).await?;
            inputs.push(input);
        }
        // What the inputs hold changes only when one moves to its next batch.
        let mut inputs_held: usize = inputs.iter().map(Input::memory).sum();
        loop {
            if cancel.load(AtomicOrdering::Acquire) {
                return Err(Error::Closed);
            }
            // The input with the smallest next row, and the runner-up.
            let mut best: Option<usize> = None;
            let mut second: Option<usize> = None;
            for i in 0..inputs.len() {
                if inputs[i].done() {
                    continue;
                }
                match best {
                    None => best = Some(i),
                    Some(b) if inputs[i].head_cmp(&inputs[b]) == Ordering::Less => {
                        second = best;
                        best = Some(i);
                    }
                    Some(_) => match second {
                        Some(s) if inputs[i].head_cmp(&inputs[s]) != Ordering::Less => {}
                        _ => second = Some(i),
                    },
                }
            }
            let Some(b) = best else { break };
            let run = match second {
                None => inputs[b].remaining(),
                Some(s) => inputs[b].run_before(&inputs[s]),
            };
            let input = &mut inputs[b];
            let (batch, rows, start) = input.current();
            let duplicate = out
                .last
                .as_ref()
                .is_some_and(|last| last.row() == rows.row(start));
            if !duplicate && out.pending_rows >= out_rows {
                out.flush_pending(storage, table, &order, &scales, path, group_rows)
                    .await?;
            }
            out.push(batch.slice(start, run), duplicate);
            out.last = Some(rows.row(start + run - 1).owned());
            rows_read += run as u64;
            input.pos += run;
            out.peak = out.peak.max(inputs_held + out.memory());
            if inputs[b].pos == inputs[b].len() {
                inputs[b].advance(&schema, &order).await?;
                inputs_held = inputs.iter().map(Input::memory).sum();
            }
        }
        out.flush_pending(storage, table, &order, &scales, path, group_rows)
            .await?;
        if range.is_some() {
            out.end_row_group().await?;
        }
    }
    let file = out
        .finish(storage, path, id, table, (&key_names, slice_ns), job)
        .await?;
    Ok(Merged {
        file,
        rows_read,
        peak_memory_bytes: out.peak,
    })
}

/// `builder` reading only the rows with times in `[lo, hi)`: the row groups
/// whose statistics say they may hold some, filtered on `time`.
fn within(
    builder: ParquetRecordBatchStreamBuilder<StoreReader>,
    lo: i64,
    hi: i64,
) -> Result<ParquetRecordBatchStreamBuilder<StoreReader>> {
    let parquet_schema = builder.parquet_schema();
    // Without it every pass would read every row: refuse rather than repeat.
    let leaf = parquet_schema
        .columns()
        .iter()
        .position(|c| c.name() == crate::catalog::TIME_COLUMN)
        .ok_or_else(|| Error::Internal("a file to merge has no time column".into()))?;
    let mask = ProjectionMask::leaves(parquet_schema, [leaf]);
    let row_groups: Vec<usize> = builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| match rg.column(leaf).statistics() {
            Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                (Some(&min), Some(&max)) => min < hi && max >= lo,
                _ => true,
            },
            _ => true,
        })
        .map(|(i, _)| i)
        .collect();
    let in_range = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
        let times = batch
            .column(0)
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| ArrowError::CastError("time is not a nanosecond timestamp".into()))?;
        Ok(times
            .iter()
            .map(|t| t.map(|t| lo <= t && t < hi))
            .collect::<BooleanArray>())
    });
    Ok(builder
        .with_row_groups(row_groups)
        .with_row_filter(RowFilter::new(vec![Box::new(in_range)])))
}

/// The time slices a cold partition's one file is ordered by: the fewest
/// whole hours that hold about a row group of rows each (three hours for a
/// day of 8.6 M rows and 1 Mi-row groups), so that a query of a few hours
/// over every series reads the row groups of those hours, as it would read
/// the flushed files of those hours, and a query of one series over many
/// hours visits few of them. `None` when the rows fit in one row group.
pub(crate) fn cold_slice_ns(rows: u64, partition_width: i64, row_group_rows: usize) -> Option<i64> {
    const HOUR: i64 = 3_600_000_000_000;
    let slices = rows.div_ceil(row_group_rows.max(1) as u64).max(1) as i64;
    if slices < 2 {
        return None;
    }
    let hours = (partition_width / HOUR).max(1);
    let width = (hours + slices - 1) / slices * HOUR;
    (width < partition_width).then_some(width)
}

/// The order the merge sorts by: the time slices of the largest sliced
/// input (else `cold_slice_ns`), and the recorded sort key of the largest
/// input, then the table's other tags in schema order. Within one slice, a
/// file with no slices or the same ones whose own key is a prefix of this is
/// already in this order: the tags its key leaves out are the ones its key
/// determines, constant within each of its series.
fn is_prefix(file_key: Option<&[String]>, merge_key: &[String]) -> bool {
    file_key.is_some_and(|k| merge_key.starts_with(k))
}

fn merge_order(
    table: &TableSchema,
    inputs: &[FileMeta],
    cold_slice_ns: Option<i64>,
) -> (Vec<String>, Option<i64>) {
    let largest = |f: &&FileMeta| f.rows;
    // A file within one slice records none (its order is the same either way).
    let slice_ns = inputs
        .iter()
        .filter(|f| f.time_slice_ns.is_some())
        .max_by_key(largest)
        .and_then(|f| f.time_slice_ns)
        .or(cold_slice_ns);
    let mut key: Vec<String> = inputs
        .iter()
        .filter(|f| f.sort_key.is_some())
        .max_by_key(largest)
        .and_then(|f| f.sort_key.clone())
        .unwrap_or_default();
    key.retain(|name| {
        table
            .column(name)
            .is_some_and(|c| c.kind == ColumnKind::Tag)
    });
    for i in table.tag_indices() {
        let name = &table.columns()[i].name;
        if !key.contains(name) {
            key.push(name.clone());
        }
    }
    (key, slice_ns)
}

/// Rows in a merge's order as Arrow's row format: the key tags, then time.
/// A sliced merge reads one slice per pass, so the slice is not part of the
/// row key; `slice_ns` is what the output records and is encoded with.
struct MergeOrder {
    /// The key tags' schema positions.
    key: Vec<usize>,
    time: usize,
    slice_ns: Option<i64>,
    converter: RowConverter,
}

impl MergeOrder {
    fn new(table: &TableSchema, key_names: &[String], slice_ns: Option<i64>) -> Result<Self> {
        let key: Vec<usize> = key_names
            .iter()
            .filter_map(|n| table.columns().iter().position(|c| &c.name == n))
            .collect();
        let time = table.time_index();
        let time_type = table.arrow_schema().field(time).data_type().clone();
        let fields = key
            .iter()
            .map(|_| tag_type())
            .chain([time_type])
            .map(|t| {
                SortField::new_with_options(
                    t,
                    SortOptions {
                        descending: false,
                        nulls_first: false,
                    },
                )
            })
            .collect();
        Ok(Self {
            key,
            time,
            slice_ns,
            converter: RowConverter::new(fields)?,
        })
    }

    /// The batch's rows in this order's row format.
    fn rows(&self, batch: &RecordBatch) -> Result<Rows> {
        let columns: Vec<ArrayRef> = self
            .key
            .iter()
            .chain([&self.time])
            .map(|&i| batch.column(i).clone())
            .collect();
        Ok(self.converter.convert_columns(&columns)?)
    }
}

/// A rough size of one row in memory, for sizing batches from the budget:
/// the columns plus the row-format key.
fn estimated_row_bytes(table: &TableSchema) -> usize {
    let columns: usize = table
        .columns()
        .iter()
        .map(|c| match c.kind {
            ColumnKind::Time => 8 + 9,
            ColumnKind::Tag => 4 + 24,
            ColumnKind::Field(FieldType::String) => 40,
            ColumnKind::Field(_) => 9,
        })
        .sum();
    columns.max(16)
}

/// Reads a Parquet file's byte ranges from the object store.
#[derive(Clone)]
pub(crate) struct StoreReader {
    pub store: Arc<dyn ObjectStore>,
    pub path: StorePath,
    pub size: u64,
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let (store, path) = (self.store.clone(), self.path.clone());
        async move {
            store
                .get_range(&path, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// One input file as it streams through the merge.
struct Input {
    rank: usize,
    stream: Option<ParquetRecordBatchStream<StoreReader>>,
    /// False when the file is not in the merge's order: it is then read
    /// whole and sorted (a flushed file is at most a memtable's size).
    sorted: bool,
    batch: Option<RecordBatch>,
    rows: Option<Rows>,
    pos: usize,
    /// Bytes of the largest row group, which the reader holds while decoding.
    fetched: usize,
    /// Deletes to apply to the file's rows as they are read.
    deletes: Vec<Arc<Tombstone>>,
}

impl Input {
    fn new(
        rank: usize,
        stream: ParquetRecordBatchStream<StoreReader>,
        sorted: bool,
        fetched: usize,
        deletes: Vec<Arc<Tombstone>>,
    ) -> Self {
        Self {
            rank,
            stream: Some(stream),
            sorted,
            batch: None,
            rows: None,
            pos: 0,
            fetched,
            deletes,
        }
    }

    fn done(&self) -> bool {
        self.batch.is_none()
    }

    fn len(&self) -> usize {
        self.batch.as_ref().map_or(0, |b| b.num_rows())
    }

    fn remaining(&self) -> usize {
        self.len() - self.pos
    }

    fn current(&self) -> (&RecordBatch, &Rows, usize) {
        match (&self.batch, &self.rows) {
            (Some(b), Some(r)) => (b, r, self.pos),
            _ => unreachable!("current() is called on inputs that are not done"),
        }
    }

    fn rows(&self) -> &Rows {
        self.rows
            .as_ref()
            .expect("an input that is not done has rows")
    }

    /// The order of the two inputs' next rows: by key, then by rank.
    fn head_cmp(&self, other: &Input) -> Ordering {
        self.rows()
            .row(self.pos)
            .cmp(&other.rows().row(other.pos))
            .then(self.rank.cmp(&other.rank))
    }

    /// How many of this input's next rows sort before `other`'s next row.
    fn run_before(&self, other: &Input) -> usize {
        let rows = self.rows();
        let head = other.rows().row(other.pos);
        let before = |i: usize| match rows.row(i).cmp(&head) {
            Ordering::Less => true,
            Ordering::Equal => self.rank < other.rank,
            Ordering::Greater => false,
        };
        // The rows are sorted, so `before` holds on a prefix.
        let (mut lo, mut hi) = (self.pos, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if before(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo - self.pos
    }

    fn memory(&self) -> usize {
        let reading = if self.stream.is_some() {
            self.fetched
        } else {
            0
        };
        self.batch.as_ref().map_or(0, |b| b.get_array_memory_size())
            + self.rows.as_ref().map_or(0, |r| r.size())
            + reading
    }

    /// Moves to the next non-empty batch, or marks the input done.
    async fn advance(
        &mut self,
        schema: &arrow::datatypes::SchemaRef,
        order: &MergeOrder,
    ) -> Result<()> {
        self.batch = None;
        self.rows = None;
        self.pos = 0;
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        let deletes: Vec<&Tombstone> = self.deletes.iter().map(|t| t.as_ref()).collect();
        let batch = if self.sorted {
            loop {
                match stream.next().await {
                    Some(b) => {
                        let b = remove_deleted(&align(&b?, schema)?, &deletes)?;
                        if b.num_rows() > 0 {
                            break Some(b);
                        }
                    }
                    None => break None,
                }
            }
        } else {
            let mut all = Vec::new();
            while let Some(b) = stream.next().await {
                all.push(remove_deleted(&align(&b?, schema)?, &deletes)?);
            }
            self.stream = None;
            let whole = concat_batches(schema, &all)?;
            drop(all);
            (whole.num_rows() > 0)
                .then(|| sort_by_key(&whole, order))
                .transpose()?
        };
        let Some(batch) = batch else {
            self.stream = None;
            return Ok(());
        };
        self.rows = Some(order.rows(&batch)?);
        self.batch = Some(batch);
        Ok(())
    }
}

/// The batch sorted in the merge's order (its rows are unique per key).
fn sort_by_key(batch: &RecordBatch, order: &MergeOrder) -> Result<RecordBatch> {
    let rows = order.rows(batch)?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_unstable_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    let indices = UInt32Array::from(order);
    let columns = batch
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), &indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// The merged rows on their way to the output file.
struct Output {
    /// Slices of input batches, in merged order.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// The pending slices' memory as Arrow counts it (each counts the whole
    /// buffers it shares), summed as they come: merges of interleaved
    /// inputs add many short slices, and summing them at every step would
    /// cost the square of their number.
    pending_bytes: usize,
    /// Runs of pending rows with one (series, time): `(first, last)`.
    dup_groups: Vec<(usize, usize)>,
    /// The key of the last row merged.
    last: Option<OwnedRow>,
    writer: Option<OutputFile>,
    layout: Option<Layout>,
    min_time: i64,
    max_time: i64,
    rows: u64,
    peak: usize,
    /// What the row group being gathered may hold before it is written out.
    writer_budget: usize,
    /// The file's summary, built as its rows go out.
    summary: Option<summary::Builder>,
    /// The last row of each of the file's series, gathered likewise.
    last_rows: LastRowsBuilder,
}

impl Output {
    /// Adds merged rows; `duplicate` when the first has the key of the last
    /// row added before it.
    fn push(&mut self, rows: RecordBatch, duplicate: bool) {
        if duplicate {
            let at = self.pending_rows;
            match self.dup_groups.last_mut() {
                Some(group) if group.1 + 1 == at => group.1 = at,
                _ => self.dup_groups.push((at - 1, at)),
            }
        }
        self.pending_rows += rows.num_rows();
        self.pending_bytes += rows.get_array_memory_size();
        self.pending.push(rows);
    }

    fn memory(&self) -> usize {
        // Slices share their input batches' buffers, counted with the inputs
        // while those are current; count them here too, to be safe.
        self.pending_bytes.min(self.pending_rows * 64)
            + self.writer.as_ref().map_or(0, |w| w.group_bytes)
    }

    /// Collapses duplicates in the pending rows and writes them out.
    async fn flush_pending(
        &mut self,
        storage: &Storage,
        table: &TableSchema,
        order: &MergeOrder,
        scales: &[Option<i8>],
        path: &StorePath,
        group_rows: usize,
    ) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let schema = table.arrow_schema();
        let mut batch = concat_batches(schema, &self.pending)?;
        self.pending.clear();
        self.pending_rows = 0;
        self.pending_bytes = 0;
        if !self.dup_groups.is_empty() {
            batch = collapse(table, &batch, &self.dup_groups)?;
            self.dup_groups.clear();
        }
        for &t in time_values(&batch) {
            self.min_time = self.min_time.min(t);
            self.max_time = self.max_time.max(t);
        }
        self.rows += batch.num_rows() as u64;
        self.last_rows.push(&batch)?;
        if self.writer.is_none() {
            let layout = Layout::new(
                &batch,
                table,
                &order.key,
                order.slice_ns,
                group_rows,
                scales,
            )?;
            self.writer = Some(OutputFile {
                file: FileWriter::new(layout.schema.clone(), layout.props.clone())?,
                target: BufWriter::new(storage.store.clone(), path.clone()),
                path: path.clone(),
                group: Vec::new(),
                group_rows: 0,
                group_bytes: 0,
            });
            self.layout = Some(layout);
        }
        if let (Some(writer), Some(layout)) = (self.writer.as_mut(), self.layout.as_ref()) {
            let stored = layout.to_file(&batch)?;
            if let Some(summary) = self.summary.as_mut() {
                summary.push_stored(&batch, Some(&stored))?;
            }
            writer.push(stored, group_rows, self.writer_budget).await?;
        }
        self.peak = self.peak.max(self.memory() + batch.get_array_memory_size());
        Ok(())
    }

    /// Ends the row group being written, if any rows are in it.
    async fn end_row_group(&mut self) -> Result<()> {
        if let Some(writer) = self.writer.as_mut() {
            writer.write_group().await?;
        }
        Ok(())
    }

    /// Closes the file, makes it durable, and describes it.
    async fn finish(
        &mut self,
        storage: &Storage,
        path: &StorePath,
        id: u64,
        table: &TableSchema,
        (key_names, time_slice_ns): (&[String], Option<i64>),
        job: &Job,
    ) -> Result<Option<FileMeta>> {
        let Some(writer) = self.writer.take() else {
            return Ok(None);
        };
        writer.finish().await?;
        storage.sync_local(path)?;
        let bytes = storage.store.head(path).await?.size;
        let summary = match self.summary.take() {
            Some(builder) => write_summary(storage, builder, path)
                .await?
                .map(|(meta, _)| meta),
            None => None,
        };
        let last_rows = std::mem::replace(
            &mut self.last_rows,
            LastRowsBuilder::new(table.clone(), Vec::new()),
        );
        let last_rows = match last_rows.finish()? {
            Some(rows) => write_last_rows(storage, &rows, path).await?,
            None => None,
        };
        let tag_ranges = union_tag_ranges(&job.inputs);
        Ok(Some(FileMeta {
            id,
            database: job.database.clone(),
            table: table.name().to_string(),
            path: path.to_string(),
            partition: job.partition,
            min_time: self.min_time,
            max_time: self.max_time,
            rows: self.rows,
            bytes,
            max_seq: job.inputs.iter().map(|f| f.max_seq).max().unwrap_or(0),
            sort_key: Some(key_names.to_vec()),
            time_slice_ns: spanned_slice(time_slice_ns, self.min_time, self.max_time),
            tag_ranges,
            level: job.level,
            written_at: crate::flush::now_ns(),
            deletes_applied: job
                .tombstones
                .iter()
                .map(|t| t.seq)
                .chain(job.inputs.iter().map(|f| f.deletes_applied))
                .max()
                .unwrap_or(0),
            summary,
            last_rows,
            node: None,
        }))
    }
}

/// The output file as it is written: its rows gathered a row group at a
/// time, each row group encoded as a flush encodes one
/// ([`FileWriter`]) and streamed to the store.
struct OutputFile {
    file: FileWriter,
    target: BufWriter,
    path: StorePath,
    /// The rows of the row group being gathered, as the file stores them.
    group: Vec<RecordBatch>,
    group_rows: usize,
    group_bytes: usize,
}

impl OutputFile {
    /// Adds stored rows; writes a row group out at every `group_rows`
    /// rows, or sooner when the rows held pass `budget` bytes.
    async fn push(
        &mut self,
        mut rows: RecordBatch,
        group_rows: usize,
        budget: usize,
    ) -> Result<()> {
        let group_rows = group_rows.max(1);
        // Slices of one batch each count its whole buffers: share them out.
        let row_bytes = rows.get_array_memory_size() / rows.num_rows().max(1);
        while rows.num_rows() > 0 {
            let take = rows.num_rows().min(group_rows - self.group_rows);
            self.group.push(rows.slice(0, take));
            self.group_rows += take;
            self.group_bytes += take * row_bytes;
            rows = rows.slice(take, rows.num_rows() - take);
            if self.group_rows == group_rows {
                self.write_group().await?;
            }
        }
        if self.group_bytes > budget {
            self.write_group().await?;
        }
        Ok(())
    }

    /// Writes the rows gathered, if any, as a row group.
    async fn write_group(&mut self) -> Result<()> {
        if self.group.is_empty() {
            return Ok(());
        }
        let group = std::mem::take(&mut self.group);
        self.file.write_row_group(&group)?;
        drop(group);
        self.group_rows = 0;
        self.group_bytes = 0;
        let written = self.file.take_written()?;
        self.target.put(Bytes::from(written)).await?;
        Ok(())
    }

    /// Writes the last row group and the footer, and completes the upload.
    async fn finish(mut self) -> Result<()> {
        self.write_group().await?;
        let tail = self.file.finish()?;
        self.target.put(Bytes::from(tail)).await?;
        self.target.shutdown().await.map_err(|source| Error::Io {
            path: self.path.to_string().into(),
            source,
        })?;
        Ok(())
    }
}

/// The union of the inputs' tag ranges (a superset of the output's), or
/// `None` when an input has none recorded.
fn union_tag_ranges(inputs: &[FileMeta]) -> Option<BTreeMap<String, (String, String)>> {
    let mut out: BTreeMap<String, (String, String)> = BTreeMap::new();
    for f in inputs {
        for (tag, (lo, hi)) in f.tag_ranges.as_ref()? {
            out.entry(tag.clone())
                .and_modify(|(a, b)| {
                    if lo < a {
                        *a = lo.clone();
                    }
                    if hi > b {
                        *b = hi.clone();
                    }
                })
                .or_insert_with(|| (lo.clone(), hi.clone()));
        }
    }
    Some(out)
}

/// One row per group of rows with the same (series, time): the group's last
/// row, except that each field takes the last non-null value in the group
/// (the rows of a group are in write order).
fn collapse(
    table: &TableSchema,
    batch: &RecordBatch,
    groups: &[(usize, usize)],
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    // Output row -> (first, last) input row.
    let mut spans: Vec<(u32, u32)> = Vec::with_capacity(n);
    let mut next = groups.iter().peekable();
    let mut i = 0;
    while i < n {
        match next.peek() {
            Some(&&(first, last)) if first == i => {
                spans.push((first as u32, last as u32));
                next.next();
                i = last + 1;
            }
            _ => {
                spans.push((i as u32, i as u32));
                i += 1;
            }
        }
    }
    let last = UInt32Array::from_iter_values(spans.iter().map(|s| s.1));
    let columns = table
        .columns()
        .iter()
        .zip(batch.columns())
        .map(|(col, array)| {
            let indices = match col.kind {
                ColumnKind::Field(_) if array.null_count() > 0 => {
                    UInt32Array::from_iter_values(spans.iter().map(|&(first, last)| {
                        (first..=last)
                            .rev()
                            .find(|&r| array.is_valid(r as usize))
                            .unwrap_or(last)
                    }))
                }
                _ => last.clone(),
            };
            Ok(take(array.as_ref(), &indices, None)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}
