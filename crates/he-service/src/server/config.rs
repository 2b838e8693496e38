//! The server's settings, with safe defaults.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

use super::error::{Error, Result};
use super::metrics::MetricsToken;
use super::quota::Quota;
use super::tokens::TokenFile;
use crate::wire::DEFAULT_PORT;

/// Where the server's certificate chain and private key are (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert: std::path::PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

/// What part of the work a process does (`he serve --role`). With the
/// in-memory store a process does both; with the Redis store, any
/// number of API nodes and workers share one Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Role {
    /// Both: the API and the filtering (the default).
    #[default]
    All,
    /// The API only: accepts uploads, answers status and results; the
    /// filtering is the workers'.
    Api,
    /// Filtering only: takes work from the store; serves only
    /// `/v1/health` and `/metrics`.
    Worker,
}

impl Role {
    /// The name in `/v1/health` and the command line: `all`, `api`, `worker`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }

    /// Whether this process answers the job routes.
    #[must_use]
    pub fn serves_api(self) -> bool {
        self != Role::Worker
    }

    /// Whether this process filters.
    #[must_use]
    pub fn filters(self) -> bool {
        self != Role::Api
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "all" => Ok(Role::All),
            "api" => Ok(Role::Api),
            "worker" => Ok(Role::Worker),
            _ => Err(Error::Config(format!(
                "the role is {:?}; it must be all, api or worker",
                s.chars().take(40).collect::<String>()
            ))),
        }
    }
}

/// Where a Redis store is and how its queue behaves (`he serve --store
/// redis://HOST:PORT/DB`). The password, if any, is never printed: the
/// `Debug` form shows the address only.
#[derive(Clone)]
pub struct RedisSettings {
    url: String,
    password: Option<String>,
    address: String,
    /// The prefix of every key (default `he:`), so that deployments and
    /// tests can share one Redis.
    pub prefix: String,
    /// A unit of work held by a worker that has not shown signs of life
    /// for this long is taken over by another worker (default 30 s).
    pub visibility_timeout: Duration,
    /// A unit delivered this many times without finishing fails its job
    /// (default 3) instead of being taken over forever.
    pub max_deliveries: u32,
}

impl RedisSettings {
    /// Settings for the Redis at `url` (`redis://HOST:PORT/DB`, or
    /// `redis://:PASSWORD@HOST:PORT/DB`), with `password` (from a file)
    /// over the URL's if given. The URL is checked, not connected to.
    pub fn new(url: &str, password: Option<String>) -> Result<Self> {
        use redis::IntoConnectionInfo as _;
        // The parser's message is not quoted: it could echo the password.
        let info = url.into_connection_info().map_err(|_| {
            Error::Config("the store URL is not a Redis URL (redis://HOST:PORT/DB)".into())
        })?;
        let address = format!("{}/{}", info.addr(), info.redis_settings().db());
        Ok(RedisSettings {
            url: url.to_string(),
            password,
            address,
            prefix: "he:".into(),
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: 3,
        })
    }

    /// Whether a URL holds a password (`redis://:PASSWORD@HOST`); `false`
    /// for a string that is not a Redis URL.
    #[must_use]
    pub fn url_has_password(url: &str) -> bool {
        use redis::IntoConnectionInfo as _;
        url.into_connection_info()
            .is_ok_and(|i| i.redis_settings().password().is_some())
    }

    /// `HOST:PORT/DB`, without the password: what logs and errors name.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The connection details, password included.
    pub(super) fn connection_info(&self) -> Result<redis::ConnectionInfo> {
        use redis::IntoConnectionInfo as _;
        let info = self.url.as_str().into_connection_info().map_err(|_| {
            Error::Config("the store URL is not a Redis URL (redis://HOST:PORT/DB)".into())
        })?;
        Ok(match &self.password {
            Some(p) => {
                let redis = info.redis_settings().clone().set_password(p);
                info.set_redis_settings(redis)
            }
            None => info,
        })
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("address", &self.address)
            .field("prefix", &self.prefix)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("max_deliveries", &self.max_deliveries)
            .finish_non_exhaustive()
    }
}

