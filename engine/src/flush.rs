//! Persisting a frozen memtable: per table and partition, sort by (series,
//! time) within time slices ([`FileShape`]), deduplicate, encode as Parquet, and put the file in the object store
//! durably. The caller then records the files in the manifest; until it does,
//! the files are invisible, and a crash leaves only orphans that the next
//! open removes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::compute::{cast, max_string, min_string};
use arrow::datatypes::DataType;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tracing::debug;

use crate::catalog::{Catalog, TableSchema};
use crate::dedup::sort_dedup_sliced;
use crate::delete::{Tombstone, remove_deleted};
use crate::error::{Error, Result};
use crate::last_rows::{self, LastRowsMeta};
use crate::manifest::FileMeta;
use crate::memtable::Memtable;
use crate::parquet_file::{Layout, choose_layout, write_converted};
use crate::summary::{self, SummaryMeta};
use crate::wal::sync_dir;
use crate::write::time_values;

/// Where Parquet files live.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    pub store: Arc<dyn ObjectStore>,
    /// Set when `store` is the local file system rooted here: files and their
    /// folders are then fsynced after each put.
    pub local_root: Option<PathBuf>,
    /// In a bucket, the manifest version at which this writer took over its
    /// prefix; it is part of every file name the writer gives, so that a
    /// writer that lost the prefix to a newer one can never write over a
    /// file the newer one recorded. 0 on the local file system.
    pub epoch: u64,
}

impl Storage {
    /// Where the file with id `id` of a table's partition goes.
    pub fn file_path(
        &self,
        database: &str,
        table: &str,
        start: i64,
        width: i64,
        id: u64,
    ) -> StorePath {
        file_path(database, table, start, width, id, self.epoch)
    }

    /// The whole object at `path`.
    pub async fn read(&self, path: &StorePath) -> Result<bytes::Bytes> {
        Ok(self.store.get(path).await?.bytes().await?)
    }

    /// Writes `bytes` at `path` and makes them durable.
    pub async fn put_durable(&self, path: &StorePath, bytes: Vec<u8>) -> Result<()> {
        self.store.put(path, PutPayload::from(bytes)).await?;
        self.sync_local(path)
    }

    /// On the local file system, fsyncs the file at `path` and every folder
    /// up to the root (writing it may have created them); elsewhere a
    /// completed put is durable already.
    pub fn sync_local(&self, path: &StorePath) -> Result<()> {
        if let Some(root) = &self.local_root {
            let file = root.join(path.as_ref());
            std::fs::File::open(&file)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&file, e))?;
            sync_folders(root, &file)?;
        }
        Ok(())
    }

    /// A new file at `path`, written as its bytes come ([`FileSink`]).
    pub fn create(&self, path: &StorePath) -> Result<FileSink> {
        let Some(root) = &self.local_root else {
            return Ok(FileSink {
                path: path.clone(),
                written: 0,
                to: Sink::Store(Vec::new()),
                finished: false,
            });
        };
        let file = root.join(path.as_ref());
        if let Some(folder) = file.parent() {
            std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
        }
        let created = std::fs::File::create(&file).map_err(|e| Error::io(&file, e))?;
        let (parts, received) = std::sync::mpsc::sync_channel(SINK_PARTS);
        let writer = std::thread::Builder::new()
            .name("ingot-file".into())
            .spawn(move || write_parts(created, received))
            .map_err(|e| Error::io(&file, e))?;
        Ok(FileSink {
            path: path.clone(),
            written: 0,
            to: Sink::Local {
                root: root.clone(),
                file,
                parts: Some(parts),
                writer: Some(writer),
            },
            finished: false,
        })
    }
}

