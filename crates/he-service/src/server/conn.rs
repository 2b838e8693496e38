//! The accept loop and the life of a connection, on hyper directly (not
//! `axum::serve`), so that slow and idle clients cannot hold what working
//! clients need:
//!
//! - at most [`Config::max_connections`] connections: a connection
//!   accepted beyond takes the place of the oldest one that has no request
//!   in flight (idle, or still sending its headers), which is closed; when
//!   every connection has a request in flight, accepting waits (clients
//!   wait in the kernel's backlog);
//! - at most [`Config::max_connections_per_client`] per client address:
//!   beyond, the connection is closed at once, before anything is read.
//!   A trusted proxy's connections are not counted; each request through
//!   it counts for the address it forwards, and one beyond gets `429`;
//!   a request body through it that nobody read (the request was
//!   refused) is read and discarded, bounded, before the answer, so the
//!   proxy sees the answer and not a closed socket;
//! - TLS, when configured, with a handshake timeout;
//! - a watchdog closes a connection whose request headers take longer
//!   than [`Config::header_timeout`] (counted from its first byte, or
//!   from the accept for a silent new connection), or that has had no
//!   request in flight and no bytes for [`Config::idle_timeout`];
//! - request bodies are read under [`Config::body_read_timeout`] and
//!   [`Config::min_upload_rate`] (`body.rs`), and a connection whose
//!   client stops reading an answer for [`Config::body_read_timeout`] is
//!   closed;
//! - on shutdown, the server drains (`drain.rs`): accepting stops at
//!   once, new jobs and health checks on the open connections get `503`,
//!   and once every job is collected or the drain timeout has passed,
//!   idle connections close and requests in progress finish (at most
//!   [`CLOSE_GRACE`] more);
//! - every connection and every answer is counted for `/metrics`
//!   (`metrics.rs`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower_service::Service as _;
use tracing::{debug, info, warn};

use super::body::{Holding, Pace, ReturnSlot, Returning, TimedBody, discard};
use super::client_addr::{ClientAddr, PerClient, Slot, resolve};
use super::config::Config;
use super::drain::{CLOSE_GRACE, DRAIN_RETRY_AFTER, Stage, refused_while_draining};
use super::error::Result;
use super::metrics::Refusal;
use super::service::{Service, Shared};
use crate::wire::ErrorBody;

/// What every connection of one server shares.
struct Ctx {
    router: Router,
    instance: String,
    pace: Pace,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// Longest a write may stay blocked (the client stopped reading).
    write_timeout: Duration,
    handshake_timeout: Duration,
    tick: Duration,
    trusted: Vec<IpAddr>,
    /// Most bytes of an unread request body read and discarded.
    max_body: u64,
    /// Connections per direct client, requests per client behind a proxy.
    per_client: PerClient,
    tls: Option<TlsAcceptor>,
    open: Registry,
    /// The stage and the counters.
    shared: Arc<Shared>,
}

impl Ctx {
    fn new(service: &Service, tls: Option<TlsAcceptor>) -> Self {
        let c = service.config();
        let shortest = c
            .header_timeout
            .min(c.idle_timeout)
            .min(c.body_read_timeout);
        Ctx {
            router: service.router(),
            instance: service.instance().to_string(),
            pace: Pace {
                read_timeout: c.body_read_timeout,
                min_rate: c.min_upload_rate,
            },
            header_timeout: c.header_timeout,
            idle_timeout: c.idle_timeout,
            write_timeout: c.body_read_timeout,
            handshake_timeout: c.tls_handshake_timeout,
            tick: (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)),
            trusted: c.trusted_proxies.clone(),
            max_body: c.max_body_bytes as u64,
            per_client: PerClient::new(c.max_connections_per_client),
            tls,
            open: Registry::default(),
            shared: Arc::clone(&service.shared),
        }
    }
}

