//! The local cache of a bucket's files: a store in front of the bucket that
//! keeps whole data files (and their summaries and last rows) on local disk,
//! in `{data_dir}/cache`, so that warm queries read the disk, not the
//! network.
//!
//! Only objects under `tables/` are cached: their names carry a file id that
//! is never reused, so a cached copy never goes stale. Everything else (the
//! manifest, the last-rows checkpoints) passes through. A read of a file not
//! yet cached fetches it whole, streamed to disk, and then serves the range
//! asked for from there; a file the engine writes is cached as it is put, so
//! a writer's newest files are warm from the start. The least recently used
//! files are evicted once the cache passes its size. A file larger than the
//! whole cache is read from the bucket each time.
//!
//! The cache starts empty at every open.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use crate::error::{Error, Result};

/// The folder (inside the store) whose objects are immutable and cached.
const CACHED_PREFIX: &str = "tables/";

/// A store that keeps recently read files of `inner` on local disk.
#[derive(Debug)]
pub(crate) struct CachedStore {
    inner: Arc<dyn ObjectStore>,
    index: Arc<CacheIndex>,
}

/// The cache folder and what it holds.
#[derive(Debug)]
struct CacheIndex {
    dir: PathBuf,
    capacity: u64,
    state: Mutex<CacheState>,
    stats: Arc<CacheStats>,
    /// A lock per file being fetched, so that reads of one file that miss
    /// together fetch it once.
    fetching: Mutex<HashMap<Path, Arc<tokio::sync::Mutex<()>>>>,
}

/// What the cache holds.
#[derive(Debug, Default)]
struct CacheState {
    entries: HashMap<Path, Entry>,
    bytes: u64,
    /// Ticks at each use; an entry's tick says when it was last used.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    meta: ObjectMeta,
    last_used: u64,
}

/// Reads served from the cache, and bytes fetched from the bucket.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub fetched_bytes: AtomicU64,
    pub cached_bytes: AtomicU64,
}

impl CachedStore {
    /// A cache of `inner` in `dir` (emptied first), holding up to `capacity`
    /// bytes.
    pub fn new(inner: Arc<dyn ObjectStore>, dir: PathBuf, capacity: u64) -> Result<Self> {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&dir, e)),
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Self {
            inner,
            index: Arc::new(CacheIndex {
                dir,
                capacity,
                state: Mutex::new(CacheState::default()),
                stats: Arc::new(CacheStats::default()),
                fetching: Mutex::default(),
            }),
        })
    }

    /// The cache's counters.
    pub fn stats(&self) -> Arc<CacheStats> {
        self.index.stats.clone()
    }

    /// The object at `location` in the cache, fetched whole from the bucket
    /// when absent; `None` when it is too large to cache.
    async fn ensure(&self, location: &Path) -> object_store::Result<Option<ObjectMeta>> {
        let index = &self.index;
        if let Some(meta) = index.lookup(location) {
            index.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(meta));
        }
        let lock = index
            .fetching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(location.clone())
            .or_default()
            .clone();
        let _fetching = lock.lock().await;
        // Another read may have fetched it meanwhile.
        if let Some(meta) = index.lookup(location) {
            index.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(meta));
        }
        let fetched = self.fetch(location).await;
        index
            .fetching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(location);
        fetched
    }

    /// Fetches the object at `location` whole into the cache.
    async fn fetch(&self, location: &Path) -> object_store::Result<Option<ObjectMeta>> {
        let index = &self.index;
        index.stats.misses.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.get_opts(location, GetOptions::default()).await?;
        // Under the name asked for (a prefixed store may report another).
        let meta = ObjectMeta {
            location: location.clone(),
            ..result.meta.clone()
        };
        if meta.size > index.capacity {
            return Ok(None);
        }
        let mut stream = result.into_stream();
        let (mut file, tmp) = index
            .create_local(location)
            .map_err(|e| local_error(location, e))?;
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?)
                .map_err(|e| local_error(location, e))?;
        }
        std::fs::rename(&tmp, index.local_path(location)).map_err(|e| local_error(location, e))?;
        index
            .stats
            .fetched_bytes
            .fetch_add(meta.size, Ordering::Relaxed);
        index.admit(meta.clone());
        Ok(Some(meta))
    }
}

impl CacheIndex {
    fn cacheable(&self, location: &Path) -> bool {
        self.capacity > 0 && location.as_ref().starts_with(CACHED_PREFIX)
    }

    fn local_path(&self, location: &Path) -> PathBuf {
        self.dir.join(location.as_ref())
    }

    /// The cached object's metadata, marking it used; `None` when absent.
    fn lookup(&self, location: &Path) -> Option<ObjectMeta> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.clock += 1;
        let tick = state.clock;
        let entry = state.entries.get_mut(location)?;
        entry.last_used = tick;
        Some(entry.meta.clone())
    }

    /// Records a file just written to the cache folder, evicting the least
    /// recently used ones beyond the capacity.
    fn admit(&self, meta: ObjectMeta) {
        let mut evicted = Vec::new();
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.clock += 1;
            let tick = state.clock;
            let size = meta.size;
            if let Some(old) = state.entries.insert(
                meta.location.clone(),
                Entry {
                    meta,
                    last_used: tick,
                },
            ) {
                state.bytes -= old.meta.size;
            }
            state.bytes += size;
            while state.bytes > self.capacity {
                let Some(oldest) = state
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(p, _)| p.clone())
                else {
                    break;
                };
                let entry = state.entries.remove(&oldest).expect("present");
                state.bytes -= entry.meta.size;
                evicted.push(oldest);
            }
            self.stats
                .cached_bytes
                .store(state.bytes, Ordering::Relaxed);
        }
        for location in evicted {
            let _ = std::fs::remove_file(self.local_path(&location));
        }
    }

    fn forget(&self, location: &Path) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = state.entries.remove(location) {
            state.bytes -= entry.meta.size;
            self.stats
                .cached_bytes
                .store(state.bytes, Ordering::Relaxed);
            drop(state);
            let _ = std::fs::remove_file(self.local_path(location));
        }
    }

    /// A temporary file to write the cached copy of `location` to, renamed
    /// into place once whole so that a reader never sees half a file.
    fn create_local(&self, location: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
        let path = self.local_path(location);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Unique, since two reads may fetch the same file at once.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("part{n}"));
        Ok((std::fs::File::create(&tmp)?, tmp))
    }

    /// Writes `chunks` as the cached copy of `location`.
    fn write_local(
        &self,
        location: &Path,
        chunks: impl IntoIterator<Item = Bytes>,
    ) -> std::io::Result<()> {
        let (mut file, tmp) = self.create_local(location)?;
        for chunk in chunks {
            file.write_all(&chunk)?;
        }
        std::fs::rename(&tmp, self.local_path(location))
    }
}

