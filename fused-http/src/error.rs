//! Errors of `fused-http`, and the one place where failures become HTTP responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fused_core::{RunMetadata, UdfFailure};

/// Everything that can go wrong in `fused-http` outside a request handler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the core.
    #[error(transparent)]
    Core(#[from] fused_core::Error),
    /// The server's configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// The server's store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// An I/O error (binding a port, reading the data folder).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A failed request, as the server answers it.
///
/// Statuses and bodies follow what the Python SDK decodes: UDF failures are 422 with
/// `x-fused-metadata` (so the SDK raises its usual exception with our message); other errors
/// carry a JSON `{"detail": …}` body with `Content-Type: application/json` exactly.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// 404: no such token, UDF or route.
    NotFound(String),
    /// 400: a malformed request (bad tile, unknown format, bad query, a path out of the root).
    BadRequest(String),
    /// 401: no valid API token.
    Unauthorized(String),
    /// 403: a token that does not allow this (disabled, other UDF), or a bad signature.
    Forbidden(String),
    /// 409: the name is taken.
    Conflict(String),
    /// 413: the body is larger than allowed.
    TooLarge(String),
    /// 408: the client stopped sending.
    Timeout(String),
    /// 422: the arguments do not bind to the UDF's parameters.
    Param(fused_core::ParamError),
    /// 422: the UDF failed; its logs travel in the metadata.
    Udf {
        /// The failure.
        failure: UdfFailure,
        /// Metadata with the run's logs.
        metadata: Box<RunMetadata>,
    },
    /// 500: something broke on the server.
    Internal(String),
}

impl From<fused_core::ParamError> for ApiError {
    fn from(p: fused_core::ParamError) -> Self {
        ApiError::Param(p)
    }
}

impl From<fused_core::Error> for ApiError {
    fn from(e: fused_core::Error) -> Self {
        use fused_core::Error as E;
        match e {
            E::Param(p) => ApiError::Param(p),
            E::UnknownUdf(n) => ApiError::NotFound(format!("no UDF named {n}")),
            E::InvalidTile { .. }
            | E::InvalidBounds(_)
            | E::InvalidMaxAge { .. }
            | E::Format(_)
            | E::RecursionLimit { .. }
            | E::InvalidPath { .. }
            | E::InvalidUdf(_)
            | E::Unsupported(_) => ApiError::BadRequest(e.to_string()),
            E::NotFound(m) => ApiError::NotFound(format!("not found: {m}")),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as S;
        match e {
            S::Conflict(m) => ApiError::Conflict(m),
            S::NotFound(m) => ApiError::NotFound(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// Status, optional `x-fused-metadata` value, and JSON body of this error.
    pub(crate) fn parts(self) -> (StatusCode, Option<String>, String) {
        let body = |m: &str| serde_json::json!({ "detail": m }).to_string();
        match self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, None, body(&m)),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, None, body(&m)),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, None, body(&m)),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, None, body(&m)),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, None, body(&m)),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, None, body(&m)),
            ApiError::Timeout(m) => (StatusCode::REQUEST_TIMEOUT, None, body(&m)),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, None, body(&m))
            }
            ApiError::Param(p) => {
                let failure = UdfFailure::runtime("ValueError", p.to_string());
                let mut metadata = RunMetadata::default();
                metadata.set_failure(&failure);
                ApiError::Udf {
                    failure,
                    metadata: Box::new(metadata),
                }
                .parts()
            }
            ApiError::Udf { failure, metadata } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(metadata.to_header_value()),
                body(&failure.to_string()),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, metadata, body) = self.parts();
        let mut r = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if let Some(v) = metadata.and_then(|m| HeaderValue::from_str(&m).ok()) {
            r.headers_mut().insert("x-fused-metadata", v);
        }
        r
    }
}
