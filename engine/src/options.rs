//! Engine options.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use object_store::ObjectStore;

/// When the WAL is fsynced relative to acknowledging a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WalSync {
    /// Acknowledge only after the record is fsynced (group commit shares one
    /// fsync among concurrent writers). No acknowledged write is ever lost.
    Always,
    /// fsync at most every interval; a crash loses at most that window.
    Interval(Duration),
    /// Never fsync; the OS decides. A crash may lose recent writes.
    None,
}

impl std::str::FromStr for WalSync {
    type Err = String;

    /// `always`, `none`, or `interval:10ms` (also `s`, `us`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(WalSync::Always),
            "none" => Ok(WalSync::None),
            _ => {
                let Some(rest) = s.strip_prefix("interval:") else {
                    return Err(format!(
                        "unknown WAL sync policy {s:?}: expected always, none or interval:<N>ms"
                    ));
                };
                parse_duration(rest)
                    .map(WalSync::Interval)
                    .ok_or_else(|| format!("bad interval {rest:?}: expected e.g. 10ms, 1s, 500us"))
            }
        }
    }
}

fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "us" => Some(Duration::from_micros(n)),
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        _ => None,
    }
}

/// Timestamp precision of line-protocol input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Precision {
    #[default]
    Nanosecond,
    Microsecond,
    Millisecond,
    Second,
}

impl Precision {
    /// Nanoseconds per unit.
    pub(crate) fn multiplier(self) -> i64 {
        match self {
            Precision::Nanosecond => 1,
            Precision::Microsecond => 1_000,
            Precision::Millisecond => 1_000_000,
            Precision::Second => 1_000_000_000,
        }
    }
}

