//! The [`Engine`]: opening a data directory, the write pipeline, the flusher.
//!
//! Threads: callers validate and encode their writes on their own threads,
//! then queue them for the group commit (`commit`): one writer at a time
//! leads, appending everything queued to the WAL, fsyncing once for the
//! whole group, applying it to the memtable in sequence order and
//! acknowledging each writer. A **flusher thread** freezes
//! the memtable, writes Parquet files, records them in the manifest and
//! retires WAL segments. A **compactor thread** merges each partition's files
//! (`compaction`). Both change the manifest only through
//! [`Shared::edit_manifest`], one change at a time.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use tracing::{debug, error, info, warn};

use crate::cache::{CacheStats, CachedStore};
use crate::catalog::Catalog;
use crate::commit::{Change, Committer, WriteRequest};
use crate::compaction::{CompactMsg, CompactionRecord, run_compactor};
use crate::delete::{Dropped, Tombstone, still_needed};
use crate::delta::{PublishMsg, PublishRecord, run_publisher};
use crate::error::{Error, Result};
use crate::flush::{FileShape, Storage, flush_memtable, now_ns};
use crate::last_rows::LastRowsCache;
use crate::manifest::{Manifest, ManifestLog, ManifestStore};
use crate::memtable::Memtable;
use crate::object_manifest::ObjectManifest;
use crate::options::{Options, Precision};
use crate::readers::Readers;
use crate::replica::{Follow, NoLog, check_node_id, node_store};
use crate::retention::check_period;
use crate::statement::Statement;
use crate::summary_cache::SummaryCache;
use crate::wal::{self, WalWriter};
use crate::write::{
    Entry, TableWrite, WriteSummary, check_name, count_points, decode_record, encode_drop,
    encode_entry, first_line_before, first_line_writing, normalize_batch, parse_line_protocol,
};

/// The default database.
pub const DEFAULT_DATABASE: &str = "public";

/// An open Ingot data directory. Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.inner.shared.dir)
            .finish_non_exhaustive()
    }
}

struct Inner {
    shared: Arc<Shared>,
    committer: Arc<Committer>,
    flush_tx: Sender<FlushMsg>,
    compact_tx: Sender<CompactMsg>,
    /// The Delta Lake publisher's, when `Options::delta_lake` is on.
    publish_tx: Option<Sender<PublishMsg>>,
    /// The rollup maintainer's (none on a read-only replica).
    rollup_tx: Option<Sender<RollupMsg>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Stops a replica's refresher (dropping it does too).
    refresh_stop: Mutex<Option<Sender<()>>>,
    lock: Mutex<Option<File>>,
}

/// What every thread of the engine shares.
pub(crate) struct Shared {
    pub dir: PathBuf,
    wal_dir: PathBuf,
    pub options: Options,
    pub partition_width: i64,
    pub storage: Storage,
    /// DataFusion's runtime for this engine's queries (memory pool, store).
    pub runtime_env: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    /// The session every query's session is a copy of, made on the first
    /// query: building one registers DataFusion's hundreds of functions,
    /// a tenth of a millisecond that a short query would notice.
    pub session_template: OnceLock<datafusion::execution::SessionState>,
    pub catalog: RwLock<Catalog>,
    pub state: RwLock<State>,
    /// Bytes reserved by writes that are not yet persisted (memtable, frozen
    /// memtables, and writes on their way to the WAL).
    mem_bytes: AtomicUsize,
    mem_lock: Mutex<()>,
    mem_freed: Condvar,
    pub closed: AtomicBool,
    pub stats: Counters,
    /// The last row of every series in the files, per table.
    pub last_rows: LastRowsCache,
    /// Decoded summaries of the newest files.
    pub summaries: SummaryCache,
    /// The counters of the local cache of a bucket's files (zero without).
    pub cache: Arc<CacheStats>,
    /// The manifest version in a bucket (0 without).
    pub manifest_version: Arc<AtomicU64>,
    /// Where the manifest is recorded; held while it is read, changed,
    /// recorded and swapped in.
    manifest_lock: Mutex<Box<dyn ManifestLog>>,
    /// The next id for a Parquet file; recorded in each manifest change.
    next_file_id: AtomicU64,
    /// The manifest versions running reads use, and the files waiting for them.
    pub readers: Arc<Readers>,
    /// The most recent compactions, newest last.
    pub compactions: Mutex<VecDeque<CompactionRecord>>,
    /// The group commit, set once the WAL is replayed (deletes go through
    /// it from query plans).
    pub committer: OnceLock<Arc<Committer>>,
}

/// Running totals behind [`Engine::stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub wal_records: AtomicU64,
    pub wal_fsyncs: AtomicU64,
    pub wal_fsync_nanos: AtomicU64,
    flushes: AtomicU64,
    files_written: AtomicU64,
    bytes_flushed: AtomicU64,
    pub compactions: AtomicU64,
    pub compactions_running: AtomicU64,
    pub bytes_compacted: AtomicU64,
    pub compaction_bytes_written: AtomicU64,
    pub files_expired: AtomicU64,
    pub rows_expired: AtomicU64,
    pub rows_deleted: AtomicU64,
}

/// What an engine has done since it was opened (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EngineStats {
    /// Write requests appended to the WAL.
    pub wal_records: u64,
    /// fsyncs of the WAL; fewer than records when concurrent writes share one.
    pub wal_fsyncs: u64,
    /// Time spent in WAL fsyncs, nanoseconds.
    pub wal_fsync_nanos: u64,
    /// Completed flushes of a frozen memtable.
    pub flushes: u64,
    /// Parquet files written by flushes, and their bytes.
    pub files_written: u64,
    pub bytes_flushed: u64,
    /// Bytes of written data not yet persisted.
    pub memtable_bytes: u64,
    /// Live Parquet files.
    pub files: u64,
    /// Completed compactions.
    pub compactions: u64,
    /// Compactions under way now (0 or 1).
    pub compactions_running: u64,
    /// Bytes of Parquet files read by compactions.
    pub bytes_compacted: u64,
    /// Bytes of Parquet files written by compactions.
    pub compaction_bytes_written: u64,
    /// Files compaction replaced that running queries may still read; they
    /// are deleted when those queries finish.
    pub files_awaiting_deletion: u64,
    /// Files removed because their rows were all past their database's
    /// retention period, and the rows they held.
    pub files_expired: u64,
    pub rows_expired: u64,
    /// Rows removed by `DELETE`, as each counted them when it ran.
    pub rows_deleted: u64,
    /// Memory held by decoded summaries (`Options::summary_cache_bytes`).
    pub summary_cache_bytes: u64,
    /// With an object store: reads of its files served from the local cache
    /// (`Options::cache_bytes`), reads that fetched a file from the store,
    /// the bytes fetched, and the bytes the cache holds.
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_fetched_bytes: u64,
    pub cache_bytes: u64,
    /// With an object store: the version of the manifest last read or
    /// recorded there.
    pub manifest_version: u64,
}

