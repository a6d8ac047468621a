//! The server's error type and how it maps to gRPC statuses and HTTP
//! responses.
//!
//! What the caller sent wrong is `InvalidArgument` (HTTP 400), never a 5xx;
//! only the engine's or the machine's own failures are `Internal`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use datafusion::error::DataFusionError;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Bad data or a bad query; `line` is set for line protocol (from 1).
    #[error("{message}")]
    InvalidArgument {
        message: String,
        line: Option<usize>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// A write sent to a read-only query replica: HTTP 403, gRPC
    /// FAILED_PRECONDITION.
    #[error("{0}")]
    ReadOnly(String),
    /// The disk is full: HTTP 507, gRPC RESOURCE_EXHAUSTED. Nothing of the
    /// request was kept; it can be retried once space is freed.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::InvalidArgument {
            message: message.into(),
            line: None,
        }
    }

    /// True when the caller is at fault (a 4xx), not the server.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            ApiError::InvalidArgument { .. }
                | ApiError::NotFound(_)
                | ApiError::AlreadyExists(_)
                | ApiError::PayloadTooLarge(_)
                | ApiError::Unauthenticated(_)
                | ApiError::ReadOnly(_)
        )
    }

    /// Prefixes the message, keeping the kind (for example with the index of a
    /// stream message).
    pub fn context(self, prefix: impl std::fmt::Display) -> Self {
        match self {
            ApiError::InvalidArgument { message, line } => ApiError::InvalidArgument {
                message: format!("{prefix}: {message}"),
                line,
            },
            ApiError::NotFound(m) => ApiError::NotFound(format!("{prefix}: {m}")),
            ApiError::AlreadyExists(m) => ApiError::AlreadyExists(format!("{prefix}: {m}")),
            ApiError::PayloadTooLarge(m) => ApiError::PayloadTooLarge(format!("{prefix}: {m}")),
            ApiError::Unauthenticated(m) => ApiError::Unauthenticated(m),
            ApiError::ResourceExhausted(m) => ApiError::ResourceExhausted(format!("{prefix}: {m}")),
            ApiError::ReadOnly(m) => ApiError::ReadOnly(m),
            ApiError::InsufficientStorage(m) => {
                ApiError::InsufficientStorage(format!("{prefix}: {m}"))
            }
            ApiError::Internal(m) => ApiError::Internal(format!("{prefix}: {m}")),
        }
    }
}

impl From<ingot_engine::Error> for ApiError {
    fn from(e: ingot_engine::Error) -> Self {
        use ingot_engine::Error as E;
        match e {
            E::LineProtocol(p) => ApiError::InvalidArgument {
                message: format!("invalid line protocol: {p}"),
                line: Some(p.line),
            },
            E::TypeConflict {
                line: Some(line), ..
            }
            | E::BeyondRetention {
                line: Some(line), ..
            } => ApiError::InvalidArgument {
                message: e.to_string(),
                line: Some(line),
            },
            E::NotFound(m) => ApiError::NotFound(m),
            E::AlreadyExists(m) => ApiError::AlreadyExists(m),
            E::ResourceExhausted { .. } => ApiError::ResourceExhausted(e.to_string()),
            E::ReadOnly { .. } => ApiError::ReadOnly(e.to_string()),
            e if e.is_storage_full() => ApiError::InsufficientStorage(format!(
                "{e}: the disk is full; nothing of the request was stored, retry once space is freed"
            )),
            E::DataFusion(d) => d.into(),
            e if e.is_invalid_input() => ApiError::invalid(e.to_string()),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<DataFusionError> for ApiError {
    fn from(e: DataFusionError) -> Self {
        let message = e.to_string();
        match e.find_root() {
            // The engine's own error, raised inside a plan (a DELETE with a
            // predicate it cannot take, say): mapped as the engine maps it.
            DataFusionError::External(inner)
                if inner
                    .downcast_ref::<ingot_engine::Error>()
                    .is_some_and(|e| e.is_invalid_input()) =>
            {
                ApiError::invalid(inner.to_string())
            }
            DataFusionError::External(inner)
                if inner
                    .downcast_ref::<ingot_engine::Error>()
                    .is_some_and(|e| matches!(e, ingot_engine::Error::ReadOnly { .. })) =>
            {
                ApiError::ReadOnly(inner.to_string())
            }
            DataFusionError::ResourcesExhausted(_) => ApiError::ResourceExhausted(message),
            DataFusionError::Internal(_)
            | DataFusionError::IoError(_)
            | DataFusionError::ObjectStore(_)
            | DataFusionError::ParquetError(_)
            | DataFusionError::External(_) => ApiError::Internal(message),
            _ => ApiError::invalid(message),
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InvalidArgument { message, .. } => tonic::Status::invalid_argument(message),
            ApiError::NotFound(m) => tonic::Status::not_found(m),
            ApiError::AlreadyExists(m) => tonic::Status::already_exists(m),
            ApiError::PayloadTooLarge(m) => tonic::Status::resource_exhausted(m),
            ApiError::Unauthenticated(m) => tonic::Status::unauthenticated(m),
            ApiError::ReadOnly(m) => tonic::Status::failed_precondition(m),
            ApiError::ResourceExhausted(m) | ApiError::InsufficientStorage(m) => {
                tonic::Status::resource_exhausted(m)
            }
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "gRPC request failed");
                tonic::Status::internal(m)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::ReadOnly(_) => StatusCode::FORBIDDEN,
            ApiError::ResourceExhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // Writes are logged where they are counted (`metrics`); only the
        // server's own failures are logged here.
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "HTTP request failed");
        }
        let body = match &self {
            ApiError::InvalidArgument {
                message,
                line: Some(line),
            } => serde_json::json!({ "error": message, "line": line }),
            e => serde_json::json!({ "error": e.to_string() }),
        };
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_507_and_resource_exhausted() {
        let full = || {
            ApiError::from(ingot_engine::Error::Io {
                path: "wal/00000000000000000001.wal".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "no space left on device",
                ),
            })
        };
        assert!(matches!(full(), ApiError::InsufficientStorage(_)));
        assert_eq!(
            full().into_response().status(),
            StatusCode::INSUFFICIENT_STORAGE
        );
        let status = tonic::Status::from(full());
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("retry once space is freed"));
    }
}