/// Serves `service` on `listener` until `shutdown` completes (or the
/// service is told to drain or stop otherwise), then drains and stops.
pub(super) async fn serve(
    service: Service,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let c: &Config = service.config();
    let ctx = Arc::new(Ctx::new(&service, tls));
    let permits = Arc::new(Semaphore::new(c.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::clone(&service.shared);
    let signal = tokio::spawn(async move {
        shutdown.await;
        shared.drain.begin();
    });
    let supervisor = tokio::spawn(supervise_drain(Arc::clone(&service.shared)));
    let mut stage = service.shared.drain.watch();
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            biased;
            _ = stage.wait_for(|s| *s != Stage::Serving) => break,
            r = listener.accept() => match r {
                Ok(a) => a,
                // Out of file descriptors and the like: wait, do not spin.
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ip = canonical(peer.ip());
        let slot = if ctx.trusted.contains(&ip) {
            None
        } else if let Some(slot) = ctx.per_client.try_acquire(ip) {
            Some(slot)
        } else {
            debug!(%peer, "connection refused: too many from this address");
            ctx.shared.metrics.connection_refused();
            drop(tcp);
            continue;
        };
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Full: make room by closing the oldest connection that
                // holds a place without using it; if every connection is
                // busy, wait for one to end.
                if let Some(victim) = ctx.open.evict_oldest_unused() {
                    debug!(victim = %victim, "connection closed to make room");
                    ctx.shared.metrics.connection_evicted();
                }
                // The semaphore is never closed, so acquiring only waits.
                tokio::select! {
                    biased;
                    _ = stage.wait_for(|s| *s != Stage::Serving) => break,
                    p = Arc::clone(&permits).acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let peer = SocketAddr::new(ip, peer.port());
        let entry = ctx.open.add(peer);
        tasks.spawn(connection(
            tcp,
            peer,
            Arc::clone(&ctx),
            stop_rx.clone(),
            entry,
            (permit, slot),
        ));
    }
    // Draining: no new connections; the open ones go on until the drain
    // is over (supervise_drain).
    drop(listener);
    let _ = stage.wait_for(|s| *s == Stage::Stopping).await;
    let _ = stop_tx.send(true);
    info!(connections = tasks.len(), "finishing requests in progress");
    let finished = tokio::time::timeout(CLOSE_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        warn!(
            connections = tasks.len(),
            grace_s = CLOSE_GRACE.as_secs(),
            "requests still in progress after the grace time: their connections are closed"
        );
        tasks.abort_all();
    }
    signal.abort();
    supervisor.abort();
    Ok(())
}

/// Once the server drains, stops it when every job is collected or the
/// drain timeout has passed.
async fn supervise_drain(shared: Arc<Shared>) {
    let mut stage = shared.drain.watch();
    if stage.wait_for(|s| *s != Stage::Serving).await.is_err() {
        return;
    }
    if shared.drain.stage() == Stage::Stopping {
        return;
    }
    let timeout = shared.config.drain_timeout;
    info!(
        jobs_in_flight = shared.in_flight(),
        jobs_stored = shared.jobs.len(),
        timeout_s = timeout.as_secs_f64(),
        "draining: no new connections or jobs; waiting for the jobs held to finish and be collected"
    );
    let deadline = Instant::now() + timeout;
    loop {
        if shared.drained() {
            info!("drained: every job finished and collected");
            break;
        }
        if Instant::now() >= deadline {
            warn!(
                jobs_in_flight = shared.in_flight(),
                jobs_stored = shared.jobs.len(),
                "drain timeout: stopping with these jobs abandoned (their clients submit again)"
            );
            break;
        }
        tokio::select! {
            _ = stage.wait_for(|s| *s == Stage::Stopping) => return,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    shared.drain.stop_now();
}

/// An IPv4 peer seen through an IPv6 socket is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One connection: the TLS handshake if any, then HTTP/1.1 under the
/// watchdog. `held` (the global permit and the client's slot) is
/// released when it ends.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    stop: watch::Receiver<bool>,
    entry: Entry,
    held: (OwnedSemaphorePermit, Option<Slot>),
) {
    let evicted = Arc::clone(&entry.evict);
    let _open = ctx.shared.metrics.connection();
    let served = async {
        match ctx.tls.clone() {
            None => http(tcp, peer, &ctx, stop, &entry.activity).await,
            Some(acceptor) => {
                match tokio::time::timeout(ctx.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => http(tls, peer, &ctx, stop, &entry.activity).await,
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    };
    tokio::select! {
        () = served => {}
        () = evicted.notified() => {}
    }
    drop(entry);
    drop(held);
}

async fn http<I>(
    io: I,
    peer: SocketAddr,
    ctx: &Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
    activity: &Arc<Activity>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Tracked {
        inner: io,
        activity: Arc::clone(activity),
    });
    let svc_ctx = Arc::clone(ctx);
    let svc_activity = Arc::clone(activity);
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        handle(Arc::clone(&svc_ctx), peer, Arc::clone(&svc_activity), req)
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(io, svc);
    let mut conn = std::pin::pin!(conn);
    let mut tick = tokio::time::interval(ctx.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    if *stop.borrow() {
        closing = true;
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                if let Some(why) = activity.expired(ctx) {
                    debug!(%peer, why, "connection closed");
                    return;
                }
            }
        }
    }
}

/// One request: the client's address, its slot if it came through a
/// trusted proxy, the body under its pace, and the connection told when
/// the response is over.
async fn handle(
    ctx: Arc<Ctx>,
    peer: SocketAddr,
    activity: Arc<Activity>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Body>, Infallible> {
    let request = activity.begin();
    let client = resolve(peer.ip(), req.headers(), &ctx.trusted);
    let from_proxy = ctx.trusted.contains(&peer.ip());
    let mut slot = None;
    let mut refused = None;
    if from_proxy {
        match ctx.per_client.try_acquire(client) {
            Some(s) => slot = Some(s),
            None => {
                debug!(%peer, %client, "request refused: too many from this client");
                ctx.shared.metrics.refused(Refusal::TooManyRequests);
                refused = Some(refusal(
                    &ctx.instance,
                    StatusCode::TOO_MANY_REQUESTS,
                    1,
                    format!(
                        "too many requests at once from {client}; retry when one of them has finished"
                    ),
                ));
            }
        }
    }
    if refused.is_none()
        && ctx.shared.drain.stage() != Stage::Serving
        && refused_while_draining(req.method(), req.uri().path())
    {
        ctx.shared.metrics.refused(Refusal::Draining);
        refused = Some(refusal(
            &ctx.instance,
            StatusCode::SERVICE_UNAVAILABLE,
            DRAIN_RETRY_AFTER,
            "this server is stopping: it takes no new jobs, and serves the jobs it holds \
             until they are collected; retry, here after its restart or on another server"
                .into(),
        ));
    }
    if let Some(mut resp) = refused {
        if from_proxy {
            let rest = TimedBody::new(req.into_body(), ctx.pace);
            discard_unread(&ctx, Some(rest), &mut resp).await;
        }
        return Ok(resp.map(|b| Body::new(Holding::new(b, (request, slot)))));
    }
    // Behind a trusted proxy, a body the API left unread (it refused the
    // request first) comes back here to be read and discarded.
    let back = from_proxy.then(ReturnSlot::default);
    let mut req = req.map(|b| Returning::new(TimedBody::new(b, ctx.pace), back.clone()));
    req.extensions_mut().insert(ClientAddr(client));
    let mut resp = match ctx.router.clone().call(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    if let Some(back) = back {
        let rest = back.lock().ok().and_then(|mut b| b.take());
        discard_unread(&ctx, rest, &mut resp).await;
    }
    ctx.shared.metrics.answered(resp.status());
    Ok(resp.map(|b| Body::new(Holding::new(b, (request, slot)))))
}

/// Reads and discards `rest`, what is left of a request body nobody read,
/// before the answer goes out: a proxy that streams bodies upstream (nginx
/// with `proxy_request_buffering off`) would otherwise hit a closed socket
/// while still sending, and give its client `502` instead of the answer.
/// At most [`Config::max_body_bytes`], under the body's pace; a body that
/// is longer, too slow or broken is left, and the connection is closed
/// after the answer. Only for a trusted proxy: a direct client's refused
/// body is not waited for.
async fn discard_unread<B>(ctx: &Ctx, rest: Option<B>, resp: &mut Response<Body>)
where
    B: hyper::body::Body + Unpin,
    B::Data: hyper::body::Buf,
{
    if let Some(rest) = rest
        && !discard(rest, ctx.max_body).await
    {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// An answer refused by the connection layer, before the API: `status`,
/// `Retry-After` and the error body with the instance id.
fn refusal(
    instance: &str,
    status: StatusCode,
    retry_after: u64,
    message: String,
) -> Response<Body> {
    let body = ErrorBody {
        instance: Some(instance.to_string()),
        retry_after_seconds: Some(retry_after),
        ..ErrorBody::new(message)
    };
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    resp
}

/// The open connections, to find the one to close when full.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: Arc<Mutex<HashMap<u64, Open>>>,
}

struct Open {
    peer: SocketAddr,
    activity: Arc<Activity>,
    evict: Arc<Notify>,
    evicted: bool,
}

/// A connection's place in the [`Registry`], given up when dropped.
struct Entry {
    id: u64,
    activity: Arc<Activity>,
    evict: Arc<Notify>,
    open: Arc<Mutex<HashMap<u64, Open>>>,
}

impl Registry {
    fn add(&self, peer: SocketAddr) -> Entry {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new());
        let evict = Arc::new(Notify::new());
        lock(&self.open).insert(
            id,
            Open {
                peer,
                activity: Arc::clone(&activity),
                evict: Arc::clone(&evict),
                evicted: false,
            },
        );
        Entry {
            id,
            activity,
            evict,
            open: Arc::clone(&self.open),
        }
    }

    /// Tells the oldest connection with no request in flight to close;
    /// its peer, if there was one.
    fn evict_oldest_unused(&self) -> Option<SocketAddr> {
        let mut open = lock(&self.open);
        let (_, victim) = open
            .iter_mut()
            .filter(|(_, o)| !o.evicted && o.activity.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|(id, _)| **id)?;
        victim.evicted = true;
        victim.evict.notify_one();
        Some(victim.peer)
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        lock(&self.open).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// When a connection last moved, and whether a request is in flight, in
/// milliseconds since it was accepted.
struct Activity {
    epoch: Instant,
    last_io: AtomicU64,
    /// First byte of the request being received, [`NONE`] between requests.
    head_start: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// When the last response was over.
    idle_since: AtomicU64,
    /// Since when a write has been waiting for the client to read,
    /// [`NONE`] if none is.
    write_blocked: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            last_io: AtomicU64::new(0),
            head_start: AtomicU64::new(NONE),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            write_blocked: AtomicU64::new(NONE),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn on_read(&self) {
        let t = self.now();
        self.last_io.store(t, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self
                .head_start
                .compare_exchange(NONE, t, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
        self.write_blocked.store(NONE, Ordering::Release);
    }

    fn wrote(&self, r: &Poll<io::Result<usize>>) {
        match r {
            Poll::Ready(Ok(n)) if *n > 0 => self.on_write(),
            Poll::Pending => self.on_write_blocked(),
            _ => {}
        }
    }

    fn on_write_blocked(&self) {
        let t = self.now();
        let _ = self
            .write_blocked
            .compare_exchange(NONE, t, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// A request's headers are in: it is in flight until the guard drops.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_start.store(NONE, Ordering::Release);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Why the connection should be closed now, if it should.
    fn expired(&self, ctx: &Ctx) -> Option<&'static str> {
        let (header, idle) = (ctx.header_timeout, ctx.idle_timeout);
        let now = self.now();
        let blocked = self.write_blocked.load(Ordering::Acquire);
        if blocked != NONE && now.saturating_sub(blocked) > ctx.write_timeout.as_millis() as u64 {
            return Some("the client stopped reading");
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let header = header.as_millis() as u64;
        let head = self.head_start.load(Ordering::Acquire);
        if head != NONE {
            return (now.saturating_sub(head) > header).then_some("header timeout");
        }
        if self.requests.load(Ordering::Relaxed) == 0 {
            return (now > header).then_some("header timeout (nothing sent)");
        }
        let quiet = self
            .idle_since
            .load(Ordering::Relaxed)
            .max(self.last_io.load(Ordering::Relaxed));
        (now.saturating_sub(quiet) > idle.as_millis() as u64).then_some("idle timeout")
    }
}

/// A request in flight on its connection.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now(), Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").finish_non_exhaustive()
    }
}

/// A connection's stream, recording when bytes move.
struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.on_read();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.activity.wrote(&r);
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.activity.wrote(&r);
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_client_that_stops_reading_an_answer_is_cut() {
        let service = Service::new(Config {
            body_read_timeout: Duration::from_millis(300),
            workers: std::num::NonZeroUsize::new(1),
            ..Config::default()
        })
        .unwrap();
        let ctx = Arc::new(Ctx::new(&service, None));
        // A pipe that holds 256 bytes: the answer to /v1/info is larger.
        let (mut client, server_end) = tokio::io::duplex(256);
        let (_stop_tx, stop) = watch::channel(false);
        let activity = Arc::new(Activity::new());
        let peer: SocketAddr = "127.0.0.2:1".parse().unwrap();
        let served = tokio::spawn(async move {
            http(server_end, peer, &ctx, stop, &activity).await;
        });
        client
            .write_all(b"GET /v1/info HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        // The client never reads: the connection ends after the timeout.
        let t = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("a connection whose client stopped reading was kept")
            .unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
    }
}
