//! Ingot's storage and query engine: a durable, columnar time-series store
//! with SQL through Apache DataFusion.
//!
//! **A write** ([`Engine::write_lines`], [`Engine::write_batch`]) is parsed
//! and normalized into one Arrow batch per table (`write`), checked against
//! the table schemas (`catalog`), appended to the WAL by the group commit's
//! leader, one of the writers, which fsyncs once per group of concurrent
//! writes (`commit`, `wal`), and then added to
//! the memtable as an immutable chunk tagged with its WAL sequence number
//! (`memtable`). The write returns once it is durable. When the memtable
//! passes half its memory budget, the flusher freezes it, sorts and
//! deduplicates each table partition by (series, time) (`dedup`), writes one
//! Parquet file per partition through `object_store` (`flush`), records the
//! files atomically in the manifest (`manifest`) and deletes the WAL segments
//! they cover. In the background, the compactor merges each partition's files
//! into one sorted, deduplicated file with a streaming k-way merge under a
//! memory budget (`compaction`), swapping it in with one manifest change; the
//! replaced files go once no running query reads them (`readers`). Each
//! database may keep rows for a retention period: writes older than it are
//! refused, scans hide such rows, and the compactor's tick drops the files
//! that hold nothing newer (`retention`). `CREATE DATABASE` and `ALTER
//! DATABASE`, which DataFusion does not know, are Ingot's own (`statement`).
//!
//! **A read** ([`Engine::sql`]) plans through DataFusion over the `ingot`
//! catalog (`query`): each table's scan takes a snapshot of the memtable
//! chunks and the manifest's files, drops the files whose time or tag ranges
//! cannot match, merges with the duplicate rule only the rows in the windows
//! where sources overlap (and the memtable), and reads the rest straight from
//! Parquet. Latest-value queries (`max(time)`, `last_value(x ORDER BY time)`
//! grouped by tags) read only each series' last row, kept per table from
//! every flush (`last_rows`).
//!
//! **In a bucket** ([`Options::object_store`], [`object_store_from_url`]):
//! the files and the manifest live in the object store, the manifest as
//! numbered objects that conditional puts keep to one writer
//! (`object_manifest`); requests run on one I/O runtime (`bucket`) and a
//! local cache keeps recently used files on disk (`cache`). The data
//! directory holds the WAL and the cache. A read-only engine is a query
//! replica that follows a writer's manifest, or the manifests of a cluster
//! of writer nodes (`replica`).
//!
//! **For outside readers** ([`Options::delta_lake`]): a publisher thread
//! keeps each table's settled partitions as a Delta Lake table beside the
//! files, for Spark, Trino, DuckDB and Polars (`delta`).
//!
//! Files on disk: `{dir}/wal/*.wal`, `{dir}/MANIFEST` and `{dir}/MANIFEST.log`
//! (a checkpoint and the edits after it, `manifest`), `{dir}/LOCK`, and
//! `{dir}/tables/{database}/{table}/day=YYYY-MM-DD/{id}.parquet`; the byte
//! layouts are in `engine/docs/format.md`.

mod bucket;
mod cache;
mod catalog;
mod commit;
mod compaction;
mod dedup;
pub mod delete;
mod delta;
mod engine;
mod error;
mod flush;
mod functions;
mod gapfill;
mod gather;
mod int_chunks;
mod last_rows;
pub mod line_protocol;
mod local_time;
mod manifest;
mod memtable;
mod object_manifest;
mod options;
mod parallel;
mod parquet_file;
mod query;
mod readers;
mod replica;
mod retention;
mod rollup;
mod row_groups;
mod scan_size;
pub mod statement;
mod summary;
mod summary_cache;
mod summary_rule;
mod system;
mod table_totals;
mod tag_chunks;
mod wal;
mod write;

pub use bucket::{object_store_from_url, object_store_from_url_with};
pub use catalog::{ColumnKind, FieldType, KIND_METADATA_KEY, TIME_COLUMN};
pub use compaction::CompactionRecord;
pub use delta::{DELTA_FOLDER, PublishRecord, TIME_NS_COLUMN};
pub use engine::{DEFAULT_DATABASE, Engine, EngineStats};
pub use error::{Error, Result};
pub use manifest::FileMeta;
pub use options::{Options, Precision, WalSync};
pub use query::CATALOG_NAME;
pub use retention::{format_period, parse_period};
pub use summary::SummaryMeta;
pub use system::SYSTEM_SCHEMA;
pub use write::WriteSummary;