/// How an [`crate::Engine`] runs. `Options::default()` is right for most uses.
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// WAL fsync policy; default [`WalSync::Always`].
    pub wal_sync: WalSync,
    /// WAL segment size at which a new segment is started.
    pub wal_segment_bytes: u64,
    /// Segments whose records are all in Parquet kept (as `wal/*.free`) to
    /// be written over by the next segments, instead of deleted: their
    /// pages are still cached and their blocks allocated, so WAL writes
    /// take no fresh memory and `fdatasync` updates no file size. They take
    /// up to this many times `wal_segment_bytes` on disk. 0 deletes every
    /// retired segment. Default 8 (512 MiB with the default segments, about
    /// the WAL that half the default memtable budget writes).
    pub wal_recycled_segments: usize,
    /// Memory the memtable (written but not yet persisted data) may hold.
    /// A flush starts at half of it; writers wait past it.
    pub memtable_budget_bytes: usize,
    /// How long a writer waits for a flush to free memory before it gets
    /// [`crate::Error::ResourceExhausted`].
    pub write_stall_timeout: Duration,
    /// Width of a time partition; a whole number of hours. Default one day.
    pub partition_duration: Duration,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Order the rows of the files that flushes write by (time slice,
    /// series, time), in slices this wide from the epoch, rather than by
    /// (series, time). A query of a short time range over every series then
    /// reads the pages of its slices only (one hour of every device of the
    /// `small` workload: 29 -> 12 ms with one-hour slices), while queries of
    /// one series or one tag value over long ranges touch every row group
    /// (one device over 12 hours: 4.5 -> 8.3 ms; one plant over a day: 43 ->
    /// 59 ms) and files grow about 4%. `None`, the default, keeps (series,
    /// time) for flushed files; a cold partition's one file is in slices of
    /// about a row group either way (`compaction`), or in these when set.
    /// Slices narrower than a minute are a minute wide.
    pub time_slice: Option<Duration>,
    /// Width of the windows of the summary written beside each file (per
    /// series and window: row count, and each field's count, sum, minimum
    /// and maximum). Aggregates by tags and by `date_bin` over whole
    /// windows read summaries instead of rows where no deduplication or
    /// delete is pending (one hour of every device of the `small` workload,
    /// hourly power per device). `None` writes no summaries. Default 15
    /// minutes.
    pub summary_window: Option<Duration>,
    /// Memory for summaries kept decoded, so that queries answered from
    /// them skip reading Parquet; summaries of the newest files are kept
    /// first. 0 keeps none. Default 256 MiB (the `small` workload's
    /// summaries take about 40 MiB a day of 1 000 devices).
    pub summary_cache_bytes: usize,
    /// Memory all running queries may use together. A query that needs more
    /// spills to disk where its operators can, and otherwise fails with a
    /// "resources exhausted" error; the process does not grow past it.
    pub query_memory_limit_bytes: usize,
    /// Where Parquet files go. `None` keeps them under the data directory on
    /// the local file system (and fsyncs them there); any other store must
    /// make a completed `put` durable by itself.
    ///
    /// With a store set, the manifest lives there too (as numbered
    /// `manifest/` objects, see `object_manifest`), and the data directory
    /// keeps only the WAL and the cache of the store's files.
    /// [`crate::object_store_from_url`] opens `s3://bucket/prefix`.
    pub object_store: Option<Arc<dyn ObjectStore>>,
    /// Local disk for copies of the object store's files recently read or
    /// written (`{data_dir}/cache`), so that warm queries do not go to the
    /// network; 0 caches nothing. Unused without an object store. Default
    /// 4 GiB.
    pub cache_bytes: u64,
    /// With an object store: how long a file that compaction, retention or
    /// a drop removed stays in the bucket after its removal, so that query
    /// replicas still reading it (they cannot be seen from here) finish
    /// first. Longer than replicas' [`Options::refresh_interval`] plus their
    /// longest query. Default 5 minutes.
    pub replica_grace: Duration,
    /// Persist the memtable at least this often while it holds rows, as
    /// well as when it fills: what bounds how far a query replica (which
    /// reads only persisted files) trails the writer. `None`, the default,
    /// flushes only when the memtable fills and at close.
    pub flush_interval: Option<Duration>,
    /// With an object store: this writer is node `id` of a cluster of
    /// writers on one bucket prefix, and keeps its files and manifest under
    /// `nodes/{id}/` there. Each node takes its own share of the series
    /// (clients route each series to one node, `ingot_proto::route`); a
    /// replica of the prefix serves them all. Letters, digits, `-`, `_`.
    pub node_id: Option<String>,
    /// A query replica: serve queries from the object store's files and
    /// manifest, refreshed every [`Options::refresh_interval`], and refuse
    /// every write with [`crate::Error::ReadOnly`]. It writes nothing to the
    /// bucket. Needs [`Options::object_store`].
    pub read_only: bool,
    /// How often a read-only engine looks for the writer's new manifest
    /// versions. Default 2 s.
    pub refresh_interval: Duration,
    /// Tell DataFusion that each file's rows come sorted by (series tags,
    /// time), reading each file as its own partition, so that ordered
    /// queries skip their sort and aggregates grouped by those tags stream.
    /// Off by default: on the plant-telemetry workload DataFusion's
    /// sorted-mode aggregation and order-preserving repartition were slower
    /// than hashing (q4 49 -> 68 ms, q5 29 -> 43 ms on 2 cores).
    pub declare_file_order: bool,
    /// A query whose scans are estimated to read at most this many rows
    /// (after pruning files, row groups and pages) is planned on one
    /// partition, without the repartitions that spread larger ones over
    /// the cores ([`crate::scan_size`]). 0 plans every query on all of
    /// them. Default 65 536.
    pub one_partition_rows: u64,
    /// Compact in the background: merge each partition's flushed files into
    /// few sorted, deduplicated files, and remove the files that retention
    /// expired. On by default; [`crate::Engine::compact`] does both either way.
    pub compaction: bool,
    /// Publish each table's compacted partitions as a Delta Lake table at
    /// `delta/{database}/{table}/` beside the files (`crate::delta` says
    /// what an outside reader sees), so that Spark, Trino, DuckDB and Polars
    /// read them without Ingot. Costs the compacted data's bytes again. Off
    /// by default; a read-only engine never publishes.
    pub delta_lake: bool,
    /// How often the Delta Lake publisher looks for settled partitions to
    /// publish and removed files to drop. Default 5 s.
    pub delta_interval: Duration,
    /// How often the rollup maintainer looks for flushed changes to bring
    /// into the materialized views (`CREATE MATERIALIZED VIEW`). Default 1 s.
    pub rollup_interval: Duration,
    /// Memory one compaction may hold: input batches, the merged rows on their
    /// way out, and the Parquet row group being encoded. A partition of any
    /// size compacts within it.
    pub compaction_memory_bytes: usize,
    /// A partition with this many small flushed files (under half a row
    /// group each), not yet compacted, has them merged, even while it still
    /// receives writes.
    pub compaction_trigger_files: usize,
    /// A partition with no new file for this long, and no rows waiting in
    /// the memtable, is merged into one file, the layout queries read
    /// fastest.
    pub compaction_cold_after: Duration,
    /// How long a database created from now on keeps rows (by their time):
    /// `None`, the default, keeps them forever. Each database's own period is
    /// set with [`crate::Engine::set_retention`] and kept in the catalog.
    pub default_retention: Option<Duration>,
    /// Test hook: while the flag is set, WAL writes fail half-way as on a
    /// full disk. Not for production use.
    #[doc(hidden)]
    pub wal_write_fault: Option<Arc<AtomicBool>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            wal_sync: WalSync::Always,
            wal_segment_bytes: 64 << 20,
            wal_recycled_segments: 8,
            memtable_budget_bytes: 1 << 30,
            write_stall_timeout: Duration::from_secs(30),
            partition_duration: Duration::from_secs(24 * 3600),
            row_group_rows: 1 << 20,
            time_slice: None,
            summary_window: Some(Duration::from_secs(15 * 60)),
            summary_cache_bytes: 256 << 20,
            query_memory_limit_bytes: 4 << 30,
            object_store: None,
            cache_bytes: 4 << 30,
            replica_grace: Duration::from_secs(300),
            flush_interval: None,
            node_id: None,
            read_only: false,
            refresh_interval: Duration::from_secs(2),
            declare_file_order: false,
            one_partition_rows: 64 * 1024,
            compaction: true,
            delta_lake: false,
            delta_interval: Duration::from_secs(5),
            rollup_interval: Duration::from_secs(1),
            compaction_memory_bytes: 256 << 20,
            compaction_trigger_files: 8,
            compaction_cold_after: Duration::from_secs(300),
            default_retention: None,
            wal_write_fault: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("wal_sync", &self.wal_sync)
            .field("declare_file_order", &self.declare_file_order)
            .field("one_partition_rows", &self.one_partition_rows)
            .field("compaction", &self.compaction)
            .field("compaction_memory_bytes", &self.compaction_memory_bytes)
            .field("compaction_trigger_files", &self.compaction_trigger_files)
            .field("compaction_cold_after", &self.compaction_cold_after)
            .field("default_retention", &self.default_retention)
            .field("wal_segment_bytes", &self.wal_segment_bytes)
            .field("wal_recycled_segments", &self.wal_recycled_segments)
            .field("memtable_budget_bytes", &self.memtable_budget_bytes)
            .field("write_stall_timeout", &self.write_stall_timeout)
            .field("partition_duration", &self.partition_duration)
            .field("row_group_rows", &self.row_group_rows)
            .field("time_slice", &self.time_slice)
            .field("summary_window", &self.summary_window)
            .field("summary_cache_bytes", &self.summary_cache_bytes)
            .field("query_memory_limit_bytes", &self.query_memory_limit_bytes)
            .field(
                "object_store",
                &self.object_store.as_ref().map(|s| s.to_string()),
            )
            .field("cache_bytes", &self.cache_bytes)
            .field("replica_grace", &self.replica_grace)
            .field("flush_interval", &self.flush_interval)
            .field("node_id", &self.node_id)
            .field("read_only", &self.read_only)
            .field("refresh_interval", &self.refresh_interval)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_sync_parses() {
        assert_eq!("always".parse::<WalSync>().unwrap(), WalSync::Always);
        assert_eq!("none".parse::<WalSync>().unwrap(), WalSync::None);
        assert_eq!(
            "interval:10ms".parse::<WalSync>().unwrap(),
            WalSync::Interval(Duration::from_millis(10))
        );
        assert!("interval:10".parse::<WalSync>().is_err());
        assert!("sometimes".parse::<WalSync>().is_err());
    }
}
