//! The server's own counters, and their Prometheus text exposition
//! (format 0.0.4, written by hand: a few dozen lines do not need a
//! crate). Counts that the server already keeps elsewhere (jobs stored,
//! bytes held, queue slots) are not duplicated here: `scrape.rs` reads
//! them when `/metrics` is asked and passes them in as [`Gauges`].
//! Every name and label is documented in docs/OPERATIONS.md; the label
//! sets are fixed, so memory does not grow with traffic.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use super::error::{Error, Result};
use super::tokens::token_hash;

/// The bearer token that `GET /metrics` needs, kept as its SHA-256 only
/// (like the API tokens): the value is never stored, logged or printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken {
    sha256: String,
}

/// Shortest metrics token accepted, in characters.
const MIN_METRICS_TOKEN: usize = 16;

impl MetricsToken {
    /// The token `token` (surrounding white space ignored): at least 16
    /// printable ASCII characters without spaces, so that it fits in an
    /// `Authorization: Bearer` header and is not trivially guessed.
    pub fn new(token: &str) -> Result<Self> {
        let t = token.trim();
        if t.len() < MIN_METRICS_TOKEN || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Config(format!(
                "the metrics token must be at least {MIN_METRICS_TOKEN} printable ASCII \
                 characters without spaces (it has {} characters)",
                t.chars().count()
            )));
        }
        Ok(MetricsToken {
            sha256: token_hash(t),
        })
    }

    /// Whether `presented` is this token. Compares hashes, so the time
    /// taken says nothing about the token.
    pub(super) fn matches(&self, presented: &str) -> bool {
        token_hash(presented) == self.sha256
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsToken").finish_non_exhaustive()
    }
}

/// Why a request was refused: its status and a name, the labels of
/// `he_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Timeout,
    NotReady,
    TooLarge,
    UnsupportedMediaType,
    Unprocessable,
    /// A token over one of its quotas (`429` from the API).
    OverQuota,
    /// Too many requests at once from one client behind a trusted proxy
    /// (`429` from the connection layer).
    TooManyRequests,
    Internal,
    /// The queue or the store is full.
    Busy,
    /// The server is draining before it stops.
    Draining,
    /// Any other status of 400 or more.
    Other,
}

impl Refusal {
    const ALL: [Refusal; 16] = [
        Refusal::BadRequest,
        Refusal::Unauthorized,
        Refusal::Forbidden,
        Refusal::NotFound,
        Refusal::MethodNotAllowed,
        Refusal::Timeout,
        Refusal::NotReady,
        Refusal::TooLarge,
        Refusal::UnsupportedMediaType,
        Refusal::Unprocessable,
        Refusal::OverQuota,
        Refusal::TooManyRequests,
        Refusal::Internal,
        Refusal::Busy,
        Refusal::Draining,
        Refusal::Other,
    ];

    /// The refusal an answer of the API with `status` is, if it is one.
    /// A `429` from the API is a quota, a `503` a full queue or store.
    pub(super) fn of_status(status: StatusCode) -> Option<Refusal> {
        Some(match status.as_u16() {
            0..400 => return None,
            400 => Refusal::BadRequest,
            401 => Refusal::Unauthorized,
            403 => Refusal::Forbidden,
            404 => Refusal::NotFound,
            405 => Refusal::MethodNotAllowed,
            408 => Refusal::Timeout,
            409 => Refusal::NotReady,
            413 => Refusal::TooLarge,
            415 => Refusal::UnsupportedMediaType,
            422 => Refusal::Unprocessable,
            429 => Refusal::OverQuota,
            500 => Refusal::Internal,
            503 => Refusal::Busy,
            _ => Refusal::Other,
        })
    }

    fn code(self) -> &'static str {
        match self {
            Refusal::BadRequest => "400",
            Refusal::Unauthorized => "401",
            Refusal::Forbidden => "403",
            Refusal::NotFound => "404",
            Refusal::MethodNotAllowed => "405",
            Refusal::Timeout => "408",
            Refusal::NotReady => "409",
            Refusal::TooLarge => "413",
            Refusal::UnsupportedMediaType => "415",
            Refusal::Unprocessable => "422",
            Refusal::OverQuota | Refusal::TooManyRequests => "429",
            Refusal::Internal => "500",
            Refusal::Busy | Refusal::Draining => "503",
            Refusal::Other => "other",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Refusal::BadRequest => "bad_request",
            Refusal::Unauthorized => "unauthorized",
            Refusal::Forbidden => "forbidden",
            Refusal::NotFound => "not_found",
            Refusal::MethodNotAllowed => "method_not_allowed",
            Refusal::Timeout => "timeout",
            Refusal::NotReady => "not_ready",
            Refusal::TooLarge => "too_large",
            Refusal::UnsupportedMediaType => "unsupported_media_type",
            Refusal::Unprocessable => "unprocessable",
            Refusal::OverQuota => "over_quota",
            Refusal::TooManyRequests => "too_many_requests",
            Refusal::Internal => "internal",
            Refusal::Busy => "busy",
            Refusal::Draining => "draining",
            Refusal::Other => "other",
        }
    }
}

