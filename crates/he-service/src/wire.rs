//! The wire types of the API: the binary job envelope a client uploads,
//! and the JSON documents the server answers with.
//!
//! # The job envelope
//!
//! `POST /v1/jobs` takes one body of type [`JOB_CONTENT_TYPE`]:
//!
//! ```text
//! magic     8 bytes   "HEJOB\0\0\0"
//! version   u16 LE    2 (ENVELOPE_VERSION)
//! spec      u32 LE length, then that many bytes of UTF-8 JSON: {"filters": [...]} (JobSpec)
//! key       u32 LE length, then the public key (paillier's versioned key format)
//! image     u32 LE length, then the encrypted image (enc-image's wire format)
//! digest    32 bytes, SHA-256 of everything before it
//! ```
//!
//! Nothing may follow the digest. The key and the image carry digests of
//! their own; the envelope's covers the filter spec and the framing, so
//! that a request corrupted in transit is refused, never run as another
//! chain. The spec is at most [`MAX_SPEC_BYTES`],
//! the key at most [`MAX_KEY_BYTES`]; the image is bounded by the server's
//! body limit. Each part keeps its own versioned format, so the envelope
//! only frames them. The result of a job is the encrypted image alone
//! ([`IMAGE_CONTENT_TYPE`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::filters::Filter;

/// Content type of a job upload (the envelope above).
pub const JOB_CONTENT_TYPE: &str = "application/vnd.he-toolkit.job";
/// Content type of a result: an encrypted image in enc-image's wire format.
pub const IMAGE_CONTENT_TYPE: &str = "application/vnd.he-toolkit.image";
/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u16 = 2;
/// Bytes of the envelope's trailing SHA-256 digest.
const DIGEST_LEN: usize = 32;

fn digest(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
/// Largest JSON spec in an envelope.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;
/// Largest public key in an envelope (paillier refuses larger key files).
pub const MAX_KEY_BYTES: usize = 64 * 1024;

const MAGIC: &[u8; 8] = b"HEJOB\0\0\0";

/// What the client asks for: the filters to apply, in order, as
/// `{"filters": [{"filter": "gaussian", "k": 5, "sigma": null}, {"filter": "sharpen"}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The filter chain, applied first to last.
    pub filters: Vec<Filter>,
}

/// A decoded envelope: the spec, and the two binary parts, borrowed from
/// the body and not yet checked (the server loads them with limits).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<'a> {
    /// The filter chain.
    pub spec: JobSpec,
    /// The public key bytes.
    pub public_key: &'a [u8],
    /// The encrypted image bytes.
    pub image: &'a [u8],
}

fn part<'a>(bytes: &mut &'a [u8], name: &str, max: usize) -> Result<&'a [u8]> {
    let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
        return Err(Error::BadRequest(format!(
            "envelope truncated before the length of the {name}"
        )));
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > max {
        return Err(Error::TooLarge(format!(
            "the {name} is {len} bytes, at most {max} allowed"
        )));
    }
    if len > rest.len() {
        return Err(Error::BadRequest(format!(
            "envelope truncated: the {name} needs {len} bytes, {} remain",
            rest.len()
        )));
    }
    let (p, rest) = rest.split_at(len);
    *bytes = rest;
    Ok(p)
}

