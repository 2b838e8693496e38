//! Stopping gracefully: serving, then draining, then stopping.
//!
//! - **Serving**: everything as usual.
//! - **Draining** (SIGTERM, Ctrl-C, [`ServerHandle::drain`]): the
//!   listening socket is closed, so new connections are refused and a
//!   load balancer or the client's retry goes elsewhere; on the
//!   connections already open, a new job (`POST /v1/jobs`) and
//!   `GET /v1/health` get `503` with `Retry-After`, while the status,
//!   result and deletion of existing jobs are served, so that clients
//!   collect what they wait for. Draining ends when no job is in flight
//!   and every result has been collected (the client deletes it after
//!   downloading), or after [`Config::drain_timeout`]: the jobs still
//!   running then are abandoned, and their clients see another server
//!   instance and submit again.
//! - **Stopping**: connections close once their request in progress is
//!   answered (at most [`CLOSE_GRACE`]), and the server returns.
//!
//! [`ServerHandle::drain`]: super::ServerHandle::drain
//! [`Config::drain_timeout`]: super::Config::drain_timeout

use std::time::Duration;

use axum::http::Method;
use tokio::sync::watch;

/// Longest the server waits, once stopping, for requests in progress to
/// be answered before it closes their connections anyway.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Seconds a client refused while the server drains is told to wait.
pub(super) const DRAIN_RETRY_AFTER: u64 = 5;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Serving,
    Draining,
    Stopping,
}

/// The server's stage, watched by the accept loop and the connections.
#[derive(Debug)]
pub(super) struct Drain {
    stage: watch::Sender<Stage>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            stage: watch::Sender::new(Stage::Serving),
        }
    }
}

impl Drain {
    /// Starts draining; false if the server was already draining or
    /// stopping.
    pub(super) fn begin(&self) -> bool {
        self.stage.send_if_modified(|s| {
            let serving = *s == Stage::Serving;
            if serving {
                *s = Stage::Draining;
            }
            serving
        })
    }

    /// Stops now, draining or not.
    pub(super) fn stop_now(&self) {
        self.stage.send_replace(Stage::Stopping);
    }

    /// The stage now.
    pub(super) fn stage(&self) -> Stage {
        *self.stage.borrow()
    }

    /// To wait for the next stage.
    pub(super) fn watch(&self) -> watch::Receiver<Stage> {
        self.stage.subscribe()
    }
}

/// Whether a request is refused while draining: new work, and the health
/// check that load balancers use to choose a server.
pub(super) fn refused_while_draining(method: &Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    (method == Method::POST && path == "/v1/jobs") || path == "/v1/health"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_move_forward_only() {
        let d = Drain::default();
        assert_eq!(d.stage(), Stage::Serving);
        assert!(d.begin());
        assert!(!d.begin(), "already draining");
        assert_eq!(d.stage(), Stage::Draining);
        d.stop_now();
        assert!(!d.begin(), "a stopping server does not drain again");
        assert_eq!(d.stage(), Stage::Stopping);
    }

    #[test]
    fn only_new_work_and_health_are_refused() {
        assert!(refused_while_draining(&Method::POST, "/v1/jobs"));
        assert!(refused_while_draining(&Method::POST, "/v1/jobs/"));
        assert!(refused_while_draining(&Method::GET, "/v1/health"));
        let id = "/v1/jobs/0123456789abcdef0123456789abcdef";
        assert!(!refused_while_draining(&Method::GET, id));
        assert!(!refused_while_draining(&Method::DELETE, id));
        assert!(!refused_while_draining(
            &Method::GET,
            &format!("{id}/result")
        ));
        assert!(!refused_while_draining(&Method::GET, "/metrics"));
    }
}