/// The data a query can see: the memtable, memtables being flushed, and the
/// persisted files. Swapped under one lock so that a query never sees a row
/// twice or misses one while a flush completes.
pub(crate) struct State {
    pub active: Memtable,
    pub frozen: Vec<Arc<Memtable>>,
    pub manifest: Arc<Manifest>,
    /// Counts the manifest's changes since open (for [`Readers`]).
    pub version: u64,
    /// Deletes that may still remove rows somewhere, oldest first.
    pub tombstones: Vec<Arc<Tombstone>>,
    /// Drops a flush has not yet passed ([`crate::delete`]): files they
    /// cover are invisible, and left out of the next manifest change.
    pub drops: Vec<Dropped>,
}

impl State {
    /// The (database, table, partition start) of every row in the memtables:
    /// partitions that are still receiving writes, with another file on its
    /// way.
    pub fn unflushed_partitions(&self) -> HashSet<(String, String, i64)> {
        let mut unflushed = HashSet::new();
        for m in self.frozen.iter().map(|m| m.as_ref()).chain([&self.active]) {
            for ((database, table), partitions) in m.tables() {
                for &start in partitions.keys() {
                    unflushed.insert((database.clone(), table.clone(), start));
                }
            }
        }
        unflushed
    }
}

pub(crate) enum FlushMsg {
    /// Persist everything; reply when done if asked.
    Flush(Option<Sender<Result<()>>>),
    Shutdown,
}