/// Where jobs, payloads and results are kept.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum StoreKind {
    /// In this process's memory (the default): nothing to install; a
    /// restart loses the jobs.
    #[default]
    Memory,
    /// In a Redis shared by API nodes and workers.
    Redis(RedisSettings),
}

impl StoreKind {
    /// The name in `/v1/health`: `memory` or `redis`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Redis(_) => "redis",
        }
    }
}

/// Everything the server can be told. [`Config::default`] is safe for a
/// machine of a few cores; every limit is checked before work.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:8787`). On any address
    /// but loopback, the server needs [`Config::tls`] or
    /// [`Config::allow_plain_http`].
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
    /// Most bytes of finished results kept at once, all tokens together
    /// (default 4 GiB); when reached, new jobs get `503` until results are
    /// fetched or expire. Each running job may add its one result beyond it.
    pub max_stored_bytes: usize,
    /// Most jobs kept at once, in flight or finished (default 1024).
    pub max_jobs: usize,
    /// Filter threads (rayon), `None` for one per core (the default). A
    /// second pool, half as large, validates uploads so that checks are
    /// not stuck behind long filters.
    pub workers: Option<NonZeroUsize>,
    /// Most open connections (default 512). When full, the oldest
    /// connection with no request in flight is closed to make room; only
    /// when every connection is busy do further clients wait in the
    /// kernel's accept backlog.
    pub max_connections: usize,
    /// Jobs filtered at once in each lane (default 1): each uses the whole
    /// pool of its lane, and waiting jobs start round-robin between tokens.
    pub concurrent_jobs: usize,
    /// Jobs estimated at this many cost units or more (default 30, about
    /// three core-minutes) run in the heavy lane, on a pool of their own,
    /// so that a long job never holds back a small one: while both run,
    /// the cores are shared between them.
    pub heavy_job_units: u64,
    /// Time allowed to upload a body (default 120 s); slower uploads get
    /// `408`. For large bodies this is the tighter bound, not
    /// `min_upload_rate`: a 64 MiB body must average about 546 KiB/s.
    pub upload_timeout: Duration,
    /// Longest a `GET /v1/jobs/{id}?wait=S` request is held (default 30 s).
    pub max_wait: Duration,

    // Identity, cost and memory in bytes.
    /// The API tokens (`he serve --tokens FILE`); `None` (the default)
    /// serves anonymously: every request is the same caller's.
    pub tokens: Option<TokenFile>,
    /// Serve anonymously on an address other than loopback (default
    /// false: without tokens, only a loopback address is served).
    pub allow_anonymous: bool,
    /// The limits of each token (of the anonymous caller without tokens),
    /// unless its entry in the tokens file overrides them.
    pub quota: Quota,
    /// The largest estimated cost of one job, in cost units
    /// (`he_filter::Cost`, about 6 core-seconds each; default 2000, which
    /// admits a 48 MP RGB photo at 3072 bits with any built-in filter up to
    /// 7x7, the costliest about 750 units). A
    /// job above it gets `422` with its estimate, before any work.
    pub max_job_cost: u64,
    /// Most bytes of uploads being read and of payloads queued or being
    /// filtered, all tokens together (default 4 GiB). An upload reserves
    /// its declared length (`max_body_bytes` without one) before it is
    /// read; beyond the limit, `503`.
    pub max_inflight_bytes: usize,
    // --- connections and TLS (server/conn.rs, client_addr.rs, tls.rs) ---
    /// Longest time from a connection's first byte, or from the first byte
    /// of a new request on a kept-alive connection, to the end of the
    /// request's headers (default 10 s). A new connection that sends
    /// nothing is closed after this too.
    pub header_timeout: Duration,
    /// A connection with no request in flight and no bytes either way for
    /// this long is closed (default 30 s).
    pub idle_timeout: Duration,
    /// Longest silence while a request body is read (default 10 s): the
    /// upload gets `408` and its slot is freed. Also the longest an answer
    /// may wait for a client that stopped reading it: then the connection
    /// is closed.
    pub body_read_timeout: Duration,
    /// Slowest upload accepted, in bytes per second, averaged from the
    /// start of the body once `body_read_timeout` has passed (default
    /// 16 KiB/s; 0 turns it off): a body that falls behind gets `408`.
    pub min_upload_rate: u64,
    /// Most connections at once from one client address (default 32); the
    /// next one is closed at once, before anything is read. Connections
    /// from a trusted proxy are not counted; instead each request through
    /// it counts for the client address it forwards, and one beyond the
    /// limit gets `429`.
    pub max_connections_per_client: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed (default none):
    /// the client is the rightmost address in it that is not a trusted
    /// proxy. From any other peer the header is ignored.
    pub trusted_proxies: Vec<IpAddr>,
    /// Certificate chain and private key (PEM) to serve HTTPS with
    /// (default none: plain HTTP).
    pub tls: Option<TlsFiles>,
    /// Longest TLS handshake (default 10 s).
    pub tls_handshake_timeout: Duration,
    /// Serve plain HTTP on an address other than loopback (default
    /// false: refused). For a TLS-terminating proxy in front.
    pub allow_plain_http: bool,
    // --- operations (docs/OPERATIONS.md; server/drain.rs, metrics.rs) ---
    /// Once told to stop gracefully (SIGTERM, Ctrl-C,
    /// [`ServerHandle::drain`](super::ServerHandle::drain)), the longest
    /// the server waits for jobs in flight to finish and their results to
    /// be collected, refusing new jobs with `503` meanwhile (default
    /// 30 s). Zero stops at once.
    pub drain_timeout: Duration,
    /// The bearer token `GET /metrics` needs (default none: then
    /// `/metrics` is served only to clients on loopback that come
    /// directly, not through a proxy).
    pub metrics_token: Option<MetricsToken>,
    // --- several nodes (docs/OPERATIONS.md; server/redis_store.rs) ---
    /// Where jobs are kept (default in memory).
    pub store: StoreKind,
    /// What this process does (default both the API and the filtering).
    pub role: Role,
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
            max_stored_bytes: 4 << 30,
            max_jobs: 1024,
            workers: None,
            max_connections: 512,
            concurrent_jobs: 1,
            heavy_job_units: 30,
            upload_timeout: Duration::from_secs(120),
            max_wait: Duration::from_secs(30),
            tokens: None,
            allow_anonymous: false,
            quota: Quota::default(),
            max_job_cost: 2_000,
            max_inflight_bytes: 4 << 30,
            // connections and TLS
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(10),
            min_upload_rate: 16 << 10,
            max_connections_per_client: 32,
            trusted_proxies: Vec::new(),
            tls: None,
            tls_handshake_timeout: Duration::from_secs(10),
            allow_plain_http: false,
            drain_timeout: Duration::from_secs(30),
            metrics_token: None,
            store: StoreKind::Memory,
            role: Role::All,
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

