//! The HTTP API: InfluxDB-compatible line-protocol writes (v1, v2, v3),
//! SQL over HTTP, health and Prometheus metrics.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures::StreamExt;
use ingot_engine::statement::Statement;
use ingot_engine::{DEFAULT_DATABASE, Precision};
use serde::Deserialize;
use tower_http::decompression::RequestDecompressionLayer;

use crate::AppState;
use crate::auth::http_auth;
use crate::error::{ApiError, Result};
use crate::format::{Encoder, Format};
use crate::grpc::blocking;
use crate::metrics::QueryTimer;

/// The router: every route but `/health` and `/ping` requires the token when
/// one is set.
/// Bodies may be gzip-encoded; a body (after decompression) over
/// `max_body_bytes` gets 413.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let protected = Router::new()
        .route("/api/v2/write", post(write_v2))
        .route("/write", post(write_v1))
        .route("/api/v3/write_lp", post(write_v3))
        .route("/api/v3/query_sql", get(query_get).post(query_post))
        .route(
            "/api/v3/configure/database",
            get(list_databases)
                .post(create_database)
                .put(update_database)
                .delete(drop_database),
        )
        .route("/api/v3/configure/table", delete(drop_table))
        .route("/metrics", get(metrics))
        .layer(from_fn_with_state(state.auth.clone(), http_auth));
    // Prometheus compresses with snappy, which the decompression layer does
    // not know: its route decodes its own body, outside that layer.
    let prometheus = Router::new()
        .route(
            "/api/v1/write",
            post(move |state, query, body| prometheus_write(state, query, body, max_body_bytes)),
        )
        .layer(from_fn_with_state(state.auth.clone(), http_auth))
        .layer(DefaultBodyLimit::max(max_body_bytes));
    Router::new()
        .route("/health", get(health))
        .route("/ping", get(ping).head(ping))
        .merge(protected)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(RequestDecompressionLayer::new())
        .merge(prometheus)
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct PrometheusParams {
    db: Option<String>,
}

/// Prometheus remote write ([`crate::prometheus`]): 204 once the samples
/// are durable.
async fn prometheus_write(
    State(state): State<AppState>,
    Query(p): Query<PrometheusParams>,
    body: Bytes,
    max_body_bytes: usize,
) -> Result<StatusCode> {
    let database =
        p.db.filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
    let bytes = body.len() as u64;
    let decoded = crate::prometheus::decode(&body, max_body_bytes)
        .and_then(|request| crate::prometheus::to_batches(&request));
    let tables = match decoded {
        Ok((tables, _)) => tables,
        Err(e) => {
            let failed = Err(e);
            state
                .metrics
                .write("prometheus_remote_write", &failed, bytes);
            return failed.map(|_| StatusCode::NO_CONTENT);
        }
    };
    let engine = state.engine.clone();
    let result = blocking(move || {
        let tables: Vec<(&str, &arrow::array::RecordBatch)> =
            tables.iter().map(|(t, b)| (t.as_str(), b)).collect();
        engine.write_batches(&database, &tables)
    })
    .await;
    state
        .metrics
        .write("prometheus_remote_write", &result, bytes);
    result.map(|_| StatusCode::NO_CONTENT)
}

