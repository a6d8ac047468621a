//! Starting and stopping a server: the engine, the gRPC port (Ingest and
//! Flight SQL behind one token interceptor) and the HTTP port, optionally
//! over TLS, and the graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use futures::StreamExt;
use ingot_engine::{Engine, Options, WalSync};
use ingot_proto::v1::ingest_server::IngestServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, ServerTlsConfig};
use tracing::{info, warn};

use crate::AppState;
use crate::auth::Auth;
use crate::flight::FlightSqlServer;
use crate::grpc::IngestService;
use crate::metrics::Metrics;
use crate::sql::SqlLimits;

/// How long a shutdown waits for in-flight requests before closing connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long the engine must go without a write, flush or compaction before
/// the allocator hands the memory it keeps back to the kernel.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
const IDLE_RELEASE_INTERVAL: Duration = Duration::from_secs(30);

/// Everything `ingot serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    /// `host:port`; port 0 picks a free port.
    pub grpc_addr: String,
    pub http_addr: String,
    pub token: Option<String>,
    pub wal_sync: WalSync,
    /// PEM certificate chain and private key; both ports use TLS when set.
    pub tls: Option<TlsFiles>,
    /// Largest HTTP request body, after decompression.
    pub max_body_bytes: usize,
    /// Largest gRPC message the server decodes.
    pub max_grpc_message_bytes: usize,
    pub sql_limits: SqlLimits,
    /// Memory the engine's memtable may hold; `None` keeps the engine's default.
    pub memtable_budget_bytes: Option<usize>,
    /// Retention period of databases created from now on; `None` keeps
    /// their rows forever.
    pub default_retention: Option<Duration>,
    /// `s3://bucket/prefix` (or `file:///path`): keep the files and the
    /// manifest there (see `ingot_engine::object_store_from_url`); the data
    /// directory then holds the WAL and the cache.
    pub object_store: Option<String>,
    /// Local disk for copies of the object store's files; `None` keeps the
    /// engine's default.
    pub cache_bytes: Option<u64>,
    /// This writer's node id in a cluster of writers on one bucket prefix:
    /// it keeps its files under `nodes/{id}/` there.
    pub node_id: Option<String>,
    /// Persist the memtable at least this often while it holds rows (what
    /// bounds how far replicas trail); `None` flushes when it fills.
    pub flush_interval: Option<Duration>,
    /// Serve queries from the object store's files and refuse writes (a
    /// query replica of the writer on that bucket prefix).
    pub read_only: bool,
    /// How often a read-only server looks for the writer's changes.
    pub refresh_interval: Duration,
    /// Publish each table's compacted partitions as a Delta Lake table.
    pub delta_lake: bool,
    /// Subscribe to an MQTT broker and write what it sends.
    pub mqtt: Option<crate::mqtt::MqttConfig>,
    /// `host:port` of the PostgreSQL wire protocol; `None` leaves it off.
    pub pg_addr: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServeConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            grpc_addr: "127.0.0.1:50051".into(),
            http_addr: "127.0.0.1:8080".into(),
            token: None,
            wal_sync: WalSync::Always,
            tls: None,
            max_body_bytes: 64 << 20,
            max_grpc_message_bytes: 64 << 20,
            sql_limits: SqlLimits::default(),
            memtable_budget_bytes: None,
            default_retention: None,
            object_store: None,
            cache_bytes: None,
            flush_interval: None,
            node_id: None,
            read_only: false,
            refresh_interval: Options::default().refresh_interval,
            delta_lake: false,
            mqtt: None,
            pg_addr: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("cannot open the data directory: {0}")]
    Engine(#[from] ingot_engine::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot read TLS file {path}: {source}")]
    TlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad TLS configuration: {0}")]
    Tls(String),
    #[error("the {service} server failed: {reason}")]
    Serve {
        service: &'static str,
        reason: String,
    },
}

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
#[derive(Debug)]
pub struct Server {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    engine: Engine,
    stop: watch::Sender<bool>,
    grpc: JoinHandle<Result<(), ServeError>>,
    http: JoinHandle<Result<(), ServeError>>,
    mqtt: Option<JoinHandle<()>>,
    pg: Option<(SocketAddr, JoinHandle<()>)>,
}

async fn bind(addr: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })
}