impl Engine {
    /// Opens (creating if needed) the data directory `dir`, replays its WAL
    /// and starts the engine's threads.
    ///
    /// Blocking (it may replay and flush a large WAL): from async code, call
    /// it inside `spawn_blocking`. Calling it on a runtime thread also works;
    /// the work that needs a runtime of its own runs on a separate thread.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Engine> {
        let dir = dir.as_ref().to_path_buf();
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("ingot-open".into())
                .spawn_scoped(s, || Engine::open_here(dir, options))
                .map_err(|e| Error::Internal(format!("cannot start the open thread: {e}")))?
                .join()
                .map_err(|_| Error::Internal("opening the engine panicked".into()))?
        })
    }

    fn open_here(dir: PathBuf, mut options: Options) -> Result<Engine> {
        if options.read_only {
            if options.object_store.is_none() {
                return Err(Error::InvalidInput(
                    "a read-only engine is a query replica of a bucket: set the object store \
                     (Options::object_store, --object-store) the writer uses"
                        .into(),
                ));
            }
            // A replica changes nothing in the bucket.
            options.compaction = false;
            options.delta_lake = false;
        }
        let width = i64::try_from(options.partition_duration.as_nanos()).unwrap_or(i64::MAX);
        if width <= 0 || width % 3_600_000_000_000 != 0 {
            return Err(Error::InvalidWrite(format!(
                "partition duration {:?} must be a whole, positive number of hours",
                options.partition_duration
            )));
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock = lock_dir(&dir)?;
        let wal_dir = dir.join("wal");
        fs::create_dir_all(&wal_dir).map_err(|e| Error::io(&wal_dir, e))?;
        // A replica's manifest log, which its refresher follows.
        let mut follow = None;
        let mut cache_stats = Arc::new(CacheStats::default());
        let mut manifest_version = Arc::new(AtomicU64::new(0));
        let (storage, manifest_store, mut manifest) = match &options.object_store {
            Some(store) if options.read_only => {
                let cache =
                    CachedStore::new(store.clone(), dir.join("cache"), options.cache_bytes)?;
                cache_stats = cache.stats();
                let (log, manifest) = Follow::open(store.clone())?;
                manifest_version = log.shown_version();
                follow = Some(log);
                let storage = Storage {
                    store: Arc::new(cache),
                    local_root: None,
                    epoch: 0,
                };
                let log = NoLog {
                    store: store.to_string(),
                };
                (storage, Box::new(log) as Box<dyn ManifestLog>, manifest)
            }
            Some(store) => {
                // A node of a cluster writes under its own folder.
                let store = match &options.node_id {
                    Some(id) => {
                        check_node_id(id)?;
                        node_store(store.clone(), id)
                    }
                    None => store.clone(),
                };
                let cache =
                    CachedStore::new(store.clone(), dir.join("cache"), options.cache_bytes)?;
                cache_stats = cache.stats();
                let (mut log, mut manifest) = ObjectManifest::open(store.clone())?;
                manifest_version = log.shown_version();
                // Take the prefix over: a writer still running on it fails
                // its next change, and this one names its files by the
                // version it took over at.
                let mut fenced = manifest.clone();
                log.commit(&manifest, &mut fenced)?;
                manifest = fenced;
                let storage = Storage {
                    store: Arc::new(cache),
                    local_root: None,
                    epoch: log.version(),
                };
                (storage, Box::new(log) as Box<dyn ManifestLog>, manifest)
            }
            None => {
                let root = dir.join("tables");
                fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
                let storage = Storage {
                    store: Arc::new(LocalFileSystem::new_with_prefix(&dir)?),
                    local_root: Some(dir.clone()),
                    epoch: 0,
                };
                let (log, manifest) = ManifestStore::open(&dir)?;
                (storage, Box::new(log) as Box<dyn ManifestLog>, manifest)
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io(&dir, e))?;
        // Other processes read a bucket's files: removed ones wait for them.
        let grace = match options.object_store {
            Some(_) => options.replica_grace,
            None => Duration::ZERO,
        };
        if !options.read_only {
            runtime.block_on(remove_orphans(&storage, &mut manifest, grace))?;
        }
        let next_file_id = manifest.next_file_id.max(1);
        let runtime_env =
            crate::query::runtime_env(options.query_memory_limit_bytes, storage.store.clone())?;
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            runtime_env,
            session_template: OnceLock::new(),
            wal_dir: wal_dir.clone(),
            partition_width: width,
            storage,
            catalog: RwLock::new({
                let mut catalog = Catalog::from_snapshot(&manifest.catalog);
                catalog.set_default_retention(options.default_retention);
                catalog
            }),
            state: RwLock::new(State {
                active: Memtable::default(),
                frozen: Vec::new(),
                tombstones: manifest.tombstones.iter().cloned().map(Arc::new).collect(),
                drops: manifest.drops.clone(),
                manifest: Arc::new(manifest),
                version: 0,
            }),
            mem_bytes: AtomicUsize::new(0),
            mem_lock: Mutex::new(()),
            mem_freed: Condvar::new(),
            closed: AtomicBool::new(false),
            stats: Counters::default(),
            last_rows: LastRowsCache::default(),
            summaries: SummaryCache::new(options.summary_cache_bytes),
            cache: cache_stats,
            manifest_version,
            manifest_lock: Mutex::new(manifest_store),
            next_file_id: AtomicU64::new(next_file_id),
            readers: Arc::new(Readers::with_grace(grace)),
            compactions: Mutex::new(VecDeque::new()),
            committer: OnceLock::new(),
            options,
        });
        shared.catalog_mut().ensure_database(DEFAULT_DATABASE);

        let last_seq = replay(&shared, &runtime)?;
        let wal = WalWriter::create_with(
            &wal_dir,
            last_seq + 1,
            shared.options.wal_write_fault.clone(),
        )?;

        let (flush_tx, flush_rx) = bounded::<FlushMsg>(16);
        let (compact_tx, compact_rx) = bounded::<CompactMsg>(16);
        let mut threads = Vec::new();
        let committer = Committer::start(&shared, wal, flush_tx.clone())?;
        let _ = shared.committer.set(committer.clone());
        let s = shared.clone();
        let ctx = compact_tx.clone();
        threads.push(
            std::thread::Builder::new()
                .name("ingot-flush".into())
                .spawn(move || run_flusher(s, runtime, flush_rx, ctx))
                .map_err(|e| Error::io(&dir, e))?,
        );
        let s = shared.clone();
        let compact_runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io(&dir, e))?;
        threads.push(
            std::thread::Builder::new()
                .name("ingot-compact".into())
                .spawn(move || run_compactor(s, compact_runtime, compact_rx))
                .map_err(|e| Error::io(&dir, e))?,
        );
        let mut publish_tx = None;
        if shared.options.delta_lake {
            let (tx, rx) = bounded::<PublishMsg>(4);
            let s = shared.clone();
            let publish_runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io(&dir, e))?;
            threads.push(
                std::thread::Builder::new()
                    .name("ingot-delta".into())
                    .spawn(move || run_publisher(s, publish_runtime, rx))
                    .map_err(|e| Error::io(&dir, e))?,
            );
            publish_tx = Some(tx);
        }
        let mut refresh_stop = None;
        if let Some(log) = follow {
            let (stop, stopped) = bounded::<()>(1);
            let s = shared.clone();
            let interval = s.options.refresh_interval;
            threads.push(
                std::thread::Builder::new()
                    .name("ingot-refresh".into())
                    .spawn(move || crate::replica::run_refresher(s, log, interval, stopped))
                    .map_err(|e| Error::io(&dir, e))?,
            );
            refresh_stop = Some(stop);
        }
        let mut rollup_tx = None;
        if !shared.options.read_only {
            let (tx, rx) = bounded::<RollupMsg>(4);
            let writer = Writer {
                shared: shared.clone(),
                committer: committer.clone(),
                flush_tx: flush_tx.clone(),
            };
            let rollup_runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io(&dir, e))?;
            threads.push(
                std::thread::Builder::new()
                    .name("ingot-rollup".into())
                    .spawn(move || run_maintainer(writer, rollup_runtime, rx))
                    .map_err(|e| Error::io(&dir, e))?,
            );
            rollup_tx = Some(tx);
        }
        info!(dir = %dir.display(), last_seq, read_only = shared.options.read_only, "engine open");
        Ok(Engine {
            inner: Arc::new(Inner {
                shared,
                committer,
                flush_tx,
                compact_tx,
                publish_tx,
                rollup_tx,
                threads: Mutex::new(threads),
                refresh_stop: Mutex::new(refresh_stop),
                lock: Mutex::new(Some(lock)),
            }),
        })
    }

    /// Writes line protocol to `database`. The whole text is one atomic
    /// request: a bad line rejects all of it, naming its line and column.
    pub fn write_lines(
        &self,
        database: &str,
        text: &str,
        precision: Precision,
    ) -> Result<WriteSummary> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let (writes, summary) = parse_line_protocol(text, precision, now)?;
        self.write_tables(database, writes).map_err(|e| match e {
            Error::BeyondRetention {
                database,
                table,
                period,
                time,
                horizon,
                line: None,
            } => Error::BeyondRetention {
                line: first_line_before(text, precision, &table, horizon),
                database,
                table,
                period,
                time,
                horizon,
            },
            Error::TypeConflict {
                table,
                column,
                existing,
                incoming,
                line: None,
            } => Error::TypeConflict {
                line: first_line_writing(text, &table, &column),
                table,
                column,
                existing,
                incoming,
            },
            e => e,
        })?;
        Ok(summary)
    }

    /// Writes an Arrow record batch to `table` of `database`.
    ///
    /// Column roles come from the field metadata `ingot.kind` (`time`, `tag`,
    /// `field`); without it, the timestamp column named `time` is the time,
    /// string and dictionary columns are tags, and the rest are fields.
    pub fn write_batch(
        &self,
        database: &str,
        table: &str,
        batch: &RecordBatch,
    ) -> Result<WriteSummary> {
        let write = normalize_batch(table, batch)?;
        let summary = WriteSummary {
            rows: write.batch.num_rows() as u64,
            points: count_points(&write.batch),
        };
        self.write_tables(database, vec![write])?;
        Ok(summary)
    }

    /// Writes batches of several tables of `database` as one request: all
    /// of them or none. Column roles as [`Engine::write_batch`] reads them.
    pub fn write_batches(
        &self,
        database: &str,
        batches: &[(&str, &RecordBatch)],
    ) -> Result<WriteSummary> {
        let mut writes = Vec::with_capacity(batches.len());
        let mut summary = WriteSummary { rows: 0, points: 0 };
        for (table, batch) in batches {
            let write = normalize_batch(table, batch)?;
            summary.rows += write.batch.num_rows() as u64;
            summary.points += count_points(&write.batch);
            writes.push(write);
        }
        self.write_tables(database, writes)?;
        Ok(summary)
    }

    fn write_tables(&self, database: &str, writes: Vec<TableWrite>) -> Result<()> {
        {
            let catalog = self.inner.shared.catalog_read();
            if let Some(w) = writes
                .iter()
                .find(|w| catalog.rollup(database, &w.table).is_some())
            {
                return Err(Error::InvalidWrite(format!(
                    "{database}.{} is a materialized view, which Ingot keeps up to date from \
                     its source table; write to the source instead",
                    w.table
                )));
            }
        }
        self.inner.writer().write_tables(database, writes)
    }

    /// A DataFusion session over this engine's catalog (`ingot`), with the
    /// default database (`public`) as its default schema.
    pub fn session(&self) -> SessionContext {
        crate::query::session(self.inner.shared.clone())
    }

    /// Runs one SQL statement, in the default database, and collects its
    /// result. Ingot's own statements ([`crate::statement`]) run here and
    /// answer no rows.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        if let Some(statement) = crate::statement::parse(sql)? {
            let engine = self.clone();
            // A drop waits for the WAL and the manifest: off the runtime.
            tokio::task::spawn_blocking(move || engine.run_statement(&statement, DEFAULT_DATABASE))
                .await
                .map_err(|e| Error::Internal(format!("the statement's task failed: {e}")))??;
            return Ok(Vec::new());
        }
        let ctx = self.session();
        let df = ctx.sql(sql).await?;
        Ok(df.collect().await?)
    }

    /// Reads one share of a table for a distributed engine (Ballista's
    /// executors run it): with `(share, shares)`, the time partitions a hash
    /// of their start gives to `share`, through Ingot's own scan with its
    /// pruning, duplicate rule and deletes, so that the shares together hold
    /// each row once. `projection`, `filters` and `limit` are a DataFusion
    /// scan's.
    pub async fn scan_share(
        &self,
        database: &str,
        table: &str,
        (share, shares): (u64, u64),
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> Result<datafusion::execution::SendableRecordBatchStream> {
        crate::query::scan_share(
            self.inner.shared.clone(),
            database,
            table,
            (share, shares),
            projection,
            filters,
            limit,
        )
        .await
    }

    /// Runs one of Ingot's own statements, as parsed by
    /// [`crate::statement::parse`]; a table it names without a database is
    /// in `database`. Blocking for as long as a WAL append and a manifest
    /// update take (an fsync or three).
    pub fn run_statement(&self, statement: &Statement, database: &str) -> Result<()> {
        match statement {
            Statement::CreateDatabase {
                name,
                if_not_exists,
                retention,
            } => {
                let period = retention.unwrap_or(self.inner.shared.options.default_retention);
                match self.create_database(name, period) {
                    Err(Error::AlreadyExists(_)) if *if_not_exists => Ok(()),
                    done => done,
                }
            }
            Statement::SetRetention {
                database,
                retention,
            } => self.set_retention(database, *retention),
            Statement::DropTable {
                database: named,
                table,
                if_exists,
            } => match self.drop_table(named.as_deref().unwrap_or(database), table) {
                Err(Error::NotFound(_)) if *if_exists => Ok(()),
                done => done,
            },
            Statement::DropDatabase { name, if_exists } => match self.drop_database(name) {
                Err(Error::NotFound(_)) if *if_exists => Ok(()),
                done => done,
            },
            Statement::CreateRollup {
                database: named,
                name,
                if_not_exists,
                query,
            } => match self.create_rollup(
                named.as_deref().unwrap_or(database),
                name,
                query,
                database,
            ) {
                Err(Error::AlreadyExists(_)) if *if_not_exists => Ok(()),
                done => done,
            },
            Statement::DropRollup {
                database: named,
                name,
                if_exists,
            } => match self.drop_rollup(named.as_deref().unwrap_or(database), name) {
                Err(Error::NotFound(_)) if *if_exists => Ok(()),
                done => done,
            },
        }
    }

    /// Creates the continuous rollup `name` in `database` from `query`
    /// (whose unqualified names are in `query_database`); see
    /// [`crate::rollup`]. The maintainer fills it from the source's rows in
    /// the background; queries see them all at once. Persisted before it
    /// returns.
    pub fn create_rollup(
        &self,
        database: &str,
        name: &str,
        query: &str,
        query_database: &str,
    ) -> Result<()> {
        let shared = &self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        shared.check_writable()?;
        check_name("database", database)?;
        check_name("table", name)?;
        let taken = |catalog: &crate::catalog::Catalog| {
            if catalog.rollup(database, name).is_some() {
                Err(Error::AlreadyExists(format!(
                    "materialized view {database}.{name} already exists"
                )))
            } else if catalog.table(database, name).is_some() {
                Err(Error::AlreadyExists(format!(
                    "a table {database}.{name} already exists; a materialized view needs a name of its own"
                )))
            } else {
                Ok(())
            }
        };
        taken(&shared.catalog_read())?;
        let def = futures::executor::block_on(crate::rollup::define(
            shared,
            database,
            name,
            query,
            query_database,
        ))?;
        {
            let mut catalog = shared.catalog_mut();
            taken(&catalog)?;
            catalog.add_rollup(def);
        }
        shared.edit_manifest(|_| Ok(()), |_| {})?;
        if let Some(tx) = &self.inner.rollup_tx {
            let _ = tx.try_send(RollupMsg::Look);
        }
        Ok(())
    }

    /// Drops the rollup `name` of `database` and its stored rows.
    pub fn drop_rollup(&self, database: &str, name: &str) -> Result<()> {
        let shared = &self.inner.shared;
        shared.check_writable()?;
        if !shared.catalog_mut().remove_rollup(database, name) {
            return Err(Error::NotFound(format!(
                "materialized view {database}.{name} does not exist"
            )));
        }
        shared.edit_manifest(|_| Ok(()), |_| {})?;
        match self.drop_table(database, name) {
            Err(Error::NotFound(_)) => Ok(()),
            done => done,
        }
    }

    /// Brings every rollup up to the changes flushed so far (the maintainer
    /// does this in the background every `Options::rollup_interval`).
    pub fn refresh_rollups(&self) -> Result<()> {
        let Some(tx) = &self.inner.rollup_tx else {
            return Ok(());
        };
        let (reply, done) = bounded(1);
        tx.send(RollupMsg::Now(reply)).map_err(|_| Error::Closed)?;
        done.recv().map_err(|_| Error::Closed)?
    }

    /// Drops `table` of `database`: its rows are gone from queries at once,
    /// its files are deleted once no running query reads them, and a later
    /// write of that name creates a new table. Durable (logged in the WAL)
    /// before it returns.
    pub fn drop_table(&self, database: &str, table: &str) -> Result<()> {
        let is_rollup = self
            .inner
            .shared
            .catalog_read()
            .rollup(database, table)
            .is_some();
        if is_rollup {
            return Err(Error::InvalidInput(format!(
                "{database}.{table} is a materialized view: DROP MATERIALIZED VIEW {database}.{table}"
            )));
        }
        if self
            .inner
            .shared
            .catalog_read()
            .table(database, table)
            .is_none()
        {
            return Err(Error::NotFound(format!(
                "table {table:?} does not exist in database {database:?}"
            )));
        }
        self.inner.shared.commit_drop(Dropped {
            database: database.to_string(),
            table: Some(table.to_string()),
            seq: 0,
        })?;
        // The background task deletes the files no query reads any more.
        let _ = self.inner.compact_tx.try_send(CompactMsg::Look);
        Ok(())
    }

    /// Drops `database` with every table in it, as [`Engine::drop_table`]
    /// drops one; a later write to it creates it anew, with the default
    /// retention. The default database cannot be dropped.
    pub fn drop_database(&self, database: &str) -> Result<()> {
        if database == DEFAULT_DATABASE {
            return Err(Error::InvalidInput(format!(
                "the default database {DEFAULT_DATABASE:?} cannot be dropped; drop its tables \
                 with DROP TABLE"
            )));
        }
        if !self.inner.shared.catalog_read().has_database(database) {
            return Err(no_database(database));
        }
        self.inner.shared.commit_drop(Dropped {
            database: database.to_string(),
            table: None,
            seq: 0,
        })?;
        let _ = self.inner.compact_tx.try_send(CompactMsg::Look);
        Ok(())
    }

    /// Persists everything written so far to Parquet and returns when it is
    /// recorded in the manifest. Blocking: from async code, call it inside
    /// `spawn_blocking`.
    pub fn flush(&self) -> Result<()> {
        if self.inner.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.inner.shared.options.read_only {
            // A replica holds nothing that is not in the bucket already.
            return Ok(());
        }
        let (tx, rx) = bounded(1);
        self.inner
            .flush_tx
            .send(FlushMsg::Flush(Some(tx)))
            .map_err(|_| Error::Closed)?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// Compacts every partition with more than one file into one file, now,
    /// and deletes the files that replaced ones no running query reads;
    /// returns what each merge did. Blocking: from async code, call it inside
    /// `spawn_blocking`.
    pub fn compact(&self) -> Result<Vec<CompactionRecord>> {
        if self.inner.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.inner.shared.check_writable()?;
        let (tx, rx) = bounded(1);
        self.inner
            .compact_tx
            .send(CompactMsg::Everything(tx))
            .map_err(|_| Error::Closed)?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// Publishes to Delta Lake now what changed since the last publish (see
    /// [`Options::delta_lake`]); returns a record per commit made. Blocking:
    /// from async code, call it inside `spawn_blocking`.
    pub fn publish_delta(&self) -> Result<Vec<PublishRecord>> {
        if self.inner.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.inner.shared.check_writable()?;
        let Some(publish_tx) = &self.inner.publish_tx else {
            return Err(Error::InvalidInput(
                "Delta Lake publishing is off: turn it on with Options::delta_lake \
                 (--delta-lake for the server)"
                    .into(),
            ));
        };
        let (tx, rx) = bounded(1);
        publish_tx
            .send(PublishMsg::Now(tx))
            .map_err(|_| Error::Closed)?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// The most recent compactions (at most 100), oldest first.
    pub fn compactions(&self) -> Vec<CompactionRecord> {
        let recent = self
            .inner
            .shared
            .compactions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }

    /// Flushes, syncs the WAL, stops the engine's threads and releases the
    /// directory lock. Later calls on any clone return [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        let flushed = self.flush();
        self.inner.shared.closed.store(true, Ordering::Release);
        self.inner.shutdown();
        self.inner.lock.lock().map(|mut l| l.take()).ok();
        flushed
    }

    /// Creates an empty database that keeps rows for `period` (`None`:
    /// forever). A write to a database that does not exist creates it too,
    /// with [`Options::default_retention`]. Persisted before it returns.
    pub fn create_database(&self, database: &str, period: Option<Duration>) -> Result<()> {
        let shared = &self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        shared.check_writable()?;
        check_name("database", database)?;
        check_period(period)?;
        {
            let mut catalog = shared.catalog_mut();
            if catalog.has_database(database) {
                return Err(Error::AlreadyExists(format!(
                    "database {database:?} already exists"
                )));
            }
            catalog.ensure_database(database);
            catalog.set_retention(database, period);
        }
        // Storing the manifest persists the catalog.
        shared.edit_manifest(|_| Ok(()), |_| {})
    }

    /// Sets how long `database` keeps rows, judged by their time: `None`
    /// keeps them forever. Rows older than now minus the period are hidden
    /// from queries at once, writes of such rows are rejected, and files
    /// holding only such rows are deleted by the background task and by
    /// [`Engine::compact`]. Persisted before it returns.
    pub fn set_retention(&self, database: &str, period: Option<Duration>) -> Result<()> {
        let shared = &self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        shared.check_writable()?;
        check_period(period)?;
        {
            let mut catalog = shared.catalog_mut();
            if !catalog.has_database(database) {
                return Err(no_database(database));
            }
            catalog.set_retention(database, period);
        }
        shared.edit_manifest(|_| Ok(()), |_| {})?;
        let _ = self.inner.compact_tx.try_send(CompactMsg::Look);
        Ok(())
    }

    /// How long `database` keeps rows (`None`: forever).
    pub fn retention(&self, database: &str) -> Result<Option<Duration>> {
        let catalog = self.inner.shared.catalog_read();
        if !catalog.has_database(database) {
            return Err(no_database(database));
        }
        Ok(catalog.retention(database))
    }

    /// Names of the databases.
    pub fn databases(&self) -> Vec<String> {
        self.inner.shared.catalog_read().database_names()
    }

    /// Names of the tables of `database`.
    pub fn tables(&self, database: &str) -> Vec<String> {
        self.inner.shared.catalog_read().table_names(database)
    }

    /// Counters of what the engine has done since it was opened.
    pub fn stats(&self) -> EngineStats {
        let shared = &self.inner.shared;
        let c = &shared.stats;
        EngineStats {
            wal_records: c.wal_records.load(Ordering::Relaxed),
            wal_fsyncs: c.wal_fsyncs.load(Ordering::Relaxed),
            wal_fsync_nanos: c.wal_fsync_nanos.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            files_written: c.files_written.load(Ordering::Relaxed),
            bytes_flushed: c.bytes_flushed.load(Ordering::Relaxed),
            memtable_bytes: shared.mem_bytes.load(Ordering::Relaxed) as u64,
            files: shared.state_read().manifest.files.len() as u64,
            compactions: c.compactions.load(Ordering::Relaxed),
            compactions_running: c.compactions_running.load(Ordering::Relaxed),
            bytes_compacted: c.bytes_compacted.load(Ordering::Relaxed),
            compaction_bytes_written: c.compaction_bytes_written.load(Ordering::Relaxed),
            files_awaiting_deletion: shared.readers.waiting() as u64,
            summary_cache_bytes: shared.summaries.used() as u64,
            files_expired: c.files_expired.load(Ordering::Relaxed),
            rows_expired: c.rows_expired.load(Ordering::Relaxed),
            rows_deleted: c.rows_deleted.load(Ordering::Relaxed),
            cache_hits: shared.cache.hits.load(Ordering::Relaxed),
            cache_misses: shared.cache.misses.load(Ordering::Relaxed),
            cache_fetched_bytes: shared.cache.fetched_bytes.load(Ordering::Relaxed),
            cache_bytes: shared.cache.cached_bytes.load(Ordering::Relaxed),
            manifest_version: shared.manifest_version.load(Ordering::Relaxed),
        }
    }

    /// Bytes of written data not yet persisted (what the memory budget bounds).
    pub fn memtable_bytes(&self) -> usize {
        self.inner.shared.mem_bytes.load(Ordering::Acquire)
    }

    /// The persisted Parquet files, as recorded in the manifest.
    pub fn files(&self) -> Vec<crate::manifest::FileMeta> {
        let manifest = self.inner.shared.state_read().manifest.clone();
        manifest.files.iter().map(|f| (**f).clone()).collect()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }
}

fn no_database(database: &str) -> Error {
    Error::NotFound(format!(
        "database {database:?} does not exist: create it with CREATE DATABASE or by writing to it"
    ))
}

impl Inner {
    fn writer(&self) -> Writer {
        Writer {
            shared: self.shared.clone(),
            committer: self.committer.clone(),
            flush_tx: self.flush_tx.clone(),
        }
    }

    fn shutdown(&self) {
        self.committer.close();
        let _ = self.flush_tx.send(FlushMsg::Shutdown);
        let _ = self.compact_tx.send(CompactMsg::Shutdown);
        if let Some(tx) = &self.publish_tx {
            let _ = tx.send(PublishMsg::Shutdown);
        }
        if let Some(tx) = &self.rollup_tx {
            let _ = tx.send(RollupMsg::Shutdown);
        }
        if let Some(stop) = self.refresh_stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = stop.send(());
        }
        let threads = match self.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => Vec::new(),
        };
        for t in threads {
            if t.join().is_err() {
                error!("an engine thread panicked");
            }
        }
    }
}

