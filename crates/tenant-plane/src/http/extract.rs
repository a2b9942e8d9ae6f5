//! Extractors shared by the data endpoints (JSON bodies and query strings with errors that
//! name what is wrong, the data services), and the one mapping of service errors to HTTP.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::data::{Data, ServiceError};
use crate::state::AppState;

/// The data services. Fails with 503 when they are not open (they always are in `serve`).
#[derive(Debug)]
pub struct DataApi(pub Arc<Data>);

impl FromRequestParts<Arc<AppState>> for DataApi {
    type Rejection = ApiError;

    async fn from_request_parts(
        _parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        state.data().cloned().map(DataApi).ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the data store is not open",
            )
        })
    }
}

/// A JSON body; a malformed one is a 400 that quotes the parser (which names the field).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

fn json_rejection(e: JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body exceeds {} bytes", super::MAX_BODY_BYTES),
        );
    }
    let detail = match &e {
        JsonRejection::JsonDataError(d) => {
            // "Failed to deserialize the JSON body into the target type: severity: ..." is
            // what axum says; the part after the colon names the field.
            let text = d.body_text();
            text.split_once(": ")
                .map(|(_, rest)| rest.to_owned())
                .unwrap_or(text)
        }
        JsonRejection::MissingJsonContentType(_) => {
            "send the body as JSON with Content-Type: application/json".to_owned()
        }
        other => other.body_text(),
    };
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_body",
        format!("invalid request body: {detail}"),
    )
}

/// Query-string parameters; unknown or malformed ones are a 400 that names them.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Params(v)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    let text = e.body_text();
    let detail = text
        .split_once(": ")
        .map(|(_, rest)| rest.to_owned())
        .unwrap_or(text);
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!("invalid query parameters: {detail}"),
    )
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Invalid(message) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
            }
            ServiceError::NotFound { what, id } => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} {id} not found for this tenant"),
            ),
            ServiceError::Store(s) if s.is_unavailable() => {
                tracing::error!(error = %s, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the database is unavailable; try again shortly",
                )
            }
            other => {
                // The full chain goes to the log; the client learns nothing internal.
                tracing::error!(error = %other, "request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the tenant plane's log has the details",
                )
            }
        }
    }
}