/// Fsyncs every folder from the one holding `file` up to `root`.
fn sync_folders(root: &Path, file: &Path) -> Result<()> {
    let mut dir = file.parent();
    while let Some(d) = dir {
        sync_dir(d)?;
        if d == root {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

/// Parts a file's writer thread holds, beyond the one it writes: a part is
/// a row group's bytes (a few MB).
const SINK_PARTS: usize = 2;

/// A file written as its bytes come. On the local file system a thread of
/// its own writes each part to the file's place and starts its writeback
/// while the next is encoded, so that making the file durable waits for its
/// last part only, and its copy into the page cache is off the flush's path.
/// Elsewhere the parts are gathered and put whole. Until the manifest names
/// it the file is invisible to reads; one not finished is removed.
pub(crate) struct FileSink {
    path: StorePath,
    written: u64,
    to: Sink,
    /// Set once the whole file is durable.
    finished: bool,
}

enum Sink {
    Local {
        root: PathBuf,
        file: PathBuf,
        /// `None` once the writer is told that no more parts come.
        parts: Option<SyncSender<Vec<u8>>>,
        writer: Option<JoinHandle<std::io::Result<()>>>,
    },
    Store(Vec<u8>),
}

impl FileSink {
    /// Appends `bytes` to the file.
    pub fn write(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.written += bytes.len() as u64;
        match &mut self.to {
            Sink::Local { parts, .. } => {
                let sent = parts.as_ref().map(|p| p.send(bytes));
                if !matches!(sent, Some(Ok(()))) {
                    // The writer stopped: its error says why. It stops only
                    // on an error, but a part must never be lost quietly.
                    self.join()?;
                    return Err(Error::Internal(format!(
                        "{}: the file's writer stopped before its last part",
                        self.path
                    )));
                }
                Ok(())
            }
            Sink::Store(gathered) => {
                gathered.extend(bytes);
                Ok(())
            }
        }
    }

    /// Makes the whole file durable; returns its size.
    pub async fn finish(mut self, storage: &Storage) -> Result<u64> {
        match &mut self.to {
            Sink::Local { .. } => {
                self.join()?;
                if let Sink::Local { root, file, .. } = &self.to {
                    sync_folders(root, file)?;
                }
            }
            Sink::Store(gathered) => {
                let bytes = std::mem::take(gathered);
                storage.put_durable(&self.path, bytes).await?;
            }
        }
        self.finished = true;
        Ok(self.written)
    }

    /// Waits for the writer thread to write every part sent and make the
    /// file durable.
    fn join(&mut self) -> Result<()> {
        let Sink::Local {
            file,
            parts,
            writer,
            ..
        } = &mut self.to
        else {
            return Ok(());
        };
        parts.take();
        match writer.take().map(|w| w.join()) {
            None => Err(Error::Internal(format!(
                "{}: the file's writer already stopped",
                file.display()
            ))),
            Some(Ok(written)) => written.map_err(|e| Error::io(file.as_path(), e)),
            Some(Err(_)) => Err(Error::Internal(format!(
                "{}: the file's writer panicked",
                file.display()
            ))),
        }
    }
}

impl Drop for FileSink {
    /// A file not finished is not a file: its writer stops and it is
    /// removed (or, failing that, by the next open, as an orphan).
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Sink::Local {
            file,
            parts,
            writer,
            ..
        } = &mut self.to
        {
            parts.take();
            if let Some(writer) = writer.take() {
                let _ = writer.join();
            }
            let _ = std::fs::remove_file(file.as_path());
        }
    }
}

/// Writes each part received to `file`, starting its writeback, until the
/// sender is gone; then makes the whole file durable.
fn write_parts(mut file: File, parts: Receiver<Vec<u8>>) -> std::io::Result<()> {
    let mut offset = 0u64;
    for part in parts {
        file.write_all(&part)?;
        start_writeback(&file, offset, part.len() as u64)?;
        offset += part.len() as u64;
    }
    file.sync_all()
}

/// Starts writing `len` bytes of `file` from `offset` to the disk, without
/// waiting: the file's one sync at the end then waits for its last part
/// only. A sync of each part would also commit the file system's journal
/// once per part (the file's size changes), which the WAL's syncs wait
/// behind.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Ok(());
    };
    // SAFETY: a call on a file descriptor `file` owns; it reads no memory.
    let rc = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Elsewhere the file's sync at the end writes it all.
#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: u64) -> std::io::Result<()> {
    Ok(())
}

/// The narrowest time slice files are ordered by.
const MIN_SLICE_NS: i64 = 60_000_000_000;

/// How the engine cuts rows into files and orders them inside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileShape {
    /// Width of a time partition (ns): a file holds one partition's rows.
    pub partition_width: i64,
    pub row_group_rows: usize,
    /// Rows are ordered by (time slice, series, time), slices this wide
    /// (ns); `None` orders them by (series, time) alone.
    pub time_slice_ns: Option<i64>,
    /// Width of the windows of the summary written beside each file (ns);
    /// `None` writes none.
    pub summary_window_ns: Option<i64>,
}