/// What writing needs, for the engine's handle and for the threads that
/// write on its behalf (the rollup maintainer).
#[derive(Clone)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
    committer: Arc<Committer>,
    flush_tx: Sender<FlushMsg>,
}

impl Writer {
    /// Writes a batch whose columns carry their roles (`ingot.kind`).
    pub(crate) fn write_batch(
        &self,
        database: &str,
        table: &str,
        batch: &RecordBatch,
    ) -> Result<()> {
        let write = normalize_batch(table, batch)?;
        self.write_tables(database, vec![write])
    }

    pub(crate) fn write_tables(&self, database: &str, writes: Vec<TableWrite>) -> Result<()> {
        let shared = &self.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        shared.check_writable()?;
        check_name("database", database)?;
        let writes: Vec<TableWrite> = writes
            .into_iter()
            .filter(|w| w.batch.num_rows() > 0)
            .collect();
        if writes.is_empty() {
            return Ok(());
        }
        let period = shared.catalog_read().retention(database);
        crate::retention::check_writes(database, period, &writes, now_ns())?;
        let resolved_at = {
            let mut catalog = shared.catalog_mut();
            catalog.resolve_writes(database, &writes)?;
            catalog.drops()
        };
        let reserved: usize = writes.iter().map(|w| w.batch.get_array_memory_size()).sum();
        shared.reserve_memory(reserved, &self.flush_tx)?;
        let payload = match encode_entry(database, &writes) {
            Ok(p) => p,
            Err(e) => {
                shared.release_memory(reserved);
                return Err(e);
            }
        };
        let (reply, result) = bounded(1);
        let request = WriteRequest {
            database: database.to_string(),
            payload,
            change: Change::Write {
                writes,
                resolved_at,
            },
            reserved,
            reply,
        };
        match self.committer.commit(shared, request, result) {
            Ok(_) => Ok(()),
            Err(Error::Closed) => {
                shared.release_memory(reserved);
                Err(Error::Closed)
            }
            Err(e) => Err(e),
        }
    }
}