fn local_error(location: &Path, e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "ingot cache",
        source: format!("caching {location}: {e}").into(),
    }
}

impl std::fmt::Display for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (cached in {})", self.inner, self.index.dir.display())
    }
}

#[async_trait]
impl ObjectStore for CachedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let cacheable = self.index.cacheable(location)
            && (payload.content_length() as u64) <= self.index.capacity;
        let copy = cacheable.then(|| payload.clone());
        let result = self.inner.put_opts(location, payload, opts).await?;
        if let Some(copy) = copy {
            let size = copy.content_length() as u64;
            if self.index.write_local(location, copy).is_ok() {
                self.index.admit(ObjectMeta {
                    location: location.clone(),
                    last_modified: chrono::Utc::now(),
                    size,
                    e_tag: result.e_tag.clone(),
                    version: result.version.clone(),
                });
            }
        }
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.index.forget(location);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let plain = options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none();
        if !plain || !self.index.cacheable(location) {
            return self.inner.get_opts(location, options).await;
        }
        let Some(meta) = self.ensure(location).await? else {
            return self.inner.get_opts(location, options).await;
        };
        let range = match &options.range {
            Some(r) => r
                .as_range(meta.size)
                .map_err(|e| object_store::Error::Generic {
                    store: "ingot cache",
                    source: Box::new(e),
                })?,
            None => 0..meta.size,
        };
        let path = self.index.local_path(location);
        let file = std::fs::File::open(&path).map_err(|e| local_error(location, e))?;
        Ok(GetResult {
            payload: GetResultPayload::File(file, path),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        if !self.index.cacheable(location) {
            return self.inner.get_ranges(location, ranges).await;
        }
        if self.ensure(location).await?.is_none() {
            return self.inner.get_ranges(location, ranges).await;
        }
        let path = self.index.local_path(location);
        let file = std::fs::File::open(&path).map_err(|e| local_error(location, e))?;
        ranges
            .iter()
            .map(|r| {
                let mut buf = vec![0u8; (r.end - r.start) as usize];
                std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, r.start)
                    .map_err(|e| local_error(location, e))?;
                Ok(Bytes::from(buf))
            })
            .collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let deleted = self.inner.delete_stream(locations);
        let cache = self.index.clone();
        deleted
            .inspect(move |r| {
                if let Ok(location) = r {
                    cache.forget(location);
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.index.forget(to);
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn reads_once_then_serves_ranges_from_disk_and_evicts_the_least_recent() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let cache = CachedStore::new(inner.clone(), dir.path().join("cache"), 250).unwrap();
        let (a, b, c) = (
            Path::from("tables/a.parquet"),
            Path::from("tables/b.parquet"),
            Path::from("tables/c.parquet"),
        );
        run(async {
            for (p, byte) in [(&a, 1u8), (&b, 2)] {
                inner
                    .put(p, PutPayload::from(vec![byte; 100]))
                    .await
                    .unwrap();
            }
            // Read whole on first use, then from disk.
            let got = cache.get_range(&a, 10..20).await.unwrap();
            assert_eq!(&got[..], &[1u8; 10]);
            let got = cache.get_ranges(&a, &[0..1, 99..100]).await.unwrap();
            assert_eq!(got, vec![Bytes::from(vec![1u8]), Bytes::from(vec![1u8])]);
            let stats = cache.stats();
            assert_eq!(stats.misses.load(Ordering::Relaxed), 1);
            assert_eq!(stats.hits.load(Ordering::Relaxed), 1);
            assert_eq!(stats.fetched_bytes.load(Ordering::Relaxed), 100);
            // Gone from the store, still served: the copy is on disk.
            inner.delete(&a).await.unwrap();
            assert_eq!(
                cache.get(&a).await.unwrap().bytes().await.unwrap().len(),
                100
            );
            // A put is cached as it is written.
            cache
                .put(&c, PutPayload::from(vec![3u8; 100]))
                .await
                .unwrap();
            cache.get_range(&b, 0..1).await.unwrap();
            // 300 bytes over a 250-byte cache: a, the least recently used, went.
            assert_eq!(stats.cached_bytes.load(Ordering::Relaxed), 200);
            assert!(cache.get_range(&a, 0..1).await.is_err());
            assert_eq!(&cache.get_range(&c, 0..2).await.unwrap()[..], &[3u8, 3]);
            // Outside tables/, nothing is cached.
            let m = Path::from("manifest/1.edit");
            cache
                .put(&m, PutPayload::from(vec![9u8; 10]))
                .await
                .unwrap();
            assert_eq!(stats.cached_bytes.load(Ordering::Relaxed), 200);
        });
    }
}
