//! The HTTP server: routes, admission (content type, size, queue),
//! validation and filtering on rayon pools, and the job store.
//!
//! The async runtime only moves bytes. Loading the key and the image
//! (range checks on every ciphertext) runs on a small "check" pool, and
//! the handler awaits it through a oneshot channel. Accepted jobs wait in
//! a FIFO channel for a dispatcher thread, which runs each on the whole
//! "filter" pool.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, routing::post};
use enc_image::{EncryptedImage, FORMAT_VERSION};
use http_body_util::BodyExt;
use paillier::PublicKey;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::filters::{self, Filter};
use crate::jobs::{JobInfo, JobProgress, JobStore, Snapshot, new_instance, valid_id};
use crate::listener::LimitedListener;
use crate::wire::{
    ENVELOPE_VERSION, Envelope, ErrorBody, Health, IMAGE_CONTENT_TYPE, JOB_CONTENT_TYPE, JobStatus,
    LimitsInfo, ServiceInfo,
};

/// The message of an error answer, left in the response's extensions for
/// [`stamp_errors`] to write as the JSON body with the instance id.
#[derive(Debug, Clone)]
struct ErrorMessage(String);

/// An error answer: `status` and `{"error": message}` (the instance id is
/// added by [`stamp_errors`]).
fn error_response(status: StatusCode, message: String) -> Response {
    let mut resp = (
        status,
        Json(ErrorBody {
            error: message.clone(),
            instance: None,
        }),
    )
        .into_response();
    resp.extensions_mut().insert(ErrorMessage(message));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    resp
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        error_response(self.status(), self.to_string())
    }
}

struct Shared {
    config: Config,
    workers: usize,
    /// Jobs waiting for a dispatcher, first in, first out.
    dispatch: std::sync::mpsc::Sender<Task>,
    check_pool: rayon::ThreadPool,
    queue: Arc<Semaphore>,
    jobs: JobStore,
}

impl Shared {
    /// This server instance's id (see [`Service::instance`]).
    fn instance(&self) -> &str {
        self.jobs.instance()
    }
}

/// The service: configuration, worker pools, queue and job store. Cheap
/// to clone (shared state); [`Service::router`] gives the axum router.
#[derive(Clone)]
pub struct Service {
    shared: Arc<Shared>,
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

/// A job's work, run by a dispatcher on the filter pool.
type Task = Box<dyn FnOnce() + Send>;

/// Starts `n` dispatcher threads: each takes the oldest waiting job and
/// runs it on the whole filter pool (`install`), so that jobs finish in
/// order, each as fast as the pool allows, instead of all sharing the
/// cores and finishing late together. They stop when the service is
/// dropped (the channel closes).
fn start_dispatchers(n: usize, pool: rayon::ThreadPool) -> Result<std::sync::mpsc::Sender<Task>> {
    let (tx, rx) = std::sync::mpsc::channel::<Task>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let pool = Arc::new(pool);
    for i in 0..n {
        let (rx, pool) = (Arc::clone(&rx), Arc::clone(&pool));
        std::thread::Builder::new()
            .name(format!("he-dispatch-{i}"))
            .spawn(move || {
                loop {
                    let task = {
                        let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        rx.recv()
                    };
                    let Ok(task) = task else { break };
                    // run_job catches its own panics; this keeps the thread anyway.
                    let _ = catch_unwind(AssertUnwindSafe(|| pool.install(task)));
                }
            })
            .map_err(|e| Error::Config(format!("cannot start a dispatcher: {e}")))?;
    }
    Ok(tx)
}

/// A validated upload, ready to filter.
struct Checked {
    pk: PublicKey,
    image: EncryptedImage,
    chain: Vec<Filter>,
    labels: Vec<String>,
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
        if config.retention.is_zero() {
            return bad("the retention time must be positive");
        }
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(2, NonZeroUsize::get),
            n => n,
        };
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

