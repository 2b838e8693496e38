//! The service's state: configuration, worker pools, the bounded queue
//! and the job store, shared by every handler.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::config::{Config, Role, StoreKind};
use super::drain::Drain;
use super::error::{Error, Result};
use super::jobs::{JobStore, StoreLimits, new_instance};
use super::metrics::{Gauges, Metrics};
use super::pools::{Dispatch, Lanes, start_dispatchers};
use super::quota::Quota;
use super::redis_store::RedisStore;
use super::tokens::{Authenticator, Caller, FileStamp, TokenFile};

/// How often a server started from a tokens file looks at it for changes.
const TOKENS_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// What every handler and every job shares.
pub(super) struct Shared {
    pub(super) config: Config,
    /// Threads of the filter pool.
    pub(super) workers: usize,
    /// Jobs waiting for a dispatcher, one queue per token, round-robin.
    pub(super) dispatch: Dispatch,
    /// Who presents which token; replaced when the tokens file changes.
    auth: RwLock<Arc<Authenticator>>,
    /// The pool that loads and checks uploads.
    pub(super) check_pool: rayon::ThreadPool,
    /// One permit per job in flight.
    pub(super) queue: Arc<Semaphore>,
    pub(super) jobs: JobStore,
    /// The counters of `/metrics`.
    pub(super) metrics: Arc<Metrics>,
    /// Serving, draining or stopping.
    pub(super) drain: Drain,
    /// The Redis store, if jobs are kept there (`None`: in `jobs`).
    pub(super) redis: Option<Arc<RedisStore>>,
    /// The pool a Redis worker filters on (`None` for the in-memory
    /// store, whose dispatchers own their pools, and for an API node).
    filter_pool: Option<rayon::ThreadPool>,
    /// With the Redis store: uploads being read and units being worked
    /// on by this process (what a drain waits for).
    held: AtomicUsize,
}

/// Counts one upload or unit of work in [`Shared::held`] until dropped.
pub(super) struct Held<'a>(&'a Shared);

impl std::fmt::Debug for Held<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").finish_non_exhaustive()
    }
}

impl<'a> Held<'a> {
    pub(super) fn new(shared: &'a Shared) -> Self {
        shared.held.fetch_add(1, Ordering::AcqRel);
        Held(shared)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    /// This server instance's id (see [`Service::instance`]).
    pub(super) fn instance(&self) -> &str {
        self.jobs.instance()
    }

    /// The caller presenting `authorization` (the header's value, if any).
    pub(super) fn caller(&self, authorization: Option<&str>) -> Result<Caller> {
        let auth = Arc::clone(&self.auth.read().unwrap_or_else(PoisonError::into_inner));
        auth.caller(authorization)
    }

    /// Jobs admitted and not yet filtered (queue slots taken).
    pub(super) fn in_flight(&self) -> usize {
        self.config
            .queue_capacity
            .saturating_sub(self.queue.available_permits())
    }

    /// Whether a draining server may stop: no job in flight, and every
    /// job collected (deleted by its client) or expired.
    /// With the Redis store the jobs are the store's, not this
    /// process's: it waits only for what it holds.
    pub(super) fn drained(&self) -> bool {
        if self.redis.is_some() {
            return self.held.load(Ordering::Acquire) == 0;
        }
        self.in_flight() == 0 && self.jobs.len() == 0
    }

    /// The pool a Redis worker filters on.
    pub(super) fn filter_pool(&self) -> Result<&rayon::ThreadPool> {
        self.filter_pool
            .as_ref()
            .ok_or_else(|| Error::Internal("this process does not filter (role api)".into()))
    }

    /// What `/metrics` reports besides its own counters, read from the
    /// queue, the dispatchers and the store.
    pub(super) fn gauges(&self) -> Gauges<'_> {
        let (stored_bytes, inflight_bytes) = self.jobs.bytes();
        Gauges {
            instance: self.instance(),
            in_flight: self.in_flight(),
            queue_capacity: self.config.queue_capacity,
            queued: self.dispatch.waiting(),
            stored_jobs: self.jobs.len(),
            stored_bytes,
            max_stored_bytes: self.config.max_stored_bytes,
            inflight_bytes,
            max_inflight_bytes: self.config.max_inflight_bytes,
            draining: self.drain.stage() != super::drain::Stage::Serving,
            queue_units: None,
        }
    }
}

