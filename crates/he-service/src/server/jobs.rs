//! The job store: jobs by id, their state and progress, results until
//! they expire, and the waiting of clients for a job to finish.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::watch;

use super::error::{Error, Result};
use super::quota::Usage;
use super::tokens::Caller;
use crate::wire::{JobState, JobStatus};

/// `N` random bytes from the OS CSPRNG, as `2 N` lowercase hex digits.
fn random_hex<const N: usize>() -> Result<String> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A job id: 128 random bits from the OS CSPRNG, as 32 hex digits.
pub(super) fn new_id() -> Result<String> {
    random_hex::<16>()
}

/// A server instance id: 64 random bits, as 16 hex digits, drawn when
/// the service starts. Jobs live in memory, so a client that finds its
/// job unknown to a server with another instance id knows that the
/// server restarted and lost the job.
pub(super) fn new_instance() -> Result<String> {
    random_hex::<8>()
}

/// Whether `s` can be a job id (so that nothing else reaches the store or the logs).
pub(super) fn valid_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Filter progress of one job, updated from rayon threads. Phases of a
/// chain add up. Also carries the job's cancellation: the filter checks
/// it between ciphertexts.
#[derive(Debug, Default)]
pub(super) struct JobProgress {
    done: AtomicU64,
    total: AtomicU64,
    cancel: AtomicBool,
}

impl JobProgress {
    /// Asks the filter to stop.
    pub(super) fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl enc_image::Progress for JobProgress {
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
    fn start(&self, _phase: enc_image::Phase, total: u64) {
        self.total.fetch_add(total, Ordering::Relaxed);
    }
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}

/// What is known about an image when its job is created.
#[derive(Debug, Clone)]
pub(super) struct JobInfo {
    pub(super) labels: Vec<String>,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) key_bits: u32,
    pub(super) ciphertexts: u64,
    pub(super) validate: Duration,
}

#[derive(Debug)]
enum Phase {
    Queued,
    Running,
    Done(Bytes),
    Failed(String),
}

#[derive(Debug)]
struct Job {
    info: JobInfo,
    /// The token the job belongs to: other tokens see `404`.
    owner: Arc<str>,
    /// Bytes of the upload held until the filter ends.
    payload_bytes: usize,
    /// Deleted while in flight: the filter is being stopped, and the job
    /// disappears when it has.
    deleted: bool,
    created: Instant,
    started: Option<Instant>,
    finished: Option<Instant>,
    phase: Phase,
    progress: Arc<JobProgress>,
    finished_tx: watch::Sender<bool>,
}

impl Job {
    fn state(&self) -> JobState {
        match self.phase {
            Phase::Queued => JobState::Queued,
            Phase::Running => JobState::Running,
            Phase::Done(_) => JobState::Done,
            Phase::Failed(_) => JobState::Failed,
        }
    }

    fn expired(&self, now: Instant, retention: Duration) -> bool {
        self.finished
            .is_some_and(|f| now.duration_since(f) >= retention)
    }

