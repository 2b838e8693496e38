//! The binary job envelope a client uploads.
//!
//! `POST /v1/jobs` takes one body of type [`JOB_CONTENT_TYPE`], in the
//! toolkit's one framing ([`paillier::frame`]) with the magic `HEJOB\0\0\0`
//! and version [`ENVELOPE_VERSION`]; the body is three length-prefixed
//! parts (u32 LE length, then the bytes):
//!
//! ```text
//! magic     8 bytes   "HEJOB\0\0\0"
//! version   u16 LE    3 (ENVELOPE_VERSION)
//! length    u64 LE    bytes of the body
//! body      spec:  UTF-8 JSON {"filters": [...]} (JobSpec)
//!           key:   the public key (paillier's key file format)
//!           image: the encrypted image (enc-image's wire format)
//! digest    32 bytes, SHA-256 of everything before it
//! ```
//!
//! Nothing may follow the digest. The key and the image carry digests of
//! their own; the envelope's covers the filter spec and the framing, so
//! that a request corrupted in transit is refused, never run as another
//! chain. The spec is at most [`MAX_SPEC_BYTES`], the key at most
//! [`MAX_KEY_BYTES`]; the image is bounded by the server's body limit. An
//! envelope of another version (version 2 had its own framing) is refused
//! with both version numbers named. The result of a job is the encrypted
//! image alone ([`IMAGE_CONTENT_TYPE`](super::IMAGE_CONTENT_TYPE)).

use paillier::frame::{Format, FrameError, Parts, write_part};

use super::spec::JobSpec;

/// Content type of a job upload (the envelope above).
pub const JOB_CONTENT_TYPE: &str = "application/vnd.he-toolkit.job";
/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u16 = 3;
/// The envelope's framing: magic, version and name.
pub const ENVELOPE_FORMAT: Format<8> =
    Format::new(*b"HEJOB\0\0\0", ENVELOPE_VERSION, "job envelope");
/// Largest JSON spec in an envelope.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;
/// Largest public key in an envelope (paillier refuses larger key files).
pub const MAX_KEY_BYTES: usize = 64 * 1024;

/// Why a body is not an envelope this build reads. The server answers
/// [`EnvelopeError::Malformed`] with `400` and [`EnvelopeError::TooLarge`]
/// with `413`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Truncated, a bad magic, another version, bytes after the digest, a
    /// digest mismatch, or a spec that is not a valid [`JobSpec`].
    #[error("{0}")]
    Malformed(String),
    /// A part longer than its limit ([`MAX_SPEC_BYTES`], [`MAX_KEY_BYTES`]).
    #[error("{0}")]
    TooLarge(String),
}

impl From<FrameError> for EnvelopeError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { .. } | FrameError::PartTooLarge { .. } => {
                EnvelopeError::TooLarge(e.to_string())
            }
            FrameError::Magic { .. } => EnvelopeError::Malformed(format!(
                "{e}; send {JOB_CONTENT_TYPE} as docs/SERVICE.md describes"
            )),
            FrameError::Digest { .. } => {
                EnvelopeError::Malformed(format!("{e}: the upload was corrupted in transit"))
            }
            _ => EnvelopeError::Malformed(e.to_string()),
        }
    }
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

impl<'a> Envelope<'a> {
    /// Frames a job: `spec`, the public key bytes and the encrypted image bytes.
    #[must_use]
    pub fn encode(spec: &JobSpec, public_key: &[u8], image: &[u8]) -> Vec<u8> {
        // A JobSpec holds only numbers, strings and vectors: this cannot fail.
        let json = serde_json::to_vec(spec).unwrap_or_default();
        let mut w = ENVELOPE_FORMAT.writer(12 + json.len() + public_key.len() + image.len());
        for p in [&json[..], public_key, image] {
            write_part(w.body(), p);
        }
        w.finish()
    }

    /// Splits a body into its parts, checking the framing (magic, version,
    /// length, digest), every part's length and the JSON spec. Allocates
    /// nothing beyond the spec.
    pub fn decode(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        let inner = ENVELOPE_FORMAT.open(body, usize::MAX)?;
        let mut parts = Parts::new(inner, "job envelope");
        let json = parts.next("filter spec", MAX_SPEC_BYTES)?;
        let public_key = parts.next("public key", MAX_KEY_BYTES)?;
        let image = parts.next("encrypted image", usize::MAX)?;
        if !parts.rest().is_empty() {
            return Err(EnvelopeError::Malformed(format!(
                "{} bytes follow the envelope's parts",
                parts.rest().len()
            )));
        }
        let spec: JobSpec = serde_json::from_slice(json)
            .map_err(|e| EnvelopeError::Malformed(format!("filter spec: {e}")))?;
        Ok(Envelope {
            spec,
            public_key,
            image,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use he_filter::Filter;
    use paillier::frame::{DIGEST_LEN, sha256};

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
            assert!(matches!(e, EnvelopeError::Malformed(_)), "{n}: {e}");
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
        bad[8] = 2;
        let e = Envelope::decode(&bad).unwrap_err().to_string();
        assert!(e.contains('2') && e.contains('3'), "{e}");
        // A part longer than its limit, behind a recomputed digest.
        let mut bad = bytes.clone();
        bad[18..22].copy_from_slice(&u32::MAX.to_le_bytes());
        let n = bad.len() - DIGEST_LEN;
        let d = sha256(&bad[..n]);
        bad[n..].copy_from_slice(&d);
        assert!(matches!(
            Envelope::decode(&bad),
            Err(EnvelopeError::TooLarge(_))
        ));
        let bad = Envelope::encode(&spec(), b"key", b"img");
        let json_start = 22;
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
        let d = sha256(&broken[..n]);
        broken[n..].copy_from_slice(&d);
        assert!(
            Envelope::decode(&broken)
                .unwrap_err()
                .to_string()
                .contains("filter spec")
        );
    }
}