/// Refuses to serve `addr` without tokens unless it is a loopback address
/// or anonymous service was asked for. Checked on the configured address
/// when the service is built and on the socket actually bound when it
/// serves (a listener bound elsewhere than `listen`).
pub(super) fn check_anonymous(addr: std::net::SocketAddr, config: &Config) -> Result<()> {
    if config.tokens.is_none() && !config.allow_anonymous && !addr.ip().is_loopback() {
        return Err(Error::Config(format!(
            "refusing to serve {addr} without API tokens: anyone who can reach it could use it. \
             Give a tokens file (he serve --tokens FILE; he token create NAME --tokens FILE \
             makes one), or pass --anonymous to serve it to everyone on purpose"
        )));
    }
    Ok(())
}

/// Reads the tokens file at `path` again whenever it changes, until the
/// service is gone. A file that does not load keeps the tokens in force
/// (and says why in the log), so a half-edited file locks nobody out.
/// `seen`: the file's stamp as the tokens in force were read from it (a
/// change made since, even before this thread runs, is read).
fn watch_tokens(shared: Weak<Shared>, path: PathBuf, mut seen: Option<FileStamp>) {
    loop {
        std::thread::sleep(TOKENS_RELOAD_INTERVAL);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = FileStamp::of(&path).ok();
        if now == seen {
            continue;
        }
        seen = now;
        match TokenFile::load(&path) {
            Ok(file) => {
                let auth = shared
                    .auth
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .with_tokens(&file);
                *shared.auth.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(auth);
                tracing::info!(
                    tokens = file.tokens.len(),
                    file = %path.display(),
                    "tokens file changed: reloaded"
                );
            }
            Err(e) => tracing::warn!(
                file = %path.display(),
                "tokens file changed but does not load, the tokens in force stay: {e}"
            ),
        }
    }
}

