//! The fixed points of the HTTP API besides the job envelope: the default
//! port, the content type of results, and the JSON documents the server
//! answers with (health, info, errors).

use serde::{Deserialize, Serialize};

/// The port the server listens on by default (on 127.0.0.1).
pub const DEFAULT_PORT: u16 = 8787;

/// Content type of a result: an encrypted image in enc-image's wire format.
pub const IMAGE_CONTENT_TYPE: &str = "application/vnd.he-toolkit.image";

/// The JSON answer of `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` when the server answers.
    pub status: String,
    /// The instance id of the jobs this server holds, which job statuses
    /// and `404`s carry: with the memory store, the process's, drawn at
    /// start (it changes when the server restarts, and the jobs are gone);
    /// with Redis, the store's, the same on every node (it changes only if
    /// Redis loses its data).
    #[serde(default)]
    pub instance: String,
    /// This process's id, drawn at start: with Redis, the consumer name of
    /// a worker; with the memory store, the same as `instance`.
    #[serde(default)]
    pub node: String,
    /// Jobs accepted and not finished.
    pub jobs_in_flight: usize,
    /// The most jobs that may be in flight at once.
    pub queue_capacity: usize,
    /// Jobs in the store (in flight and finished, not expired).
    pub jobs_stored: usize,
    /// Bytes of finished results stored, all tokens together.
    #[serde(default)]
    pub stored_bytes: usize,
    /// Bytes of uploads and payloads in flight, all tokens together.
    #[serde(default)]
    pub inflight_bytes: usize,
    /// Where jobs are kept: `memory` or `redis`.
    #[serde(default = "memory")]
    pub store: String,
    /// What this process does: `all`, `api` or `worker`.
    #[serde(default = "all")]
    pub role: String,
    /// Whether the store answers (always true in memory); when false the
    /// answer is `503` and job requests get `503` too.
    #[serde(default = "yes")]
    pub store_reachable: bool,
}

fn memory() -> String {
    "memory".into()
}

fn all() -> String {
    "all".into()
}

fn yes() -> bool {
    true
}

/// One filter the server supports, in `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterInfo {
    /// The `name` to put in the spec.
    pub name: String,
    /// An example of its JSON in a spec, with its parameters.
    pub example: serde_json::Value,
    /// What it does.
    pub description: String,
}

/// The limits a request must respect, in `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsInfo {
    /// Largest request body (the envelope) in bytes.
    pub max_body_bytes: usize,
    /// Largest image width in pixels.
    pub max_width: usize,
    /// Largest image height in pixels.
    pub max_height: usize,
    /// Largest number of ciphertexts in an image.
    pub max_ciphertexts: usize,
    /// Most filters in one chain.
    pub max_chain_len: usize,
    /// Smallest accepted key size in bits.
    pub min_key_bits: u32,
    /// Largest accepted key size in bits.
    pub max_key_bits: u32,
    /// Largest kernel side.
    pub max_kernel_size: usize,
    /// Largest absolute kernel weight.
    pub max_weight: i64,
    /// Most jobs in flight (accepted, not finished) before `503`.
    pub queue_capacity: usize,
    /// Longest `?wait=` a status request may ask for, in seconds.
    pub max_wait_seconds: u64,
    /// The largest estimated cost of one job, in cost units (about 6
    /// core-seconds each); a job above it gets `422` with its estimate.
    #[serde(default)]
    pub max_job_cost_units: u64,
}

/// The JSON answer of `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// `"he-service"`.
    pub service: String,
    /// The crate version.
    pub version: String,
    /// The instance id of the jobs this server holds, as in
    /// [`Health::instance`].
    #[serde(default)]
    pub instance: String,
    /// Content type of `POST /v1/jobs`.
    pub job_content_type: String,
    /// Content type of results.
    pub result_content_type: String,
    /// Envelope version read.
    pub envelope_version: u16,
    /// Encrypted-image format version read and written.
    pub image_format_version: u16,
    /// The filters a spec may name.
    pub filters: Vec<FilterInfo>,
    /// The limits.
    pub limits: LimitsInfo,
    /// Seconds a finished job and its result are kept.
    pub retention_seconds: u64,
    /// Whether the server takes tiled jobs (every server of this
    /// version does; an older one with the Redis store says `false`:
    /// send the image in one upload).
    #[serde(default = "yes")]
    pub tiled_jobs: bool,
}

/// The JSON body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong, in words.
    pub error: String,
    /// The id of the server instance that answered (every error the
    /// server itself produces has it). A `404` for a job with another
    /// instance id than the job's means that the server restarted and
    /// lost the job; with the same id, the job expired or was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// On a `429`: which per-token quota is reached (`concurrent_jobs`,
    /// `stored_jobs`, `stored_bytes` or `compute_per_hour`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    /// On a `429`: seconds after which a retry may succeed (also in the
    /// `Retry-After` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// On a `422` for a job over budget: its estimated cost, in units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_units: Option<u64>,
    /// On a `422` for a job over budget: the per-job budget, in units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_units: Option<u64>,
}

impl ErrorBody {
    /// A body with only a message.
    #[must_use]
    pub fn new(error: String) -> Self {
        ErrorBody {
            error,
            instance: None,
            quota: None,
            retry_after_seconds: None,
            estimate_units: None,
            budget_units: None,
        }
    }
}
