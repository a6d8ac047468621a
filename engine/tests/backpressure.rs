//! When flushing cannot keep up, writers wait and then get a clear
//! resource-exhausted error, and the memtable stays within its budget.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use ingot_engine::{Engine, Error, Options, Precision};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// A local store whose puts take `delay`: a flush that cannot keep up.
#[derive(Debug)]
struct SlowStore {
    inner: LocalFileSystem,
    delay: Duration,
}

impl fmt::Display for SlowStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlowStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for SlowStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        tokio::time::sleep(self.delay).await;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[test]
fn writers_outrunning_a_slow_flush_get_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let budget = 1 << 20;
    let mut options = Options::default();
    options.memtable_budget_bytes = budget;
    options.write_stall_timeout = Duration::from_millis(200);
    options.object_store = Some(Arc::new(SlowStore {
        inner: LocalFileSystem::new_with_prefix(&files).unwrap(),
        delay: Duration::from_secs(2),
    }));
    let engine = Engine::open(dir.path().join("data"), options).unwrap();

    let exhausted = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (engine, exhausted, peak) = (engine.clone(), exhausted.clone(), peak.clone());
            std::thread::spawn(move || {
                for n in 0..2_000 {
                    if exhausted.load(Ordering::Acquire) {
                        return None;
                    }
                    let lp: String = (0..200)
                        .map(|i| format!("m,w=w{w},s=s{i} v={n}.5,i={i}i {}\n", n * 1000 + i))
                        .collect();
                    let result = engine.write_lines("public", &lp, Precision::Nanosecond);
                    peak.fetch_max(engine.memtable_bytes(), Ordering::AcqRel);
                    if let Err(e) = result {
                        exhausted.store(true, Ordering::Release);
                        return Some(e);
                    }
                }
                None
            })
        })
        .collect();
    let errors: Vec<Error> = writers
        .into_iter()
        .filter_map(|w| w.join().unwrap())
        .collect();
    assert!(!errors.is_empty(), "writers never hit the memory budget");
    for e in &errors {
        assert!(
            matches!(e, Error::ResourceExhausted { .. }),
            "unexpected error: {e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("resource exhausted") && msg.contains("budget"),
            "{msg}"
        );
    }
    assert!(
        peak.load(Ordering::Acquire) <= budget,
        "memtable grew to {} bytes, over its budget of {budget}",
        peak.load(Ordering::Acquire)
    );
    // Once the slow flush catches up, writes go through again.
    engine.flush().unwrap();
    engine
        .write_lines("public", "m,w=x v=1 1", Precision::Nanosecond)
        .unwrap();
}
