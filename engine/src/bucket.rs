//! Object storage: opening a bucket from a URL (`s3://bucket/prefix`,
//! `file:///path`), and the one runtime its network I/O runs on.
//!
//! An S3 client's connections belong to the runtime that opened them; a
//! query on a short-lived runtime would leave the pool with dead ones. So
//! every request to a bucket runs on one process-wide I/O runtime, whatever
//! runtime (or plain thread) asked for it.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::SpawnedReqwestConnector;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;

use crate::error::{Error, Result};

/// Threads of the I/O runtime: requests wait on the network, not the CPU.
const IO_THREADS: usize = 2;

/// The process-wide runtime that object-store requests run on.
pub(crate) fn io_runtime() -> &'static tokio::runtime::Runtime {
    static IO: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .thread_name("ingot-io")
            .enable_all()
            .build()
            .expect("the I/O runtime starts")
    })
}

/// Runs `future` on the I/O runtime and waits for it: callable from any
/// thread, including a runtime's own (which it then blocks, as a file
/// system call would).
pub(crate) fn block_on<F>(future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = io_runtime().spawn(future);
    futures::executor::block_on(task)
        .map_err(|e| Error::Internal(format!("an object-store request failed to run: {e}")))
}

/// Opens the object store a URL names, with everything Ingot keeps there
/// under the URL's path:
///
/// - `s3://bucket/prefix`: S3 or an S3-compatible server. Endpoint, region
///   and credentials come from the usual variables (`AWS_ENDPOINT`,
///   `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...); an
///   `http://` endpoint is allowed without `AWS_ALLOW_HTTP`.
/// - `file:///path`: a folder, for nodes that share a file system.
pub fn object_store_from_url(url: &str) -> Result<Arc<dyn ObjectStore>> {
    object_store_from_url_with(url, std::iter::empty::<(&str, &str)>())
}

/// [`object_store_from_url`] with settings given here rather than in the
/// environment, which they override: S3 configuration keys such as
/// `aws_endpoint`, `aws_region`, `aws_access_key_id`,
/// `aws_secret_access_key`.
pub fn object_store_from_url_with<K: AsRef<str>, V: Into<String>>(
    url: &str,
    settings: impl IntoIterator<Item = (K, V)>,
) -> Result<Arc<dyn ObjectStore>> {
    let bad = |why: &str| {
        Error::InvalidInput(format!(
            "object store URL {url:?} {why}; expected s3://bucket/prefix or file:///path"
        ))
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
    match scheme {
        "s3" | "s3a" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("names no bucket"));
            }
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_http_connector(SpawnedReqwestConnector::new(io_runtime().handle().clone()));
            let mut endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
                .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .unwrap_or_default();
            for (key, value) in settings {
                let key = key.as_ref();
                let value = value.into();
                let parsed = key
                    .parse::<AmazonS3ConfigKey>()
                    .map_err(|e| bad(&format!("has the unknown setting {key:?}: {e}")))?;
                if matches!(parsed, AmazonS3ConfigKey::Endpoint) {
                    endpoint = value.clone();
                }
                builder = builder.with_config(parsed, value);
            }
            if endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            if !endpoint.is_empty() {
                builder = builder.with_endpoint(endpoint);
            }
            let store = builder
                .build()
                .map_err(|e| bad(&format!("cannot be opened: {e}")))?;
            Ok(with_prefix(Arc::new(store), prefix))
        }
        "file" => {
            if !rest.starts_with('/') {
                return Err(bad("is not an absolute path"));
            }
            std::fs::create_dir_all(rest).map_err(|e| Error::io(rest, e))?;
            Ok(Arc::new(LocalFileSystem::new_with_prefix(rest)?))
        }
        other => Err(bad(&format!("has the unsupported scheme {other:?}"))),
    }
}

fn with_prefix(store: Arc<dyn ObjectStore>, prefix: &str) -> Arc<dyn ObjectStore> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_say_what_is_expected() {
        for url in [
            "bucket/prefix",
            "s3:///prefix",
            "gs://bucket",
            "file://relative",
        ] {
            let e = object_store_from_url(url).unwrap_err().to_string();
            assert!(e.contains("expected s3://bucket/prefix"), "{url}: {e}");
        }
    }

    #[test]
    fn block_on_runs_from_inside_a_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let n = rt.block_on(async { block_on(async { 6 * 7 }).unwrap() });
        assert_eq!(n, 42);
    }
}
