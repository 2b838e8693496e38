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
            Notice::NotDeleted { job, error } => write!(
                f,
                "the result of job {job} stays on the server until it expires: {error}"
            ),
        }
    }
}

/// Where notices go.
pub(super) type NoticeFn = Arc<dyn Fn(&Notice) + Send + Sync>;
