//! The worker pools: the dispatchers that run one job at a time on the
//! whole filter pool, and awaiting work on a rayon pool from async code.
//!
//! The async runtime only moves bytes. Loading the key and the image
//! (range checks on every ciphertext) runs on a small "check" pool, and
//! the handler awaits it through a oneshot channel. Accepted jobs wait in
//! a FIFO channel for a dispatcher thread, which runs each on the whole
//! "filter" pool.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::error::{Error, Result};

/// A job's work, run by a dispatcher on the filter pool.
pub(super) type Task = Box<dyn FnOnce() + Send>;

/// Starts `n` dispatcher threads: each takes the oldest waiting job and
/// runs it on the whole filter pool (`install`), so that jobs finish in
/// order, each as fast as the pool allows, instead of all sharing the
/// cores and finishing late together. They stop when the service is
/// dropped (the channel closes).
pub(super) fn start_dispatchers(
    n: usize,
    pool: rayon::ThreadPool,
) -> Result<std::sync::mpsc::Sender<Task>> {
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

/// Runs `f` on `pool` and awaits its result without blocking the runtime.
/// A panic becomes an internal error; the server goes on.
pub(super) async fn on_pool<T: Send + 'static>(
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