/// Refuses connection settings that cannot work.
pub(super) fn check_connections(c: &Config) -> Result<()> {
    if c.max_connections_per_client == 0 {
        return Err(Error::Config(
            "at least one connection per client address must be allowed".into(),
        ));
    }
    if [
        c.header_timeout,
        c.idle_timeout,
        c.body_read_timeout,
        c.tls_handshake_timeout,
    ]
    .iter()
    .any(Duration::is_zero)
    {
        return Err(Error::Config(
            "the header, idle, body-read and TLS handshake timeouts must be positive".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use enc_image::{ColorLayout, ImageMeta};
    use he_filter::{Filter, estimate_cost};

    fn cost(w: usize, h: usize, color: ColorLayout, bits: u32, chain: &[Filter]) -> (u64, usize) {
        let opts = he_filter::encrypt_options(chain).unwrap();
        let meta = ImageMeta::for_encryption(w, h, color, bits, [0; 32], &opts).unwrap();
        let c = estimate_cost(&meta, chain).unwrap();
        (c.whole_units(), meta.ciphertext_count())
    }

    /// Every built-in filter with a kernel of at most 7x7, at its largest.
    fn builtins_up_to_7x7() -> Vec<Filter> {
        let mut all = Filter::every_builtin();
        let ramp = vec![1, 2, 3, 4, 3, 2, 1];
        all.extend([
            Filter::Mean { k: 7 },
            Filter::Gaussian { k: 7, sigma: None },
            Filter::Gaussian {
                k: 7,
                sigma: Some(3.0),
            },
            Filter::Unsharp {
                k: 7,
                amount: enc_image::Rational::integer(2),
            },
            Filter::MotionH { k: 7 },
            Filter::MotionV { k: 7 },
            Filter::Separable {
                column: ramp.clone(),
                row: ramp,
                divisor: 256,
            },
        ]);
        all.retain(|f| f.radius().unwrap() <= 3);
        all
    }

    /// The default heavy-lane threshold sits between the jobs people run
    /// every day (a 512x512 photo, a 1 MP photo at 3072 bits, any built-in
    /// up to 7x7) and the photo-sized untiled jobs that take minutes.
    #[test]
    fn the_default_heavy_threshold_keeps_everyday_jobs_light() {
        let heavy = Config::default().heavy_job_units;
        for f in builtins_up_to_7x7() {
            for (w, h, bits) in [(512, 512, 2048), (1000, 750, 3072)] {
                let (units, _) = cost(w, h, ColorLayout::Rgb8, bits, std::slice::from_ref(&f));
                println!("{w}x{h} at {bits} bits, {}: {units} units", f.label());
                assert!(units < heavy, "{} on {w}x{h}: {units} units", f.label());
            }
        }
        let (units, _) = cost(
            4000,
            3000,
            ColorLayout::Rgb8,
            3072,
            &[Filter::Mean { k: 7 }],
        );
        assert!(units >= heavy, "12 MP, 7x7 at 3072 bits: {units} units");
    }

    #[test]
    fn the_default_budget_admits_a_48_mp_photo_with_any_builtin_up_to_7x7() {
        let budget = Config::default().max_job_cost;
        let mut worst = (0, String::new());
        for f in builtins_up_to_7x7() {
            let (units, _) = cost(
                8000,
                6000,
                ColorLayout::Rgb8,
                3072,
                std::slice::from_ref(&f),
            );
            if units > worst.0 {
                worst = (units, f.label());
            }
        }
        println!(
            "48 MP RGB, 3072 bits: the costliest built-in is {} at {} units",
            worst.1, worst.0
        );
        assert!(worst.0 <= budget, "{worst:?} over the budget of {budget}");
        // Not by accident: the budget is within a small factor of it.
        assert!(
            worst.0 * 8 > budget,
            "{worst:?}: the budget of {budget} is far larger"
        );
    }

    #[test]
    fn the_default_budget_refuses_a_63x63_random_kernel_on_59_mib_at_4096_bits() {
        let budget = Config::default().max_job_cost;
        // A random 0/1 kernel (xorshift, fixed seed).
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let weights = (0..63 * 63)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as i64 & 1
            })
            .collect();
        let chain = [Filter::Kernel {
            size: 63,
            weights,
            divisor: 1,
        }];
        // The largest square RGB image whose upload (1024 bytes per
        // ciphertext at 4096 bits) is at most 59 MiB.
        let mut side = 256;
        while cost(side + 16, side + 16, ColorLayout::Rgb8, 4096, &chain).1 * 1024 <= 59 << 20 {
            side += 16;
        }
        let (units, count) = cost(side, side, ColorLayout::Rgb8, 4096, &chain);
        println!("63x63 on {side}x{side} RGB: {count} ciphertexts, {units} units");
        assert!(count * 1024 > 55 << 20, "{count} ciphertexts");
        assert!(
            units > budget,
            "{units} units admitted by a budget of {budget}"
        );
    }
}
