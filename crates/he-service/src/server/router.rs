//! The routes of the API, the layers around them (request log, error
//! bodies stamped with the instance id), and serving them.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tracing::{info, warn};

use super::client_addr::ClientAddr;
use super::conn;
use super::error::{Error, ErrorMessage, Result, error_response};
use super::handlers::{delete_job, health, job_result, job_status, service_info};
use super::service::Service;
use super::tiled_handlers::{get_tile, post_job, put_tile};
use super::tls;

impl Service {
    /// The routes of the API (see the crate documentation), with request
    /// logging.
    /// A worker ([`Role::Worker`](super::Role::Worker)) serves only
    /// `/v1/health` and `/metrics`.
    pub fn router(&self) -> Router {
        let routes = Router::new()
            .route("/v1/health", get(health))
            .route("/metrics", get(super::scrape::metrics));
        let routes = if self.shared.config.role.serves_api() {
            routes
                .route("/v1/info", get(service_info))
                .route("/v1/jobs", post(post_job))
                .route("/v1/jobs/{id}", get(job_status).delete(delete_job))
                .route("/v1/jobs/{id}/result", get(job_result))
                .route("/v1/jobs/{id}/tiles/{index}", get(get_tile).put(put_tile))
        } else {
            routes
        };
        routes
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(self.clone(), stamp_errors))
            .layer(middleware::from_fn(log_request))
            .with_state(self.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then drains (no
    /// new connections or jobs, up to
    /// [`Config::drain_timeout`](super::Config::drain_timeout) for the
    /// jobs held to be collected) and lets requests in progress finish.
    /// Also sweeps expired jobs. A service that has stopped does not
    /// serve again: build a new one. HTTPS if
    /// [`Config::tls`](super::Config::tls) says so; plain HTTP on an
    /// address other than loopback is refused unless
    /// [`Config::allow_plain_http`](super::Config::allow_plain_http).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let c = &self.shared.config;
        tls::check_transport(listener.local_addr()?, c)?;
        super::service::check_anonymous(listener.local_addr()?, c)?;
        let acceptor = tls::acceptor(c)?;
        info!(
            addr = %listener.local_addr()?,
            instance = self.shared.instance(),
            workers = self.shared.workers,
            queue = c.queue_capacity,
            max_body_bytes = c.max_body_bytes,
            max_connections = c.max_connections,
            retention_s = c.retention.as_secs(),
            tls = acceptor.is_some(),
            store = c.store.name(),
            redis = match &c.store {
                super::StoreKind::Redis(r) => r.address(),
                super::StoreKind::Memory => "",
            },
            role = c.role.name(),
            "he-service listening"
        );
        let shared = Arc::clone(&self.shared);
        let period = (c.retention / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let n = match &shared.redis {
                    Some(store) => store.sweep().await.unwrap_or_else(|e| {
                        warn!(error = %e, "cannot sweep expired jobs now");
                        0
                    }),
                    None => shared.jobs.sweep(),
                };
                if n > 0 {
                    info!(expired = n, "expired jobs deleted");
                }
            }
        });
        let mut workers = Vec::new();
        if let Some(store) = &self.shared.redis {
            workers.push(tokio::spawn(super::service::sync_tokens(
                Arc::clone(&self.shared),
                Arc::clone(store),
            )));
        }
        if let Some(store) = self.shared.redis.as_ref().filter(|_| c.role.filters()) {
            for _ in 0..super::redis_worker::UNITS_AT_ONCE {
                workers.push(tokio::spawn(super::redis_worker::run(
                    Arc::clone(&self.shared),
                    Arc::clone(store),
                )));
            }
        }
        let served = conn::serve(self, listener, acceptor, shutdown).await;
        sweeper.abort();
        for w in workers {
            w.abort();
        }
        info!("he-service stopped");
        served
    }
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(80).collect();
    let client = req.extensions().get::<ClientAddr>().map(|c| c.0);
    let t = Instant::now();
    let resp = next.run(req).await;
    info!(
        %method,
        path,
        client = ?client,
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
/// server restarted (another instance id) or the job expired. With the
/// Redis store a `404` carries the store's instance, the same on every
/// node ([`RedisStore::instance`](super::redis_store::RedisStore::instance));
/// if Redis does not answer, none (the client then asks `/v1/health`).
/// Other errors carry the node's.
async fn stamp_errors(State(s): State<Service>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let Some(ErrorMessage(mut body)) = resp.extensions_mut().remove::<ErrorMessage>() else {
        return resp;
    };
    let (mut parts, _) = resp.into_parts();
    body.instance = match &s.shared.redis {
        Some(store) if parts.status == StatusCode::NOT_FOUND => store.instance().await.ok(),
        _ => Some(s.instance().to_string()),
    };
    // Only strings: this cannot fail.
    let json = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json))
}
