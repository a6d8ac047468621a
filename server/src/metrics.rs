//! Prometheus metrics (`GET /metrics`): what the server counts itself
//! (requests, rows, bytes, queries and their latency) plus the engine's
//! counters, read from [`Engine::stats`] at each scrape.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ingot_engine::{Engine, WriteSummary};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::ApiError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

/// Outcome of an MQTT message or a PostgreSQL connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeOnly {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    protocol: &'static str,
    outcome: &'static str,
}

/// The server's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    write_requests: Family<OutcomeLabels, Counter>,
    rows_written: Family<ProtocolLabels, Counter>,
    points_written: Family<ProtocolLabels, Counter>,
    bytes_written: Family<ProtocolLabels, Counter>,
    queries: Family<OutcomeLabels, Counter>,
    query_seconds: Family<ProtocolLabels, Histogram>,
    mqtt_messages: Family<OutcomeOnly, Counter>,
    pg_connections: Family<OutcomeOnly, Counter>,
}

impl Metrics {
    pub fn new(engine: Engine) -> Self {
        let mut registry = Registry::with_prefix("ingot");
        let write_requests = Family::<OutcomeLabels, Counter>::default();
        let rows_written = Family::<ProtocolLabels, Counter>::default();
        let points_written = Family::<ProtocolLabels, Counter>::default();
        let bytes_written = Family::<ProtocolLabels, Counter>::default();
        let queries = Family::<OutcomeLabels, Counter>::default();
        let query_seconds = Family::<ProtocolLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 18))
        });
        registry.register(
            "write_requests",
            "Write requests by protocol and outcome (ok, invalid, error)",
            write_requests.clone(),
        );
        registry.register("rows_written", "Rows written", rows_written.clone());
        registry.register(
            "points_written",
            "Field values written (non-null)",
            points_written.clone(),
        );
        registry.register(
            "bytes_written",
            "Request payload bytes of accepted writes",
            bytes_written.clone(),
        );
        registry.register(
            "queries",
            "SQL queries by protocol and outcome",
            queries.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Time to plan and run a SQL query to its last batch",
            query_seconds.clone(),
        );
        let mqtt_messages = Family::<OutcomeOnly, Counter>::default();
        registry.register(
            "mqtt_messages",
            "MQTT messages by outcome (ok, invalid: refused and dropped, error: not written \
             and not acknowledged), and lost connections (disconnected)",
            mqtt_messages.clone(),
        );
        let pg_connections = Family::<OutcomeOnly, Counter>::default();
        registry.register(
            "pg_connections",
            "PostgreSQL wire protocol connections by outcome (ok, unauthenticated: wrong \
             password, refused: unknown database or not TLS); their queries count in ingot_queries with \
             protocol=\"postgres\"",
            pg_connections.clone(),
        );
        registry.register_collector(Box::new(EngineCollector { engine }));
        Self {
            registry,
            write_requests,
            rows_written,
            points_written,
            bytes_written,
            queries,
            query_seconds,
            mqtt_messages,
            pg_connections,
        }
    }

    /// Counts an MQTT message (or a lost connection) by outcome.
    pub fn mqtt(&self, outcome: &'static str) {
        self.mqtt_messages
            .get_or_create(&OutcomeOnly { outcome })
            .inc();
    }

    /// Counts a PostgreSQL connection's startup by outcome.
    pub fn pg_connection(&self, outcome: &'static str) {
        self.pg_connections
            .get_or_create(&OutcomeOnly { outcome })
            .inc();
    }

    /// Records the outcome of a write request, and logs it.
    pub fn write(
        &self,
        protocol: &'static str,
        result: &Result<WriteSummary, ApiError>,
        bytes: u64,
    ) {
        let outcome = match result {
            Ok(s) => {
                let labels = ProtocolLabels { protocol };
                self.rows_written.get_or_create(&labels).inc_by(s.rows);
                self.points_written.get_or_create(&labels).inc_by(s.points);
                self.bytes_written.get_or_create(&labels).inc_by(bytes);
                tracing::debug!(protocol, rows = s.rows, points = s.points, bytes, "write");
                "ok"
            }
            Err(e) if e.is_client_error() => {
                tracing::debug!(protocol, error = %e, "write rejected");
                "invalid"
            }
            Err(e) => {
                tracing::warn!(protocol, error = %e, "write failed");
                "error"
            }
        };
        self.write_requests
            .get_or_create(&OutcomeLabels { protocol, outcome })
            .inc();
    }

    /// Records a query and how long it took.
    pub fn query(&self, protocol: &'static str, ok: bool, elapsed: Duration) {
        tracing::debug!(
            protocol,
            ok,
            elapsed_ms = elapsed.as_millis() as u64,
            "query"
        );
        self.queries
            .get_or_create(&OutcomeLabels {
                protocol,
                outcome: if ok { "ok" } else { "error" },
            })
            .inc();
        self.query_seconds
            .get_or_create(&ProtocolLabels { protocol })
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Records a query in the metrics when dropped: when its result stream
/// ends or its client goes away.
#[derive(Debug)]
pub struct QueryTimer {
    metrics: Arc<Metrics>,
    protocol: &'static str,
    started: Instant,
    /// False once any part of the query failed.
    pub ok: bool,
}

impl QueryTimer {
    pub fn start(metrics: Arc<Metrics>, protocol: &'static str) -> Self {
        Self {
            metrics,
            protocol,
            started: Instant::now(),
            ok: true,
        }
    }
}

impl Drop for QueryTimer {
    fn drop(&mut self) {
        self.metrics
            .query(self.protocol, self.ok, self.started.elapsed());
    }
}

/// The engine's own counters, read at each scrape.
#[derive(Debug)]
struct EngineCollector {
    engine: Engine,
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.engine.stats();
        let counters: [(&str, &str, u64); 11] = [
            (
                "wal_records",
                "Write requests appended to the WAL",
                s.wal_records,
            ),
            (
                "wal_fsyncs",
                "WAL fsyncs (group commit shares one among concurrent writes)",
                s.wal_fsyncs,
            ),
            ("flushes", "Memtable flushes to Parquet", s.flushes),
            ("files_written", "Parquet files written", s.files_written),
            (
                "flush_written_bytes",
                "Bytes of Parquet files written by flushes",
                s.bytes_flushed,
            ),
            ("compactions", "Completed compactions", s.compactions),
            (
                "compaction_read_bytes",
                "Bytes of Parquet files read by compactions",
                s.bytes_compacted,
            ),
            (
                "compaction_written_bytes",
                "Bytes of Parquet files written by compactions",
                s.compaction_bytes_written,
            ),
            (
                "expired_files",
                "Files removed because every row was past its database's retention period",
                s.files_expired,
            ),
            (
                "expired_rows",
                "Rows in files removed by retention",
                s.rows_expired,
            ),
            (
                "deleted_rows",
                "Rows removed by DELETE statements (as each DELETE counted them)",
                s.rows_deleted,
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let fsync = ConstCounter::new(s.wal_fsync_nanos as f64 / 1e9);
        fsync.encode(encoder.encode_descriptor(
            "wal_fsync_seconds",
            "Time spent in WAL fsyncs",
            None,
            fsync.metric_type(),
        )?)?;
        let gauges: [(&str, &str, i64); 4] = [
            (
                "memtable_bytes",
                "Bytes of written data not yet persisted",
                i64::try_from(s.memtable_bytes).unwrap_or(i64::MAX),
            ),
            (
                "files",
                "Live Parquet files",
                i64::try_from(s.files).unwrap_or(i64::MAX),
            ),
            (
                "files_awaiting_deletion",
                "Files compaction or retention replaced that running queries still read",
                i64::try_from(s.files_awaiting_deletion).unwrap_or(i64::MAX),
            ),
            (
                "summary_cache_bytes",
                "Memory held by decoded per-file summaries",
                i64::try_from(s.summary_cache_bytes).unwrap_or(i64::MAX),
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        // Live files per table: how far compaction is behind, table by table.
        let mut per_table: std::collections::BTreeMap<(String, String), i64> = Default::default();
        for f in self.engine.files() {
            *per_table.entry((f.database, f.table)).or_default() += 1;
        }
        let mut family = encoder.encode_descriptor(
            "table_files",
            "Live Parquet files of each table",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for ((database, table), n) in &per_table {
            let labels = [("database", database.as_str()), ("table", table.as_str())];
            ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
