//! Progress reporting for long parallel work.

/// Receives progress of long operations, from many threads at once. A front
/// end implements it to draw a progress bar.
pub trait Progress: Sync {
    /// A phase starts with `total` units of work.
    fn start(&self, _phase: &str, _total: u64) {}
    /// `n` more units are done.
    fn advance(&self, _n: u64) {}
    /// The phase is over.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
