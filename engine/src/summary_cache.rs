//! Decoded summaries kept in memory, so that an aggregate answered from
//! summaries ([`crate::summary_rule`]) skips opening and decoding Parquet:
//! for the hottest devices of the last hour that is most of the work.
//!
//! The cache holds whole summaries, by file, up to a byte budget
//! ([`crate::Options::summary_cache_bytes`]). Recent data is what dashboards
//! ask for, so newer files (by their greatest time) win: a summary comes in
//! only if it fits once summaries of older files are evicted, and a query
//! over the whole history does not churn the cache. A flush offers the
//! summary it has just built; other files' summaries are read on first use.
//! Files leave the cache when the manifest drops them.

use std::collections::HashMap;
use std::sync::Mutex;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::DataType;

use crate::manifest::FileMeta;
use crate::write::time_values;

#[derive(Debug)]
struct Entry {
    max_time: i64,
    bytes: usize,
    batch: RecordBatch,
}

#[derive(Debug, Default)]
struct Inner {
    used: usize,
    files: HashMap<u64, Entry>,
}

#[derive(Debug)]
pub(crate) struct SummaryCache {
    budget: usize,
    inner: Mutex<Inner>,
}

impl SummaryCache {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The decoded summary of file `id`, when cached.
    pub fn get(&self, id: u64) -> Option<RecordBatch> {
        self.lock().files.get(&id).map(|e| e.batch.clone())
    }

    /// Whether a summary of `bytes` for `file` would be kept: it fits in the
    /// budget once summaries of files with older data are evicted.
    pub fn would_keep(&self, file: &FileMeta, bytes: usize) -> bool {
        let inner = self.lock();
        self.room_for(&inner, file.max_time) >= bytes
    }

    /// Bytes free once every summary older than `max_time` is evicted.
    fn room_for(&self, inner: &Inner, max_time: i64) -> usize {
        let older: usize = inner
            .files
            .values()
            .filter(|e| e.max_time < max_time)
            .map(|e| e.bytes)
            .sum();
        (self.budget + older).saturating_sub(inner.used)
    }

    /// Offers the decoded summary of `file`; keeps it when
    /// [`SummaryCache::would_keep`] says so, evicting the oldest first.
    /// Returns the summary as kept: with one dictionary per tag column,
    /// each value in it once (see [`one_dictionary`]).
    pub fn offer(&self, file: &FileMeta, batch: RecordBatch) -> RecordBatch {
        if !self.would_keep(file, batch.get_array_memory_size()) {
            return batch;
        }
        let batch = one_dictionary(&batch).unwrap_or(batch);
        let bytes = batch.get_array_memory_size();
        let mut inner = self.lock();
        if inner.files.contains_key(&file.id) || self.room_for(&inner, file.max_time) < bytes {
            return batch;
        }
        while inner.used + bytes > self.budget {
            let Some((&oldest, _)) = inner.files.iter().min_by_key(|(_, e)| e.max_time) else {
                break;
            };
            if let Some(e) = inner.files.remove(&oldest) {
                inner.used -= e.bytes;
            }
        }
        inner.used += bytes;
        inner.files.insert(
            file.id,
            Entry {
                max_time: file.max_time,
                bytes,
                batch: batch.clone(),
            },
        );
        batch
    }

    /// Forgets files the manifest no longer names.
    pub fn forget(&self, ids: impl IntoIterator<Item = u64>) {
        let mut inner = self.lock();
        for id in ids {
            if let Some(e) = inner.files.remove(&id) {
                inner.used -= e.bytes;
            }
        }
    }

    /// Bytes held.
    pub fn used(&self) -> usize {
        self.lock().used
    }
}

