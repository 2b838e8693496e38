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
use super::tiles::{self, Slot, TileSpec, Tiles};
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

    /// Work done and work known so far.
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
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
    /// A tiled job's tiles (`phase` then stays `Queued`); `None` for a
    /// single upload.
    tiles: Option<Tiles>,
}

impl Job {
    fn state(&self) -> JobState {
        if let Some(t) = &self.tiles {
            return if t.all_done() {
                JobState::Done
            } else if t.slots.iter().any(|s| matches!(s, Slot::Running(_))) {
                JobState::Running
            } else {
                JobState::Queued
            };
        }
        match self.phase {
            Phase::Queued => JobState::Queued,
            Phase::Running => JobState::Running,
            Phase::Done(_) => JobState::Done,
            Phase::Failed(_) => JobState::Failed,
        }
    }

    /// A single upload expires `retention` after it finished; a tiled job
    /// `retention` after its last activity, when no tile is in flight.
    fn expired(&self, now: Instant, retention: Duration) -> bool {
        match &self.tiles {
            Some(t) => !t.in_flight() && now.duration_since(t.last_activity) >= retention,
            None => self
                .finished
                .is_some_and(|f| now.duration_since(f) >= retention),
        }
    }

    /// Bytes of results the job holds.
    fn result_bytes(&self) -> usize {
        match (&self.tiles, &self.phase) {
            (Some(t), _) => t.result_bytes(),
            (None, Phase::Done(b)) => b.len(),
            _ => 0,
        }
    }

    /// Seconds until the job expires, once it can.
    fn expires_in(&self, now: Instant, retention: Duration) -> Option<u64> {
        let since = match &self.tiles {
            Some(t) if t.in_flight() => return None,
            Some(t) => Some(t.last_activity),
            None => self.finished,
        };
        since.map(|f| retention.saturating_sub(now.duration_since(f)).as_secs())
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
            result_bytes: match (&self.tiles, &self.phase) {
                (Some(t), _) => Some(t.result_bytes() as u64),
                (None, Phase::Done(b)) => Some(b.len() as u64),
                _ => None,
            },
            expires_in_seconds: self.expires_in(now, retention),
            error: match (&self.tiles, &self.phase) {
                (Some(t), _) => t.last_error.clone(),
                (None, Phase::Failed(e)) => Some(e.clone()),
                _ => None,
            },
            tiles: self.tiles.as_ref().map(Tiles::status),
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
    /// A tiled job with tiles in flight: its filters are told to stop,
    /// the tiles listed are still queued (take them out and finish them
    /// as cancelled), and the job goes when the last tile has stopped.
    Tiles(Vec<usize>),
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

/// Gives back to `store` what an upload of `owner` did not use of the
/// `held` bytes it reserved, keeping `bytes`.
fn shrink_reserved(store: &JobStore, owner: &Arc<str>, held: &mut usize, bytes: usize) {
    if bytes < *held {
        let mut g = store.lock();
        let d = *held - bytes;
        g.inflight_bytes -= d;
        g.usage(owner).bytes -= d;
        *held = bytes;
    }
}

impl Reservation<'_> {
    /// Gives back what the upload did not use of the reservation.
    pub(super) fn shrink_to(&mut self, bytes: usize) {
        shrink_reserved(self.store, &self.owner, &mut self.bytes, bytes);
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
            tiles: None,
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
        if job.tiles.is_some() {
            return Err(tiles::tiled_result(id));
        }
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
        if let Some(t) = job.tiles.as_ref().filter(|t| t.in_flight()) {
            job.progress.cancel();
            let queued = (0..t.slots.len())
                .filter(|&i| matches!(t.slots[i], Slot::Queued(_)))
                .collect();
            if let Some(j) = g.jobs.get_mut(id) {
                j.deleted = true;
            }
            return Ok(Deleted::Tiles(queued));
        }
        if job.tiles.is_none() && !job.state().is_finished() {
            job.progress.cancel();
            if let Some(j) = g.jobs.get_mut(id) {
                j.deleted = true;
            }
            return Ok(Deleted::Cancelling);
        }
        if let Some(job) = g.jobs.remove(id) {
            g.release_job(&job.owner, job.result_bytes());
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
                g.release_job(&job.owner, job.result_bytes());
            }
        }
        expired.len()
    }

