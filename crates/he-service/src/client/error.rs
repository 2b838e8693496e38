//! The client's error type: what the server answered, what the client
//! gave up on, and what failed on this side. No HTTP-framework types: a
//! status is a number.

/// Everything that can go wrong for the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status (a failed job is `422`).
    #[error("the server answered {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The message of the server's JSON error body (or its raw text).
        message: String,
    },
    /// The server refused the request's API token (`401`): none was
    /// given and it needs one, or the token is unknown or revoked.
    #[error(
        "the server refused the token ({message}); give the right one with --token or HE_TOKEN"
    )]
    Unauthorized {
        /// The server's message.
        message: String,
    },
    /// The client gave up: the server did not answer, or kept cutting the
    /// connection, until the deadline passed.
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
    /// it.
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
    /// The server restarted and lost the job each time it was submitted.
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
    /// A server URL or client options that cannot work.
    #[error("invalid client options: {0}")]
    Options(String),
    /// The connection or the HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(ureq::Error),
    /// The TLS handshake failed: most often the server's certificate is
    /// not signed by a CA the client trusts, or names another host.
    #[error(
        "TLS: {0} (if the server's certificate is signed by a CA of your own, \
         give that CA's certificate: he submit --ca FILE, or ClientOptions::ca_pem)"
    )]
    Tls(String),
    /// An answer of the server that does not follow the API, or a result
    /// that is not what was asked for.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The result did not load (format, limits, ciphertexts out of range).
    #[error(transparent)]
    Image(#[from] enc_image::Error),
    /// The result decrypted, but is not the chain applied to the image: a
    /// spot-checked value differs ([`Client::filter_image`](super::Client::filter_image)).
    /// Nothing of it should be used.
    #[error("the server's result failed verification: {0}")]
    Verification(he_filter::Mismatch),
    /// The chain or the spot check could not be evaluated on this side.
    #[error(transparent)]
    Filter(he_filter::Error),
    /// A download that ended early, and other I/O.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// [`Error::Deadline`]: gave up on `doing` at `server` after `after`
    /// (given to the nearest second: a deadline of 4 s less the few
    /// milliseconds spent before it began still reads "4 s").
    pub(crate) fn gave_up(
        server: &str,
        doing: &str,
        after: std::time::Duration,
        last: String,
    ) -> Self {
        Error::Deadline {
            server: server.to_string(),
            doing: doing.to_string(),
            seconds: (after + std::time::Duration::from_millis(500)).as_secs(),
            last,
        }
    }
}

impl From<ureq::Error> for Error {
    /// TLS failures apart ([`Error::Tls`]: retrying does not cure them),
    /// the rest as [`Error::Http`].
    fn from(e: ureq::Error) -> Self {
        let tls = match &e {
            ureq::Error::Rustls(t) => Some(t.to_string()),
            ureq::Error::Io(io) => io
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .map(ToString::to_string),
            _ => None,
        };
        match tls {
            Some(message) => Error::Tls(message),
            None => Error::Http(e),
        }
    }
}

impl From<he_filter::Error> for Error {
    /// A failed verification as [`Error::Verification`], the rest as
    /// [`Error::Filter`] (what the tiled pipeline's stages return).
    fn from(e: he_filter::Error) -> Self {
        match e {
            he_filter::Error::Verification(m) => Error::Verification(m),
            other => Error::Filter(other),
        }
    }
}

/// Shorthand for results of the client.
pub type Result<T, E = Error> = std::result::Result<T, E>;
