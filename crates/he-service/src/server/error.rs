//! The server's error type, and how it becomes an HTTP answer: a status
//! and a JSON body `{"error": "<the message>", "instance": "<id>"}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::wire::{EnvelopeError, ErrorBody};

/// Everything that can go wrong on the server. Each variant is answered
/// with its own status ([`Error::status`]) and its message as the JSON
/// body's `error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request the server cannot parse: framing, JSON, header (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A body, an image or a part beyond the configured limits (413).
    #[error("too large: {0}")]
    TooLarge(String),
    /// A request with the wrong `Content-Type` (415).
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// A well-formed request whose filter chain cannot run on its image:
    /// a kernel beyond the halo, results beyond the slot width (422).
    #[error("filter cannot be applied: {0}")]
    Unprocessable(String),
    /// An unknown or expired job, or an unknown route (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// No API token, or one the server does not know (401, with
    /// `WWW-Authenticate: Bearer`).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A token over one of its quotas (429, with `Retry-After`).
    #[error("over quota ({}): {message}", kind.name())]
    Quota {
        /// Which quota.
        kind: QuotaKind,
        /// Seconds after which a retry may succeed.
        retry_after: u64,
        /// What is used and what is allowed.
        message: String,
    },
    /// A job whose estimated cost is beyond the per-job budget (422).
    #[error(
        "over budget: this job is estimated at {estimate} units, at most {budget} are admitted per job; {hint}"
    )]
    OverBudget {
        /// The estimate, in cost units (`he_filter::Cost`).
        estimate: u64,
        /// The budget, in cost units.
        budget: u64,
        /// What to do about it.
        hint: String,
    },
    /// A result asked for before the job finished (409).
    #[error("not ready: {0}")]
    NotReady(String),
    /// A tile whose result was already downloaded and freed (410): upload
    /// the tile again to filter it once more.
    #[error("gone: {0}")]
    Gone(String),
    /// The upload did not arrive within the configured time (408).
    #[error("timeout: {0}")]
    Timeout(String),
    /// The job queue or the result store is full; retry later (503).
    #[error("busy: {0}")]
    Busy(String),
    /// Something this server does not do in its configuration (501):
    /// tiled jobs with the Redis store.
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// Server settings that cannot work (a zero queue, a port in use...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A bug or a lost worker (500).
    #[error("internal error: {0}")]
    Internal(String),
    /// Sockets, threads and the runtime.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Which per-token quota a `429` is about (the error body's `quota`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaKind {
    /// Jobs in flight at once.
    ConcurrentJobs,
    /// Jobs stored at once.
    StoredJobs,
    /// Bytes held at once (uploads, payloads, results).
    StoredBytes,
    /// Estimated compute over the last hour.
    ComputePerHour,
}

impl QuotaKind {
    /// The name in error bodies and the docs: `"concurrent_jobs"`, ...
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            QuotaKind::ConcurrentJobs => "concurrent_jobs",
            QuotaKind::StoredJobs => "stored_jobs",
            QuotaKind::StoredBytes => "stored_bytes",
            QuotaKind::ComputePerHour => "compute_per_hour",
        }
    }
}

/// Shorthand for results of the server.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<EnvelopeError> for Error {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::TooLarge(m) => Error::TooLarge(m),
            e => Error::BadRequest(e.to_string()),
        }
    }
}

impl Error {
    /// The HTTP status the server answers this error with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Unprocessable(_) | Error::OverBudget { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Quota { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::NotReady(_) => StatusCode::CONFLICT,
            Error::Gone(_) => StatusCode::GONE,
            Error::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Internal(_) | Error::Config(_) | Error::Io(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// The body of an error answer, left in the response's extensions for
/// the router's last layer to write with the instance id.
#[derive(Debug, Clone)]
pub(super) struct ErrorMessage(pub(super) ErrorBody);

/// An error answer: `status` and `{"error": message}` (the instance id is
/// added by the router's last layer), with `Retry-After` on a `503`.
pub(super) fn error_response(status: StatusCode, message: String) -> Response {
    body_response(status, ErrorBody::new(message))
}

fn body_response(status: StatusCode, body: ErrorBody) -> Response {
    let mut resp = (status, Json(body.clone())).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    if let Some(s) = body.retry_after_seconds {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp.extensions_mut().insert(ErrorMessage(body));
    resp
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut body = ErrorBody::new(self.to_string());
        match &self {
            Error::Quota {
                kind, retry_after, ..
            } => {
                body.quota = Some(kind.name().to_string());
                body.retry_after_seconds = Some(*retry_after);
            }
            Error::OverBudget {
                estimate, budget, ..
            } => {
                body.estimate_units = Some(*estimate);
                body.budget_units = Some(*budget);
            }
            _ => {}
        }
        let mut resp = body_response(self.status(), body);
        if let Error::Unauthorized(m) = &self {
            // RFC 6750: a request without credentials gets no error code.
            let v = if m.starts_with("this server needs") {
                "Bearer realm=\"he-service\""
            } else {
                "Bearer realm=\"he-service\", error=\"invalid_token\""
            };
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_errors_keep_their_status_and_message() {
        let e = Error::from(EnvelopeError::TooLarge("the public key is 9 bytes".into()));
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let e = Error::from(EnvelopeError::Malformed("bad magic".into()));
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.to_string(), "bad request: bad magic");
        let resp = Error::Busy("full".into()).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
    }
}