    /// Bytes held now: (results stored, uploads and payloads in flight).
    pub(super) fn bytes(&self) -> (usize, usize) {
        let g = self.lock();
        (g.stored_bytes, g.inflight_bytes)
    }

    /// Whether job `id` is still in the store (a deleted job stays until
    /// its work has stopped).
    pub(super) fn holds(&self, id: &str) -> bool {
        self.lock().jobs.contains_key(id)
    }

    /// Jobs stored.
    pub(super) fn len(&self) -> usize {
        self.lock().jobs.len()
    }
}

/// What a tile download found.
pub(super) enum TileFetch {
    /// The result, now freed on the server (the tile is `fetched`).
    Ready(Bytes),
    /// The tile is queued or running: wait on this for a change.
    Pending(watch::Receiver<bool>),
}

/// A tile upload admitted before its body is read: its bytes and place
/// in flight are held, and the tile goes back to its former state if
/// this is dropped before [`JobStore::queue_tile`].
#[derive(Debug)]
pub(super) struct TileReservation<'a> {
    store: &'a JobStore,
    owner: Arc<str>,
    id: String,
    index: usize,
    bytes: usize,
    used: bool,
    again: bool,
}

impl TileReservation<'_> {
    /// Whether the tile was filtered before (fetched or failed) and is
    /// sent again: its cost was not in the manifest's charge, so it is
    /// charged now.
    pub(super) fn is_again(&self) -> bool {
        self.again
    }

    /// Gives back what the upload did not use of the reservation.
    pub(super) fn shrink_to(&mut self, bytes: usize) {
        shrink_reserved(self.store, &self.owner, &mut self.bytes, bytes);
    }
}

impl Drop for TileReservation<'_> {
    fn drop(&mut self) {
        if self.used {
            return;
        }
        let mut g = self.store.lock();
        g.release_payload(&self.owner, self.bytes);
        if let Some(slot) = g
            .jobs
            .get_mut(&self.id)
            .and_then(|j| j.tiles.as_mut())
            .and_then(|t| t.slots.get_mut(self.index))
            && let Slot::Uploading(prev) = std::mem::replace(slot, Slot::Missing)
        {
            *slot = *prev;
        }
        g.settle_deleted(&self.id);
        g.tidy(&self.owner);
    }
}

impl Inner {
    /// Removes a deleted tiled job once none of its tiles is in flight.
    fn settle_deleted(&mut self, id: &str) {
        let gone = self
            .jobs
            .get(id)
            .is_some_and(|j| j.deleted && j.tiles.as_ref().is_some_and(|t| !t.in_flight()));
        if gone && let Some(job) = self.jobs.remove(id) {
            self.release_job(&job.owner, job.result_bytes());
        }
    }
}

impl JobStore {
    /// Creates a tiled job of `caller` whose tiles are all missing: it
    /// counts as one stored job until it expires or is deleted.
    pub(super) fn create_tiled(
        &self,
        caller: &Caller,
        info: JobInfo,
        spec: Arc<TileSpec>,
    ) -> Result<(String, JobStatus)> {
        let id = new_id()?;
        let (finished_tx, _) = watch::channel(false);
        let now = Instant::now();
        let job = Job {
            info,
            owner: Arc::clone(&caller.name),
            payload_bytes: 0,
            deleted: false,
            created: now,
            started: None,
            finished: None,
            phase: Phase::Queued,
            progress: Arc::new(JobProgress::default()),
            finished_tx,
            tiles: Some(Tiles::new(spec)),
        };
        let status = job.status(&id, &self.instance, now, self.retention);
        let mut g = self.lock();
        g.usage(&caller.name).check_stored_jobs(&caller.quota)?;
        let jobs = g.jobs.len() + g.reserved;
        if jobs >= self.limits.max_jobs {
            return Err(Error::Busy(format!(
                "{jobs} jobs are stored, at most {}; retry later",
                self.limits.max_jobs
            )));
        }
        g.usage(&caller.name).jobs += 1;
        g.jobs.insert(id.clone(), job);
        Ok((id, status))
    }

    /// What the manifest of tiled job `id` of `owner` fixed, and its tile
    /// `index`'s existence checked.
    pub(super) fn tile_spec(&self, id: &str, owner: &str, index: usize) -> Result<Arc<TileSpec>> {
        let g = self.lock();
        let job = self.live(&g.jobs, id, owner, Instant::now())?;
        let t = tiles_of(job, id)?;
        check_index(t, id, index)?;
        Ok(Arc::clone(&t.spec))
    }

