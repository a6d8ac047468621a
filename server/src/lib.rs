//! Ingot's server: gRPC ingestion (`ingot.v1.Ingest`) and Arrow Flight SQL
//! on one port, an InfluxDB-compatible HTTP API on another, both over one
//! [`ingot_engine::Engine`].
//!
//! A gRPC write is converted to an Arrow batch (`convert`) or kept as line
//! protocol and handed to the engine on the blocking pool (`grpc`); an HTTP
//! write is line protocol (`http`). A query is checked for size and depth
//! (`sql`), planned by DataFusion and streamed back as Flight data
//! (`flight`) or encoded as JSON, CSV or Parquet (`format`). The token check
//! is shared by both ports (`auth`); `metrics` serves Prometheus text.
//! `pg` serves the same SQL over the PostgreSQL wire protocol, `mqtt`
//! subscribes to a broker, `prometheus` takes remote write.
//! `route` is the write front of a cluster of writer nodes.
//! `allocator` makes every program that links this crate (`ingot`,
//! `ingot-bench`) allocate with jemalloc, which keeps freed memory while
//! data arrives.

#[cfg(all(target_os = "linux", not(target_env = "musl")))]
mod allocator;
mod auth;
pub mod client;
mod convert;
mod error;
pub mod export;
mod flight;
mod format;
mod grpc;
mod http;
pub mod import;
mod metrics;
pub mod mqtt;
mod pg;
pub mod prometheus;
pub mod route;
mod server;
mod sql;

use std::sync::Arc;

#[cfg(all(target_os = "linux", not(target_env = "musl")))]
pub use allocator::release_retained_memory;
pub use error::ApiError;
pub use flight::DATABASE_HEADER;
pub use server::{ServeConfig, ServeError, Server, TlsFiles};
pub use sql::SqlLimits;

/// What every request handler shares.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub engine: ingot_engine::Engine,
    pub metrics: Arc<metrics::Metrics>,
    pub limits: SqlLimits,
    pub auth: auth::Auth,
}
