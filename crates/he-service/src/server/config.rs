//! The server's settings, with safe defaults.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::wire::DEFAULT_PORT;

/// Everything the server can be told. [`Config::default`] is safe for a
/// machine of a few cores; every limit is checked before work.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:8787`). Plain HTTP: put a
    /// TLS-terminating reverse proxy in front for anything but loopback.
    pub listen: SocketAddr,
    /// Largest request body in bytes (default 64 MiB: a 2048 x 2048 RGB
    /// image at 3072 bits is about 42 MiB). Larger bodies get `413` before
    /// they are read.
    pub max_body_bytes: usize,
    /// Largest image width and height in pixels (default 16384).
    pub max_side: usize,
    /// Largest number of ciphertexts per image (default 2^20).
    pub max_ciphertexts: usize,
    /// Most filters in a chain (default 8).
    pub max_chain_len: usize,
    /// Most jobs in flight, from the upload to the end of the filter
    /// (default 8). The next one gets `503` with `Retry-After`. Bodies are
    /// read only once admitted, so memory for uploads is bounded by
    /// `queue_capacity * max_body_bytes`.
    pub queue_capacity: usize,
    /// How long a finished job and its result are kept (default 10
    /// minutes), unless the client deletes it first.
    pub retention: Duration,
    /// Most bytes of finished results kept at once (default 1 GiB); when
    /// reached, new jobs get `503` until results are fetched or expire.
    pub max_stored_bytes: usize,
    /// Most jobs kept at once, in flight or finished (default 1024).
    pub max_jobs: usize,
    /// Filter threads (rayon), `None` for one per core (the default). A
    /// second pool, half as large, validates uploads so that checks are
    /// not stuck behind long filters.
    pub workers: Option<NonZeroUsize>,
    /// Most open connections (default 512); further clients wait in the
    /// kernel's accept backlog until one closes. Bounds what idle or slow
    /// clients can hold; a reverse proxy in front adds per-client timeouts.
    pub max_connections: usize,
    /// Jobs filtered at once (default 1): each uses the whole filter pool,
    /// and waiting jobs start in the order they were accepted. More than
    /// one lets a small job overtake a large one, at the cost of both
    /// sharing the cores.
    pub concurrent_jobs: usize,
    /// Time allowed to upload a body (default 120 s); slower uploads get `408`.
    pub upload_timeout: Duration,
    /// Longest a `GET /v1/jobs/{id}?wait=S` request is held (default 30 s).
    pub max_wait: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            max_body_bytes: 64 << 20,
            max_side: 16384,
            max_ciphertexts: 1 << 20,
            max_chain_len: 8,
            queue_capacity: 8,
            retention: Duration::from_secs(600),
            max_stored_bytes: 1 << 30,
            max_jobs: 1024,
            workers: None,
            max_connections: 512,
            concurrent_jobs: 1,
            upload_timeout: Duration::from_secs(120),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// The limits images are loaded with.
    #[must_use]
    pub fn image_limits(&self) -> enc_image::Limits {
        enc_image::Limits {
            max_width: self.max_side,
            max_height: self.max_side,
            max_ciphertexts: self.max_ciphertexts,
            max_bytes: self.max_body_bytes,
        }
    }
}
