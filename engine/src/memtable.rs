//! Written-but-not-yet-persisted rows, in Arrow layout, per table and time
//! partition.
//!
//! Each acknowledged write becomes one immutable [`Chunk`] per partition it
//! touches, tagged with its WAL sequence number so that later writes win over
//! earlier ones when the same (series, time) appears twice. Chunks are shared
//! (`Arc`) with queries, which therefore see a stable snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;

use crate::delete::Dropped;
use crate::error::Result;
use crate::write::time_values;

/// Rows of one write that fall in one partition.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub seq: u64,
    pub batch: RecordBatch,
    pub min_time: i64,
    pub max_time: i64,
}

/// (database, table)
pub(crate) type TableKey = (String, String);

/// The chunks of one table, by partition start (ns).
pub(crate) type Partitions = BTreeMap<i64, Vec<Arc<Chunk>>>;

#[derive(Debug, Default)]
pub(crate) struct Memtable {
    tables: HashMap<TableKey, Partitions>,
    bytes: usize,
    rows: usize,
    max_seq: u64,
}

/// Start of the partition holding `time`.
pub(crate) fn partition_start(time: i64, width: i64) -> i64 {
    time.div_euclid(width) * width
}

impl Memtable {
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn max_seq(&self) -> u64 {
        self.max_seq
    }

    pub fn tables(&self) -> &HashMap<TableKey, Partitions> {
        &self.tables
    }

    pub fn table(&self, database: &str, table: &str) -> Option<&Partitions> {
        // Lookups by borrowed pair without allocating would need a custom key;
        // tables are few, so a scan of the map is not worth avoiding yet.
        self.tables
            .iter()
            .find(|((d, t), _)| d == database && t == table)
            .map(|(_, p)| p)
    }

    /// Removes the rows a drop covers. The memory stays accounted until the
    /// memtable is flushed.
    pub fn drop_rows(&mut self, dropped: &Dropped) {
        let mut removed = 0;
        for ((database, table), partitions) in self.tables.iter_mut() {
            for chunks in partitions.values_mut() {
                chunks.retain(|c| {
                    let covered = dropped.covers(database, table, c.seq);
                    if covered {
                        removed += c.batch.num_rows();
                    }
                    !covered
                });
            }
            partitions.retain(|_, chunks| !chunks.is_empty());
        }
        self.tables.retain(|_, partitions| !partitions.is_empty());
        self.rows -= removed;
    }

    /// A copy without the rows a drop covers (chunks are shared).
    pub fn without(&self, dropped: &Dropped) -> Memtable {
        let mut copy = Memtable {
            tables: self.tables.clone(),
            bytes: self.bytes,
            rows: self.rows,
            max_seq: self.max_seq,
        };
        copy.drop_rows(dropped);
        copy
    }

    /// Adds one normalized batch written with sequence number `seq`, split by
    /// partition; `accounted` is the memory the writer reserved for it.
    pub fn insert(
        &mut self,
        database: &str,
        table: &str,
        seq: u64,
        batch: RecordBatch,
        partition_width: i64,
        accounted: usize,
    ) -> Result<()> {
        self.bytes += accounted;
        self.max_seq = self.max_seq.max(seq);
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let times = time_values(&batch);
        let (min, max) = times
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        let parts =
            if partition_start(min, partition_width) == partition_start(max, partition_width) {
                vec![(partition_start(min, partition_width), batch)]
            } else {
                let mut starts: Vec<i64> = times
                    .iter()
                    .map(|&t| partition_start(t, partition_width))
                    .collect();
                starts.sort_unstable();
                starts.dedup();
                let mut parts = Vec::with_capacity(starts.len());
                for start in starts {
                    let mask: BooleanArray = times
                        .iter()
                        .map(|&t| Some(partition_start(t, partition_width) == start))
                        .collect();
                    parts.push((start, filter_record_batch(&batch, &mask)?));
                }
                parts
            };
        let key = (database.to_string(), table.to_string());
        let partitions = self.tables.entry(key).or_default();
        for (start, batch) in parts {
            let times = time_values(&batch);
            let min_time = times.iter().copied().min().unwrap_or(start);
            let max_time = times.iter().copied().max().unwrap_or(start);
            self.rows += batch.num_rows();
            partitions.entry(start).or_default().push(Arc::new(Chunk {
                seq,
                batch,
                min_time,
                max_time,
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Precision;
    use crate::write::parse_line_protocol;

    #[test]
    fn splits_a_write_across_partitions() {
        let day = 86_400_000_000_000i64;
        let lp = format!("m v=1 {}\nm v=2 {}\nm v=3 {}\n", day - 1, day, 3 * day + 5);
        let (w, _) = parse_line_protocol(&lp, Precision::Nanosecond, 0).unwrap();
        let mut m = Memtable::default();
        m.insert("db", "m", 7, w[0].batch.clone(), day, 100)
            .unwrap();
        let parts = m.table("db", "m").unwrap();
        assert_eq!(parts.keys().copied().collect::<Vec<_>>(), [0, day, 3 * day]);
        assert_eq!(parts[&day][0].batch.num_rows(), 1);
        assert_eq!(m.max_seq(), 7);
        assert_eq!(m.bytes(), 100);
    }
}