async fn read(path: &PathBuf) -> Result<Vec<u8>, ServeError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| ServeError::TlsFile {
            path: path.clone(),
            source,
        })
}

impl Server {
    /// Opens the engine, binds both ports and starts serving.
    ///
    /// DataFusion plans queries by recursion: run the server on a runtime
    /// whose threads have large stacks (`ingot serve` uses 64 MiB, see
    /// `tokio::runtime::Builder::thread_stack_size`), or lower
    /// [`SqlLimits`] to fit the 2 MiB default.
    pub async fn start(config: ServeConfig) -> Result<Server, ServeError> {
        let mut options = Options::default();
        options.wal_sync = config.wal_sync;
        options.default_retention = config.default_retention;
        if let Some(budget) = config.memtable_budget_bytes {
            options.memtable_budget_bytes = budget;
        }
        if let Some(url) = &config.object_store {
            options.object_store = Some(ingot_engine::object_store_from_url(url)?);
        }
        if let Some(bytes) = config.cache_bytes {
            options.cache_bytes = bytes;
        }
        options.flush_interval = config.flush_interval;
        options.node_id = config.node_id.clone();
        options.read_only = config.read_only;
        options.refresh_interval = config.refresh_interval;
        options.delta_lake = config.delta_lake;
        let dir = config.data_dir.clone();
        let engine = tokio::task::spawn_blocking(move || Engine::open(&dir, options))
            .await
            .map_err(|e| ServeError::Serve {
                service: "engine",
                reason: e.to_string(),
            })??;
        let grpc_listener = bind(&config.grpc_addr).await?;
        let http_listener = bind(&config.http_addr).await?;
        let grpc_addr = local_addr(&grpc_listener, &config.grpc_addr)?;
        let http_addr = local_addr(&http_listener, &config.http_addr)?;
        let pg_listener = match &config.pg_addr {
            Some(addr) => {
                let listener = bind(addr).await?;
                Some((local_addr(&listener, addr)?, listener))
            }
            None => None,
        };

        let state = AppState {
            engine: engine.clone(),
            metrics: Arc::new(Metrics::new(engine.clone())),
            limits: config.sql_limits,
            auth: Auth::new(config.token.clone()),
        };
        let tls = match &config.tls {
            Some(files) => {
                // ring is rustls' provider for the HTTP port (tonic picks its own).
                let _ = rustls::crypto::ring::default_provider().install_default();
                Some((read(&files.cert).await?, read(&files.key).await?))
            }
            None => None,
        };
        let (stop, stopped) = watch::channel(false);
        #[cfg(all(target_os = "linux", not(target_env = "musl")))]
        tokio::spawn(crate::allocator::release_when_idle(
            engine.clone(),
            IDLE_RELEASE_INTERVAL,
            stopped.clone(),
        ));
        let mqtt = match &config.mqtt {
            Some(mqtt) if !config.read_only => {
                crate::mqtt::check(mqtt).map_err(|reason| ServeError::Serve {
                    service: "mqtt",
                    reason,
                })?;
                Some(tokio::spawn(crate::mqtt::run(
                    mqtt.clone(),
                    engine.clone(),
                    state.metrics.clone(),
                    stopped.clone(),
                )))
            }
            _ => None,
        };

        let pg = match pg_listener {
            Some((addr, listener)) => {
                let tls = match &tls {
                    Some((cert, key)) => Some(pg_tls(cert, key)?),
                    None => None,
                };
                let task = tokio::spawn(crate::pg::serve(
                    listener,
                    state.clone(),
                    tls,
                    stopped.clone(),
                ));
                info!(pg_addr = %addr, "PostgreSQL wire protocol listening");
                Some((addr, task))
            }
            None => None,
        };
        let grpc = tokio::spawn(serve_grpc(
            grpc_listener,
            state.clone(),
            config.max_grpc_message_bytes,
            tls.clone(),
            stopped.clone(),
        ));
        let router = crate::http::router(state, config.max_body_bytes);
        let http = tokio::spawn(serve_http(http_listener, router, tls, stopped));
        info!(%grpc_addr, %http_addr, tls = config.tls.is_some(), "ingot listening");
        Ok(Server {
            grpc_addr,
            http_addr,
            engine,
            stop,
            grpc,
            http,
            mqtt,
            pg,
        })
    }