impl FileShape {
    pub fn new(partition_width: i64, row_group_rows: usize, time_slice: Option<Duration>) -> Self {
        // A slice as wide as the partition is no slice at all; one narrower
        // than a minute is a minute (a merge reads its inputs once a slice).
        let time_slice_ns = time_slice
            .map(|d| d.as_nanos().clamp(MIN_SLICE_NS as u128, i64::MAX as u128) as i64)
            .filter(|&w| w < partition_width);
        Self {
            partition_width,
            row_group_rows,
            time_slice_ns,
            summary_window_ns: None,
        }
    }

    /// The shape with summaries in windows `window` wide (at least a second).
    pub fn with_summary_window(mut self, window: Option<Duration>) -> Self {
        self.summary_window_ns =
            window.map(|d| d.as_nanos().clamp(1_000_000_000, i64::MAX as u128) as i64);
        self
    }
}

/// The slice width a file with rows from `min_time` to `max_time` records:
/// none when they all fall in one slice, as its rows are then in (series,
/// time) order.
pub(crate) fn spanned_slice(slice_ns: Option<i64>, min_time: i64, max_time: i64) -> Option<i64> {
    slice_ns.filter(|&w| min_time.div_euclid(w) != max_time.div_euclid(w))
}

/// The wall clock in nanoseconds since the epoch.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Hive-style folder name(s) of a partition: `day=YYYY-MM-DD`, plus
/// `hour=HH` when partitions are narrower than a day.
pub(crate) fn partition_dirs(start: i64, width: i64) -> Vec<String> {
    let secs = start.div_euclid(1_000_000_000);
    let dt = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    let mut dirs = vec![format!("day={}", dt.format("%Y-%m-%d"))];
    if width % 86_400_000_000_000 != 0 {
        dirs.push(format!("hour={}", dt.format("%H")));
    }
    dirs
}

/// `tables/{database}/{table}/{partition}/{id}.parquet`, with `-{epoch}`
/// after the id when `epoch` is not 0 (see [`Storage::epoch`]).
pub(crate) fn file_path(
    database: &str,
    table: &str,
    start: i64,
    width: i64,
    id: u64,
    epoch: u64,
) -> StorePath {
    let file = match epoch {
        0 => format!("{id:020}.parquet"),
        e => format!("{id:020}-{e}.parquet"),
    };
    let parts: Vec<String> = [
        "tables".to_string(),
        database.to_string(),
        table.to_string(),
    ]
    .into_iter()
    .chain(partition_dirs(start, width))
    .chain([file])
    .collect();
    StorePath::from_iter(parts.iter().map(String::as_str))
}

/// A file a flush wrote, with the last row of each of its series and its
/// summary's rows.
pub(crate) struct Persisted {
    pub meta: FileMeta,
    pub last_rows: RecordBatch,
    pub summary: Option<RecordBatch>,
}