/// InfluxDB's shape of a health answer, which its client libraries parse.
async fn health() -> Response {
    Json(serde_json::json!({
        "name": "ingot",
        "message": "ready for queries and writes",
        "status": "pass",
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

/// InfluxDB 1.x's liveness probe (Telegraf and the v1 clients call it).
async fn ping() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(
            "X-Influxdb-Version",
            concat!("ingot-", env!("CARGO_PKG_VERSION")),
        )],
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct V1Params {
    db: Option<String>,
    precision: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V2Params {
    bucket: Option<String>,
    precision: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V3Params {
    db: Option<String>,
    precision: Option<String>,
}

async fn write_v1(
    State(state): State<AppState>,
    Query(p): Query<V1Params>,
    body: Bytes,
) -> Result<StatusCode> {
    let precision = precision(p.precision.as_deref(), true)?;
    write_lp(&state, "http_v1", p.db, precision, body).await
}

async fn write_v2(
    State(state): State<AppState>,
    Query(p): Query<V2Params>,
    body: Bytes,
) -> Result<StatusCode> {
    let precision = precision(p.precision.as_deref(), false)?;
    write_lp(&state, "http_v2", p.bucket, precision, body).await
}

async fn write_v3(
    State(state): State<AppState>,
    Query(p): Query<V3Params>,
    body: Bytes,
) -> Result<StatusCode> {
    let precision = precision(p.precision.as_deref(), false)?;
    write_lp(&state, "http_v3", p.db, precision, body).await
}

/// Precision names: `ns`, `us`, `ms`, `s` (v1 also `n`, `u`; InfluxDB 3's
/// long names and `auto`, read as nanoseconds, are accepted too).
fn precision(name: Option<&str>, v1: bool) -> Result<Precision> {
    match name.unwrap_or("ns") {
        "ns" | "nanosecond" | "auto" => Ok(Precision::Nanosecond),
        "us" | "µs" | "microsecond" => Ok(Precision::Microsecond),
        "ms" | "millisecond" => Ok(Precision::Millisecond),
        "s" | "second" => Ok(Precision::Second),
        "n" if v1 => Ok(Precision::Nanosecond),
        "u" if v1 => Ok(Precision::Microsecond),
        other => Err(ApiError::invalid(format!(
            "unknown precision {other:?}: expected ns, us, ms or s"
        ))),
    }
}

async fn write_lp(
    state: &AppState,
    protocol: &'static str,
    database: Option<String>,
    precision: Precision,
    body: Bytes,
) -> Result<StatusCode> {
    let database = database
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
    let bytes = body.len() as u64;
    let text = String::from_utf8(body.into())
        .map_err(|e| ApiError::invalid(format!("the body is not UTF-8: {e}")))?;
    let engine = state.engine.clone();
    let result = blocking(move || engine.write_lines(&database, &text, precision)).await;
    state.metrics.write(protocol, &result, bytes);
    result.map(|_| StatusCode::NO_CONTENT)
}

/// The body of `POST` and `PUT /api/v3/configure/database`, as InfluxDB 3
/// takes it.
#[derive(Debug, Deserialize)]
struct DatabaseConfig {
    db: String,
    /// `30d`, `12h`, or `none`; left out: the server's default for a new
    /// database, and an error for an update.
    retention_period: Option<String>,
}

/// One database as the configure API shows it.
fn database_json(state: &AppState, database: &str) -> Result<serde_json::Value> {
    let period = state.engine.retention(database)?;
    Ok(serde_json::json!({
        "db": database,
        "retention_period": ingot_engine::format_period(period),
    }))
}

async fn list_databases(State(state): State<AppState>) -> Result<Response> {
    let databases = state
        .engine
        .databases()
        .iter()
        .map(|d| database_json(&state, d))
        .collect::<Result<Vec<_>>>()?;
    Ok(Json(databases).into_response())
}

/// Creates a database: 409 if it exists.
async fn create_database(
    State(state): State<AppState>,
    Json(config): Json<DatabaseConfig>,
) -> Result<Response> {
    let statement = Statement::CreateDatabase {
        name: config.db.clone(),
        if_not_exists: false,
        retention: match &config.retention_period {
            Some(text) => Some(ingot_engine::parse_period(text)?),
            None => None,
        },
    };
    let engine = state.engine.clone();
    blocking(move || engine.run_statement(&statement, DEFAULT_DATABASE)).await?;
    Ok(Json(database_json(&state, &config.db)?).into_response())
}

/// Changes a database's retention period: 404 if it does not exist.
async fn update_database(
    State(state): State<AppState>,
    Json(config): Json<DatabaseConfig>,
) -> Result<Response> {
    let Some(text) = &config.retention_period else {
        return Err(ApiError::invalid(
            "nothing to change: give retention_period (30d, 12h, or none to keep rows forever)",
        ));
    };
    let period = ingot_engine::parse_period(text)?;
    let engine = state.engine.clone();
    let name = config.db.clone();
    blocking(move || engine.set_retention(&name, period)).await?;
    Ok(Json(database_json(&state, &config.db)?).into_response())
}

/// `?db=` (and `&table=`) of the configure API's `DELETE`s.
#[derive(Debug, Deserialize)]
struct DropParams {
    db: Option<String>,
    table: Option<String>,
}

/// `DELETE /api/v3/configure/database?db=`: drops a database with its
/// tables; 404 if it does not exist.
async fn drop_database(
    State(state): State<AppState>,
    Query(p): Query<DropParams>,
) -> Result<StatusCode> {
    let Some(database) = p.db.filter(|d| !d.is_empty()) else {
        return Err(ApiError::invalid("name the database to drop: ?db=name"));
    };
    let engine = state.engine.clone();
    blocking(move || engine.drop_database(&database)).await?;
    Ok(StatusCode::OK)
}

/// `DELETE /api/v3/configure/table?db=&table=`: drops a table; 404 if it
/// does not exist.
async fn drop_table(
    State(state): State<AppState>,
    Query(p): Query<DropParams>,
) -> Result<StatusCode> {
    let Some(table) = p.table.filter(|t| !t.is_empty()) else {
        return Err(ApiError::invalid(
            "name the table to drop: ?db=database&table=name",
        ));
    };
    let database =
        p.db.filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
    let engine = state.engine.clone();
    blocking(move || engine.drop_table(&database, &table)).await?;
    Ok(StatusCode::OK)
}

#[derive(Debug, Default, Deserialize)]
struct QueryParams {
    db: Option<String>,
    q: Option<String>,
    format: Option<String>,
}

async fn query_get(
    State(state): State<AppState>,
    Query(p): Query<QueryParams>,
) -> Result<Response> {
    query(&state, p).await
}

/// POST takes the parameters from the query string, a JSON body
/// (`{"db", "q", "format"}`) or both (the body wins).
async fn query_post(
    State(state): State<AppState>,
    Query(mut p): Query<QueryParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    if !body.is_empty() {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("application/json"));
        if is_json {
            let b: QueryParams = serde_json::from_slice(&body)
                .map_err(|e| ApiError::invalid(format!("bad JSON body: {e}")))?;
            p.db = b.db.or(p.db);
            p.q = b.q.or(p.q);
            p.format = b.format.or(p.format);
        } else if p.q.is_none() {
            p.q = Some(
                String::from_utf8(body.into())
                    .map_err(|e| ApiError::invalid(format!("the body is not UTF-8: {e}")))?,
            );
        }
    }
    query(&state, p).await
}

/// Runs a query and streams its result: the response starts once the first
/// batch is ready (so that planning and early execution errors still get a
/// proper 4xx), then each batch is encoded as it arrives.
///
/// `COPY (query) TO 'file' [STORED AS ...]` streams the query's result as
/// that file (a download named after it) instead of writing on the server.
async fn query(state: &AppState, p: QueryParams) -> Result<Response> {
    let Some(mut sql) = p.q.filter(|q| !q.trim().is_empty()) else {
        return Err(ApiError::invalid("missing query: pass it as q"));
    };
    let mut format = Format::parse(p.format.as_deref())?;
    let mut download = None;
    crate::sql::check_query(&sql, &state.limits)?;
    if let Some(copy) = crate::sql::copy_to(&sql)? {
        sql = copy.query;
        format = copy.format;
        download = Some(copy.file_name);
    }
    let database = p.db.unwrap_or_default();
    let mut timer = QueryTimer::start(state.metrics.clone(), "http");
    let started = async {
        let mut stream = crate::sql::execute(&state.engine, &database, &sql, &state.limits).await?;
        let schema = stream.schema();
        let first = stream.next().await.transpose()?;
        let (encoder, head) = Encoder::start(format, &schema)?;
        Ok::<_, ApiError>((stream, first, encoder, head))
    }
    .await;
    let (stream, first, mut encoder, head) = match started {
        Ok(s) => s,
        Err(e) => {
            timer.ok = false;
            return Err(e);
        }
    };
    let mut parts = vec![Ok(Bytes::from(head))];
    if let Some(batch) = &first {
        parts.push(encoder.batch(batch).map(Bytes::from));
    }
    let head = futures::stream::iter(parts);
    let body = futures::stream::unfold(Some((stream, encoder)), |state| async move {
        let (mut stream, mut encoder) = state?;
        match stream.next().await {
            Some(Ok(batch)) => {
                let part = encoder.batch(&batch).map(Bytes::from);
                Some((part, Some((stream, encoder))))
            }
            Some(Err(e)) => Some((Err(ApiError::from(e)), None)),
            None => Some((encoder.finish().map(Bytes::from), None)),
        }
    });
    let body = head.chain(body).map(move |part| {
        // Owning the timer here records the query when the body is done.
        let timer = &mut timer;
        if let Err(e) = &part {
            timer.ok = false;
            tracing::warn!(error = %e, "query failed while streaming its result");
        }
        part.map_err(|e| std::io::Error::other(e.to_string()))
    });
    let mut response = (
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from_stream(body),
    )
        .into_response();
    if let Some(name) = download {
        let name = name.replace(['"', '\\', '\r', '\n'], "_");
        if let Ok(value) =
            header::HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}