/// Upper bounds of the job duration histogram, in seconds.
const JOB_SECONDS_BUCKETS: [f64; 13] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// A Prometheus histogram of durations, with fixed buckets.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations at most each bound (not cumulative; summed when written).
    buckets: [AtomicU64; JOB_SECONDS_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = JOB_SECONDS_BUCKETS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the server counts as it goes; shared by the connection layer,
/// the dispatchers and `/metrics`.
#[derive(Debug, Default)]
pub(super) struct Metrics {
    connections_open: AtomicUsize,
    connections_total: AtomicU64,
    /// Closed at once: too many from one client address.
    connections_refused: AtomicU64,
    /// Closed to make room for a new one (they held a place unused).
    connections_evicted: AtomicU64,
    requests: AtomicU64,
    refusals: [AtomicU64; Refusal::ALL.len()],
    jobs_running: AtomicUsize,
    job_seconds: Histogram,
    /// Units of work taken over from a stopped worker (Redis store).
    work_claimed: AtomicU64,
}

/// A job on the filter pool: counted as running until dropped, then its
/// time goes into the duration histogram.
#[derive(Debug)]
pub(super) struct RunningJob<'a> {
    metrics: &'a Metrics,
    start: Instant,
}

impl Drop for RunningJob<'_> {
    fn drop(&mut self) {
        self.metrics.jobs_running.fetch_sub(1, Ordering::AcqRel);
        self.metrics.job_seconds.observe(self.start.elapsed());
    }
}