    fn status(&self, id: &str, instance: &str, now: Instant, retention: Duration) -> JobStatus {
        let secs = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
        JobStatus {
            id: id.to_string(),
            instance: instance.to_string(),
            state: self.state(),
            filters: self.info.labels.clone(),
            width: self.info.width,
            height: self.info.height,
            key_bits: self.info.key_bits,
            ciphertexts: self.info.ciphertexts,
            progress_done: self.progress.done.load(Ordering::Relaxed),
            progress_total: self.progress.total.load(Ordering::Relaxed),
            validate_seconds: secs(self.info.validate),
            queued_seconds: self.started.map(|s| secs(s.duration_since(self.created))),
            filter_seconds: self
                .started
                .zip(self.finished)
                .map(|(s, f)| secs(f.duration_since(s))),
            result_bytes: match &self.phase {
                Phase::Done(b) => Some(b.len() as u64),
                _ => None,
            },
            expires_in_seconds: self
                .finished
                .map(|f| retention.saturating_sub(now.duration_since(f)).as_secs()),
            error: match &self.phase {
                Phase::Failed(e) => Some(e.clone()),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    jobs: HashMap<String, Job>,
    /// Bytes of finished results, all tokens.
    stored_bytes: usize,
    /// Bytes of uploads reserved and payloads in flight, all tokens.
    inflight_bytes: usize,
    /// Jobs admitted whose upload is being read (not yet in `jobs`).
    reserved: usize,
    usage: HashMap<Arc<str>, Usage>,
}

impl Inner {
    fn usage(&mut self, owner: &Arc<str>) -> &mut Usage {
        self.usage.entry(Arc::clone(owner)).or_default()
    }

    /// Forgets a token's entry once it holds nothing.
    fn tidy(&mut self, owner: &Arc<str>) {
        let now = Instant::now();
        if self.usage.get(owner).is_some_and(|u| u.is_idle(now)) {
            self.usage.remove(owner);
        }
    }

    /// Releases a job's payload: it is no longer in flight.
    fn release_payload(&mut self, owner: &Arc<str>, bytes: usize) {
        self.inflight_bytes -= bytes;
        let u = self.usage(owner);
        u.bytes -= bytes;
        u.in_flight -= 1;
    }

    /// Releases a removed job's place and result.
    fn release_job(&mut self, owner: &Arc<str>, result_bytes: usize) {
        self.stored_bytes -= result_bytes;
        let u = self.usage(owner);
        u.bytes -= result_bytes;
        u.jobs -= 1;
        self.tidy(owner);
    }
}

/// The byte limits of the store, server-wide.
#[derive(Debug, Clone, Copy)]
pub(super) struct StoreLimits {
    pub(super) retention: Duration,
    pub(super) max_jobs: usize,
    pub(super) max_stored_bytes: usize,
    pub(super) max_inflight_bytes: usize,
}

/// The jobs, behind one mutex held only for map operations (never across
/// an await or a filter), and what each token holds.
#[derive(Debug)]
pub(super) struct JobStore {
    inner: Mutex<Inner>,
    instance: String,
    retention: Duration,
    limits: StoreLimits,
}

/// How the caller may wait for a job.
pub(super) enum Snapshot {
    Finished(JobStatus),
    Pending(JobStatus, watch::Receiver<bool>),
}

/// What a `DELETE` did.
pub(super) enum Deleted {
    /// The finished job and its result are gone.
    Removed,
    /// The job is in flight: its filter is told to stop, and the job goes
    /// when it has.
    Cancelling,
}

/// A job admitted before its upload is read: its place and bytes are
/// held, and given back if it is dropped before [`JobStore::create`].
#[derive(Debug)]
pub(super) struct Reservation<'a> {
    store: &'a JobStore,
    owner: Arc<str>,
    bytes: usize,
    used: bool,
}

impl Reservation<'_> {
    /// Gives back what the upload did not use of the reservation.
    pub(super) fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            let mut g = self.store.lock();
            let d = self.bytes - bytes;
            g.inflight_bytes -= d;
            g.usage(&self.owner).bytes -= d;
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.used {
            return;
        }
        let mut g = self.store.lock();
        g.reserved -= 1;
        g.release_payload(&self.owner, self.bytes);
        g.usage(&self.owner).jobs -= 1;
        g.tidy(&self.owner);
    }
}