    /// Admits an upload of tile `index` of job `id` that may take `bytes`:
    /// the tile must be missing, fetched or failed (else `409`), then the
    /// token's quotas (`429`) and the server's bytes in flight (`503`).
    pub(super) fn reserve_tile(
        &self,
        caller: &Caller,
        id: &str,
        index: usize,
        bytes: usize,
    ) -> Result<TileReservation<'_>> {
        let now = Instant::now();
        let mut g = self.lock();
        let job = self.live(&g.jobs, id, &caller.name, now)?;
        let t = tiles_of(job, id)?;
        check_index(t, id, index)?;
        let state = t.slots[index].state();
        let uploading = matches!(t.slots[index], Slot::Uploading(_));
        if !state.accepts_upload() || uploading {
            return Err(tiles::tile_taken(id, index, uploading, state));
        }
        let again = !matches!(t.slots[index], Slot::Missing);
        let u = g.usage(&caller.name);
        u.check_in_flight(&caller.quota)?;
        u.check_bytes(&caller.quota, bytes)?;
        // Tile results are stored results: the server-wide bound holds
        // for them as for whole jobs.
        if g.stored_bytes >= self.limits.max_stored_bytes {
            return Err(Error::Busy(format!(
                "{} bytes of results are stored, at most {}; retry later",
                g.stored_bytes, self.limits.max_stored_bytes
            )));
        }
        if g.inflight_bytes.saturating_add(bytes) > self.limits.max_inflight_bytes {
            return Err(Error::Busy(format!(
                "{} bytes of uploads are in flight and this tile may take {bytes}, at most {} \
                 in all; retry later",
                g.inflight_bytes, self.limits.max_inflight_bytes
            )));
        }
        g.inflight_bytes += bytes;
        let u = g.usage(&caller.name);
        u.in_flight += 1;
        u.bytes += bytes;
        if let Some(t) = g.jobs.get_mut(id).and_then(|j| j.tiles.as_mut()) {
            let prev = std::mem::replace(&mut t.slots[index], Slot::Missing);
            t.slots[index] = Slot::Uploading(Box::new(prev));
            t.last_activity = now;
        }
        Ok(TileReservation {
            store: self,
            owner: Arc::clone(&caller.name),
            id: id.to_string(),
            index,
            bytes,
            used: false,
            again,
        })
    }

    /// Queues a checked tile upload; returns the job's status and its
    /// progress sink. A job deleted meanwhile is `404`.
    pub(super) fn queue_tile(
        &self,
        mut reservation: TileReservation<'_>,
    ) -> Result<(JobStatus, Arc<JobProgress>)> {
        let now = Instant::now();
        let (id, index) = (reservation.id.clone(), reservation.index);
        let mut g = self.lock();
        let job = match g.jobs.get_mut(&id) {
            Some(j) if !j.deleted => j,
            _ => {
                drop(g);
                return Err(self.not_found(&id));
            }
        };
        if let Some(t) = job.tiles.as_mut() {
            t.slots[index] = Slot::Queued(reservation.bytes);
            t.last_activity = now;
        }
        reservation.used = true;
        job.finished_tx.send_replace(false);
        let status = job.status(&id, &self.instance, now, self.retention);
        Ok((status, Arc::clone(&job.progress)))
    }

    /// Marks tile `index` of job `id` as being filtered.
    pub(super) fn start_tile(&self, id: &str, index: usize) {
        let mut g = self.lock();
        if let Some(job) = g.jobs.get_mut(id) {
            if let Some(slot) = job.tiles.as_mut().and_then(|t| t.slots.get_mut(index))
                && let Slot::Queued(b) = *slot
            {
                *slot = Slot::Running(b);
            }
            job.finished_tx.send_replace(false);
        }
    }

    /// Stores the outcome of tile `index` of job `id` and wakes its
    /// waiters; its payload is no longer held. A deleted job goes once its
    /// last tile in flight has stopped.
    pub(super) fn finish_tile(
        &self,
        id: &str,
        index: usize,
        outcome: std::result::Result<Bytes, String>,
    ) {
        let now = Instant::now();
        let mut g = self.lock();
        let Some(job) = g.jobs.get_mut(id) else {
            return;
        };
        let (owner, deleted) = (Arc::clone(&job.owner), job.deleted);
        let Some(t) = job.tiles.as_mut() else {
            return;
        };
        let payload = match t.slots.get(index) {
            Some(Slot::Queued(b) | Slot::Running(b)) => *b,
            _ => return,
        };
        let mut stored = 0;
        t.slots[index] = match outcome {
            Ok(b) if !deleted => {
                stored = b.len();
                Slot::Done(b)
            }
            Ok(_) => Slot::Failed,
            Err(e) => {
                t.last_error = Some(format!("tile {index}: {e}"));
                Slot::Failed
            }
        };
        t.last_activity = now;
        let all_done = t.all_done();
        job.finished_tx.send_replace(all_done);
        g.release_payload(&owner, payload);
        g.stored_bytes += stored;
        g.usage(&owner).bytes += stored;
        g.settle_deleted(id);
    }

    /// Downloads tile `index` of job `id`: its result, freed on the server
    /// at once (the tile becomes `fetched`), or a receiver to wait on while
    /// it is queued or running. A missing tile is `409`, a fetched one
    /// `410`, a failed one `422`.
    pub(super) fn tile_result(&self, id: &str, owner: &str, index: usize) -> Result<TileFetch> {
        let now = Instant::now();
        let mut g = self.lock();
        let job = self.live(&g.jobs, id, owner, now)?;
        let t = tiles_of(job, id)?;
        check_index(t, id, index)?;
        match &t.slots[index] {
            Slot::Done(_) => {}
            Slot::Queued(_) | Slot::Running(_) => {
                return Ok(TileFetch::Pending(job.finished_tx.subscribe()));
            }
            slot => {
                return Err(tiles::no_tile_result(
                    id,
                    index,
                    slot.state(),
                    t.last_error.as_deref(),
                ));
            }
        }
        let owner = Arc::clone(&job.owner);
        let Some(t) = g.jobs.get_mut(id).and_then(|j| j.tiles.as_mut()) else {
            return Err(self.not_found(id));
        };
        let Slot::Done(b) = std::mem::replace(&mut t.slots[index], Slot::Fetched) else {
            return Err(self.not_found(id));
        };
        t.last_activity = now;
        g.stored_bytes -= b.len();
        g.usage(&owner).bytes -= b.len();
        Ok(TileFetch::Ready(b))
    }
}