    /// The routes of the API (see the crate documentation), with request
    /// logging.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/health", get(health))
            .route("/v1/info", get(service_info))
            .route("/v1/jobs", post(submit))
            .route("/v1/jobs/{id}", get(job_status).delete(delete_job))
            .route("/v1/jobs/{id}/result", get(job_result))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(self.clone(), stamp_errors))
            .layer(middleware::from_fn(log_request))
            .with_state(self.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then lets requests
    /// in progress finish. Also sweeps expired jobs.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let c = &self.shared.config;
        info!(
            addr = %listener.local_addr()?,
            instance = self.shared.instance(),
            workers = self.shared.workers,
            queue = c.queue_capacity,
            max_body_bytes = c.max_body_bytes,
            max_connections = c.max_connections,
            retention_s = c.retention.as_secs(),
            "he-service listening"
        );
        let shared = Arc::clone(&self.shared);
        let period = (c.retention / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let n = shared.jobs.sweep();
                if n > 0 {
                    info!(expired = n, "expired jobs deleted");
                }
            }
        });
        let listener = LimitedListener::new(listener, c.max_connections);
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        sweeper.abort();
        info!("he-service stopped");
        Ok(served?)
    }
}

/// Runs `f` on `pool` and awaits its result without blocking the runtime.
/// A panic becomes an internal error; the server goes on.
async fn on_pool<T: Send + 'static>(
    pool: &rayon::ThreadPool,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = oneshot::channel();
    pool.spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err(Error::Internal("a worker panicked".into())));
        // The request may have gone away: then nobody wants the answer.
        let _ = tx.send(r);
    });
    rx.await
        .map_err(|_| Error::Internal("the worker was lost".into()))?
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(80).collect();
    let t = Instant::now();
    let resp = next.run(req).await;
    info!(
        %method,
        path,
        status = resp.status().as_u16(),
        ms = t.elapsed().as_millis() as u64,
        "request"
    );
    resp
}

async fn not_found() -> Error {
    Error::NotFound("no such route; see GET /v1/info and docs/SERVICE.md".into())
}

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route".into(),
    )
}

/// Writes every error answer of the server as `{"error": ..., "instance":
/// ...}`, so that a client told `404` for its job can see whether the
/// server restarted (another instance id) or the job expired.
async fn stamp_errors(State(s): State<Service>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let Some(ErrorMessage(error)) = resp.extensions_mut().remove::<ErrorMessage>() else {
        return resp;
    };
    let (mut parts, _) = resp.into_parts();
    let body = ErrorBody {
        error,
        instance: Some(s.instance().to_string()),
    };
    // Only strings: this cannot fail.
    let json = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json))
}

async fn health(State(s): State<Service>) -> Json<Health> {
    let c = &s.shared.config;
    Json(Health {
        status: "ok".into(),
        instance: s.instance().to_string(),
        jobs_in_flight: c.queue_capacity - s.shared.queue.available_permits(),
        queue_capacity: c.queue_capacity,
        jobs_stored: s.shared.jobs.len(),
    })
}

async fn service_info(State(s): State<Service>) -> Json<ServiceInfo> {
    let c = &s.shared.config;
    Json(ServiceInfo {
        service: "he-service".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        instance: s.instance().to_string(),
        job_content_type: JOB_CONTENT_TYPE.into(),
        result_content_type: IMAGE_CONTENT_TYPE.into(),
        envelope_version: ENVELOPE_VERSION,
        image_format_version: FORMAT_VERSION,
        filters: filters::supported(),
        limits: LimitsInfo {
            max_body_bytes: c.max_body_bytes,
            max_width: c.max_side,
            max_height: c.max_side,
            max_ciphertexts: c.max_ciphertexts,
            max_chain_len: c.max_chain_len,
            min_key_bits: paillier::MIN_KEY_BITS,
            max_key_bits: paillier::MAX_KEY_BITS,
            max_kernel_size: he_filter::MAX_KERNEL_SIZE,
            max_weight: he_filter::MAX_WEIGHT,
            queue_capacity: c.queue_capacity,
            max_wait_seconds: c.max_wait.as_secs(),
        },
        retention_seconds: c.retention.as_secs(),
    })
}

fn check_content_type(headers: &HeaderMap) -> Result<()> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case(JOB_CONTENT_TYPE) {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(format!(
            "Content-Type is {:?}, jobs are sent as {JOB_CONTENT_TYPE}",
            ct.chars().take(80).collect::<String>()
        )))
    }
}

fn content_length(headers: &HeaderMap) -> Result<Option<usize>> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .ok_or_else(|| Error::BadRequest("Content-Length is not a number".into()))
        })
        .transpose()
}

