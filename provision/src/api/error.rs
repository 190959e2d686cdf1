//! The API's refusals and their responses, in the original's two shapes (spec 6.9): the
//! framework's `{"status_code", "detail"}` (401, 404 and 405 of unknown routes, 413, 500, 400
//! of a body or query that cannot be read) and the service's `{"error"}` (404 job, 409), plus
//! the validation report of a 400.

use atomix_api::{ApiError, FrameworkError, ValidationResponse};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The detail of a 401 without the auth headers.
pub const AUTH_REQUIRED: &str =
    "authentication required: provide X-AtomixOS-Nonce and X-AtomixOS-Signature headers";
/// The detail of a 401 for an unknown, used or expired nonce.
pub const BAD_NONCE: &str = "invalid or expired nonce";
/// The detail of a 401 for a signature header that is not strict base64.
pub const BAD_ENCODING: &str = "invalid signature encoding";
/// The detail of a 401 for a signature that does not verify.
pub const BAD_SIGNATURE: &str = "signature verification failed";
/// The detail of a 401 on a provisioned device without readable admin signers.
pub const SIGNERS_UNAVAILABLE: &str = "admin signers temporarily unavailable";
/// The error of a 409.
pub const BUSY: &str = "a provision job is already running";

/// The error of a 409 while job `id` awaits confirmation.
pub fn awaiting(id: &str) -> String {
    format!(
        "job {id} awaits confirmation: confirm it (POST /api/jobs/{id}/confirm) or wait for its \
         deadline, when the previous config is restored"
    )
}
/// The error of a 404 job.
pub const JOB_NOT_FOUND: &str = "job not found";

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Reject {
    /// 401 with its detail.
    Unauthorized(&'static str),
    /// 413: the body is over the upload limit.
    TooLarge,
    /// 400: the body could not be read.
    BadRequest,
    /// 400: the body or the query is malformed, saying how.
    Malformed(String),
    /// 409 with the service's error (a job is submitted, running or awaiting confirmation).
    Conflict(String),
    /// 404 with the service's error.
    NotFound(String),
    /// 400: the config is refused, with the whole report.
    Invalid(ValidationResponse),
    /// 500: something on the device failed (logged; the detail is generic).
    Internal,
}

impl Reject {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadRequest | Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The framework's shape for `status` with its standard reason as the detail (413's as the
/// original words it).
pub fn framework(status: StatusCode) -> Response {
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "Request Entity Too Large",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    framework_detail(status, detail)
}

fn framework_detail(status: StatusCode, detail: &str) -> Response {
    let body = FrameworkError {
        status_code: status.as_u16(),
        detail: detail.to_owned(),
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            Self::Unauthorized(detail) => framework_detail(status, detail),
            Self::Malformed(detail) => framework_detail(status, &detail),
            Self::TooLarge | Self::BadRequest | Self::Internal => framework(status),
            Self::Conflict(error) | Self::NotFound(error) => {
                (status, Json(ApiError { error })).into_response()
            }
            Self::Invalid(report) => (status, Json(report)).into_response(),
        }
    }
}

/// The fallback for unknown routes: 404 in the framework's shape.
pub async fn not_found() -> Response {
    framework(StatusCode::NOT_FOUND)
}

/// The fallback for a known route and another method: 405 in the framework's shape.
pub async fn method_not_allowed() -> Response {
    framework(StatusCode::METHOD_NOT_ALLOWED)
}