/// What the rollup maintainer is asked.
pub(crate) enum RollupMsg {
    Look,
    Now(Sender<Result<()>>),
    Shutdown,
}

/// The rollup maintainer: every `Options::rollup_interval`, and when asked,
/// brings each rollup up to its source's flushed changes.
fn run_maintainer(writer: Writer, runtime: tokio::runtime::Runtime, rx: Receiver<RollupMsg>) {
    let interval = writer.shared.options.rollup_interval;
    loop {
        let reply = match rx.recv_timeout(interval) {
            Ok(RollupMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
            Ok(RollupMsg::Now(reply)) => Some(reply),
            Ok(RollupMsg::Look) | Err(RecvTimeoutError::Timeout) => None,
        };
        let mut result = Ok(());
        let rollups = writer.shared.catalog_read().rollups();
        for def in rollups {
            let write = |batch: &RecordBatch| writer.write_batch(&def.database, &def.name, batch);
            match crate::rollup::refresh(&writer.shared, &runtime, &def, &write) {
                Ok(done) if done.windows_recomputed > 0 => {
                    debug!(database = %def.database, rollup = %def.name, windows = done.windows_recomputed, rows = done.rows_written, "rollup refreshed");
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(database = %def.database, rollup = %def.name, error = %e, "refreshing a rollup failed; tried again at the next look");
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shutdown();
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Refuses a change on a read-only replica.
    pub(crate) fn check_writable(&self) -> Result<()> {
        match (&self.options.read_only, &self.options.object_store) {
            (true, Some(store)) => Err(Error::ReadOnly {
                store: store.to_string(),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn catalog_read(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn catalog_mut(&self) -> std::sync::RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn state_read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn state_mut(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// How flushes cut and order the files they write.
    pub(crate) fn file_shape(&self) -> FileShape {
        FileShape::new(
            self.partition_width,
            self.options.row_group_rows,
            self.options.time_slice,
        )
        .with_summary_window(self.options.summary_window)
    }

    /// Takes `n` consecutive file ids; returns the first.
    pub(crate) fn reserve_file_ids(&self, n: u64) -> u64 {
        self.next_file_id.fetch_add(n, Ordering::AcqRel)
    }

    /// Changes the manifest: `change` edits a copy of the current one, which
    /// is stored durably and then swapped in, together with `swap`'s change
    /// of the rest of the state, in one step that queries see whole. The
    /// files the change drops are deleted once no read can reach them.
    /// One change at a time; returns what `change` returned.
    pub(crate) fn edit_manifest<T>(
        &self,
        change: impl FnOnce(&mut Manifest) -> Result<T>,
        swap: impl FnOnce(&mut State),
    ) -> Result<T> {
        let mut store = self.manifest_lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.state_read().manifest.clone();
        let mut next = (*current).clone();
        let out = change(&mut next)?;
        // The catalog as of now, and the drops it reflects (read under the
        // catalog's lock, which a drop holds while it changes both). The
        // catalog only grows while files are written, so a manifest may name
        // tables that no file has yet, never the reverse.
        let drops = {
            let catalog = self.catalog_read();
            next.catalog = catalog.snapshot();
            self.state_read().drops.clone()
        };
        // Files of dropped tables go, including any a flush or compaction
        // under way at the drop has just added.
        let mut removed = Vec::new();
        if !drops.is_empty() {
            next.files.retain(|f| {
                let covered = drops.iter().any(|d| d.covers_file(f));
                if covered {
                    removed.push(f.clone());
                }
                !covered
            });
        }
        next.drops = drops
            .into_iter()
            .filter(|d| d.seq > next.persisted_seq)
            .collect();
        // Deletes that neither the WAL nor any file still needs go.
        next.tombstones = still_needed(&self.state_read().tombstones, &next)
            .iter()
            .map(|t| (**t).clone())
            .collect();
        next.next_file_id = next
            .next_file_id
            .max(self.next_file_id.load(Ordering::Acquire));
        store.commit(&current, &mut next)?;
        let live: HashSet<&str> = next.files.iter().map(|f| f.path.as_str()).collect();
        self.summaries.forget(
            current
                .files
                .iter()
                .filter(|f| !live.contains(f.path.as_str()))
                .map(|f| f.id),
        );
        let mut dropped: Vec<StorePath> = current
            .files
            .iter()
            .filter(|f| !live.contains(f.path.as_str()))
            .flat_map(|f| f.objects())
            .map(StorePath::from)
            .collect();
        if !removed.is_empty() {
            let before: HashSet<&str> = current.files.iter().map(|f| f.path.as_str()).collect();
            dropped.extend(
                removed
                    .iter()
                    .filter(|f| !before.contains(f.path.as_str()))
                    .flat_map(|f| f.objects())
                    .map(StorePath::from),
            );
        }
        let version = {
            let mut state = self.state_mut();
            let persisted = next.persisted_seq;
            state.drops.retain(|d| d.seq > persisted);
            state.tombstones = still_needed(&state.tombstones, &next);
            state.manifest = Arc::new(next);
            state.version += 1;
            swap(&mut state);
            state.version
        };
        self.readers.removed(version, dropped);
        Ok(out)
    }

    /// Reserves `bytes` of the memtable budget, waiting for flushes to free
    /// room for at most `write_stall_timeout`.
    fn reserve_memory(&self, bytes: usize, flush_tx: &Sender<FlushMsg>) -> Result<()> {
        let budget = self.options.memtable_budget_bytes;
        if bytes > budget {
            return Err(Error::ResourceExhausted {
                used_bytes: bytes,
                budget_bytes: budget,
                waited_ms: 0,
            });
        }
        let start = Instant::now();
        let deadline = start + self.options.write_stall_timeout;
        let mut guard = self.mem_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut asked_for_flush = false;
        loop {
            let used = self.mem_bytes.load(Ordering::Acquire);
            if used + bytes <= budget {
                self.mem_bytes.fetch_add(bytes, Ordering::AcqRel);
                return Ok(());
            }
            if !asked_for_flush {
                let _ = flush_tx.try_send(FlushMsg::Flush(None));
                asked_for_flush = true;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::ResourceExhausted {
                    used_bytes: used,
                    budget_bytes: budget,
                    waited_ms: start.elapsed().as_millis(),
                });
            }
            guard = self
                .mem_freed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub(crate) fn release_memory(&self, bytes: usize) {
        let _guard = self.mem_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.mem_bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.mem_freed.notify_all();
    }

    /// Applies one decoded write to the active memtable.
    /// Logs a delete in the WAL and makes it take effect; returns once it is
    /// durable under the sync policy, with its sequence number. In a bucket
    /// it is recorded in the manifest too, where replicas find it.
    pub(crate) fn commit_delete(&self, tombstone: Tombstone) -> Result<u64> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.check_writable()?;
        let committer = self.committer.get().ok_or(Error::Closed)?;
        let payload = crate::write::encode_delete(&tombstone)?;
        let (reply, result) = bounded(1);
        let request = WriteRequest {
            database: tombstone.database.clone(),
            payload,
            change: Change::Delete(tombstone),
            reserved: 0,
            reply,
        };
        let seq = committer.commit(self, request, result)?;
        if self.options.object_store.is_some() {
            // Replicas read deletes from the manifest, not the WAL: record
            // it there now rather than at the next flush.
            self.edit_manifest(|_| Ok(()), |_| {})?;
        }
        Ok(seq)
    }

    /// Logs a drop in the WAL and applies it; then records it in the
    /// manifest, which frees the dropped files (once no running query reads
    /// them). Returns once it is durable.
    fn commit_drop(&self, dropped: Dropped) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.check_writable()?;
        let committer = self.committer.get().ok_or(Error::Closed)?;
        let payload = encode_drop(&dropped)?;
        let (reply, result) = bounded(1);
        let request = WriteRequest {
            database: dropped.database.clone(),
            payload,
            change: Change::Drop(dropped),
            reserved: 0,
            reply,
        };
        committer.commit(self, request, result)?;
        self.edit_manifest(|_| Ok(()), |_| {})
    }

    /// Applies a committed drop: the catalog loses the table (or database),
    /// the memtables its rows, and queries its files at once.
    pub(crate) fn apply_drop(&self, catalog: &mut Catalog, state: &mut State, dropped: Dropped) {
        catalog.drop(&dropped.database, dropped.table.as_deref());
        state.active.drop_rows(&dropped);
        for frozen in state.frozen.iter_mut() {
            // A flush may hold the old copy: the files it writes from it
            // are left out of its manifest change.
            *frozen = Arc::new(frozen.without(&dropped));
        }
        state
            .tombstones
            .retain(|t| !dropped.covers(&t.database, &t.table, t.seq));
        self.last_rows.forget(&dropped);
        if !state.drops.iter().any(|d| d.seq == dropped.seq) {
            state.drops.push(dropped);
        }
    }

    /// Records a committed delete (once: replay may meet one the manifest
    /// already holds).
    pub(crate) fn add_tombstone(&self, state: &mut State, tombstone: Tombstone) {
        if !state.tombstones.iter().any(|t| t.seq == tombstone.seq) {
            state.tombstones.push(Arc::new(tombstone));
        }
    }

    pub(crate) fn apply(
        &self,
        state: &mut State,
        database: &str,
        seq: u64,
        writes: Vec<TableWrite>,
        reserved: usize,
    ) -> Result<()> {
        let mut accounted = reserved;
        for w in writes {
            state.active.insert(
                database,
                &w.table,
                seq,
                w.batch,
                self.partition_width,
                accounted,
            )?;
            accounted = 0;
        }
        Ok(())
    }
}

/// Takes an exclusive `flock` on `{dir}/LOCK`; another process holding it
/// makes this fail with [`Error::Locked`].
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    // SAFETY: flock on a file descriptor this function owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = match holder.trim() {
            "" => "unknown process".to_string(),
            pid => format!("pid {pid}"),
        };
        return Err(Error::Locked {
            path: dir.to_path_buf(),
            holder,
        });
    }
    file.set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .map_err(|e| Error::io(&path, e))?;
    Ok(file)
}

/// Deletes Parquet files that no manifest names (left by a crash mid-flush).
/// A file whose summary or last rows are missing (removed by hand, or named
/// otherwise by an older layout) is read as a file without them.
async fn remove_orphans(storage: &Storage, manifest: &mut Manifest, grace: Duration) -> Result<()> {
    let live: HashSet<String> = manifest.files.iter().flat_map(|f| f.objects()).collect();
    let prefix = StorePath::from("tables");
    let objects: Vec<_> = storage.store.list(Some(&prefix)).try_collect().await?;
    let present: HashSet<&str> = objects.iter().map(|o| o.location.as_ref()).collect();
    for f in manifest.files.iter_mut() {
        let summary = crate::summary::summary_path(&f.path);
        let last = crate::last_rows::last_rows_path(&f.path);
        let lacks_summary = f.summary.is_some() && !present.contains(summary.as_str());
        let lacks_last = f.last_rows.is_some() && !present.contains(last.as_str());
        if lacks_summary || lacks_last {
            warn!(path = %f.path, lacks_summary, lacks_last, "a file's summary or last rows are missing; reading its rows instead");
            let file = Arc::make_mut(f);
            if lacks_summary {
                file.summary = None;
            }
            if lacks_last {
                file.last_rows = None;
            }
        }
    }
    let recent = chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
    for object in &objects {
        // In a bucket, a file removed within the grace period may still be
        // read by a replica.
        if !live.contains(object.location.as_ref()) && object.last_modified <= recent {
            warn!(path = %object.location, "removing a file no manifest names (left by an interrupted flush)");
            storage.store.delete(&object.location).await?;
        }
    }
    Ok(())
}

/// Replays the WAL records newer than the manifest into the memtable,
/// flushing along the way when the memtable passes half its budget.
fn replay(shared: &Arc<Shared>, runtime: &tokio::runtime::Runtime) -> Result<u64> {
    let floor = shared.state_read().manifest.persisted_seq;
    let mut records = 0u64;
    let last = wal::replay(&shared.wal_dir, floor, |seq, payload| {
        let entry = decode_record(payload).map_err(|reason| Error::WalCorrupted {
            path: shared.wal_dir.clone(),
            offset: 0,
            reason: format!("record {seq} does not decode: {reason}"),
        })?;
        let (database, mut writes) = match entry {
            Entry::Write(database, writes) => (database, writes),
            Entry::Delete(mut tombstone) => {
                tombstone.seq = seq;
                shared.add_tombstone(&mut shared.state_mut(), tombstone);
                records += 1;
                return Ok(());
            }
            Entry::Drop(mut dropped) => {
                dropped.seq = seq;
                let mut catalog = shared.catalog_mut();
                shared.apply_drop(&mut catalog, &mut shared.state_mut(), dropped);
                records += 1;
                return Ok(());
            }
        };
        // Writes to a table that a drop the manifest knows removed later:
        // the catalog may already hold a new table of that name.
        {
            let state = shared.state_read();
            writes.retain(|w| {
                !state
                    .drops
                    .iter()
                    .any(|d| d.covers(&database, &w.table, seq))
            });
        }
        if writes.is_empty() {
            records += 1;
            return Ok(());
        }
        shared.catalog_mut().resolve_writes(&database, &writes)?;
        // A decoded record's arrays are slices of one buffer per table, the
        // size of its part of the record: counting each array's buffers
        // (Arrow counts a slice as its whole buffer) would count that buffer
        // once per column, and flush replayed rows long before the budget.
        let bytes = payload.len();
        shared.mem_bytes.fetch_add(bytes, Ordering::AcqRel);
        {
            let mut state = shared.state_mut();
            shared.apply(&mut state, &database, seq, writes, bytes)?;
        }
        records += 1;
        if shared.mem_bytes.load(Ordering::Acquire) > shared.options.memtable_budget_bytes / 2 {
            flush_all(shared, runtime)?;
        }
        Ok(())
    })?;
    if records > 0 {
        info!(records, last_seq = last, "WAL replayed");
    }
    Ok(last)
}

fn run_flusher(
    shared: Arc<Shared>,
    runtime: tokio::runtime::Runtime,
    rx: Receiver<FlushMsg>,
    compact_tx: Sender<CompactMsg>,
) {
    // Without an interval, wait for messages alone (a day at a time).
    let interval = shared
        .options
        .flush_interval
        .unwrap_or(Duration::from_secs(86_400));
    loop {
        let msg = match rx.recv_timeout(interval) {
            Ok(msg) => msg,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                let pending = !shared.state_read().active.is_empty();
                if shared.options.flush_interval.is_none() || !pending {
                    continue;
                }
                FlushMsg::Flush(None)
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            FlushMsg::Flush(reply) => {
                let result = flush_all(&shared, &runtime);
                // New files may make a partition worth compacting.
                let _ = compact_tx.try_send(CompactMsg::Look);
                if let Err(e) = &result {
                    error!(error = %e, "flush failed; the data stays in the WAL and memtable and is retried at the next flush");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            FlushMsg::Shutdown => break,
        }
    }
}

/// Freezes the active memtable and persists every frozen memtable, oldest
/// first.
fn flush_all(shared: &Shared, runtime: &tokio::runtime::Runtime) -> Result<()> {
    {
        let mut state = shared.state_mut();
        if !state.active.is_empty() || state.active.bytes() > 0 {
            let frozen = std::mem::take(&mut state.active);
            state.frozen.push(Arc::new(frozen));
        }
    }
    loop {
        // The memtable and the catalog of one instant (a drop changes both
        // under the catalog's lock).
        let (frozen, manifest, tombstones, catalog) = {
            let catalog = shared.catalog_read();
            let state = shared.state_read();
            match state.frozen.first() {
                Some(f) => (
                    f.clone(),
                    state.manifest.clone(),
                    state.tombstones.clone(),
                    catalog.clone(),
                ),
                None => return Ok(()),
            }
        };
        // File ids come from a counter that compaction advances too; a file's
        // id is taken for good once the manifest records a higher counter.
        let partitions: usize = frozen.tables().values().map(|p| p.len()).sum();
        let first_id = shared.reserve_file_ids(partitions as u64);
        let mut next_file_id = first_id;
        let started = Instant::now();
        let files = runtime.block_on(flush_memtable(
            &shared.storage,
            &frozen,
            &catalog,
            &mut next_file_id,
            shared.file_shape(),
            &tombstones,
        ))?;
        let (rows, bytes): (u64, u64) = files
            .iter()
            .fold((0, 0), |(r, b), f| (r + f.meta.rows, b + f.meta.bytes));
        let n_files = files.len();
        shared.edit_manifest(
            |next| {
                next.files
                    .extend(files.iter().map(|f| Arc::new(f.meta.clone())));
                next.persisted_seq = next.persisted_seq.max(frozen.max_seq());
                Ok(())
            },
            |state| {
                state.frozen.remove(0);
            },
        )?;
        // A drop that came during the flush took the files of its tables
        // out of the change.
        let drops = shared.state_read().drops.clone();
        for f in &files {
            if drops.iter().any(|d| d.covers_file(&f.meta)) {
                continue;
            }
            if let Some(table) = catalog.table(&f.meta.database, &f.meta.table) {
                let first_file = !manifest
                    .files
                    .iter()
                    .any(|m| m.database == f.meta.database && m.table == f.meta.table);
                shared
                    .last_rows
                    .file_flushed(&table, &f.meta, &f.last_rows, first_file)?;
                if let Some(rows) = &f.summary {
                    shared.summaries.offer(&f.meta, rows.clone());
                }
            }
        }
        let mut tables: Vec<(&str, &str)> = files
            .iter()
            .map(|f| (f.meta.database.as_str(), f.meta.table.as_str()))
            .collect();
        tables.dedup();
        for (database, table) in tables {
            crate::compaction::checkpoint_last_rows(shared, runtime, database, table);
        }
        shared.release_memory(frozen.bytes());
        shared.stats.flushes.fetch_add(1, Ordering::Relaxed);
        shared
            .stats
            .files_written
            .fetch_add(n_files as u64, Ordering::Relaxed);
        shared
            .stats
            .bytes_flushed
            .fetch_add(bytes, Ordering::Relaxed);
        let persisted = shared.state_read().manifest.persisted_seq;
        let retired = wal::retire(
            &shared.wal_dir,
            persisted,
            shared.options.wal_recycled_segments,
        )?;
        info!(
            files = n_files,
            rows,
            bytes,
            persisted_seq = persisted,
            wal_segments_retired = retired,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "flushed"
        );
    }
}