/// `batch` with each dictionary column re-encoded into one dictionary that
/// holds each value once. A summary read from Parquet comes as batches with
/// a dictionary each, and joined they keep every copy; grouping by a tag
/// converts a dictionary's every value for each batch it reads, so a query
/// over an hour of summaries would pay for the whole day's copies.
fn one_dictionary(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::Dictionary(_, values) => {
                let plain = cast(column, values)?;
                cast(&plain, column.data_type())
            }
            _ => Ok(column.clone()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(batch.schema(), columns)
}

/// The rows of a summary (sorted by window start) whose windows, `window_ns`
/// wide, may hold times in `[min, max]`.
pub(crate) fn rows_in_range(
    batch: &RecordBatch,
    window_ns: i64,
    min: i64,
    max: i64,
) -> RecordBatch {
    let times = time_values(batch);
    let lo = min.saturating_sub(window_ns.saturating_sub(1));
    let start = times.partition_point(|&t| t < lo);
    let end = times.partition_point(|&t| t <= max);
    batch.slice(start, end.saturating_sub(start))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn batch(times: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
            Field::new("v", DataType::Int64, false),
        ]));
        let n = times.len() as i64;
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampNanosecondArray::from(times).with_timezone("UTC")),
                Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    fn file(id: u64, max_time: i64) -> FileMeta {
        let mut f: FileMeta = serde_json::from_value(serde_json::json!({
            "id": id, "database": "public", "table": "m", "path": format!("{id}.parquet"),
            "partition": 0, "min_time": 0, "max_time": max_time, "rows": 1, "bytes": 1,
            "max_seq": 1
        }))
        .unwrap();
        f.max_time = max_time;
        f
    }

    #[test]
    fn newer_files_evict_older_ones_and_older_ones_do_not_come_in() {
        let one = batch(vec![0; 1000]);
        let size = one.get_array_memory_size();
        let cache = SummaryCache::new(size * 2);
        cache.offer(&file(1, 10), one.clone());
        cache.offer(&file(2, 20), one.clone());
        assert_eq!(cache.used(), size * 2);
        // Newer than both: the oldest goes.
        cache.offer(&file(3, 30), one.clone());
        assert!(cache.get(1).is_none());
        assert!(cache.get(2).is_some() && cache.get(3).is_some());
        // Older than everything held: not kept, nothing evicted.
        assert!(!cache.would_keep(&file(4, 5), size));
        cache.offer(&file(4, 5), one.clone());
        assert!(cache.get(4).is_none() && cache.get(2).is_some());
        cache.forget([2, 3]);
        assert_eq!(cache.used(), 0);
        assert!(cache.would_keep(&file(4, 5), size));
    }

    #[test]
    fn rows_of_the_windows_a_range_touches() {
        // Windows 10 wide, starting at 0, 10, 20, 30 (two rows each).
        let b = batch(vec![0, 0, 10, 10, 20, 20, 30, 30]);
        let values = |b: &RecordBatch| time_values(b).to_vec();
        assert_eq!(values(&rows_in_range(&b, 10, 10, 29)), [10, 10, 20, 20]);
        // A range starting inside a window includes that window.
        assert_eq!(values(&rows_in_range(&b, 10, 15, 20)), [10, 10, 20, 20]);
        assert_eq!(values(&rows_in_range(&b, 10, i64::MIN, i64::MAX)).len(), 8);
        assert!(values(&rows_in_range(&b, 10, 40, 50)).is_empty());
    }

    #[test]
    fn a_kept_summary_has_each_tag_value_once() {
        use arrow::array::{Array, AsArray, DictionaryArray};
        use arrow::compute::concat;
        use arrow::datatypes::Int32Type;

        // Two batches read from Parquet: a dictionary each, joined.
        let part =
            |devices: [&str; 3]| -> DictionaryArray<Int32Type> { devices.into_iter().collect() };
        let one = part(["dev-1", "dev-2", "dev-1"]);
        let two = part(["dev-2", "dev-1", "dev-2"]);
        let joined = concat(&[&one as &dyn Array, &two]).unwrap();
        assert_eq!(joined.as_dictionary::<Int32Type>().values().len(), 4);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "device_id",
            joined.data_type().clone(),
            true,
        )]));
        let summary = RecordBatch::try_new(schema, vec![joined.clone()]).unwrap();

        let cache = SummaryCache::new(1 << 20);
        let kept = cache.offer(&file(1, 10), summary);
        let device = kept.column(0).as_dictionary::<Int32Type>();
        assert_eq!(device.values().len(), 2);
        let plain = |a: &dyn Array| cast(a, &DataType::Utf8).unwrap();
        assert_eq!(&plain(device), &plain(&joined));
        assert_eq!(cache.get(1).unwrap(), kept);
    }
}