/// Writes every table partition of `frozen` as one Parquet file; returns the
/// files, with ids from `next_file_id` on.
pub(crate) async fn flush_memtable(
    storage: &Storage,
    frozen: &Memtable,
    catalog: &Catalog,
    next_file_id: &mut u64,
    shape: FileShape,
    tombstones: &[Arc<Tombstone>],
) -> Result<Vec<Persisted>> {
    // Every delete known now is applied to the rows written before it; the
    // files record the newest, which covers every older one.
    let deletes_applied = tombstones.iter().map(|t| t.seq).max().unwrap_or(0);
    let mut files = Vec::new();
    let mut keys: Vec<_> = frozen.tables().keys().collect();
    keys.sort();
    for key in keys {
        let (database, table) = key;
        let schema = catalog.table(database, table).ok_or_else(|| {
            Error::Internal(format!(
                "memtable holds {database}.{table}, which the catalog lacks"
            ))
        })?;
        for (&start, chunks) in &frozen.tables()[key] {
            let mut inputs: Vec<(u64, RecordBatch)> = Vec::with_capacity(chunks.len());
            for c in chunks.iter() {
                let deletes: Vec<&Tombstone> = tombstones
                    .iter()
                    .filter(|t| t.applies_to_chunk(database, table, c.seq))
                    .map(|t| t.as_ref())
                    .collect();
                let batch = remove_deleted(&c.batch, &deletes)?;
                if batch.num_rows() > 0 {
                    inputs.push((c.seq, batch));
                }
            }
            if inputs.is_empty() {
                // Every row was deleted.
                continue;
            }
            let sort_started = Instant::now();
            let sorted = sort_dedup_sliced(&schema, &inputs, shape.time_slice_ns)?;
            let batch = sorted.batch.clone();
            let sort_ms = sort_started.elapsed().as_millis() as u64;
            let encode_started = Instant::now();
            let times = time_values(&batch);
            let min_time = times.iter().copied().min().unwrap_or(start);
            let max_time = times.iter().copied().max().unwrap_or(start);
            let max_seq = chunks.iter().map(|c| c.seq).max().unwrap_or(0);
            // Decimal scales from the first rows fit nearly every file; when
            // a later value needs a finer one, the file is encoded again
            // with the scales of every row.
            let layout_of = |every_row| {
                choose_layout(
                    &batch,
                    &schema,
                    &sorted.key_order,
                    shape.row_group_rows,
                    shape.time_slice_ns,
                    every_row,
                )
            };
            let id = *next_file_id;
            *next_file_id += 1;
            let path = storage.file_path(database, table, start, shape.partition_width, id);
            // The file is written as its row groups are encoded; one that
            // fails its decimal scales is removed before it is written again.
            let write = |layout: &Layout| -> Result<Option<(Encoded, FileSink)>> {
                let mut sink = storage.create(&path)?;
                let encoded = encode_file(&batch, &schema, layout, shape, &mut sink)?;
                Ok(encoded.map(|e| (e, sink)))
            };
            let (encoded, sink) = match write(&layout_of(false)?)? {
                Some(written) => written,
                None => write(&layout_of(true)?)?.ok_or_else(|| {
                    Error::Internal(format!(
                        "{database}.{table}: a float is not exact at the decimal \
                         scale chosen from every value of its column"
                    ))
                })?,
            };
            let Encoded {
                summary: builder,
                summary_ms,
            } = encoded;
            let encode_ms = encode_started.elapsed().as_millis() as u64;
            // The summary is sorted and encoded on another thread while the
            // file's last part goes to the disk.
            let summarizing =
                builder.map(|b| tokio::task::spawn_blocking(move || build_summary(b)));
            let size = sink.finish(storage).await?;
            let built = match summarizing {
                Some(task) => task
                    .await
                    .map_err(|e| Error::Internal(format!("summarizing {path} stopped: {e}")))??,
                None => None,
            };
            debug!(%path, rows = batch.num_rows(), size, sort_ms, encode_ms, summary_ms, "file written");
            let sort_key: Vec<String> = sorted
                .key_order
                .iter()
                .map(|&i| schema.columns()[i].name.clone())
                .collect();
            let last_rows = sorted.last_rows()?;
            let sidecars_started = Instant::now();
            let (summary, summary_rows) = match built {
                Some(built) => {
                    let (meta, rows) = put_summary(storage, built, &path).await?;
                    (Some(meta), Some(rows))
                }
                None => (None, None),
            };
            let last_rows_meta = write_last_rows(storage, &last_rows, &path).await?;
            let sidecars_ms = sidecars_started.elapsed().as_millis() as u64;
            debug!(%path, sidecars_ms, "summary and last rows written");
            let meta = FileMeta {
                id,
                database: database.clone(),
                table: table.clone(),
                path: path.to_string(),
                partition: start,
                min_time,
                max_time,
                rows: batch.num_rows() as u64,
                bytes: size,
                max_seq,
                sort_key: Some(sort_key),
                time_slice_ns: spanned_slice(shape.time_slice_ns, min_time, max_time),
                tag_ranges: Some(tag_ranges(&batch, &schema)?),
                level: 0,
                written_at: now_ns(),
                deletes_applied,
                summary,
                last_rows: last_rows_meta,
                node: None,
            };
            files.push(Persisted {
                meta,
                last_rows,
                summary: summary_rows,
            });
        }
    }
    Ok(files)
}

