//! Progress of one job, phase by phase, from many threads without locks:
//! what the page's bars and ETAs are drawn from.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use enc_image::{Phase, Progress};
use serde::Serialize;

/// The phases of a job as the page shows them, in order.
pub(super) const PHASES: [&str; 6] = ["key", "encrypt", "upload", "server", "download", "decrypt"];

/// The key phase: a key of the chosen size is generated (once per size).
pub(super) const KEY: usize = 0;
const UPLOAD: usize = 2;
const SERVER: usize = 3;
const NONE: usize = usize::MAX;

#[derive(Debug, Default)]
struct Slot {
    done: AtomicU64,
    total: AtomicU64,
    /// Milliseconds after the job's start, plus one (0: not started).
    started: AtomicU64,
    /// Milliseconds after the job's start, plus one (0: not ended).
    ended: AtomicU64,
}

/// One job's progress and its cancel flag.
#[derive(Debug)]
pub(super) struct Meter {
    t0: Instant,
    slots: [Slot; 6],
    current: AtomicUsize,
    cancel: AtomicBool,
}

/// One phase as the page sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(super) struct PhaseView {
    /// Its name (see [`PHASES`]).
    pub(super) name: &'static str,
    /// Units done (ciphertexts, or bytes for upload and download).
    pub(super) done: u64,
    /// Units in all (0: not known yet).
    pub(super) total: u64,
    /// `"waiting"`, `"running"`, `"done"`, or `"stopped"` (ended before
    /// all its units were done: the job failed or was cancelled).
    pub(super) state: &'static str,
    /// Seconds spent so far (or in all, once done).
    pub(super) seconds: f64,
    /// Seconds still to go at the rate so far, while running.
    pub(super) eta: Option<f64>,
}

