//! The API's one error shape: `{"error": {"code": "snake_case", "message": "…"}}`.
//!
//! Every handler returns [`ApiError`] on failure, and the extractors here turn axum's
//! own rejections (bad JSON, bad paths) into the same shape, so a client never sees a
//! plain-text error or a 500 for bad input.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::lifecycle::TransitionError;
use crate::workflow::WorkflowError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<WorkflowError> for ApiError {
    fn from(e: WorkflowError) -> Self {
        let message = e.to_string();
        match e {
            WorkflowError::NotFound(_) => ApiError::not_found(message),
            WorkflowError::Transition(t) => match t {
                TransitionError::IllegalTransition { .. } => {
                    ApiError::new(StatusCode::CONFLICT, "illegal_transition", message)
                }
                TransitionError::Locked { .. } => {
                    ApiError::new(StatusCode::CONFLICT, "locked", message)
                }
                TransitionError::NotPermitted { .. } => {
                    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
                }
                TransitionError::Invalid(_) => ApiError::unprocessable("invalid", message),
            },
            WorkflowError::Invalid { code, .. } => ApiError::unprocessable(code, message),
            WorkflowError::Conflict { code, .. } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            WorkflowError::Store(store) => store.into(),
            WorkflowError::Mail(mail) => {
                tracing::error!("composing mail failed: {mail}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "mail_failed", message)
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!("store error: {e}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )
    }
}

/// A JSON body, whatever the `Content-Type`, with errors in the API's shape.
/// An empty body reads as `{}`, so `{"staff"}`-only actions give a clear
/// "missing field `staff`" rather than a parse error.
pub struct ApiJson<T>(pub T);

/// The largest JSON body any endpoint takes.
const MAX_JSON: usize = 256 * 1024;

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let body = axum::body::to_bytes(req.into_body(), MAX_JSON)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the JSON body is larger than 256 KB",
                )
            })?;
        let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &body
        };
        serde_json::from_slice(body).map(ApiJson).map_err(|e| {
            ApiError::bad_request(
                "invalid_json",
                format!("the request body is not valid: {e}"),
            )
        })
    }
}
