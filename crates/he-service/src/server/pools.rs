//! The worker pools: the dispatchers that run jobs on the filter pools,
//! taking them fairly between tokens, and awaiting work on a rayon pool
//! from async code.
//!
//! The async runtime only moves bytes. Loading the key and the image
//! (range checks on every ciphertext) runs on a small "check" pool, and
//! the handler awaits it through a oneshot channel. Accepted jobs wait in
//! one queue per token; the dispatchers serve the tokens round-robin, each
//! job on a whole filter pool.
//!
//! There are two lanes, each with its own queues, dispatchers and pool: a
//! job estimated at `heavy_job_units` or more goes to the heavy lane, every
//! other job to the light lane. A heavy job, which may run for hours within
//! the budget, therefore never holds back a small job: while both run, the
//! operating system shares the cores between the two pools, so the small
//! job runs at no less than about half speed instead of waiting. Within a
//! lane, a token with jobs queued holds back another token's job by at most
//! the job already running.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::error::{Error, Result};
use super::metrics::Metrics;

/// A job's work, run by a dispatcher on the filter pool.
pub(super) type Task = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    /// Waiting jobs of each token (id, work), oldest first.
    queues: HashMap<Arc<str>, VecDeque<(String, Task)>>,
    /// Tokens with waiting jobs, in the order they arrived.
    ring: VecDeque<Arc<str>>,
    /// When each token last had a job started (a counter): the token
    /// served longest ago goes first, so that a token whose queue ran dry
    /// and refilled does not jump ahead of one that has been waiting.
    last_served: HashMap<Arc<str>, u64>,
    tick: u64,
    closed: bool,
}

/// One FIFO queue per token, served round-robin.
#[derive(Default)]
struct FairQueue {
    state: Mutex<State>,
    ready: Condvar,
}

