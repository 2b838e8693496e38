//! Where a job is: its state and the status document the server sends
//! for it (`POST /v1/jobs`, `GET /v1/jobs/{id}`).

use serde::{Deserialize, Serialize};

use super::tiled::TilesStatus;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted and checked, waiting for a worker.
    Queued,
    /// Being filtered.
    Running,
    /// Finished: the result can be downloaded until it expires.
    Done,
    /// Finished with an error (see [`JobStatus::error`]).
    Failed,
}

impl JobState {
    /// Whether the job has finished, well or not.
    #[must_use]
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed)
    }
}

/// The JSON answer of `POST /v1/jobs` and `GET /v1/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job id (32 hex digits, unguessable).
    pub id: String,
    /// The id of the server instance that holds the job (16 hex digits,
    /// drawn when the server starts). Jobs live in memory: if the server
    /// answers `404` for this job with another instance id, it restarted
    /// and lost the job. Empty from a server that does not send it.
    #[serde(default)]
    pub instance: String,
    /// Where the job is.
    pub state: JobState,
    /// The labels of the filters, in order (they also go into the image's history).
    pub filters: Vec<String>,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Size of the key's n in bits.
    pub key_bits: u32,
    /// Ciphertexts uploaded.
    pub ciphertexts: u64,
    /// Units of filter work done (ciphertexts).
    pub progress_done: u64,
    /// Units of filter work known so far (grows by filter of the chain).
    pub progress_total: u64,
    /// Seconds the server spent loading and checking the upload.
    pub validate_seconds: f64,
    /// Seconds spent waiting for a worker (once started).
    pub queued_seconds: Option<f64>,
    /// Seconds the filter took (once finished).
    pub filter_seconds: Option<f64>,
    /// Size of the result in bytes (once done).
    pub result_bytes: Option<u64>,
    /// Seconds until the finished job and its result are deleted.
    pub expires_in_seconds: Option<u64>,
    /// What went wrong (state `failed`; for a tiled job, the last tile
    /// that failed).
    pub error: Option<String>,
    /// A tiled job's tiles and their states; absent for a single upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiles: Option<TilesStatus>,
}
