//! The retry engine: an overall deadline, which failures retrying may
//! cure, and retrying them with growing pauses, each reported as a
//! [`Notice::Retry`].

use std::time::{Duration, Instant};

use super::endpoints::Client;
use super::error::{Error, Result};
use super::notice::Notice;

/// The overall deadline of an exchange.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    pub(super) fn after(total: Duration) -> Self {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    pub(super) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// Why a request failed, if retrying may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing answers (connection refused, connect timeout), or the
    /// server or a proxy in front of it answers that it cannot serve now
    /// (`502`, `503`, `504`: its queue is full, it is draining, its store
    /// is unreachable, or the node behind the proxy is gone): the service
    /// may be restarting.
    Unreachable,
    /// The connection broke or went silent during the exchange.
    Cut,
}

fn fault(e: &Error) -> Option<Fault> {
    use std::io::ErrorKind;
    match e {
        Error::Http(ureq::Error::ConnectionFailed | ureq::Error::HostNotFound)
        | Error::Http(ureq::Error::Timeout(ureq::Timeout::Connect)) => Some(Fault::Unreachable),
        Error::Http(ureq::Error::Io(io)) | Error::Io(io) => {
            Some(if io.kind() == ErrorKind::ConnectionRefused {
                Fault::Unreachable
            } else {
                Fault::Cut
            })
        }
        Error::Http(
            ureq::Error::Timeout(_) | ureq::Error::Protocol(_) | ureq::Error::BodyStalled,
        ) => Some(Fault::Cut),
        Error::Server {
            status: 502..=504, ..
        } => Some(Fault::Unreachable),
        _ => None,
    }
}

impl Client {
    pub(super) fn deadline_error(&self, deadline: &Deadline, doing: &str, last: String) -> Error {
        Error::gave_up(&self.base, doing, deadline.total, last)
    }

    /// Runs `f` with the time left, retrying what retrying may cure: a
    /// server that does not answer, until the deadline; a connection cut
    /// during the exchange, until the deadline if `bounded` is false,
    /// else at most `transfer_retries` times. Pauses grow from `backoff`
    /// to `max_backoff`; each retry is a [`Notice::Retry`].
    pub(super) fn retrying<T>(
        &self,
        deadline: &Deadline,
        doing: &str,
        bounded: bool,
        retries: &mut u32,
        mut f: impl FnMut(Duration) -> Result<T>,
    ) -> Result<T> {
        let (mut cuts, mut tries) = (0, 0);
        let mut pause = self.options.backoff;
        loop {
            let limit = deadline.remaining();
            if limit.is_zero() {
                return Err(self.deadline_error(deadline, doing, "no time left".into()));
            }
            let e = match f(limit) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Some(kind) = fault(&e) else {
                return Err(e);
            };
            let limited = bounded && kind == Fault::Cut;
            if limited {
                cuts += 1;
                if cuts > self.options.transfer_retries {
                    return Err(Error::Retries {
                        server: self.base.clone(),
                        doing: doing.to_string(),
                        tries: cuts,
                        last: e.to_string(),
                    });
                }
            }
            if deadline.remaining() <= pause {
                return Err(self.deadline_error(deadline, doing, e.to_string()));
            }
            tries += 1;
            (self.notice)(&Notice::Retry {
                doing: doing.to_string(),
                error: e.to_string(),
                retry: if limited { cuts } else { tries },
                limit: limited.then_some(self.options.transfer_retries),
                pause,
            });
            // A backoff between tries: the server may be restarting.
            std::thread::sleep(pause);
            *retries += 1;
            pause = (pause * 2).min(self.options.max_backoff);
        }
    }
}
