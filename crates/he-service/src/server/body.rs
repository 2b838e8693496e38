//! Request bodies that cannot stall: a body silent for longer than the
//! per-read timeout, or falling behind the minimum upload rate, ends in
//! a [`BodyTimeout`] error, which the upload handler answers with `408`
//! (freeing its queue slot). Request bodies that, left unread by a
//! refusal, come back to the connection to be read and discarded
//! ([`Returning`], [`discard`]). And response bodies that tell the
//! connection when a request is over.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
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

impl<B> TimedBody<B> {
    /// How long the body may have taken to bring what it brought: the
    /// grace of one read timeout, then one second per `min_rate` bytes.
    fn allowed(&self) -> Option<Duration> {
        (self.pace.min_rate > 0).then(|| {
            self.pace.read_timeout
                + Duration::from_secs_f64(self.bytes as f64 / self.pace.min_rate as f64)
        })
    }

    /// Whether the body is behind the minimum rate at `now`.
    fn behind(&self, now: Instant) -> bool {
        match (self.allowed(), self.started) {
            (Some(allowed), Some(started)) => now - started > allowed,
            _ => false,
        }
    }

    /// When the next byte must have come: after the read timeout, or
    /// sooner if the minimum rate says so.
    fn deadline(&self, now: Instant) -> Instant {
        let silence = now + self.pace.read_timeout;
        match (self.allowed(), self.started) {
            (Some(allowed), Some(started)) => silence.min(started + allowed),
            _ => silence,
        }
    }

    fn too_slow(&self, now: Instant) -> Box<dyn std::error::Error + Send + Sync> {
        let elapsed = self.started.map_or(Duration::ZERO, |s| now - s);
        Box::new(BodyTimeout(format!(
            "the body arrives too slowly: {} bytes in {:.1} s, at least {} bytes/s are \
             needed after the first {} s",
            self.bytes,
            elapsed.as_secs_f64(),
            self.pace.min_rate,
            self.pace.read_timeout.as_secs_f64()
        )))
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
        if this.started.is_none() {
            this.started = Some(now);
            this.silence.as_mut().reset(now + this.pace.read_timeout);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                    if this.behind(now) {
                        return Poll::Ready(Some(Err(this.too_slow(now))));
                    }
                    let deadline = this.deadline(now);
                    this.silence.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.silence.as_mut().poll(cx));
                let now = Instant::now();
                if this.behind(now) {
                    return Poll::Ready(Some(Err(this.too_slow(now))));
                }
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

/// Where a [`Returning`] body goes back to when it is dropped unfinished.
pub(super) type ReturnSlot<B> = Arc<Mutex<Option<B>>>;

/// A request body that, dropped before its end (a handler refused the
/// request without reading it), is put back in its [`ReturnSlot`], so
/// that the connection can read and discard the rest before it answers.
/// A proxy that streams the body upstream (nginx with
/// `proxy_request_buffering off`) would otherwise hit a closed socket
/// while still sending, and answer its client `502` instead of the
/// refusal.
#[derive(Debug)]
pub(super) struct Returning<B> {
    inner: Option<B>,
    back: Option<ReturnSlot<B>>,
}

impl<B> Returning<B> {
    /// `inner`, given back to `back` if dropped unfinished; with `None`,
    /// just `inner`.
    pub(super) fn new(inner: B, back: Option<ReturnSlot<B>>) -> Self {
        Returning {
            inner: Some(inner),
            back,
        }
    }
}

impl<B: Body + Unpin> Body for Returning<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        match self.get_mut().inner.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl<B> Drop for Returning<B> {
    fn drop(&mut self) {
        if let (Some(back), Some(inner)) = (self.back.take(), self.inner.take())
            && let Ok(mut slot) = back.lock()
        {
            *slot = Some(inner);
        }
    }
}

/// Reads and discards what is left of `body`, at most `limit` bytes more;
/// whether it came to its end. The body's own pace bounds the time (a
/// [`TimedBody`] cuts a silent or slow one).
pub(super) async fn discard<B>(mut body: B, limit: u64) -> bool
where
    B: Body + Unpin,
    B::Data: hyper::body::Buf,
{
    use http_body_util::BodyExt as _;
    let mut read = 0u64;
    while !body.is_end_stream() {
        match body.frame().await {
            None => return true,
            Some(Err(_)) => return false,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    read += hyper::body::Buf::remaining(data) as u64;
                    if read > limit {
                        return false;
                    }
                }
            }
        }
    }
    true
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that sends `chunk` bytes every `every`, `total` in all, and
    /// then, if `hang`, nothing more without ending.
    struct Trickle {
        tick: tokio::time::Interval,
        chunk: usize,
        left: usize,
        hang: bool,
    }

