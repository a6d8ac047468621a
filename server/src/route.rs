//! `ingot route`: one write address for a cluster of writer nodes. It takes
//! InfluxDB line-protocol writes (`/api/v2/write`, `/write`,
//! `/api/v3/write_lp`), splits each request by the node that owns each
//! line's series (`ingot_proto::route`), and forwards every node its share,
//! with the same path, query string and authorization, all at once.
//!
//! A request succeeds (204) when every node accepted its share. Otherwise the
//! answer is the first failing node's status and message, prefixed with the
//! node; the other nodes may have stored theirs. Retrying the whole request is
//! safe: a row written twice is kept once (same series and time, later write
//! wins). Queries go to a replica, which serves every node's files.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::decompression::RequestDecompressionLayer;

/// The nodes of a cluster, as the front reaches them.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// `(node id, HTTP base URL)`: the ids the nodes were started with
    /// (`--node-id`), which decide who owns a series.
    pub nodes: Vec<(String, String)>,
    /// Largest request body accepted, after decompression.
    pub max_body_bytes: usize,
}

struct Front {
    ids: Vec<String>,
    urls: Vec<String>,
    client: reqwest::Client,
}

/// The front's HTTP router.
pub fn router(config: RouteConfig) -> Router {
    let (ids, urls) = config
        .nodes
        .into_iter()
        .map(|(id, url)| (id, url.trim_end_matches('/').to_string()))
        .unzip();
    let front = Arc::new(Front {
        ids,
        urls,
        client: reqwest::Client::new(),
    });
    Router::new()
        .route("/api/v2/write", post(forward))
        .route("/write", post(forward))
        .route("/api/v3/write_lp", post(forward))
        .route("/health", get(|| async { StatusCode::OK }))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(RequestDecompressionLayer::new())
        .with_state(front)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn forward(
    State(front): State<Arc<Front>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body is not UTF-8 line protocol".into(),
        );
    };
    let parts = ingot_proto::route::split_lines(text, &front.ids);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let sends = parts
        .into_iter()
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| {
            let mut request = front
                .client
                .post(format!("{}{path}", front.urls[i]))
                .body(part);
            if let Some(auth) = headers.get(header::AUTHORIZATION) {
                request = request.header(header::AUTHORIZATION, auth);
            }
            async move { (i, request.send().await) }
        });
    for (i, sent) in futures::future::join_all(sends).await {
        let node = &front.ids[i];
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                let status =
                    StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                let text = r.text().await.unwrap_or_default();
                let message = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("error")?.as_str().map(str::to_string))
                    .unwrap_or(text);
                return error(status, format!("node {node}: {message}"));
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_GATEWAY,
                    format!("node {node} ({}) is unreachable: {e}", front.urls[i]),
                );
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