/// With the Redis store the tokens live in Redis (the key `tokens`, the
/// tokens file's JSON: hashes only). An API node given a tokens file
/// puts it there at start and whenever the file changes; every node
/// reads it back about every second, so that a token created, revoked
/// or given another quota on one node holds on all of them. Until any
/// node has put tokens, a node without its own serves anonymously, as
/// without Redis.
pub(super) async fn sync_tokens(shared: Arc<Shared>, store: Arc<RedisStore>) {
    let own = (shared.config.tokens.clone()).filter(|_| shared.config.role.serves_api());
    let path = own.as_ref().and_then(TokenFile::source).map(PathBuf::from);
    // The file's stamp when it was last put (or found not to load).
    let mut put: Option<Option<FileStamp>> = None;
    let mut in_force: Option<String> = None;
    loop {
        if let Some(file) = &own {
            let stamp = path.as_deref().and_then(|p| FileStamp::of(p).ok());
            if put.as_ref() != Some(&stamp) {
                let loaded = match &path {
                    Some(p) => TokenFile::load(p),
                    None => Ok(file.clone()),
                };
                match loaded {
                    Ok(f) => match store.put_tokens(&f).await {
                        Ok(()) => {
                            tracing::info!(tokens = f.tokens.len(), "tokens put into the store");
                            put = Some(stamp);
                        }
                        Err(e) => tracing::warn!("cannot put the tokens into the store yet: {e}"),
                    },
                    Err(e) => {
                        tracing::warn!(
                            "tokens file changed but does not load, the tokens in force stay: {e}"
                        );
                        put = Some(stamp);
                    }
                }
            }
        }
        match store.tokens().await {
            Ok(Some(f)) => {
                let json = f.to_json();
                if in_force.as_deref() != Some(json.as_str()) {
                    let auth = shared
                        .auth
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .with_tokens(&f);
                    *shared.auth.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(auth);
                    if in_force.is_some() {
                        tracing::info!(
                            tokens = f.tokens.len(),
                            "tokens changed in the store: reloaded"
                        );
                    }
                    in_force = Some(json);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("cannot read the tokens from the store now: {e}"),
        }
        tokio::time::sleep(TOKENS_RELOAD_INTERVAL).await;
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
        super::config::check_connections(&config)?;
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
        check_anonymous(config.listen, &config)?;
        if config.quota.concurrent_jobs == 0 || config.quota.stored_jobs == 0 {
            return bad("a token must be allowed at least one job");
        }
        let redis = match (&config.store, config.role) {
            (StoreKind::Redis(r), _) => {
                if r.prefix.is_empty() || r.visibility_timeout.is_zero() || r.max_deliveries == 0 {
                    return bad(
                        "the Redis store needs a key prefix, a positive visibility timeout \
                         and at least one delivery",
                    );
                }
                Some(Arc::new(RedisStore::new(r, &config)?))
            }
            (_, Role::All) => None,
            (_, role) => {
                return Err(Error::Config(format!(
                    "the role {} needs a shared store (--store redis://HOST:PORT/DB): with the \
                     in-memory store one process is both the API and the worker",
                    role.name()
                )));
            }
        };
        let filter_pool = match (&redis, config.role.filters()) {
            (Some(_), true) => Some(pool(workers, "he-work")?),
            _ => None,
        };
        let metrics = Arc::new(Metrics::default());
        let shared = Shared {
            redis,
            filter_pool,
            held: AtomicUsize::new(0),
            dispatch: start_dispatchers(
                &Lanes {
                    concurrent_jobs: config.concurrent_jobs,
                    heavy_job_units: config.heavy_job_units,
                },
                pool(workers, "he-filter")?,
                pool(workers, "he-heavy")?,
                &metrics,
            )?,
            check_pool: pool((workers / 2).max(1), "he-check")?,
            queue: Arc::new(Semaphore::new(config.queue_capacity)),
            jobs: JobStore::new(
                new_instance()?,
                StoreLimits {
                    retention: config.retention,
                    max_jobs: config.max_jobs,
                    max_stored_bytes: config.max_stored_bytes,
                    max_inflight_bytes: config.max_inflight_bytes,
                },
            ),
            // Without tokens there is one caller (a local demo): only the
            // server's own limits apply, and the compute quota.
            auth: RwLock::new(Arc::new(Authenticator::new(
                config.tokens.as_ref(),
                config.quota,
                Quota {
                    concurrent_jobs: config.queue_capacity,
                    stored_jobs: config.max_jobs,
                    stored_bytes: usize::MAX,
                    ..config.quota
                },
            ))),
            metrics,
            drain: Drain::default(),
            workers,
            config,
        };
        // With Redis, `sync_tokens` watches the file (when serving).
        let watched = (shared.config.tokens.as_ref())
            .filter(|_| shared.redis.is_none())
            .and_then(|t| Some((PathBuf::from(t.source()?), t.stamp())));
        let shared = Arc::new(shared);
        if let Some((path, seen)) = watched {
            let weak = Arc::downgrade(&shared);
            std::thread::Builder::new()
                .name("he-tokens".into())
                .spawn(move || watch_tokens(weak, path, seen))
                .map_err(|e| Error::Config(format!("cannot watch the tokens file: {e}")))?;
        }
        Ok(Service { shared })
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
    /// lost my job" from "my job expired or was deleted". With the Redis
    /// store, jobs outlive the node: statuses, `404`s, `/v1/info` and
    /// `/v1/health`'s `instance` carry the store's id instead (kept in
    /// Redis, the same on every node), and this one names the node
    /// (`/v1/health`'s `node`, a worker's consumer name, other errors).
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
            // Without tokens, only loopback unless anonymous on purpose.
            Config {
                listen: "0.0.0.0:0".parse().unwrap(),
                allow_plain_http: true,
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
        let open = Config {
            listen: "0.0.0.0:0".parse().unwrap(),
            allow_anonymous: true,
            allow_plain_http: true,
            ..Config::default()
        };
        Service::new(open).unwrap();
        let with_tokens = Config {
            listen: "0.0.0.0:0".parse().unwrap(),
            allow_plain_http: true,
            tokens: Some(crate::server::tokens::TokenFile::default()),
            ..Config::default()
        };
        Service::new(with_tokens).unwrap();
    }

    /// The rule holds for the socket served, not only the address
    /// configured: a loopback `listen` with a listener bound to every
    /// address is refused without tokens.
    #[test]
    fn a_listener_bound_beyond_loopback_is_refused_without_tokens() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config = Config {
            allow_plain_http: true,
            ..Config::default()
        };
        assert!(config.listen.ip().is_loopback());
        let service = Service::new(config).unwrap();
        let err = rt
            .block_on(async {
                let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
                service.serve(listener, std::future::ready(())).await
            })
            .unwrap_err();
        assert!(err.to_string().contains("without API tokens"), "{err}");
    }
}
