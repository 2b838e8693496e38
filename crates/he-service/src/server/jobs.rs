//! The job store: jobs by id, their state and progress, results until
//! they expire, and the waiting of clients for a job to finish.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::watch;

use super::error::{Error, Result};
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
/// chain add up.
#[derive(Debug, Default)]
pub(super) struct JobProgress {
    done: AtomicU64,
    total: AtomicU64,
}

impl enc_image::Progress for JobProgress {
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
    stored_bytes: usize,
}

/// The jobs, behind one mutex held only for map operations (never across
/// an await or a filter).
#[derive(Debug)]
pub(super) struct JobStore {
    inner: Mutex<Inner>,
    instance: String,
    retention: Duration,
    max_jobs: usize,
    max_stored_bytes: usize,
}

/// How the caller may wait for a job.
pub(super) enum Snapshot {
    Finished(JobStatus),
    Pending(JobStatus, watch::Receiver<bool>),
}

impl JobStore {
    pub(super) fn new(
        instance: String,
        retention: Duration,
        max_jobs: usize,
        max_stored_bytes: usize,
    ) -> Self {
        JobStore {
            inner: Mutex::default(),
            instance,
            retention,
            max_jobs,
            max_stored_bytes,
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
            "no job {id} on server instance {} (never created here, deleted, or expired)",
            self.instance
        ))
    }

    /// Refuses new work when the store is full.
    pub(super) fn check_room(&self) -> Result<()> {
        let g = self.lock();
        if g.jobs.len() >= self.max_jobs {
            return Err(Error::Busy(format!(
                "{} jobs are stored, at most {}; fetch or delete results, or retry later",
                g.jobs.len(),
                self.max_jobs
            )));
        }
        if g.stored_bytes >= self.max_stored_bytes {
            return Err(Error::Busy(format!(
                "{} bytes of results are stored, at most {}; fetch or delete results, or retry later",
                g.stored_bytes, self.max_stored_bytes
            )));
        }
        Ok(())
    }

    /// Creates a queued job; returns its id, status and progress sink.
    pub(super) fn create(&self, info: JobInfo) -> Result<(String, JobStatus, Arc<JobProgress>)> {
        self.check_room()?;
        let id = new_id()?;
        let progress = Arc::new(JobProgress::default());
        let (finished_tx, _) = watch::channel(false);
        let job = Job {
            info,
            created: Instant::now(),
            started: None,
            finished: None,
            phase: Phase::Queued,
            progress: Arc::clone(&progress),
            finished_tx,
        };
        let status = job.status(&id, &self.instance, Instant::now(), self.retention);
        self.lock().jobs.insert(id.clone(), job);
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

    /// Stores the outcome of a job and wakes its waiters.
    pub(super) fn finish(&self, id: &str, outcome: std::result::Result<Bytes, String>) {
        let mut g = self.lock();
        let Inner { jobs, stored_bytes } = &mut *g;
        if let Some(job) = jobs.get_mut(id) {
            job.finished = Some(Instant::now());
            job.phase = match outcome {
                Ok(b) => {
                    *stored_bytes += b.len();
                    Phase::Done(b)
                }
                Err(e) => Phase::Failed(e),
            };
            job.finished_tx.send_replace(true);
        }
    }

    /// Job `id` of `jobs` if it has not expired at `now`, or the 404.
    fn live<'a>(&self, jobs: &'a HashMap<String, Job>, id: &str, now: Instant) -> Result<&'a Job> {
        jobs.get(id)
            .filter(|j| !j.expired(now, self.retention))
            .ok_or_else(|| self.not_found(id))
    }

    /// The status of a job, and a receiver to wait on if it is not finished.
    pub(super) fn snapshot(&self, id: &str) -> Result<Snapshot> {
        let now = Instant::now();
        let g = self.lock();
        let job = self.live(&g.jobs, id, now)?;
        let status = job.status(id, &self.instance, now, self.retention);
        Ok(if status.state.is_finished() {
            Snapshot::Finished(status)
        } else {
            Snapshot::Pending(status, job.finished_tx.subscribe())
        })
    }

    /// The result of a finished job.
    pub(super) fn result(&self, id: &str) -> Result<Bytes> {
        let now = Instant::now();
        let g = self.lock();
        let job = self.live(&g.jobs, id, now)?;
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

    /// Deletes a finished job and its result.
    pub(super) fn delete(&self, id: &str) -> Result<()> {
        let mut g = self.lock();
        let Inner { jobs, stored_bytes } = &mut *g;
        let job = jobs.get(id).ok_or_else(|| self.not_found(id))?;
        if !job.state().is_finished() {
            return Err(Error::NotReady(format!(
                "job {id} is still in flight; it can be deleted once finished"
            )));
        }
        if let Some(Job {
            phase: Phase::Done(b),
            ..
        }) = jobs.remove(id)
        {
            *stored_bytes -= b.len();
        }
        Ok(())
    }

    /// Removes the jobs finished more than the retention time ago;
    /// returns how many.
    pub(super) fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut g = self.lock();
        let Inner { jobs, stored_bytes } = &mut *g;
        let before = jobs.len();
        jobs.retain(|_, j| {
            let keep = !j.expired(now, self.retention);
            if let (false, Phase::Done(b)) = (keep, &j.phase) {
                *stored_bytes -= b.len();
            }
            keep
        });
        before - jobs.len()
    }

    /// Jobs stored.
    pub(super) fn len(&self) -> usize {
        self.lock().jobs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn lifecycle_retention_and_accounting() {
        let store = JobStore::new(new_instance().unwrap(), Duration::from_millis(50), 2, 100);
        let (id, st, _) = store.create(info()).unwrap();
        assert_eq!(st.state, JobState::Queued);
        assert!(matches!(store.result(&id), Err(Error::NotReady(_))));
        assert!(matches!(store.delete(&id), Err(Error::NotReady(_))));
        store.start(&id);
        store.finish(&id, Ok(Bytes::from(vec![0u8; 100])));
        assert_eq!(store.result(&id).unwrap().len(), 100);
        // The store holds 100 bytes of results: full.
        assert!(matches!(store.check_room(), Err(Error::Busy(_))));
        let Snapshot::Finished(st) = store.snapshot(&id).unwrap() else {
            panic!("finished job reported pending")
        };
        assert_eq!((st.state, st.result_bytes), (JobState::Done, Some(100)));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(store.result(&id), Err(Error::NotFound(_))));
        assert_eq!(store.sweep(), 1);
        assert_eq!(store.len(), 0);
        store.check_room().unwrap();
        // Failed jobs report their error; deleting frees the slot.
        let (id, _, _) = store.create(info()).unwrap();
        store.finish(&id, Err("kernel too large".into()));
        assert!(
            store
                .result(&id)
                .unwrap_err()
                .to_string()
                .contains("kernel too large")
        );
        store.delete(&id).unwrap();
        assert!(matches!(store.delete(&id), Err(Error::NotFound(_))));
    }
}
