//! Request bodies that cannot stall: a body silent for longer than the
//! per-read timeout, or falling behind the minimum upload rate, ends in
//! a [`BodyTimeout`] error, which the upload handler answers with `408`
//! (freeing its queue slot). And response bodies that tell the
//! connection when a request is over.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Why a request body was cut: silent too long, or too slow.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BodyTimeout(pub(crate) String);

/// The message of a [`BodyTimeout`] behind a body error, if that is what
/// it was.
pub(crate) fn timeout_of(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<BodyTimeout>() {
            return Some(t.0.clone());
        }
        cur = e.source();
    }
    None
}

/// The limits on how a body arrives.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    /// Longest silence.
    pub(super) read_timeout: Duration,
    /// Bytes per second on average from the start, checked once
    /// `read_timeout` has passed; 0 for none.
    pub(super) min_rate: u64,
}

/// A request body under a [`Pace`]. The clock starts when the body is
/// first read, so a request whose body nobody reads is not cut.
#[derive(Debug)]
pub(super) struct TimedBody<B> {
    inner: B,
    pace: Pace,
    started: Option<Instant>,
    bytes: u64,
    silence: Pin<Box<Sleep>>,
}

impl<B> TimedBody<B> {
    pub(super) fn new(inner: B, pace: Pace) -> Self {
        TimedBody {
            inner,
            pace,
            started: None,
            bytes: 0,
            silence: Box::pin(tokio::time::sleep(pace.read_timeout)),
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let now = Instant::now();
        let started = *this.started.get_or_insert_with(|| {
            this.silence.as_mut().reset(now + this.pace.read_timeout);
            now
        });
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                    this.silence.as_mut().reset(now + this.pace.read_timeout);
                    let elapsed = now - started;
                    if this.pace.min_rate > 0 && elapsed > this.pace.read_timeout {
                        let owed = (elapsed - this.pace.read_timeout).as_secs_f64()
                            * this.pace.min_rate as f64;
                        if (this.bytes as f64) < owed {
                            return Poll::Ready(Some(Err(Box::new(BodyTimeout(format!(
                                "the body arrives too slowly: {} bytes in {:.1} s, at least \
                                 {} bytes/s are needed after the first {} s",
                                this.bytes,
                                elapsed.as_secs_f64(),
                                this.pace.min_rate,
                                this.pace.read_timeout.as_secs_f64()
                            ))))));
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.silence.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(BodyTimeout(format!(
                    "the body stalled: nothing for {} s after {} bytes",
                    this.pace.read_timeout.as_secs_f64(),
                    this.bytes
                ))))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body holding a value (the connection's request guard)
/// until the response has been sent or dropped.
#[derive(Debug)]
pub(super) struct Holding<B, G> {
    inner: B,
    _guard: G,
}

impl<B, G> Holding<B, G> {
    pub(super) fn new(inner: B, guard: G) -> Self {
        Holding {
            inner,
            _guard: guard,
        }
    }
}

impl<B: Body + Unpin, G: Unpin> Body for Holding<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
