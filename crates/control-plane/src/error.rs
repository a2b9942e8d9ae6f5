//! The one error type services return, and its mapping to HTTP. Client mistakes get a clear
//! message that names the field and what is accepted; internal failures are logged in full
//! and answered with a generic message that leaks nothing.

use atlasai_core::portal::FieldError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::crypto::CryptoError;
use crate::store::{CreditError, StoreError};

/// A service failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// The body is larger than the server accepts.
    #[error("{0}")]
    TooLarge(String),
    /// Fields failed validation.
    #[error("invalid settings: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Not found (also what another tenant's resources look like).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Already exists.
    #[error("{0}")]
    Conflict(String),
    /// Out of credits.
    #[error("{0}")]
    PaymentRequired(String),
    /// A dependency (the managed provider) failed.
    #[error("{0}")]
    Unavailable(String),
    /// Our own failure; the detail goes to the log only.
    #[error("internal error while {what}: {detail}")]
    Internal {
        /// What we were doing.
        what: &'static str,
        /// The full error chain (logged, never sent).
        detail: String,
    },
}

impl Error {
    /// A bad request.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Error::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// An internal error with context.
    pub fn internal(what: &'static str, e: impl std::fmt::Display) -> Self {
        Error::Internal {
            what,
            detail: e.to_string(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Error::Conflict(format!("{what} already exists")),
            other => Error::internal("using the database", other),
        }
    }
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        Error::internal("handling stored secrets", e)
    }
}

impl From<CreditError> for Error {
    fn from(e: CreditError) -> Self {
        match e {
            CreditError::Insufficient { balance, needed } => Error::PaymentRequired(format!(
                "insufficient AI credits: this request needs up to {} credits and the balance is {}; add credits in Settings → AI → Credits, or configure your own AI provider (BYOC)",
                crate::credits::display(needed),
                crate::credits::display(balance)
            )),
            CreditError::NoAccount => Error::NotFound("credit account"),
            CreditError::Store(s) => s.into(),
        }
    }
}

/// The error body.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// What went wrong and what to do about it.
    pub error: String,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// Per-field problems, for invalid settings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Error::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, *code),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Error::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_settings"),
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::PaymentRequired(_) => (StatusCode::PAYMENT_REQUIRED, "insufficient_credits"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = match &self {
            Error::Internal { what, .. } => {
                tracing::error!(error = %self, "request failed");
                format!("internal error while {what}; see the control plane's log")
            }
            other => other.to_string(),
        };
        let fields = match self {
            Error::Invalid(f) => f,
            _ => Vec::new(),
        };
        let mut resp = (
            status,
            Json(ErrorBody {
                error: message,
                code,
                fields,
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