    fn trickle(every_ms: u64, chunk: usize, total: usize, hang: bool) -> Trickle {
        Trickle {
            tick: tokio::time::interval(Duration::from_millis(every_ms)),
            chunk,
            left: total,
            hang,
        }
    }

    impl Body for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let this = self.get_mut();
            if this.left == 0 {
                return if this.hang {
                    Poll::Pending
                } else {
                    Poll::Ready(None)
                };
            }
            ready!(this.tick.poll_tick(cx));
            let n = this.chunk.min(this.left);
            this.left -= n;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![0u8; n])))))
        }
    }

    const PACE: Pace = Pace {
        read_timeout: Duration::from_millis(300),
        min_rate: 10_000,
    };

    /// Reads `body` under [`PACE`], for at most 3 s.
    async fn read(body: Trickle) -> (Result<usize, String>, Duration) {
        let t = Instant::now();
        let mut b = TimedBody::new(body, PACE);
        let mut n = 0;
        let read = async {
            while let Some(f) = b.frame().await {
                match f {
                    Ok(f) => n += f.data_ref().map_or(0, Bytes::len),
                    Err(e) => return Err(timeout_of(&*e).unwrap_or_default()),
                }
            }
            Ok(())
        };
        let r = match tokio::time::timeout(Duration::from_secs(3), read).await {
            Ok(r) => r,
            Err(_) => Err("still reading after 3 s".to_string()),
        };
        (r.map(|()| n), t.elapsed())
    }

    #[tokio::test]
    async fn a_body_at_a_good_pace_is_read_whole() {
        // 5 KB every 100 ms: 50 KB/s, above the 10 KB/s minimum.
        let (r, _) = read(trickle(100, 5000, 40_000, false)).await;
        assert_eq!(r, Ok(40_000));
    }

    #[tokio::test]
    async fn a_silent_body_is_cut_after_the_read_timeout() {
        let (r, took) = read(trickle(10, 100, 100, true)).await;
        let why = r.unwrap_err();
        assert!(
            why.contains("stalled") && why.contains("100 bytes"),
            "{why}"
        );
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_millis(1000),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_trickle_is_cut_once_behind_the_minimum_rate() {
        // 10 bytes every 100 ms, never silent for the read timeout: cut
        // once the grace (300 ms) plus 1 ms per 10 bytes has passed.
        let (r, took) = read(trickle(100, 10, 1_000_000, false)).await;
        let why = r.unwrap_err();
        assert!(why.contains("too slowly"), "{why}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }

    #[tokio::test]
    async fn a_body_dropped_unfinished_comes_back_and_is_discarded_within_its_limit() {
        let back = ReturnSlot::default();
        drop(Returning::new(
            trickle(1, 100, 1000, false),
            Some(Arc::clone(&back)),
        ));
        let rest = back.lock().unwrap().take().expect("the body came back");
        assert!(discard(rest, 1000).await, "1000 bytes are within 1000");
        drop(Returning::new(
            trickle(1, 100, 1000, false),
            Some(Arc::clone(&back)),
        ));
        let rest = back.lock().unwrap().take().expect("the body came back");
        assert!(!discard(rest, 500).await, "1000 bytes went past 500");
        // A slow body is cut by its pace, not waited for.
        let timed = ReturnSlot::default();
        drop(Returning::new(
            TimedBody::new(trickle(10, 100, 100, true), PACE),
            Some(Arc::clone(&timed)),
        ));
        let rest = timed.lock().unwrap().take().expect("the body came back");
        let t = Instant::now();
        assert!(!discard(rest, 1 << 20).await);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_leaves_nothing_and_without_a_slot_nothing_comes_back() {
        let back = ReturnSlot::default();
        let mut b = Returning::new(trickle(1, 100, 300, false), Some(Arc::clone(&back)));
        let mut n = 0;
        while let Some(f) = b.frame().await {
            n += f.unwrap().data_ref().map_or(0, Bytes::len);
        }
        assert_eq!(n, 300);
        drop(b);
        let rest = back.lock().unwrap().take().expect("the body came back");
        assert_eq!(rest.left, 0);
        assert!(
            discard(rest, 0).await,
            "an ended body has nothing to discard"
        );
        drop(Returning::new(trickle(1, 100, 300, false), None));
        assert!(back.lock().unwrap().is_none());
    }
}