impl<'a> Envelope<'a> {
    /// Frames a job: `spec`, the public key bytes and the encrypted image bytes.
    #[must_use]
    pub fn encode(spec: &JobSpec, public_key: &[u8], image: &[u8]) -> Vec<u8> {
        // A JobSpec holds only numbers, strings and vectors: this cannot fail.
        let json = serde_json::to_vec(spec).unwrap_or_default();
        let mut out =
            Vec::with_capacity(22 + json.len() + public_key.len() + image.len() + DIGEST_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&ENVELOPE_VERSION.to_le_bytes());
        for p in [&json[..], public_key, image] {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        let d = digest(&out);
        out.extend_from_slice(&d);
        out
    }

    /// Splits a body into its parts, checking the magic, the version, every
    /// length and the JSON spec. Allocates nothing beyond the spec.
    pub fn decode(body: &'a [u8]) -> Result<Self> {
        let Some((magic, rest)) = body.split_first_chunk::<8>() else {
            return Err(Error::BadRequest(format!(
                "envelope truncated: {} bytes, the header alone is 10",
                body.len()
            )));
        };
        if magic != MAGIC {
            return Err(Error::BadRequest(format!(
                "not a job envelope (bad magic); send {JOB_CONTENT_TYPE} as documented"
            )));
        }
        let Some((version, mut rest)) = rest.split_first_chunk::<2>() else {
            return Err(Error::BadRequest(
                "envelope truncated before its version".into(),
            ));
        };
        let version = u16::from_le_bytes(*version);
        if version != ENVELOPE_VERSION {
            return Err(Error::BadRequest(format!(
                "envelope version {version}, this server reads version {ENVELOPE_VERSION}"
            )));
        }
        let json = part(&mut rest, "filter spec", MAX_SPEC_BYTES)?;
        let public_key = part(&mut rest, "public key", MAX_KEY_BYTES)?;
        let image = part(&mut rest, "encrypted image", usize::MAX)?;
        if rest.len() < DIGEST_LEN {
            return Err(Error::BadRequest(
                "envelope truncated before its digest".into(),
            ));
        }
        if rest.len() > DIGEST_LEN {
            return Err(Error::BadRequest(format!(
                "{} bytes follow the envelope's digest",
                rest.len() - DIGEST_LEN
            )));
        }
        if digest(&body[..body.len() - DIGEST_LEN]) != rest {
            return Err(Error::BadRequest(
                "envelope digest mismatch: the upload was corrupted in transit".into(),
            ));
        }
        let spec: JobSpec = serde_json::from_slice(json)
            .map_err(|e| Error::BadRequest(format!("filter spec: {e}")))?;
        Ok(Envelope {
            spec,
            public_key,
            image,
        })
    }
}

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
    /// What went wrong (state `failed`).
    pub error: Option<String>,
}

/// The JSON answer of `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` when the server answers.
    pub status: String,
    /// The server instance id, drawn at start (changes when it restarts).
    #[serde(default)]
    pub instance: String,
    /// Jobs accepted and not finished.
    pub jobs_in_flight: usize,
    /// The most jobs that may be in flight at once.
    pub queue_capacity: usize,
    /// Jobs in the store (in flight and finished, not expired).
    pub jobs_stored: usize,
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
}

/// The JSON answer of `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// `"he-service"`.
    pub service: String,
    /// The crate version.
    pub version: String,
    /// The server instance id, drawn at start (changes when it restarts).
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            filters: vec![Filter::Mean { k: 3 }],
        }
    }

    #[test]
    fn round_trip() {
        let bytes = Envelope::encode(&spec(), b"key", b"image bytes");
        let env = Envelope::decode(&bytes).unwrap();
        assert_eq!(env.spec, spec());
        assert_eq!(env.public_key, b"key");
        assert_eq!(env.image, b"image bytes");
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = Envelope::encode(&spec(), b"key", b"image bytes");
        for n in 0..bytes.len() {
            let e = Envelope::decode(&bytes[..n]).unwrap_err();
            assert!(matches!(e, Error::BadRequest(_)), "{n}: {e}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Envelope::decode(&longer).is_err());
    }

    #[test]
    fn refuses_bad_magic_version_lengths_and_json() {
        let bytes = Envelope::encode(&spec(), b"key", b"img");
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(
            Envelope::decode(&bad)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
        let mut bad = bytes.clone();
        bad[8] = 1;
        assert!(
            Envelope::decode(&bad)
                .unwrap_err()
                .to_string()
                .contains("envelope version 1, this server reads version 2")
        );
        let mut bad = bytes.clone();
        bad[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Envelope::decode(&bad), Err(Error::TooLarge(_))));
        let bad = Envelope::encode(&spec(), b"key", b"img");
        let json_start = 14;
        let mut broken = bad.clone();
        broken[json_start] = b'[';
        assert!(
            Envelope::decode(&broken)
                .unwrap_err()
                .to_string()
                .contains("digest mismatch")
        );
        // Behind a recomputed digest, the JSON itself is refused.
        let n = broken.len() - DIGEST_LEN;
        let d = digest(&broken[..n]);
        broken[n..].copy_from_slice(&d);
        assert!(
            Envelope::decode(&broken)
                .unwrap_err()
                .to_string()
                .contains("filter spec")
        );
    }
}
