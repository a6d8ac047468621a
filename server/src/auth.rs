//! Token authentication, shared by the gRPC services (a tonic interceptor)
//! and the HTTP API (an axum middleware).
//!
//! With a token configured, a request must carry `authorization: Bearer T`
//! or `authorization: Token T` (InfluxDB's scheme). `Basic` credentials whose
//! password is the token are accepted too, which is what a Flight SQL
//! handshake and ADBC's username/password options send.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::error::ApiError;

/// The configured token, if any. Cheap to clone.
#[derive(Clone, Default)]
pub struct Auth {
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Auth {
    pub fn new(token: Option<String>) -> Self {
        Self {
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
        }
    }

    /// The configured token, for answering a Flight handshake.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Checks a password sent where a protocol has no token of its own (the
    /// PostgreSQL wire protocol's cleartext password): it must be the token.
    pub fn check_password(&self, password: &str) -> Result<(), ApiError> {
        match &self.token {
            Some(expected) if !constant_time_eq(password.as_bytes(), expected.as_bytes()) => {
                Err(ApiError::Unauthenticated(
                    "password authentication failed: the password is the server's token".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Checks an `authorization` header value.
    pub fn check(&self, header: Option<&str>) -> Result<(), ApiError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let Some(header) = header else {
            return Err(ApiError::Unauthenticated(
                "missing authorization: send \"Authorization: Bearer <token>\"".into(),
            ));
        };
        let (scheme, credential) = header.trim().split_once(' ').unwrap_or((header, ""));
        let credential = credential.trim();
        let presented = match scheme.to_ascii_lowercase().as_str() {
            "bearer" | "token" => credential.to_string(),
            "basic" => base64::engine::general_purpose::STANDARD
                .decode(credential)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|pair| pair.split_once(':').map(|(_, p)| p.to_string()))
                .unwrap_or_default(),
            _ => {
                return Err(ApiError::Unauthenticated(format!(
                    "unsupported authorization scheme {scheme:?}: use Bearer or Token"
                )));
            }
        };
        if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::Unauthenticated("invalid token".into()))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.check(header)?;
        Ok(request)
    }
}

/// Axum middleware: rejects requests without a valid token with 401.
pub async fn http_auth(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.check(header) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        let auth = Auth::new(Some("s3cret".into()));
        assert!(auth.check(Some("Bearer s3cret")).is_ok());
        assert!(auth.check(Some("Token s3cret")).is_ok());
        assert!(auth.check(Some("Basic dXNlcjpzM2NyZXQ=")).is_ok()); // user:s3cret
        assert!(auth.check(Some("Bearer wrong")).is_err());
        assert!(auth.check(Some("s3cret")).is_err());
        assert!(auth.check(None).is_err());
        assert!(Auth::new(None).check(None).is_ok());
    }
}