/// Reads at most `limit` bytes within `timeout`.
async fn read_body(body: Body, limit: usize, hint: usize, timeout: Duration) -> Result<Bytes> {
    let read = async move {
        let mut body = body;
        let mut buf = Vec::with_capacity(hint.min(limit));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                Error::BadRequest(format!(
                    "the body ended early or could not be read ({e}) after {} bytes",
                    buf.len()
                ))
            })?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(Error::TooLarge(format!(
                        "the body exceeds the limit of {limit} bytes"
                    )));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        Error::Timeout(format!(
            "the body did not arrive within {} s",
            timeout.as_secs()
        ))
    })?
}

/// Loads and checks everything in an upload: the envelope, the key, the
/// image against the limits and the key, and the chain against the image.
fn validate(config: &Config, body: &[u8]) -> Result<Checked> {
    let env = Envelope::decode(body)?;
    let chain = env.spec.filters;
    if chain.is_empty() {
        return Err(Error::BadRequest("the spec names no filter".into()));
    }
    if chain.len() > config.max_chain_len {
        return Err(Error::Unprocessable(format!(
            "{} filters in the chain, at most {} allowed",
            chain.len(),
            config.max_chain_len
        )));
    }
    let pk = PublicKey::from_bytes(env.public_key)
        .map_err(|e| Error::BadRequest(format!("public key: {e}")))?;
    let image = EncryptedImage::from_bytes(env.image, &pk, &config.image_limits()).map_err(
        |e| match e {
            enc_image::Error::Limit(_) => Error::TooLarge(format!("encrypted image: {e}")),
            e => Error::BadRequest(format!("encrypted image: {e}")),
        },
    )?;
    filters::check_chain(image.meta(), &chain).map_err(|e| Error::Unprocessable(e.to_string()))?;
    let labels = chain.iter().map(Filter::label).collect();
    Ok(Checked {
        pk,
        image,
        chain,
        labels,
    })
}

async fn submit(State(s): State<Service>, headers: HeaderMap, body: Body) -> Result<Response> {
    let r = submit_inner(&s, &headers, body).await;
    match &r {
        Err(e @ Error::Internal(_)) => error!(status = 500, error = %e, "job refused"),
        Err(e) => warn!(status = e.status().as_u16(), error = %e, "job refused"),
        Ok(_) => {}
    }
    r
}

async fn submit_inner(s: &Service, headers: &HeaderMap, body: Body) -> Result<Response> {
    let c = &s.shared.config;
    check_content_type(headers)?;
    let declared = content_length(headers)?;
    if let Some(n) = declared.filter(|&n| n > c.max_body_bytes) {
        return Err(Error::TooLarge(format!(
            "the body is {n} bytes, at most {} allowed",
            c.max_body_bytes
        )));
    }
    // Admission before reading: bodies in memory are bounded by the queue.
    let permit = Arc::clone(&s.shared.queue)
        .try_acquire_owned()
        .map_err(|_| {
            Error::Busy(format!(
                "the queue is full ({} jobs in flight); retry later",
                c.queue_capacity
            ))
        })?;
    s.shared.jobs.check_room()?;
    let t = Instant::now();
    let body = read_body(
        body,
        c.max_body_bytes,
        declared.unwrap_or(0),
        c.upload_timeout,
    )
    .await?;
    let upload = t.elapsed();
    let bytes_in = body.len();
    let t = Instant::now();
    let config = c.clone();
    let checked = on_pool(&s.shared.check_pool, move || validate(&config, &body)).await?;
    let validate_time = t.elapsed();
    let meta = checked.image.meta();
    let info = JobInfo {
        labels: checked.labels.clone(),
        width: meta.width() as u32,
        height: meta.height() as u32,
        key_bits: meta.key_bits(),
        ciphertexts: checked.image.ciphertexts().len() as u64,
        validate: validate_time,
    };
    let (id, status, progress) = s.shared.jobs.create(info.clone())?;
    info!(
        job = %id,
        filters = ?info.labels,
        width = info.width,
        height = info.height,
        key_bits = info.key_bits,
        ciphertexts = info.ciphertexts,
        bytes_in,
        upload_ms = upload.as_millis() as u64,
        validate_ms = info.validate.as_millis() as u64,
        "job accepted"
    );
    let shared = Arc::clone(&s.shared);
    let job_id = id.clone();
    let task: Task = Box::new(move || run_job(&shared, &job_id, checked, &progress, permit));
    s.shared
        .dispatch
        .send(task)
        .map_err(|_| Error::Internal("the dispatchers have stopped".into()))?;
    let location = format!("/v1/jobs/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(status),
    )
        .into_response())
}

