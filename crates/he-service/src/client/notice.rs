//! What the client does by itself to get past a fault, reported to the
//! caller.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Something the client did by itself to get past a fault, reported to
/// the callback of [`Client::on_notice`](super::Client::on_notice) (by
/// default, on standard error).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The server restarted and no longer knows the job: it is submitted
    /// again.
    JobLost {
        /// The lost job's id.
        job: String,
        /// The instance that had accepted it.
        before: String,
        /// The instance answering now.
        after: String,
        /// The submission about to be made (2 for the first resubmission).
        attempt: u32,
        /// Submissions allowed in all.
        attempts: u32,
    },
    /// A request failed on the way (refused, reset, cut, timed out) and is
    /// tried again after a pause.
    Retry {
        /// What was being done ("uploading the job", ...).
        doing: String,
        /// What went wrong.
        error: String,
        /// The retry about to be made, from 1.
        retry: u32,
        /// The most retries allowed, or `None` for "until the deadline".
        limit: Option<u32>,
        /// The pause before it.
        pause: Duration,
    },
    /// A tiled job the server no longer knows (it expired, or the server
    /// restarted): a new job is created from the same manifest, and the
    /// tiles not yet decrypted are uploaded to it.
    TiledJobRecreated {
        /// The job that is gone.
        old: String,
        /// The new job.
        new: String,
        /// The server's words about the old one.
        why: String,
    },
    /// A tile is uploaded again: its result was freed on the server
    /// before it arrived whole (a download cut midway), or its upload was
    /// lost.
    TileUploadedAgain {
        /// The job.
        job: String,
        /// The tile.
        tile: usize,
        /// The server's words.
        why: String,
    },
    /// The result was fetched, but deleting it on the server failed: it
    /// stays there until it expires.
    NotDeleted {
        /// The job's id.
        job: String,
        /// What went wrong.
        error: String,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::JobLost {
                job,
                before,
                after,
                attempt,
                attempts,
            } => write!(
                f,
                "server restarted (instance {before} -> {after}), job {job} lost; \
                 resubmitting, attempt {attempt} of {attempts}"
            ),
            Notice::Retry {
                doing,
                error,
                retry,
                limit,
                pause,
            } => {
                write!(
                    f,
                    "{doing}: {error}; retrying in {:.2} s (",
                    pause.as_secs_f64()
                )?;
                match limit {
                    Some(n) => write!(f, "retry {retry} of {n})"),
                    None => write!(f, "retry {retry}, until the deadline)"),
                }
            }
            Notice::TiledJobRecreated { old, new, why } => write!(
                f,
                "tiled job {old} is gone ({why}); continuing as job {new}, uploading the tiles \
                 not yet decrypted"
            ),
            Notice::TileUploadedAgain { job, tile, why } => {
                write!(f, "uploading tile {tile} of job {job} again: {why}")
            }
            Notice::NotDeleted { job, error } => write!(
                f,
                "the result of job {job} stays on the server until it expires: {error}"
            ),
        }
    }
}

/// Where notices go.
pub(super) type NoticeFn = Arc<dyn Fn(&Notice) + Send + Sync>;