impl JobStore {
    pub(super) fn new(instance: String, limits: StoreLimits) -> Self {
        JobStore {
            inner: Mutex::default(),
            instance,
            retention: limits.retention,
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id of this server instance (see [`new_instance`]).
    pub(super) fn instance(&self) -> &str {
        &self.instance
    }

    fn not_found(&self, id: &str) -> Error {
        Error::NotFound(format!(
            "no job {id} on server instance {} (never created here, deleted, expired, \
             or another token's)",
            self.instance
        ))
    }

    /// Admits a new job of `caller` whose upload may take `bytes`: the
    /// token's quotas first (`429`), then the server's limits (`503`).
    pub(super) fn reserve(&self, caller: &Caller, bytes: usize) -> Result<Reservation<'_>> {
        let mut g = self.lock();
        g.usage(&caller.name).check_new_job(&caller.quota, bytes)?;
        let l = &self.limits;
        let jobs = g.jobs.len() + g.reserved;
        if jobs >= l.max_jobs {
            return Err(Error::Busy(format!(
                "{jobs} jobs are stored, at most {}; retry later",
                l.max_jobs
            )));
        }
        if g.stored_bytes >= l.max_stored_bytes {
            return Err(Error::Busy(format!(
                "{} bytes of results are stored, at most {}; retry later",
                g.stored_bytes, l.max_stored_bytes
            )));
        }
        if g.inflight_bytes.saturating_add(bytes) > l.max_inflight_bytes {
            return Err(Error::Busy(format!(
                "{} bytes of uploads are in flight and this one may take {bytes}, at most {} \
                 in all; retry later",
                g.inflight_bytes, l.max_inflight_bytes
            )));
        }
        g.reserved += 1;
        g.inflight_bytes += bytes;
        let u = g.usage(&caller.name);
        u.in_flight += 1;
        u.jobs += 1;
        u.bytes += bytes;
        Ok(Reservation {
            store: self,
            owner: Arc::clone(&caller.name),
            bytes,
            used: false,
        })
    }

    /// Charges `units` of estimated compute to `caller` (`429` beyond its
    /// hourly quota).
    pub(super) fn charge_compute(&self, caller: &Caller, units: u64) -> Result<()> {
        self.lock()
            .usage(&caller.name)
            .charge_compute(&caller.quota, units, Instant::now())
    }

    /// Creates a queued job from its reservation; returns its id, status
    /// and progress sink.
    pub(super) fn create(
        &self,
        mut reservation: Reservation<'_>,
        info: JobInfo,
    ) -> Result<(String, JobStatus, Arc<JobProgress>)> {
        let id = new_id()?;
        let progress = Arc::new(JobProgress::default());
        let (finished_tx, _) = watch::channel(false);
        let job = Job {
            info,
            owner: Arc::clone(&reservation.owner),
            payload_bytes: reservation.bytes,
            deleted: false,
            created: Instant::now(),
            started: None,
            finished: None,
            phase: Phase::Queued,
            progress: Arc::clone(&progress),
            finished_tx,
        };
        let status = job.status(&id, &self.instance, Instant::now(), self.retention);
        let mut g = self.lock();
        g.reserved -= 1;
        reservation.used = true;
        g.jobs.insert(id.clone(), job);
        Ok((id, status, progress))
    }

    /// Marks a job as started; returns how long it waited.
    pub(super) fn start(&self, id: &str) -> Duration {
        let mut g = self.lock();
        match g.jobs.get_mut(id) {
            Some(job) => {
                let now = Instant::now();
                job.started = Some(now);
                job.phase = Phase::Running;
                now.duration_since(job.created)
            }
            None => Duration::ZERO,
        }
    }

    /// Stores the outcome of a job and wakes its waiters; its payload is
    /// no longer held. A job deleted meanwhile goes.
    pub(super) fn finish(&self, id: &str, outcome: std::result::Result<Bytes, String>) {
        let mut g = self.lock();
        let Some(job) = g.jobs.get_mut(id) else {
            return;
        };
        let (owner, payload, deleted) = (Arc::clone(&job.owner), job.payload_bytes, job.deleted);
        job.payload_bytes = 0;
        job.finished = Some(Instant::now());
        job.finished_tx.send_replace(true);
        let result_bytes = match (&outcome, deleted) {
            (Ok(b), false) => b.len(),
            _ => 0,
        };
        job.phase = match outcome {
            Ok(b) if !deleted => Phase::Done(b),
            Ok(_) => Phase::Failed("deleted".into()),
            Err(e) => Phase::Failed(e),
        };
        g.release_payload(&owner, payload);
        if deleted {
            g.jobs.remove(id);
            g.release_job(&owner, 0);
        } else {
            g.stored_bytes += result_bytes;
            g.usage(&owner).bytes += result_bytes;
        }
    }

    /// Job `id` of `owner` if it has not expired at `now` nor been deleted, or the 404.
    fn live<'a>(
        &self,
        jobs: &'a HashMap<String, Job>,
        id: &str,
        owner: &str,
        now: Instant,
    ) -> Result<&'a Job> {
        jobs.get(id)
            .filter(|j| !j.expired(now, self.retention) && !j.deleted && &*j.owner == owner)
            .ok_or_else(|| self.not_found(id))
    }

    /// The status of a job, and a receiver to wait on if it is not finished.
    pub(super) fn snapshot(&self, id: &str, owner: &str) -> Result<Snapshot> {
        let now = Instant::now();
        let g = self.lock();
        let job = self.live(&g.jobs, id, owner, now)?;
        let status = job.status(id, &self.instance, now, self.retention);
        Ok(if status.state.is_finished() {
            Snapshot::Finished(status)
        } else {
            Snapshot::Pending(status, job.finished_tx.subscribe())
        })
    }

    /// The result of a finished job.
    pub(super) fn result(&self, id: &str, owner: &str) -> Result<Bytes> {
        let now = Instant::now();
        let g = self.lock();
        let job = self.live(&g.jobs, id, owner, now)?;
        match &job.phase {
            Phase::Done(b) => Ok(b.clone()),
            Phase::Failed(e) => Err(Error::Unprocessable(format!("job {id} failed: {e}"))),
            Phase::Queued | Phase::Running => Err(Error::NotReady(format!(
                "job {id} is {}; wait with GET /v1/jobs/{id}?wait=30",
                if matches!(job.phase, Phase::Queued) {
                    "queued"
                } else {
                    "running"
                }
            ))),
        }
    }

    /// Deletes a finished job and its result, or cancels one in flight.
    pub(super) fn delete(&self, id: &str, owner: &str) -> Result<Deleted> {
        let now = Instant::now();
        let mut g = self.lock();
        let job = self.live(&g.jobs, id, owner, now)?;
        if !job.state().is_finished() {
            job.progress.cancel();
            if let Some(j) = g.jobs.get_mut(id) {
                j.deleted = true;
            }
            return Ok(Deleted::Cancelling);
        }
        if let Some(job) = g.jobs.remove(id) {
            let bytes = match &job.phase {
                Phase::Done(b) => b.len(),
                _ => 0,
            };
            g.release_job(&job.owner, bytes);
        }
        Ok(Deleted::Removed)
    }

    /// Removes the jobs finished more than the retention time ago;
    /// returns how many.
    pub(super) fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut g = self.lock();
        let expired: Vec<String> = g
            .jobs
            .iter()
            .filter(|(_, j)| j.expired(now, self.retention))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            if let Some(job) = g.jobs.remove(id) {
                let bytes = match &job.phase {
                    Phase::Done(b) => b.len(),
                    _ => 0,
                };
                g.release_job(&job.owner, bytes);
            }
        }
        expired.len()
    }

    /// Bytes held now: (results stored, uploads and payloads in flight).
    pub(super) fn bytes(&self) -> (usize, usize) {
        let g = self.lock();
        (g.stored_bytes, g.inflight_bytes)
    }

    /// Jobs stored.
    pub(super) fn len(&self) -> usize {
        self.lock().jobs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::quota::Quota;

    fn info() -> JobInfo {
        JobInfo {
            labels: vec!["mean 3x3".into()],
            width: 4,
            height: 2,
            key_bits: 512,
            ciphertexts: 6,
            validate: Duration::from_millis(3),
        }
    }

    #[test]
    fn ids_are_random_hex() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert!(valid_id(&a) && valid_id(&b) && a != b);
        let (x, y) = (new_instance().unwrap(), new_instance().unwrap());
        assert!(x.len() == 16 && x != y, "{x} {y}");
        assert!(!valid_id("../etc/passwd") && !valid_id(&a.to_uppercase()));
    }

    fn caller(name: &str, quota: Quota) -> Caller {
        Caller {
            name: Arc::from(name),
            quota,
        }
    }

    fn limits(retention: Duration, max_jobs: usize, max_stored_bytes: usize) -> StoreLimits {
        StoreLimits {
            retention,
            max_jobs,
            max_stored_bytes,
            max_inflight_bytes: 1000,
        }
    }

    #[test]
    fn lifecycle_retention_and_accounting() {
        let store = JobStore::new(
            new_instance().unwrap(),
            limits(Duration::from_millis(50), 2, 100),
        );
        let alice = caller("alice", Quota::default());
        let (id, st, _) = store
            .create(store.reserve(&alice, 10).unwrap(), info())
            .unwrap();
        assert_eq!(st.state, JobState::Queued);
        assert_eq!(store.bytes(), (0, 10));
        assert!(matches!(
            store.result(&id, "alice"),
            Err(Error::NotReady(_))
        ));
        // Another token sees nothing.
        assert!(matches!(store.result(&id, "bob"), Err(Error::NotFound(_))));
        assert!(matches!(store.delete(&id, "bob"), Err(Error::NotFound(_))));
        store.start(&id);
        store.finish(&id, Ok(Bytes::from(vec![0u8; 100])));
        assert_eq!(store.bytes(), (100, 0));
        assert_eq!(store.result(&id, "alice").unwrap().len(), 100);
        // The store holds 100 bytes of results: full for everyone.
        assert!(matches!(store.reserve(&alice, 1), Err(Error::Busy(_))));
        let Snapshot::Finished(st) = store.snapshot(&id, "alice").unwrap() else {
            panic!("finished job reported pending")
        };
        assert_eq!((st.state, st.result_bytes), (JobState::Done, Some(100)));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(
            store.result(&id, "alice"),
            Err(Error::NotFound(_))
        ));
        assert_eq!(store.sweep(), 1);
        assert_eq!(store.len(), 0);
        assert_eq!(store.bytes(), (0, 0));
        // A reservation dropped before its job is created gives all back.
        drop(store.reserve(&alice, 500).unwrap());
        assert_eq!(store.bytes(), (0, 0));
        // Failed jobs report their error; deleting frees the slot.
        let (id, _, _) = store
            .create(store.reserve(&alice, 0).unwrap(), info())
            .unwrap();
        store.finish(&id, Err("kernel too large".into()));
        assert!(
            store
                .result(&id, "alice")
                .unwrap_err()
                .to_string()
                .contains("kernel too large")
        );
        assert!(matches!(store.delete(&id, "alice"), Ok(Deleted::Removed)));
        assert!(matches!(
            store.delete(&id, "alice"),
            Err(Error::NotFound(_))
        ));
        assert!(
            store.lock().usage.is_empty(),
            "usage of idle tokens is forgotten"
        );
    }

    #[test]
    fn deleting_a_job_in_flight_cancels_it_and_it_goes_when_stopped() {
        let store = JobStore::new(
            new_instance().unwrap(),
            limits(Duration::from_secs(60), 8, 1000),
        );
        let alice = caller("alice", Quota::default());
        let (id, _, progress) = store
            .create(store.reserve(&alice, 10).unwrap(), info())
            .unwrap();
        store.start(&id);
        assert!(matches!(
            store.delete(&id, "alice"),
            Ok(Deleted::Cancelling)
        ));
        assert!(enc_image::Progress::cancelled(&*progress));
        assert!(matches!(
            store.snapshot(&id, "alice"),
            Err(Error::NotFound(_))
        ));
        store.finish(&id, Err("cancelled".into()));
        assert_eq!((store.len(), store.bytes()), (0, (0, 0)));
    }

    #[test]
    fn one_token_is_held_to_its_quota_before_the_server_fills() {
        let store = JobStore::new(
            new_instance().unwrap(),
            limits(Duration::from_secs(60), 8, 1000),
        );
        let quota = Quota {
            stored_jobs: 3,
            ..Quota::default()
        };
        let (flood, other) = (caller("flood", quota), caller("other", quota));
        for _ in 0..3 {
            let (id, _, _) = store
                .create(store.reserve(&flood, 1).unwrap(), info())
                .unwrap();
            store.finish(&id, Ok(Bytes::from_static(b"x")));
        }
        assert!(matches!(
            store.reserve(&flood, 1),
            Err(Error::Quota {
                kind: super::super::error::QuotaKind::StoredJobs,
                ..
            })
        ));
        store.reserve(&other, 1).unwrap();
    }
}
