//! A blocking client of the API (feature `client`), on `ureq`: plain
//! HTTP, or HTTPS by rustls (ring) against the system's roots or the CAs
//! in [`ClientOptions::ca_pem`].
//!
//! - [`Client`]: one request per endpoint ([`Client::health`],
//!   [`Client::submit`], [`Client::status`], [`Client::result`], ...), and
//!   the whole exchange of a job with [`Client::run_job`] (an encoded
//!   envelope) or [`Client::filter`] (a typed [`FilterRequest`]).
//! - Tiled jobs, for images whose single upload would be too large:
//!   [`Client::filter_image_tiled`] (a [`TiledRequest`]) runs
//!   `he_filter`'s tiled pipeline over HTTP through a [`TiledSession`],
//!   checking every tile as it arrives; [`Client::create_tiled_job`],
//!   [`Client::upload_tile`] and [`Client::download_tile`] are its three
//!   requests.
//! - [`ClientOptions`]: timeouts, retries and backoff.
//! - [`Notice`]: what the client did by itself to get past a fault.
//! - [`Error`]: what the server answered, what the client gave up on.
//!
//! It depends on neither axum nor tokio: with
//! `default-features = false, features = ["client"]` they are not built.
//!
//! # Faults
//!
//! [`Client::run_job`] (and [`Client::filter`] on top of it) carries a job
//! through a slow, dead or restarting server:
//!
//! - every request has a connect timeout and a per-read and per-write
//!   timeout ([`ClientOptions`]), and the whole exchange a deadline;
//! - a refused, reset or timed-out connection while waiting for a job is
//!   retried with backoff until the deadline (the server may be restarting);
//!   so is an answer `502`, `503` or `504` to any request of the exchange
//!   (a full queue, a draining node, a store out of reach, or a proxy
//!   whose node is gone);
//! - an upload or a download cut midway is retried, at most
//!   [`ClientOptions::transfer_retries`] times;
//! - a job the server no longer knows, answered by another server instance
//!   (the server restarted: jobs live in its memory), is submitted again
//!   from the bytes the client still holds, at most
//!   [`ClientOptions::attempts`] times in all. A `404` from the same
//!   instance (the job expired or was deleted) is an error, not a restart.
//!
//! Each of these is reported as a [`Notice`] (on standard error unless
//! [`Client::on_notice`] says otherwise). Nothing the caller gave is
//! changed, and a result is only returned whole: a cut download is
//! fetched again, never returned in part.

mod endpoints;
mod error;
mod job;
mod notice;
mod options;
mod retry;
mod tiled;

pub use endpoints::Client;
pub use error::{Error, Result};
pub use job::{FilterRequest, ImageRequest, JobRun, check_history};
pub use notice::Notice;
pub use options::ClientOptions;
pub use tiled::{TileDownload, TiledRequest, TiledRun, TiledSession, TiledStats};