    /// The PostgreSQL wire protocol's address, when it is on.
    pub fn pg_addr(&self) -> Option<SocketAddr> {
        self.pg.as_ref().map(|(addr, _)| *addr)
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Stops accepting, lets in-flight requests finish (up to a grace
    /// period), then closes the engine: flush, WAL sync, lock released.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        info!("shutting down: finishing in-flight requests");
        let _ = self.stop.send(true);
        let grpc = finish(self.grpc, "grpc").await;
        let http = finish(self.http, "http").await;
        if let Some((_, pg)) = self.pg {
            let _ = pg.await;
        }
        if let Some(mqtt) = self.mqtt {
            // A message being written finishes; unacknowledged ones come again.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, mqtt).await;
        }
        let engine = self.engine.clone();
        let closed = tokio::task::spawn_blocking(move || engine.close()).await;
        for (service, result) in [("grpc", grpc), ("http", http)] {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(service, error = %e, "server stopped with an error"),
                Err(e) => warn!(service, error = %e, "server task failed"),
            }
        }
        match closed {
            Ok(Ok(())) => {
                info!("engine closed");
                Ok(())
            }
            Ok(Err(e)) => Err(ServeError::Engine(e)),
            Err(e) => Err(ServeError::Serve {
                service: "engine",
                reason: e.to_string(),
            }),
        }
    }
}

/// Waits for a server task to finish its in-flight requests, at most
/// [`SHUTDOWN_GRACE`] (a client streaming forever must not hold the
/// shutdown), then aborts it.
async fn finish(
    mut task: JoinHandle<Result<(), ServeError>>,
    service: &'static str,
) -> Result<Result<(), ServeError>, tokio::task::JoinError> {
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
        Ok(result) => result,
        Err(_) => {
            warn!(service, grace = ?SHUTDOWN_GRACE, "requests still running after the grace period; closing them");
            task.abort();
            task.await
        }
    }
}

fn local_addr(listener: &TcpListener, addr: &str) -> Result<SocketAddr, ServeError> {
    listener.local_addr().map_err(|source| ServeError::Bind {
        addr: addr.to_string(),
        source,
    })
}

/// The PostgreSQL port's TLS, from the server's PEM certificate and key.
fn pg_tls(
    cert: &[u8],
    key: &[u8],
) -> Result<datafusion_postgres::pgwire::tokio::TlsAcceptor, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Tls(format!("certificate: {e}")))?;
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| ServeError::Tls(format!("key: {e}")))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    Ok(datafusion_postgres::pgwire::tokio::TlsAcceptor::from(
        Arc::new(config),
    ))
}

async fn wait_for_stop(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

async fn serve_grpc(
    listener: TcpListener,
    state: AppState,
    max_message_bytes: usize,
    tls: Option<(Vec<u8>, Vec<u8>)>,
    stopped: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let auth = state.auth.clone();
    let ingest = IngestServer::new(IngestService::new(state.clone()))
        .max_decoding_message_size(max_message_bytes);
    let flight = FlightServiceServer::new(FlightSqlServer::new(state))
        .max_decoding_message_size(max_message_bytes);
    let mut builder = tonic::transport::Server::builder();
    if let Some((cert, key)) = tls {
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(|e| ServeError::Tls(e.to_string()))?;
    }
    let incoming = TcpListenerStream::new(listener).map(|stream| {
        if let Ok(s) = &stream {
            let _ = s.set_nodelay(true);
        }
        stream
    });
    builder
        .add_service(InterceptedService::new(ingest, auth.clone()))
        .add_service(InterceptedService::new(flight, auth))
        .serve_with_incoming_shutdown(incoming, wait_for_stop(stopped))
        .await
        .map_err(|e| ServeError::Serve {
            service: "grpc",
            reason: e.to_string(),
        })
}

async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<(Vec<u8>, Vec<u8>)>,
    stopped: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let serve_err = |e: std::io::Error| ServeError::Serve {
        service: "http",
        reason: e.to_string(),
    };
    let listener = listener.into_std().map_err(serve_err)?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        wait_for_stop(stopped).await;
        stopper.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    let service = router.into_make_service();
    match tls {
        Some((cert, key)) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem(cert, key)
                .await
                .map_err(|e| ServeError::Tls(e.to_string()))?;
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(service)
                .await
                .map_err(serve_err)
        }
        None => axum_server::from_tcp(listener)
            .handle(handle)
            .serve(service)
            .await
            .map_err(serve_err),
    }
}