impl Meter {
    pub(super) fn new() -> Self {
        Meter {
            t0: Instant::now(),
            slots: Default::default(),
            current: AtomicUsize::new(NONE),
            cancel: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Phase `i` starts with `total` units and becomes the one
    /// [`Progress::advance`] counts. Phases may overlap (a tiled job runs
    /// them at once): a phase ends when [`Meter::end`] says so, when all
    /// its units are done, or when the job ends ([`Meter::end_all`]).
    pub(super) fn begin(&self, i: usize, total: u64) {
        self.current.store(i, Ordering::SeqCst);
        let s = &self.slots[i];
        s.total.store(total, Ordering::SeqCst);
        s.done.store(0, Ordering::SeqCst);
        s.ended.store(0, Ordering::SeqCst);
        // The server's work starts when the upload ends, not when the
        // first status that counts it comes back.
        let from = match self.slots[UPLOAD].ended.load(Ordering::SeqCst) {
            upload_end if i == SERVER && upload_end != 0 => upload_end,
            _ => self.now(),
        };
        let _ = s
            .started
            .compare_exchange(0, from, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// `n` more units of phase `i`; the phase ends when all are done.
    fn count(&self, i: usize, n: u64) {
        if let Some(s) = self.slots.get(i) {
            let done = s.done.fetch_add(n, Ordering::SeqCst) + n;
            let total = s.total.load(Ordering::SeqCst);
            if total > 0 && done >= total {
                self.end_slot(i);
            }
        }
    }

    /// Every phase started and not ended ends: the job is over.
    pub(super) fn end_all(&self) {
        self.current.store(NONE, Ordering::SeqCst);
        for (i, s) in self.slots.iter().enumerate() {
            if s.started.load(Ordering::SeqCst) != 0 {
                self.end_slot(i);
            }
        }
    }

    /// The current phase ends.
    pub(super) fn end(&self) {
        self.end_slot(self.current.swap(NONE, Ordering::SeqCst));
    }

    fn end_slot(&self, i: usize) {
        if let Some(s) = self.slots.get(i) {
            let _ = s
                .ended
                .compare_exchange(0, self.now(), Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// Phase `phase`, whose total was an estimate, is done with the units
    /// it counted: they become its total.
    pub(super) fn complete(&self, phase: Phase) {
        if let Some(i) = slot(phase) {
            let s = &self.slots[i];
            s.total
                .store(s.done.load(Ordering::SeqCst), Ordering::SeqCst);
            self.end_slot(i);
        }
    }

    /// Asks the job to stop.
    pub(super) fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Whether the job was asked to stop.
    pub(super) fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Seconds phase `i` took (or has taken so far).
    pub(super) fn seconds(&self, i: usize) -> f64 {
        let s = &self.slots[i];
        let (a, b) = (
            s.started.load(Ordering::SeqCst),
            s.ended.load(Ordering::SeqCst),
        );
        match (a, b) {
            (0, _) => 0.0,
            (a, 0) => (self.now().saturating_sub(a)) as f64 / 1000.0,
            (a, b) => b.saturating_sub(a) as f64 / 1000.0,
        }
    }

    /// Every phase, for the page.
    pub(super) fn view(&self) -> Vec<PhaseView> {
        PHASES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let s = &self.slots[i];
                let (done, total) = (
                    s.done.load(Ordering::SeqCst),
                    s.total.load(Ordering::SeqCst),
                );
                let started = s.started.load(Ordering::SeqCst) != 0;
                let ended = s.ended.load(Ordering::SeqCst) != 0;
                let seconds = self.seconds(i);
                let state = match (started, ended) {
                    (false, _) => "waiting",
                    (true, false) => "running",
                    (true, true) if total == 0 || done >= total => "done",
                    (true, true) => "stopped",
                };
                let eta = (state == "running" && done > 0 && total >= done)
                    .then(|| seconds * (total - done) as f64 / done as f64);
                PhaseView {
                    name,
                    done,
                    total,
                    state,
                    seconds,
                    eta,
                }
            })
            .collect()
    }
}

/// The slot of a phase of the client's work.
fn slot(phase: Phase) -> Option<usize> {
    Some(match phase {
        Phase::Encrypt => 1,
        Phase::Upload => UPLOAD,
        Phase::Filter => SERVER,
        Phase::Download => 4,
        Phase::Decrypt => 5,
        _ => return None,
    })
}

impl Progress for Meter {
    fn start(&self, phase: Phase, total: u64) {
        if let Some(i) = slot(phase) {
            self.begin(i, total);
        }
    }

    fn advance(&self, n: u64) {
        self.count(self.current.load(Ordering::SeqCst), n);
    }

    fn advance_phase(&self, phase: Phase, n: u64) {
        if let Some(i) = slot(phase) {
            self.count(i, n);
        }
    }

    fn finish(&self) {
        self.end();
    }

    fn cancelled(&self) -> bool {
        self.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_start_count_and_end_in_order() {
        let m = Meter::new();
        m.begin(KEY, 0);
        m.end();
        m.start(Phase::Encrypt, 10);
        m.advance(4);
        let v = m.view();
        assert_eq!(v[KEY].state, "done");
        assert_eq!((v[1].done, v[1].total, v[1].state), (4, 10, "running"));
        assert!(v[1].eta.is_some());
        assert_eq!(v[2].state, "waiting");
        m.advance(6);
        let v = m.view();
        assert_eq!((v[1].done, v[1].state, v[1].eta), (10, "done", None));
        m.start(Phase::Upload, 100);
        m.advance(50);
        m.finish(); // a cut upload: ended with half its bytes
        assert_eq!((m.view()[2].done, m.view()[2].state), (50, "stopped"));
        // A phase of unknown size ends when told.
        m.start(Phase::Download, 0);
        m.advance(7);
        assert_eq!(m.view()[4].state, "running");
        m.start(Phase::Decrypt, 9);
        m.advance(3);
        m.end_all();
        assert_eq!(m.view()[4].state, "done");
        assert_eq!((m.view()[5].done, m.view()[5].state), (3, "stopped"));
        assert_eq!(m.view()[3].state, "waiting", "never started");
        assert!(!m.cancelled());
        m.cancel();
        assert!(m.cancelled());
    }

    /// A pipelined job starts every phase first and counts each one's
    /// units apart: the phases run at once and each ends when all its
    /// units are done.
    #[test]
    fn overlapping_phases_count_apart() {
        let m = Meter::new();
        for (p, n) in [(Phase::Encrypt, 4), (Phase::Filter, 4), (Phase::Decrypt, 2)] {
            m.start(p, n);
        }
        m.advance_phase(Phase::Encrypt, 4);
        m.advance_phase(Phase::Filter, 1);
        let v = m.view();
        assert_eq!(
            (v[1].state, v[3].state, v[5].state),
            ("done", "running", "running")
        );
        assert_eq!((v[3].done, v[5].done), (1, 0));
        m.advance_phase(Phase::Filter, 3);
        m.advance_phase(Phase::Decrypt, 2);
        let v = m.view();
        assert_eq!((v[3].state, v[5].state), ("done", "done"));
    }
}