/// A connection counted as open until dropped.
#[derive(Debug)]
pub(super) struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Metrics {
    /// A connection was accepted; it is open until the guard drops.
    pub(super) fn connection(&self) -> OpenConnection<'_> {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::AcqRel);
        OpenConnection(self)
    }

    /// A connection was closed at once: too many from its address.
    pub(super) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed to make room for a new one.
    pub(super) fn connection_evicted(&self) {
        self.connections_evicted.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was answered with `status` by the API.
    pub(super) fn answered(&self, status: StatusCode) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = Refusal::of_status(status) {
            self.refusals[r as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request was refused for `why` before it reached the API.
    pub(super) fn refused(&self, why: Refusal) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.refusals[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A job starts on the filter pool.
    pub(super) fn job_running(&self) -> RunningJob<'_> {
        self.jobs_running.fetch_add(1, Ordering::AcqRel);
        RunningJob {
            metrics: self,
            start: Instant::now(),
        }
    }

    /// A worker took over a unit another one left pending.
    pub(super) fn work_claimed(&self) {
        self.work_claimed.fetch_add(1, Ordering::Relaxed);
    }

    /// Jobs on the filter pool now.
    pub(super) fn jobs_running(&self) -> usize {
        self.jobs_running.load(Ordering::Acquire)
    }

    /// The text exposition of everything: these counters and `g`.
    pub(super) fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let mut w = Writer(&mut out);
        let running = self.jobs_running();
        w.head(
            "he_jobs",
            "gauge",
            "Jobs now by state: uploading (admitted, body being read or checked), queued (waiting for the filter pool), running, finished (result or error kept until collected or expired).",
        );
        let queued_or_running = g.queued + running;
        for (state, n) in [
            ("uploading", g.in_flight.saturating_sub(queued_or_running)),
            ("queued", g.queued),
            ("running", running),
            ("finished", g.stored_jobs.saturating_sub(queued_or_running)),
        ] {
            w.sample("he_jobs", &[("state", state)], n);
        }
        w.gauge(
            "he_jobs_in_flight",
            "Jobs admitted and not yet filtered (from the upload to the end of the filter); at he_queue_capacity new jobs get 503.",
            g.in_flight,
        );
        w.gauge(
            "he_queue_capacity",
            "Most jobs in flight at once (the queue setting).",
            g.queue_capacity,
        );
        w.gauge(
            "he_jobs_stored",
            "Jobs in the store, in flight or finished.",
            g.stored_jobs,
        );
        w.head(
            "he_job_duration_seconds",
            "histogram",
            "Time each job spent on the filter pool, in seconds.",
        );
        let h = &self.job_seconds;
        let mut cumulative = 0;
        for (bound, n) in JOB_SECONDS_BUCKETS.iter().zip(&h.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            w.sample(
                "he_job_duration_seconds_bucket",
                &[("le", &bound.to_string())],
                cumulative,
            );
        }
        let count = h.count.load(Ordering::Relaxed);
        w.sample("he_job_duration_seconds_bucket", &[("le", "+Inf")], count);
        w.line(format_args!(
            "he_job_duration_seconds_sum {}",
            h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        w.sample("he_job_duration_seconds_count", &[], count);
        w.gauge(
            "he_stored_bytes",
            "Bytes of finished results kept, all tokens.",
            g.stored_bytes,
        );
        w.gauge(
            "he_max_stored_bytes",
            "Limit of he_stored_bytes.",
            g.max_stored_bytes,
        );
        w.gauge(
            "he_inflight_bytes",
            "Bytes of uploads being read and payloads queued or being filtered, all tokens.",
            g.inflight_bytes,
        );
        w.gauge(
            "he_max_inflight_bytes",
            "Limit of he_inflight_bytes.",
            g.max_inflight_bytes,
        );
        w.gauge(
            "he_connections_open",
            "Client connections open now.",
            self.connections_open.load(Ordering::Acquire),
        );
        w.counter(
            "he_connections_total",
            "Client connections accepted.",
            self.connections_total.load(Ordering::Relaxed),
        );
        w.head(
            "he_connections_closed_total",
            "counter",
            "Connections closed by the server before their client was done: per_client_limit (too many from one address, closed at once), make_room (the oldest unused one, for a new one).",
        );
        w.sample(
            "he_connections_closed_total",
            &[("reason", "per_client_limit")],
            self.connections_refused.load(Ordering::Relaxed),
        );
        w.sample(
            "he_connections_closed_total",
            &[("reason", "make_room")],
            self.connections_evicted.load(Ordering::Relaxed),
        );
        w.counter(
            "he_requests_total",
            "Requests answered.",
            self.requests.load(Ordering::Relaxed),
        );
        w.head(
            "he_refusals_total",
            "counter",
            "Requests answered with a status of 400 or more, by status code and reason.",
        );
        for r in Refusal::ALL {
            w.sample(
                "he_refusals_total",
                &[("code", r.code()), ("reason", r.name())],
                self.refusals[r as usize].load(Ordering::Relaxed),
            );
        }
        if let Some((waiting, held)) = g.queue_units {
            w.head(
                "he_queue_units",
                "gauge",
                "Redis store: units of work in the queue, all nodes: waiting (not yet handed to a worker) and held (by a worker, until its result is written).",
            );
            w.sample("he_queue_units", &[("state", "waiting")], waiting);
            w.sample("he_queue_units", &[("state", "held")], held);
        }
        w.counter(
            "he_work_claimed_total",
            "Units of work this process took over from a stopped worker after the visibility timeout (Redis store).",
            self.work_claimed.load(Ordering::Relaxed),
        );
        w.gauge(
            "he_draining",
            "1 while the server drains before stopping (new jobs get 503), else 0.",
            usize::from(g.draining),
        );
        w.head(
            "he_info",
            "gauge",
            "Always 1; the labels say which server instance and version answer.",
        );
        w.sample(
            "he_info",
            &[
                ("instance", g.instance),
                ("version", env!("CARGO_PKG_VERSION")),
            ],
            1,
        );
        out
    }
}

/// What `/metrics` reads from the rest of the server when asked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gauges<'a> {
    pub(super) instance: &'a str,
    /// Jobs admitted and not yet filtered (queue slots taken).
    pub(super) in_flight: usize,
    pub(super) queue_capacity: usize,
    /// Jobs waiting for a dispatcher.
    pub(super) queued: usize,
    pub(super) stored_jobs: usize,
    pub(super) stored_bytes: usize,
    pub(super) max_stored_bytes: usize,
    pub(super) inflight_bytes: usize,
    pub(super) max_inflight_bytes: usize,
    pub(super) draining: bool,
    /// With the Redis store: units in the queue's stream not yet handed
    /// to a worker, and units held by workers (all nodes).
    pub(super) queue_units: Option<(usize, usize)>,
}

/// Writes the text format: `# HELP`, `# TYPE`, then samples.
struct Writer<'a>(&'a mut String);

impl Writer<'_> {
    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        // Writing to a String cannot fail.
        let _ = self.0.write_fmt(args);
        self.0.push('\n');
    }

    fn head(&mut self, name: &str, kind: &str, help: &str) {
        self.line(format_args!("# HELP {name} {help}"));
        self.line(format_args!("# TYPE {name} {kind}"));
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        if labels.is_empty() {
            self.line(format_args!("{name} {value}"));
            return;
        }
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        self.line(format_args!("{name}{{{}}} {value}", labels.join(",")));
    }

    fn gauge(&mut self, name: &str, help: &str, value: usize) {
        self.head(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.head(name, "counter", help);
        self.sample(name, &[], value);
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges<'static> {
        Gauges {
            instance: "00ff",
            in_flight: 3,
            queue_capacity: 8,
            queued: 1,
            stored_jobs: 4,
            stored_bytes: 10,
            max_stored_bytes: 100,
            inflight_bytes: 20,
            max_inflight_bytes: 200,
            draining: false,
            queue_units: None,
        }
    }

    /// The value of the sample `series` (name and labels as written).
    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
    }

    #[test]
    fn the_exposition_is_well_formed_and_adds_up() {
        let m = Metrics::default();
        let running = m.job_running();
        let text = m.render(&gauges());
        // One running job, one queued, three in flight: one uploading;
        // four stored: two finished.
        assert_eq!(value(&text, "he_jobs{state=\"running\"}"), 1.0);
        assert_eq!(value(&text, "he_jobs{state=\"uploading\"}"), 1.0);
        assert_eq!(value(&text, "he_jobs{state=\"finished\"}"), 2.0);
        drop(running);
        m.answered(StatusCode::ACCEPTED);
        m.answered(StatusCode::SERVICE_UNAVAILABLE);
        m.answered(StatusCode::IM_A_TEAPOT);
        m.refused(Refusal::Draining);
        let c = m.connection();
        let text = m.render(&gauges());
        assert_eq!(value(&text, "he_jobs{state=\"running\"}"), 0.0);
        assert_eq!(value(&text, "he_job_duration_seconds_count"), 1.0);
        assert_eq!(
            value(&text, "he_job_duration_seconds_bucket{le=\"+Inf\"}"),
            1.0
        );
        assert_eq!(value(&text, "he_requests_total"), 4.0);
        for (series, n) in [
            ("he_refusals_total{code=\"503\",reason=\"busy\"}", 1.0),
            ("he_refusals_total{code=\"503\",reason=\"draining\"}", 1.0),
            ("he_refusals_total{code=\"other\",reason=\"other\"}", 1.0),
            ("he_refusals_total{code=\"404\",reason=\"not_found\"}", 0.0),
            ("he_connections_open", 1.0),
        ] {
            assert_eq!(value(&text, series), n, "{series}");
        }
        drop(c);
        assert_eq!(
            value(&m.render(&gauges()), "he_connections_open"),
            0.0,
            "a closed connection is not open"
        );
        // Every line is a comment or `name{labels} number`, and every
        // sample's family has a TYPE before it.
        let mut typed = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                typed.push(parts.next().unwrap().to_string());
                assert!(
                    ["gauge", "counter", "histogram"].contains(&parts.next().unwrap()),
                    "{line}"
                );
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, v) = line.rsplit_once(' ').unwrap();
            v.parse::<f64>().unwrap();
            let name = series.split('{').next().unwrap();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()),
                "{line}"
            );
            assert!(
                typed.iter().any(|t| name == t
                    || name
                        .strip_prefix(t.as_str())
                        .is_some_and(|s| { ["_bucket", "_sum", "_count"].contains(&s) })),
                "{line} has no TYPE"
            );
        }
    }

    #[test]
    fn buckets_are_cumulative() {
        let m = Metrics::default();
        for ms in [10, 200, 200, 7000] {
            m.job_seconds.observe(Duration::from_millis(ms));
        }
        let text = m.render(&gauges());
        assert_eq!(
            value(&text, "he_job_duration_seconds_bucket{le=\"0.05\"}"),
            1.0
        );
        assert_eq!(
            value(&text, "he_job_duration_seconds_bucket{le=\"0.25\"}"),
            3.0
        );
        assert_eq!(
            value(&text, "he_job_duration_seconds_bucket{le=\"10\"}"),
            4.0
        );
        assert!((value(&text, "he_job_duration_seconds_sum") - 7.41).abs() < 1e-9);
    }

    #[test]
    fn a_metrics_token_is_kept_as_a_hash_and_never_shown() {
        let secret = "s3cret-metrics-token-0123";
        let t = MetricsToken::new(&format!("  {secret}\n")).unwrap();
        assert!(t.matches(secret) && !t.matches("s3cret-metrics-token-0124"));
        assert!(!format!("{t:?}").contains(secret));
        assert!(MetricsToken::new("short").is_err());
        assert!(MetricsToken::new("has a space in the middle").is_err());
    }
}