/// Filters one job (on the filter pool, from a dispatcher) and stores the
/// outcome; the queue slot is released as soon as the filter is over.
fn run_job(
    shared: &Shared,
    id: &str,
    job: Checked,
    progress: &JobProgress,
    permit: OwnedSemaphorePermit,
) {
    let waited = shared.jobs.start(id);
    let t = Instant::now();
    let out = catch_unwind(AssertUnwindSafe(|| {
        filters::apply_chain(&job.image, &job.pk, &job.chain, progress)
            .map(|o| o.trim_halo().to_bytes())
    }));
    let took = t.elapsed();
    let labels = job.labels;
    drop(job.image);
    // The slot is free once the work is; waiters are woken after this.
    drop(permit);
    let outcome = match out {
        Ok(Ok(bytes)) => {
            info!(
                job = %id,
                filters = ?labels,
                queued_ms = waited.as_millis() as u64,
                filter_ms = took.as_millis() as u64,
                bytes_out = bytes.len(),
                "job done"
            );
            Ok(Bytes::from(bytes))
        }
        Ok(Err(e)) => {
            warn!(job = %id, filters = ?labels, error = %e, "job failed");
            Err(e.to_string())
        }
        Err(_) => {
            error!(job = %id, filters = ?labels, "the filter panicked");
            Err("internal error while filtering".into())
        }
    };
    shared.jobs.finish(id, outcome);
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    wait: Option<f64>,
}

fn checked_id(id: &str) -> Result<&str> {
    if valid_id(id) {
        Ok(id)
    } else {
        Err(Error::NotFound(
            "no such job (ids are 32 lowercase hex digits)".into(),
        ))
    }
}

async fn job_status(
    State(s): State<Service>,
    Path(id): Path<String>,
    query: std::result::Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<JobStatus>> {
    let id = checked_id(&id)?;
    let wait = query
        .map_err(|e| Error::BadRequest(format!("query: {e}")))?
        .0
        .wait
        .unwrap_or(0.0);
    if !wait.is_finite() || wait < 0.0 {
        return Err(Error::BadRequest(
            "wait must be a number of seconds, 0 or more".into(),
        ));
    }
    let wait = Duration::from_secs_f64(wait.min(3600.0)).min(s.shared.config.max_wait);
    match s.shared.jobs.snapshot(id)? {
        Snapshot::Finished(st) => Ok(Json(st)),
        Snapshot::Pending(st, _) if wait.is_zero() => Ok(Json(st)),
        Snapshot::Pending(_, mut rx) => {
            // Woken when the job finishes; on timeout, report where it is.
            let _ = tokio::time::timeout(wait, rx.wait_for(|&done| done)).await;
            match s.shared.jobs.snapshot(id)? {
                Snapshot::Finished(st) | Snapshot::Pending(st, _) => Ok(Json(st)),
            }
        }
    }
}

async fn job_result(State(s): State<Service>, Path(id): Path<String>) -> Result<Response> {
    let id = checked_id(&id)?;
    let bytes = s.shared.jobs.result(id)?;
    info!(job = %id, bytes_out = bytes.len(), "result sent");
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(IMAGE_CONTENT_TYPE),
        )],
        bytes,
    )
        .into_response())
}