impl FairQueue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next job: the oldest of the token served longest ago (ties:
    /// the one waiting longest); `None` once closed.
    fn pop(&self) -> Option<Task> {
        let mut g = self.lock();
        loop {
            let State {
                queues,
                ring,
                last_served,
                tick,
                ..
            } = &mut *g;
            let next = ring
                .iter()
                .enumerate()
                .min_by_key(|(i, o)| (last_served.get(*o).copied().unwrap_or(0), *i))
                .map(|(i, _)| i);
            if let Some(owner) = next.and_then(|i| ring.remove(i)) {
                let Some(q) = queues.get_mut(&owner) else {
                    continue;
                };
                let task = q.pop_front();
                if q.is_empty() {
                    queues.remove(&owner);
                } else {
                    ring.push_back(Arc::clone(&owner));
                }
                *tick += 1;
                last_served.insert(owner, *tick);
                // Forget tokens that wait for nothing and were served long ago.
                if last_served.len() > 4 * queues.len() + 64 {
                    last_served.retain(|o, _| queues.contains_key(o));
                }
                if let Some((_, task)) = task {
                    return Some(task);
                }
                continue;
            }
            if g.closed {
                return None;
            }
            g = self.ready.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl FairQueue {
    /// Queues job `id` of `owner`.
    fn push(&self, owner: Arc<str>, id: String, task: Task) {
        let mut g = self.lock();
        let State { queues, ring, .. } = &mut *g;
        let q = queues.entry(Arc::clone(&owner)).or_default();
        if q.is_empty() {
            ring.push_back(owner);
        }
        q.push_back((id, task));
        drop(g);
        self.ready.notify_one();
    }

    /// Takes job `id` out of its queue if it has not started.
    fn remove(&self, id: &str) -> Option<Task> {
        let mut g = self.lock();
        let State { queues, ring, .. } = &mut *g;
        let (owner, q) = queues
            .iter_mut()
            .find(|(_, q)| q.iter().any(|(i, _)| i == id))?;
        let owner = Arc::clone(owner);
        let pos = q.iter().position(|(i, _)| i == id)?;
        let (_, task) = q.remove(pos)?;
        if q.is_empty() {
            queues.remove(&owner);
            ring.retain(|o| *o != owner);
        }
        Some(task)
    }

    /// Jobs waiting, all tokens together.
    fn waiting(&self) -> usize {
        self.lock().queues.values().map(VecDeque::len).sum()
    }

    /// Hands out nothing more: the dispatchers stop once the jobs queued
    /// have run.
    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// Where accepted jobs wait for a dispatcher: the light and the heavy lane
/// (see the module documentation). Dropping it stops the dispatchers once
/// the jobs queued have run.
pub(super) struct Dispatch {
    light: Arc<FairQueue>,
    heavy: Arc<FairQueue>,
    heavy_units: u64,
}

impl Dispatch {
    /// Queues job `id` of `owner`, estimated at `units` cost units: in the
    /// heavy lane from `heavy_job_units` on, else in the light lane.
    pub(super) fn push(&self, owner: Arc<str>, id: String, units: u64, task: Task) {
        let lane = if units >= self.heavy_units {
            &self.heavy
        } else {
            &self.light
        };
        lane.push(owner, id, task);
    }

    /// Takes job `id` out of its queue if it has not started (a `DELETE`).
    pub(super) fn remove(&self, id: &str) -> Option<Task> {
        self.light.remove(id).or_else(|| self.heavy.remove(id))
    }

    /// Jobs waiting, both lanes and all tokens together.
    pub(super) fn waiting(&self) -> usize {
        self.light.waiting() + self.heavy.waiting()
    }
}

impl Drop for Dispatch {
    fn drop(&mut self) {
        self.light.close();
        self.heavy.close();
    }
}

/// The filter pools' shape: `concurrent_jobs` dispatchers per lane, and the
/// estimate from which a job is heavy.
pub(super) struct Lanes {
    /// Jobs run at once in each lane.
    pub(super) concurrent_jobs: usize,
    /// Jobs estimated at this many cost units or more go to the heavy lane.
    pub(super) heavy_job_units: u64,
}

/// Starts the dispatcher threads of both lanes: each takes the next job of
/// its lane (round-robin between tokens, oldest first within one) and runs
/// it on the lane's whole pool (`install`), so that the jobs of a lane
/// finish one after the other, each as fast as the pool allows, instead of
/// all sharing the cores and finishing late together. They stop when the
/// [`Dispatch`] is dropped. Each job counts as running in `metrics` while
/// it runs, and its time goes into the duration histogram.
pub(super) fn start_dispatchers(
    lanes: &Lanes,
    light_pool: rayon::ThreadPool,
    heavy_pool: rayon::ThreadPool,
    metrics: &Arc<Metrics>,
) -> Result<Dispatch> {
    let dispatch = Dispatch {
        light: Arc::new(FairQueue::default()),
        heavy: Arc::new(FairQueue::default()),
        heavy_units: lanes.heavy_job_units,
    };
    for (lane, queue, pool) in [
        ("light", &dispatch.light, light_pool),
        ("heavy", &dispatch.heavy, heavy_pool),
    ] {
        let pool = Arc::new(pool);
        for i in 0..lanes.concurrent_jobs {
            let (queue, pool, metrics) =
                (Arc::clone(queue), Arc::clone(&pool), Arc::clone(metrics));
            std::thread::Builder::new()
                .name(format!("he-{lane}-{i}"))
                .spawn(move || {
                    while let Some(task) = queue.pop() {
                        let _running = metrics.job_running();
                        // run_job catches its own panics; this keeps the thread anyway.
                        let _ = catch_unwind(AssertUnwindSafe(|| pool.install(task)));
                    }
                })
                .map_err(|e| Error::Config(format!("cannot start a dispatcher: {e}")))?;
        }
    }
    Ok(dispatch)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_served_round_robin_and_queued_jobs_can_be_removed() {
        let queue = FairQueue::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let job = |name: &'static str| -> Task {
            let log = Arc::clone(&log);
            Box::new(move || log.lock().unwrap().push(name))
        };
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        queue.push(Arc::clone(&a), "a1".into(), job("a1"));
        queue.push(Arc::clone(&a), "a2".into(), job("a2"));
        queue.push(Arc::clone(&a), "a3".into(), job("a3"));
        queue.push(Arc::clone(&b), "b1".into(), job("b1"));
        queue.push(Arc::clone(&b), "b2".into(), job("b2"));
        assert!(queue.remove("a2").is_some() && queue.remove("a2").is_none());
        assert_eq!(queue.waiting(), 4);
        for _ in 0..4 {
            (queue.pop().unwrap())();
        }
        assert_eq!(*log.lock().unwrap(), ["a1", "b1", "a3", "b2"]);
        // A token whose queue ran dry and refills does not jump ahead of
        // one that has waited: b was served last, so c, then a, then b.
        let c: Arc<str> = Arc::from("c");
        queue.push(Arc::clone(&b), "b3".into(), job("b3"));
        queue.push(Arc::clone(&a), "a4".into(), job("a4"));
        queue.push(Arc::clone(&c), "c1".into(), job("c1"));
        for _ in 0..3 {
            (queue.pop().unwrap())();
        }
        assert_eq!(log.lock().unwrap()[4..], ["c1", "a4", "b3"]);
        queue.close();
        assert!(queue.pop().is_none(), "a closed queue hands out nothing");
    }

    fn one_thread_pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
    }

    /// A heavy job that never ends on its own (it waits for the light job)
    /// does not hold back a light job queued after it, nor does a light
    /// job's cost decide anything but its lane.
    #[test]
    fn a_running_heavy_job_does_not_hold_back_a_light_one() {
        let lanes = Lanes {
            concurrent_jobs: 1,
            heavy_job_units: 100,
        };
        let metrics = Arc::new(Metrics::default());
        let d = start_dispatchers(&lanes, one_thread_pool(), one_thread_pool(), &metrics).unwrap();
        let (light_done, light_seen) = std::sync::mpsc::channel();
        let (heavy_started, heavy_running) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let wait = std::time::Duration::from_secs(30);
        let owner: Arc<str> = Arc::from("heavy user");
        d.push(
            Arc::clone(&owner),
            "heavy".into(),
            100,
            Box::new(move || {
                heavy_started.send(()).unwrap();
                // Runs until the light job has finished (or the test gives up).
                let _ = released.recv_timeout(wait);
            }),
        );
        heavy_running
            .recv_timeout(wait)
            .expect("the heavy job starts");
        d.push(
            Arc::from("light user"),
            "light".into(),
            99,
            Box::new(move || light_done.send(()).unwrap()),
        );
        light_seen
            .recv_timeout(wait)
            .expect("the light job ran while the heavy one was running");
        // A heavy job queued behind the running one can be taken out
        // before it starts (a DELETE), from whichever lane it is in.
        d.push(owner, "heavy2".into(), 1000, Box::new(|| {}));
        assert!(d.remove("heavy2").is_some() && d.remove("heavy2").is_none());
        release.send(()).unwrap();
    }
}
