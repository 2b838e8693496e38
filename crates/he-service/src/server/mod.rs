//! The HTTP server (feature `server`): routes, admission (content type,
//! size, queue), validation and filtering on rayon pools, and the job
//! store.
//!
//! - [`Service`]: the axum router ([`Service::router`]), worker pools,
//!   bounded queue and job store; [`Service::serve`] serves it on a
//!   listener of yours.
//! - [`ServerHandle`]: the service on its own thread and runtime;
//!   [`run_until_stopped`] on the current thread, until SIGTERM or
//!   Ctrl-C, draining gracefully (`drain.rs`).
//! - `GET /metrics`: Prometheus metrics (`metrics.rs`, `scrape.rs`),
//!   behind [`MetricsToken`] or loopback only.
//! - [`Config`]: every limit and setting, with safe defaults; the
//!   connection limits and timeouts (`conn.rs`, `body.rs`), the client's
//!   address behind a trusted proxy (`client_addr.rs`) and HTTPS
//!   ([`TlsFiles`], `tls.rs`).
//! - [`tokens`]: the API tokens file (hashes only) and drawing tokens;
//!   [`Quota`]: what one token may use.
//! - [`Error`]: what goes wrong, each variant answered with its own HTTP
//!   status and a JSON body (it implements axum's `IntoResponse`).

mod admission;
mod body;
mod catalogue;
mod client_addr;
mod config;
mod conn;
mod drain;
mod error;
mod handle;
mod handlers;
mod jobs;
mod metrics;
mod pools;
mod quota;
mod redis_store;
#[cfg(all(test, feature = "client"))]
mod redis_tests;
mod redis_tile_scripts;
mod redis_worker;
mod router;
mod scrape;
mod service;
mod tiled_handlers;
mod tiles;
mod tls;
pub mod tokens;

pub use config::TlsFiles;
pub use config::{Config, RedisSettings, Role, StoreKind};
pub use error::{Error, QuotaKind, Result};
pub use handle::{ServerHandle, run_until_stopped};
pub use metrics::MetricsToken;
pub use quota::{Quota, QuotaOverrides};
pub use service::Service;