/// Writes the Parquet file of `batch` (sorted, deduplicated) in `layout` to
/// `sink`; returns its summary when `shape` asks for one (each row group
/// summarized while it is encoded), with the time the summary took (ms).
/// `None` when a float is not exact at the layout's decimal scale.
fn encode_file(
    batch: &RecordBatch,
    schema: &Arc<TableSchema>,
    layout: &Layout,
    shape: FileShape,
    sink: &mut FileSink,
) -> Result<Option<Encoded>> {
    let mut builder = shape
        .summary_window_ns
        .map(|window| summary::Builder::new(schema.clone(), window));
    let mut summary_time = Duration::ZERO;
    let written = Instant::now();
    let exact = write_converted(
        batch,
        layout,
        shape.row_group_rows,
        |rows, stored| {
            if let Some(builder) = builder.as_mut() {
                let started = Instant::now();
                builder.push_stored(rows, Some(stored))?;
                summary_time += started.elapsed();
            }
            Ok(())
        },
        |part| sink.write(part),
    )?;
    if !exact {
        return Ok(None);
    }
    debug!(
        write_ms = written.elapsed().as_millis() as u64,
        "row groups encoded"
    );
    Ok(Some(Encoded {
        summary: builder,
        summary_ms: summary_time.as_millis() as u64,
    }))
}

/// What encoding a data file gives beside its bytes.
struct Encoded {
    /// Every row group summarized; sorted and encoded while the file is
    /// made durable.
    summary: Option<summary::Builder>,
    /// Time spent summarizing row groups, beside their encoding.
    summary_ms: u64,
}

/// Writes the summary a builder holds beside the data file at `data`, and
/// makes it durable; returns what the manifest records of it, and its rows
/// (in the summary schema); `None` when it has no rows.
pub(crate) async fn write_summary(
    storage: &Storage,
    builder: summary::Builder,
    data: &StorePath,
) -> Result<Option<(SummaryMeta, RecordBatch)>> {
    match build_summary(builder)? {
        Some(built) => Ok(Some(put_summary(storage, built, data).await?)),
        None => Ok(None),
    }
}

/// A summary's rows and its file's bytes, not yet written.
pub(crate) struct BuiltSummary {
    window_ns: i64,
    keys: Vec<String>,
    batch: RecordBatch,
    bytes: Vec<u8>,
}

/// The rows a summary builder holds, and their file; `None` when it has no
/// rows.
pub(crate) fn build_summary(builder: summary::Builder) -> Result<Option<BuiltSummary>> {
    let window_ns = builder.window_ns();
    let schema = builder.schema().clone();
    let started = Instant::now();
    let Some((batch, keys)) = builder.finish()? else {
        return Ok(None);
    };
    let finish_ms = started.elapsed().as_millis() as u64;
    let bytes = summary::encode(&schema, &batch)?;
    let encode_ms = started.elapsed().as_millis() as u64 - finish_ms;
    debug!(
        rows = batch.num_rows(),
        size = bytes.len(),
        finish_ms,
        encode_ms,
        "summary built"
    );
    Ok(Some(BuiltSummary {
        window_ns,
        keys,
        batch,
        bytes,
    }))
}

/// Writes a built summary beside the data file at `data` and makes it
/// durable; returns what the manifest records of it, and its rows.
pub(crate) async fn put_summary(
    storage: &Storage,
    built: BuiltSummary,
    data: &StorePath,
) -> Result<(SummaryMeta, RecordBatch)> {
    let size = built.bytes.len() as u64;
    let path = StorePath::from(summary::summary_path(data.as_ref()));
    storage.put_durable(&path, built.bytes).await?;
    let meta = SummaryMeta {
        window_ns: built.window_ns,
        keys: built.keys,
        rows: built.batch.num_rows() as u64,
        bytes: size,
    };
    Ok((meta, built.batch))
}

/// Writes a file's last rows beside the data file at `data`, and makes them
/// durable; `None` when there are none.
pub(crate) async fn write_last_rows(
    storage: &Storage,
    rows: &RecordBatch,
    data: &StorePath,
) -> Result<Option<LastRowsMeta>> {
    if rows.num_rows() == 0 {
        return Ok(None);
    }
    let bytes = last_rows::encode(rows)?;
    let size = bytes.len() as u64;
    let path = StorePath::from(last_rows::last_rows_path(data.as_ref()));
    storage.put_durable(&path, bytes).await?;
    Ok(Some(LastRowsMeta {
        rows: rows.num_rows() as u64,
        bytes: size,
    }))
}

