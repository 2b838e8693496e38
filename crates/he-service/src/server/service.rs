//! The service's state: configuration, worker pools, the bounded queue
//! and the job store, shared by every handler.

use std::num::NonZeroUsize;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::config::Config;
use super::error::{Error, Result};
use super::jobs::{JobStore, new_instance};
use super::pools::{Task, start_dispatchers};

/// What every handler and every job shares.
pub(super) struct Shared {
    pub(super) config: Config,
    /// Threads of the filter pool.
    pub(super) workers: usize,
    /// Jobs waiting for a dispatcher, first in, first out.
    pub(super) dispatch: std::sync::mpsc::Sender<Task>,
    /// The pool that loads and checks uploads.
    pub(super) check_pool: rayon::ThreadPool,
    /// One permit per job in flight.
    pub(super) queue: Arc<Semaphore>,
    pub(super) jobs: JobStore,
}

impl Shared {
    /// This server instance's id (see [`Service::instance`]).
    pub(super) fn instance(&self) -> &str {
        self.jobs.instance()
    }
}

/// The service: configuration, worker pools, queue and job store. Cheap
/// to clone (shared state); [`Service::router`] gives the axum router.
#[derive(Clone)]
pub struct Service {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("config", &self.shared.config)
            .field("instance", &self.shared.instance())
            .field("workers", &self.shared.workers)
            .field("jobs", &self.shared.jobs.len())
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Builds the pools and the store. Refuses settings that cannot work.
    pub fn new(config: Config) -> Result<Self> {
        let bad = |s: &str| Err(Error::Config(s.to_string()));
        if config.queue_capacity == 0 {
            return bad("the queue capacity must be at least 1");
        }
        if config.max_body_bytes == 0 || config.max_body_bytes > u32::MAX as usize {
            return bad(
                "the body limit must be 1 byte to 4 GiB (the envelope's lengths are 32-bit)",
            );
        }
        if config.max_chain_len == 0 || config.max_jobs == 0 || config.max_connections == 0 {
            return bad("the chain length, job and connection limits must be at least 1");
        }
        super::conn::check_config(&config)?;
        if config.retention.is_zero() {
            return bad("the retention time must be positive");
        }
        let workers = config
            .workers
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(2, NonZeroUsize::get);
        let pool = |n: usize, name: &'static str| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(move |i| format!("{name}-{i}"))
                .build()
                .map_err(|e| Error::Config(format!("cannot start the {name} pool: {e}")))
        };
        if config.concurrent_jobs == 0 {
            return bad("at least one job must run at a time");
        }
        let shared = Shared {
            dispatch: start_dispatchers(config.concurrent_jobs, pool(workers, "he-filter")?)?,
            check_pool: pool((workers / 2).max(1), "he-check")?,
            queue: Arc::new(Semaphore::new(config.queue_capacity)),
            jobs: JobStore::new(
                new_instance()?,
                config.retention,
                config.max_jobs,
                config.max_stored_bytes,
            ),
            workers,
            config,
        };
        Ok(Service {
            shared: Arc::new(shared),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// This server instance's id: 64 random bits as 16 hex digits, drawn
    /// when the service is built. Jobs live in memory, so a restarted
    /// server has another instance id and none of the old jobs; it reports
    /// the id in `/v1/health`, `/v1/info`, every job status and every
    /// error body, so that a client can tell "the server restarted and
    /// lost my job" from "my job expired or was deleted".
    #[must_use]
    pub fn instance(&self) -> &str {
        self.shared.instance()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn settings_that_cannot_work_are_refused() {
        for c in [
            Config {
                queue_capacity: 0,
                ..Config::default()
            },
            Config {
                max_body_bytes: 0,
                ..Config::default()
            },
            Config {
                retention: Duration::ZERO,
                ..Config::default()
            },
            Config {
                max_connections_per_client: 0,
                ..Config::default()
            },
            Config {
                header_timeout: Duration::ZERO,
                ..Config::default()
            },
        ] {
            assert!(matches!(Service::new(c), Err(Error::Config(_))));
        }
    }
}
