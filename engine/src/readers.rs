//! Which manifest versions running reads still use, and the files that wait
//! for them.
//!
//! Every change of the manifest makes a new version. A read (a query's scan,
//! the gathering of last rows) pins the version it took its snapshot from,
//! under the same lock the snapshot is taken under, and holds the pin until
//! its last file reader is dropped. A file that a change removes (compaction
//! replaced it) is still named by every older version, so it is deleted only
//! when no pin on an older version is left.
//!
//! In a bucket, other processes (query replicas) read the files too, and
//! this process cannot see their reads: there a removed file also waits a
//! grace period ([`crate::Options::replica_grace`]) after its removal, long
//! enough for every replica to have moved on to a newer manifest.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::future::BoxFuture;
use object_store::path::Path as StorePath;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::ParquetMetaData;

/// The pins of running reads, by manifest version, and the files waiting
/// for them.
#[derive(Debug, Default)]
pub(crate) struct Readers {
    inner: Mutex<ReadersInner>,
    /// How long a removed file stays at least, whatever the pins.
    grace: Duration,
}

#[derive(Debug, Default)]
struct ReadersInner {
    /// Version -> number of pins.
    pins: BTreeMap<u64, usize>,
    /// Files removed from the manifest by the change to `version`, and
    /// when: readable by pins below it.
    removed: Vec<(u64, Instant, Vec<StorePath>)>,
    /// Data files taken by [`Readers::take_unreachable`] whose deletion has
    /// not been confirmed with [`Readers::deleted`] yet.
    deleting: usize,
}

impl Readers {
    /// Readers whose removed files also wait `grace` after their removal.
    pub fn with_grace(grace: Duration) -> Self {
        Self {
            grace,
            ..Default::default()
        }
    }

    /// Pins `version`. Call it while holding the lock that the snapshot of
    /// that version is taken under.
    pub fn pin(self: &Arc<Self>, version: u64) -> Arc<ReadPin> {
        let mut inner = self.lock();
        *inner.pins.entry(version).or_default() += 1;
        Arc::new(ReadPin {
            readers: self.clone(),
            version,
        })
    }

    /// Records files that the change to manifest `version` removed.
    pub fn removed(&self, version: u64, files: Vec<StorePath>) {
        if !files.is_empty() {
            self.lock().removed.push((version, Instant::now(), files));
        }
    }

    /// Takes the removed files that no pinned read can reach any more.
    pub fn take_unreachable(&self) -> Vec<StorePath> {
        let mut inner = self.lock();
        let oldest = inner.pins.keys().next().copied();
        let grace = self.grace;
        let (free, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut inner.removed)
            .into_iter()
            .partition(|(version, at, _)| {
                oldest.is_none_or(|o| o >= *version) && at.elapsed() >= grace
            });
        inner.removed = kept;
        let files: Vec<StorePath> = free.into_iter().flat_map(|(_, _, files)| files).collect();
        inner.deleting += data_files(&files);
        files
    }

    /// Confirms that files from [`Readers::take_unreachable`] are deleted
    /// (or that deleting them was given up), so they no longer count as
    /// waiting.
    pub fn deleted(&self, files: &[StorePath]) {
        let mut inner = self.lock();
        inner.deleting = inner.deleting.saturating_sub(data_files(files));
    }

    /// Data files removed from the manifest and not yet deleted; each one's
    /// summary and last rows go with it.
    pub fn waiting(&self) -> usize {
        let inner = self.lock();
        let listed: usize = inner.removed.iter().map(|(_, _, f)| data_files(f)).sum();
        listed + inner.deleting
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReadersInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How many of `files` are data files rather than sidecars.
fn data_files(files: &[StorePath]) -> usize {
    files
        .iter()
        .filter(|p| !crate::FileMeta::is_sidecar(p.as_ref()))
        .count()
}

/// A read's hold on one manifest version; released when dropped.
pub(crate) struct ReadPin {
    readers: Arc<Readers>,
    version: u64,
}

impl fmt::Debug for ReadPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadPin")
            .field("version", &self.version)
            .finish()
    }
}

impl Drop for ReadPin {
    fn drop(&mut self) {
        let mut inner = self.readers.lock();
        if let Some(n) = inner.pins.get_mut(&self.version) {
            *n -= 1;
            if *n == 0 {
                inner.pins.remove(&self.version);
            }
        }
    }
}

/// A Parquet reader factory whose readers hold a [`ReadPin`], so that the
/// files a scan planned with stay until its last reader is done.
#[derive(Debug)]
pub(crate) struct PinnedReaderFactory {
    pub inner: Arc<dyn ParquetFileReaderFactory>,
    pub pin: Arc<ReadPin>,
}

impl ParquetFileReaderFactory for PinnedReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> datafusion::error::Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(PinnedReader {
            inner,
            _pin: self.pin.clone(),
        }))
    }
}

struct PinnedReader {
    inner: Box<dyn AsyncFileReader + Send>,
    _pin: Arc<ReadPin>,
}

impl AsyncFileReader for PinnedReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        self.inner.get_metadata(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_files_wait_for_older_pins() {
        let readers = Arc::new(Readers::default());
        let old = readers.pin(3);
        let current = readers.pin(4);
        readers.removed(4, vec![StorePath::from("a.parquet")]);
        // The pin on version 3 can still read a.parquet.
        assert!(readers.take_unreachable().is_empty());
        drop(old);
        // Version 4 does not name it.
        let taken = readers.take_unreachable();
        assert_eq!(taken, vec![StorePath::from("a.parquet")]);
        readers.deleted(&taken);
        readers.removed(5, vec![StorePath::from("b.parquet")]);
        assert_eq!(readers.waiting(), 1);
        drop(current);
        let taken = readers.take_unreachable();
        assert_eq!(taken, vec![StorePath::from("b.parquet")]);
        // Taken is not yet deleted.
        assert_eq!(readers.waiting(), 1);
        readers.deleted(&taken);
        assert_eq!(readers.waiting(), 0);
    }

    #[test]
    fn removed_files_wait_out_the_grace_period() {
        let readers = Arc::new(Readers::with_grace(Duration::from_millis(50)));
        readers.removed(1, vec![StorePath::from("a.parquet")]);
        assert!(readers.take_unreachable().is_empty());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            readers.take_unreachable(),
            vec![StorePath::from("a.parquet")]
        );
    }
}