/// The smallest and largest value of each tag column with any value. Values
/// a dictionary holds but no row uses may widen a range, never narrow it.
fn tag_ranges(
    batch: &RecordBatch,
    schema: &TableSchema,
) -> Result<BTreeMap<String, (String, String)>> {
    let mut ranges = BTreeMap::new();
    for i in schema.tag_indices() {
        let name = &schema.columns()[i].name;
        let Some(column) = batch.column_by_name(name) else {
            continue;
        };
        let values = match column.as_any_dictionary_opt() {
            Some(dict) => dict.values().clone(),
            None => column.clone(),
        };
        let values = cast(&values, &DataType::Utf8)?;
        let Some(strings) = values.as_any().downcast_ref::<StringArray>() else {
            continue;
        };
        if let (Some(min), Some(max)) = (min_string(strings), max_string(strings)) {
            ranges.insert(name.clone(), (min.to_string(), max.to_string()));
        }
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;
    use object_store::memory::InMemory;

    fn local(dir: &Path) -> Storage {
        Storage {
            store: Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap()),
            local_root: Some(dir.to_path_buf()),
            epoch: 0,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_file_sink_writes_its_parts_where_the_store_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let storage = local(dir.path());
        // A table name the store escapes in its path.
        let path = file_path("public", "cpu/x", 0, 86_400_000_000_000, 3, 0);
        let mut sink = storage.create(&path).unwrap();
        sink.write(b"PAR1 row group ".to_vec()).unwrap();
        sink.write(Vec::new()).unwrap();
        sink.write(b"footer".to_vec()).unwrap();
        assert_eq!(block_on(sink.finish(&storage)).unwrap(), 21);
        let read = block_on(storage.read(&path)).unwrap();
        assert_eq!(&read[..], b"PAR1 row group footer");
    }

    #[test]
    fn a_file_sink_not_finished_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let storage = local(dir.path());
        let path = file_path("public", "cpu", 0, 86_400_000_000_000, 4, 0);
        let mut sink = storage.create(&path).unwrap();
        sink.write(vec![7; 1 << 20]).unwrap();
        drop(sink);
        let head = block_on(storage.store.head(&path));
        assert!(
            matches!(head, Err(object_store::Error::NotFound { .. })),
            "{head:?}"
        );
        // A file written again at the same place after one was given up.
        let mut sink = storage.create(&path).unwrap();
        sink.write(b"again".to_vec()).unwrap();
        drop(
            storage
                .create(&StorePath::from("tables/other.parquet"))
                .unwrap(),
        );
        assert_eq!(block_on(sink.finish(&storage)).unwrap(), 5);
        assert_eq!(&block_on(storage.read(&path)).unwrap()[..], b"again");
    }

    #[test]
    fn a_file_sink_puts_a_bucket_file_whole_when_finished() {
        let storage = Storage {
            store: Arc::new(InMemory::new()),
            local_root: None,
            epoch: 2,
        };
        let path = storage.file_path("public", "cpu", 0, 86_400_000_000_000, 5);
        let mut sink = storage.create(&path).unwrap();
        sink.write(b"row group ".to_vec()).unwrap();
        sink.write(b"footer".to_vec()).unwrap();
        assert!(block_on(storage.store.head(&path)).is_err());
        assert_eq!(block_on(sink.finish(&storage)).unwrap(), 16);
        assert_eq!(
            &block_on(storage.read(&path)).unwrap()[..],
            b"row group footer"
        );
    }

    #[test]
    fn time_slices_are_narrower_than_a_partition_and_at_least_a_minute() {
        let day = 86_400_000_000_000i64;
        let slice = |d: Duration| FileShape::new(day, 1, Some(d)).time_slice_ns;
        assert_eq!(slice(Duration::from_secs(3600)), Some(3_600_000_000_000));
        assert_eq!(slice(Duration::from_millis(1)), Some(MIN_SLICE_NS));
        assert_eq!(slice(Duration::from_secs(86_400)), None);
        assert_eq!(slice(Duration::from_secs(7 * 86_400)), None);
        assert_eq!(FileShape::new(day, 1, None).time_slice_ns, None);
    }

    #[test]
    fn partition_folders() {
        let day = 86_400_000_000_000i64;
        let start = 1_767_225_600_000_000_000i64; // 2026-01-01
        assert_eq!(partition_dirs(start, day), ["day=2026-01-01"]);
        let hour = 3_600_000_000_000i64;
        assert_eq!(
            partition_dirs(start + 5 * hour, hour),
            ["day=2026-01-01", "hour=05"]
        );
        assert_eq!(
            file_path("public", "cpu/x", start, day, 7, 0).to_string(),
            "tables/public/cpu%2Fx/day=2026-01-01/00000000000000000007.parquet"
        );
    }
}
