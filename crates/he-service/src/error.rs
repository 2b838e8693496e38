//! The one error type of this crate, and how the server turns it into an
//! HTTP status with a JSON body.

use axum::http::StatusCode;

/// Everything that can go wrong in the service, on either side.
///
/// The server answers each variant with its own status (see
/// [`Error::status`]) and a body `{"error": "<the message>"}`; the client
/// turns such an answer back into [`Error::Server`].
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
    /// An unknown or expired job (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// A result asked for before the job finished (409).
    #[error("not ready: {0}")]
    NotReady(String),
    /// The upload did not arrive within the configured time (408).
    #[error("timeout: {0}")]
    Timeout(String),
    /// The job queue or the result store is full; retry later (503).
    #[error("busy: {0}")]
    Busy(String),
    /// Server settings that cannot work (a zero queue, a port in use...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A bug or a lost worker on the server (500).
    #[error("internal error: {0}")]
    Internal(String),
    /// The server answered with an error status (client side).
    #[error("the server answered {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The message of the server's JSON error body (or its raw text).
        message: String,
    },
    /// The client gave up: the server did not answer, or kept cutting the
    /// connection, until the deadline passed (client side).
    #[error("gave up after {seconds} s {doing} at {server}: {last}")]
    Deadline {
        /// The server's base URL.
        server: String,
        /// What the client was waiting for ("uploading the job", "waiting
        /// for job ID to finish", ...).
        doing: String,
        /// The deadline it was given, in seconds.
        seconds: u64,
        /// The last thing that went wrong, or where the job was.
        last: String,
    },
    /// An upload or a download was cut more often than the client retries
    /// it (client side).
    #[error("{doing} at {server} failed {tries} times: {last}")]
    Retries {
        /// The server's base URL.
        server: String,
        /// What was tried.
        doing: String,
        /// How many times.
        tries: u32,
        /// The last error.
        last: String,
    },
    /// The server restarted and lost the job each time it was submitted
    /// (client side).
    #[error(
        "the server {server} restarted and lost job {job} (instance {before} -> {after}) \
         on each of {attempts} attempts; giving up"
    )]
    JobLost {
        /// The server's base URL.
        server: String,
        /// The last job id.
        job: String,
        /// The instance that accepted it.
        before: String,
        /// The instance that no longer knows it.
        after: String,
        /// Submissions made.
        attempts: u32,
    },
    /// The connection or the HTTP exchange failed (client side).
    #[error("HTTP: {0}")]
    Http(#[from] ureq::Error),
    /// An answer of the server that does not follow the API (client side).
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The encrypted-image layer (client side: the result did not load).
    #[error(transparent)]
    Image(#[from] enc_image::Error),
    /// The filter layer.
    #[error(transparent)]
    Filter(#[from] he_filter::Error),
    /// The Paillier layer.
    #[error(transparent)]
    Paillier(#[from] paillier::Error),
    /// Files, sockets and threads.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status the server answers this error with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) | Error::Paillier(_) => StatusCode::BAD_REQUEST,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Unprocessable(_) | Error::Filter(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::NotReady(_) => StatusCode::CONFLICT,
            Error::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Image(e) => match e {
                enc_image::Error::Limit(_) => StatusCode::PAYLOAD_TOO_LARGE,
                enc_image::Error::Parameter(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::BAD_REQUEST,
            },
            Error::Server { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            Error::Internal(_)
            | Error::Config(_)
            | Error::Http(_)
            | Error::Deadline { .. }
            | Error::Retries { .. }
            | Error::JobLost { .. }
            | Error::Protocol(_)
            | Error::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