async fn delete_job(State(s): State<Service>, Path(id): Path<String>) -> Result<StatusCode> {
    let id = checked_id(&id)?;
    s.shared.jobs.delete(id)?;
    info!(job = %id, "job deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A server running on its own thread and runtime, for tests, the load
/// test and embedding. Dropping it shuts the server down.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    service: Service,
    shutdown: Option<oneshot::Sender<()>>,
    kill: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// Binds `config.listen` (port 0 picks a free port) and serves in the background.
    pub fn start(config: Config) -> Result<Self> {
        Self::start_service(Service::new(config)?)
    }

    /// Serves an existing [`Service`] in the background.
    pub fn start_service(service: Service) -> Result<Self> {
        let listen = service.config().listen;
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| Error::Config(format!("cannot listen on {listen}: {e}")))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let svc = service.clone();
        let thread = std::thread::Builder::new()
            .name("he-service".into())
            .spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("he-service-io")
                    .enable_all()
                    .build()?;
                let served = rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let serve = svc.serve(listener, async {
                        let _ = rx.await;
                    });
                    // Only a kill sent ends this early; a dropped sender does not.
                    let killed = async {
                        if kill_rx.await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::select! {
                        r = serve => r,
                        () = killed => {
                            warn!("he-service killed: connections cut, jobs in flight lost");
                            Ok(())
                        }
                    }
                });
                // Cancels every connection task at once (after a kill, the
                // ones still open): their sockets close without an answer.
                rt.shutdown_background();
                served
            })?;
        Ok(ServerHandle {
            addr,
            service,
            shutdown: Some(tx),
            kill: Some(kill_tx),
            thread: Some(thread),
        })
    }

    /// The address served.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://ADDR`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The service served.
    #[must_use]
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Stops accepting connections, lets requests in progress finish, and
    /// waits for the server thread.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    /// Stops at once, as a crash would: the listener and every open
    /// connection are closed without an answer, and the jobs in the store
    /// are forgotten (a filter already running finishes on its pool, and
    /// its result is dropped). For fault tests: a server started afterwards
    /// on the same address has another [`Service::instance`].
    pub fn kill(mut self) -> Result<()> {
        if let Some(tx) = self.kill.take() {
            let _ = tx.send(());
        }
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::Internal("the server thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Serves `config` on the current thread until Ctrl-C (the server example).
pub fn run_until_ctrl_c(config: Config) -> Result<()> {
    let service = Service::new(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("he-service-io")
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listen = service.config().listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Config(format!("cannot listen on {listen}: {e}")))?;
        service
            .serve(listener, async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    info!("Ctrl-C: finishing requests in progress");
                }
            })
            .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;
    use crate::filters::encrypt_options;
    use crate::wire::{JobSpec, JobState};
    use enc_image::{ColorLayout, NoProgress, PixelImage};

    #[test]
    fn a_full_queue_answers_503_and_admits_again_when_a_slot_frees() {
        let service = Service::new(Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            queue_capacity: 1,
            workers: 1,
            ..Config::default()
        })
        .unwrap();
        let server = ServerHandle::start_service(service.clone()).unwrap();
        let client = Client::new(&server.url()).unwrap();
        let kp = paillier::Keypair::generate_insecure_for_tests(512).unwrap();
        let spec = JobSpec {
            filters: vec![Filter::Mean { k: 3 }],
        };
        let img = PixelImage::new(4, 4, ColorLayout::Luma8, vec![9; 16]).unwrap();
        let enc = EncryptedImage::encrypt(
            &img,
            kp.private_key(),
            &encrypt_options(&spec.filters).unwrap(),
            &NoProgress,
        )
        .unwrap();

        // A job in flight holds the only slot.
        let slot = service.shared.queue.try_acquire().unwrap();
        assert_eq!(client.health().unwrap().jobs_in_flight, 1);
        let err = client
            .submit(kp.public_key(), &spec, &enc, &NoProgress)
            .unwrap_err();
        match err {
            Error::Server { status, message } => {
                assert_eq!(status, 503);
                assert!(message.contains("queue is full"), "{message}");
            }
            e => panic!("expected 503, got {e}"),
        }
        // The answer says when to retry.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let resp = agent
            .post(format!("{}/v1/jobs", server.url()))
            .header("content-type", JOB_CONTENT_TYPE)
            .send(&b"HEJOB"[..])
            .unwrap();
        assert_eq!(resp.status().as_u16(), 503);
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );
        // A large upload is refused before it is sent (Expect: 100-continue),
        // so the client reads the 503 instead of a broken pipe.
        let big = vec![0u8; 8 << 20];
        let err = client.submit_envelope(&big, &NoProgress).unwrap_err();
        assert!(
            matches!(err, Error::Server { status: 503, .. }),
            "expected 503, got {err}"
        );
        drop(slot);
        let job = client
            .submit(kp.public_key(), &spec, &enc, &NoProgress)
            .unwrap();
        let done = client
            .wait(&job.id, &NoProgress, Duration::from_secs(60))
            .unwrap();
        assert_eq!(done.state, JobState::Done);
        // The finished job released its slot.
        assert_eq!(client.health().unwrap().jobs_in_flight, 0);
    }

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
        ] {
            assert!(matches!(Service::new(c), Err(Error::Config(_))));
        }
    }
}
