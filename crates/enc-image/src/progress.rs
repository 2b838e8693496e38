//! Progress reporting for long parallel work.

/// A phase of the work on an image, as a [`Progress`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Encrypting pixels, in ciphertexts.
    Encrypt,
    /// Sending an encrypted image, in bytes.
    Upload,
    /// Filtering ciphertexts (here or on a server), in ciphertexts.
    Filter,
    /// Receiving an encrypted image, in bytes.
    Download,
    /// Decrypting, in ciphertexts.
    Decrypt,
}

impl Phase {
    /// The phase's name in lower case: `"encrypt"`, `"upload"`, ...
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Phase::Encrypt => "encrypt",
            Phase::Upload => "upload",
            Phase::Filter => "filter",
            Phase::Download => "download",
            Phase::Decrypt => "decrypt",
        }
    }

    /// Whether the phase counts bytes (upload, download) rather than
    /// ciphertexts.
    #[must_use]
    pub fn counts_bytes(self) -> bool {
        matches!(self, Phase::Upload | Phase::Download)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Receives progress of long operations, from many threads at once. A front
/// end implements it to draw a progress bar.
pub trait Progress: Sync {
    /// A phase starts with `total` units of work.
    fn start(&self, _phase: Phase, _total: u64) {}
    /// `n` more units are done.
    fn advance(&self, _n: u64) {}
    /// `n` more units of `phase` are done. A pipelined job (tiles
    /// encrypted, filtered and decrypted at once) runs several phases at
    /// the same time: it calls [`start`](Self::start) once for each of its
    /// phases, in order, before any work, then reports every unit through
    /// this method, and calls [`finish`](Self::finish) once at the end.
    /// The default forwards to [`advance`](Self::advance), which suits a
    /// front end that sums all work; one that draws a bar per phase
    /// overrides it.
    fn advance_phase(&self, phase: Phase, n: u64) {
        let _ = phase;
        self.advance(n);
    }
    /// The phase is over.
    fn finish(&self) {}
    /// Whether the work should stop: long loops (the filters of
    /// `he-filter`) check it between ciphertexts and give up with a
    /// "cancelled" error. A server sets it when a client deletes a running
    /// job. Never, by default.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