/// The tiles of `job`, or `400` for a single upload.
fn tiles_of<'a>(job: &'a Job, id: &str) -> Result<&'a Tiles> {
    job.tiles.as_ref().ok_or_else(|| tiles::not_tiled(id))
}

/// `404` for a tile beyond the plan.
fn check_index(t: &Tiles, id: &str, index: usize) -> Result<()> {
    if index < t.slots.len() {
        Ok(())
    } else {
        Err(tiles::no_such_tile(id, t.slots.len(), index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::quota::Quota;
    use crate::wire::TileState;

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
            limits(Duration::from_millis(500), 2, 100),
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
        std::thread::sleep(Duration::from_millis(600));
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

    fn tile_spec() -> Arc<TileSpec> {
        use crate::wire::TiledManifest;
        let kp = paillier::Keypair::generate_insecure_for_tests(512).unwrap();
        let pk = kp.public_key().clone();
        let chain = vec![he_filter::Filter::Mean { k: 3 }];
        let opts = he_filter::encrypt_options(&chain).unwrap();
        let plan = enc_image::TilePlan::new(8, 3, 2, 1).unwrap();
        let manifest =
            TiledManifest::new(chain.clone(), enc_image::ColorLayout::Luma8, plan, &opts);
        let meta = |i| manifest.tile_meta(i, pk.bits(), pk.fingerprint()).unwrap();
        let (full, last) = (meta(0), meta(1));
        Arc::new(TileSpec {
            pk,
            chain,
            manifest,
            full,
            last,
        })
    }

    #[test]
    fn tiles_move_through_their_states_and_the_job_expires_from_its_last_activity() {
        let store = JobStore::new(
            new_instance().unwrap(),
            limits(Duration::from_secs(2), 8, 1000),
        );
        let alice = caller("alice", Quota::default());
        let (id, st) = store.create_tiled(&alice, info(), tile_spec()).unwrap();
        let states = |store: &JobStore| {
            let (Snapshot::Finished(st) | Snapshot::Pending(st, _)) =
                store.snapshot(&id, "alice").unwrap();
            st.tiles.unwrap().states
        };
        assert_eq!(st.tiles.unwrap().states, [TileState::Missing; 2]);
        assert!(matches!(
            store.tile_result(&id, "alice", 0),
            Err(Error::NotReady(_))
        ));
        assert!(matches!(
            store.tile_result(&id, "alice", 2),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            store.reserve_tile(&alice, &id, 0, 1).map(|_| ()),
            Ok(())
        ));
        // A dropped reservation gives the tile and its bytes back.
        assert_eq!(
            (states(&store)[0], store.bytes()),
            (TileState::Missing, (0, 0))
        );
        let r = store.reserve_tile(&alice, &id, 0, 10).unwrap();
        assert!(matches!(
            store.reserve_tile(&alice, &id, 0, 10),
            Err(Error::NotReady(_))
        ));
        let bob = caller("bob", Quota::default());
        assert!(matches!(
            store.reserve_tile(&bob, &id, 1, 10),
            Err(Error::NotFound(_))
        ));
        store.queue_tile(r).unwrap();
        assert_eq!(
            (states(&store)[0], store.bytes()),
            (TileState::Queued, (0, 10))
        );
        assert!(matches!(
            store.tile_result(&id, "alice", 0),
            Ok(TileFetch::Pending(_))
        ));
        store.start_tile(&id, 0);
        assert_eq!(states(&store)[0], TileState::Running);
        store.finish_tile(&id, 0, Ok(Bytes::from(vec![0u8; 30])));
        assert_eq!(
            (states(&store)[0], store.bytes()),
            (TileState::Done, (30, 0))
        );
        // Downloaded once, then freed.
        assert!(matches!(
            store.tile_result(&id, "bob", 0),
            Err(Error::NotFound(_))
        ));
        let Ok(TileFetch::Ready(b)) = store.tile_result(&id, "alice", 0) else {
            panic!("tile 0 is done")
        };
        assert_eq!((b.len(), store.bytes()), (30, (0, 0)));
        assert!(matches!(
            store.tile_result(&id, "alice", 0),
            Err(Error::Gone(_))
        ));
        assert_eq!(states(&store), [TileState::Fetched, TileState::Missing]);
        // Activity keeps the job: idle 1.2 s twice, each under the 2 s
        // retention, then 2.2 s.
        std::thread::sleep(Duration::from_millis(1200));
        drop(store.reserve_tile(&alice, &id, 1, 1).unwrap());
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(store.sweep(), 0);
        states(&store);
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(store.sweep(), 1);
        assert!(matches!(
            store.snapshot(&id, "alice"),
            Err(Error::NotFound(_))
        ));
        assert!(store.lock().usage.is_empty());
    }

    #[test]
    fn deleting_a_tiled_job_waits_for_its_running_tile() {
        let store = JobStore::new(
            new_instance().unwrap(),
            limits(Duration::from_secs(60), 8, 1000),
        );
        let alice = caller("alice", Quota::default());
        let (id, _) = store.create_tiled(&alice, info(), tile_spec()).unwrap();
        let (_, progress) = store
            .queue_tile(store.reserve_tile(&alice, &id, 0, 10).unwrap())
            .unwrap();
        store
            .queue_tile(store.reserve_tile(&alice, &id, 1, 5).unwrap())
            .unwrap();
        store.start_tile(&id, 0);
        let Ok(Deleted::Tiles(queued)) = store.delete(&id, "alice") else {
            panic!("tiles in flight")
        };
        assert_eq!(queued, [1]);
        assert!(enc_image::Progress::cancelled(&*progress));
        assert!(matches!(
            store.snapshot(&id, "alice"),
            Err(Error::NotFound(_))
        ));
        store.finish_tile(&id, 1, Err("cancelled".into()));
        assert!(store.holds(&id));
        store.finish_tile(&id, 0, Ok(Bytes::from_static(b"late")));
        assert!(!store.holds(&id));
        assert_eq!(store.bytes(), (0, 0));
        assert!(store.lock().usage.is_empty());
    }
}
