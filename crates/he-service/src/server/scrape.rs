//! `GET /metrics`: who may read it, and the exposition of the server's
//! counters and state (`metrics.rs`).
//!
//! With [`Config::metrics_token`](super::Config::metrics_token), a
//! request needs `Authorization: Bearer <that token>`, from any address.
//! Without one, only a client on loopback that comes directly may read
//! it: the client address (after a trusted proxy's `X-Forwarded-For`) is
//! loopback and the request carries no forwarding header, so that a
//! proxy on the same machine does not open it to the world.

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::client_addr::ClientAddr;
use super::error::{Error, error_response};
use super::service::Service;

/// The content type of the text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Headers that say a request came through a proxy.
const FORWARDING: [&str; 3] = ["x-forwarded-for", "forwarded", "x-real-ip"];

pub(super) async fn metrics(
    State(s): State<Service>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refusal(&s, client.map(|c| c.0), &headers) {
        return refused;
    }
    let mut g = s.shared.gauges();
    if let Some(store) = &s.shared.redis {
        // The store's counts, all nodes together; when it is
        // unreachable, this process's own (the page still answers).
        if let Ok(n) = store.counts().await {
            g.in_flight = n.inflight_jobs;
            g.stored_jobs = n.jobs;
            g.stored_bytes = n.stored_bytes;
            g.inflight_bytes = n.inflight_bytes;
            // Units in the queue's stream, less those filtered here.
            g.queued = n
                .queue_entries
                .saturating_sub(s.shared.metrics.jobs_running());
            g.queue_units = Some((n.queue_entries.saturating_sub(n.queue_held), n.queue_held));
        }
    }
    let text = s.shared.metrics.render(&g);
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(EXPOSITION))],
        text,
    )
        .into_response()
}

/// The answer to a client that may not read the metrics, if it may not.
fn refusal(s: &Service, client: Option<ClientAddr>, headers: &HeaderMap) -> Option<Response> {
    if let Some(token) = &s.config().metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        return match presented {
            Some(t) if token.matches(t) => None,
            _ => Some(
                Error::Unauthorized(
                    "/metrics needs the metrics token (metrics_token_file) as a bearer token"
                        .into(),
                )
                .into_response(),
            ),
        };
    }
    let direct = !FORWARDING.iter().any(|h| headers.contains_key(*h));
    if direct && client.is_some_and(|c| c.0.is_loopback()) {
        None
    } else {
        Some(error_response(
            StatusCode::FORBIDDEN,
            "/metrics is served only to loopback clients that come directly; \
             give the server a metrics token (metrics_token_file) to read it from elsewhere"
                .into(),
        ))
    }
}
