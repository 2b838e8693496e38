//! The binary job envelope a client uploads.
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
//! ([`IMAGE_CONTENT_TYPE`](super::IMAGE_CONTENT_TYPE)).

use super::spec::JobSpec;

/// Content type of a job upload (the envelope above).
pub const JOB_CONTENT_TYPE: &str = "application/vnd.he-toolkit.job";
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

fn part<'a>(bytes: &mut &'a [u8], name: &str, max: usize) -> Result<&'a [u8], EnvelopeError> {
    let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
        return Err(EnvelopeError::Malformed(format!(
            "envelope truncated before the length of the {name}"
        )));
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > max {
        return Err(EnvelopeError::TooLarge(format!(
            "the {name} is {len} bytes, at most {max} allowed"
        )));
    }
    if len > rest.len() {
        return Err(EnvelopeError::Malformed(format!(
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
    pub fn decode(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        let Some((magic, rest)) = body.split_first_chunk::<8>() else {
            return Err(EnvelopeError::Malformed(format!(
                "envelope truncated: {} bytes, the header alone is 10",
                body.len()
            )));
        };
        if magic != MAGIC {
            return Err(EnvelopeError::Malformed(format!(
                "not a job envelope (bad magic); send {JOB_CONTENT_TYPE} as documented"
            )));
        }
        let Some((version, mut rest)) = rest.split_first_chunk::<2>() else {
            return Err(EnvelopeError::Malformed(
                "envelope truncated before its version".into(),
            ));
        };
        let version = u16::from_le_bytes(*version);
        if version != ENVELOPE_VERSION {
            return Err(EnvelopeError::Malformed(format!(
                "envelope version {version}, this server reads version {ENVELOPE_VERSION}"
            )));
        }
        let json = part(&mut rest, "filter spec", MAX_SPEC_BYTES)?;
        let public_key = part(&mut rest, "public key", MAX_KEY_BYTES)?;
        let image = part(&mut rest, "encrypted image", usize::MAX)?;
        if rest.len() < DIGEST_LEN {
            return Err(EnvelopeError::Malformed(
                "envelope truncated before its digest".into(),
            ));
        }
        if rest.len() > DIGEST_LEN {
            return Err(EnvelopeError::Malformed(format!(
                "{} bytes follow the envelope's digest",
                rest.len() - DIGEST_LEN
            )));
        }
        if digest(&body[..body.len() - DIGEST_LEN]) != rest {
            return Err(EnvelopeError::Malformed(
                "envelope digest mismatch: the upload was corrupted in transit".into(),
            ));
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
        bad[8] = 1;
        assert!(
            Envelope::decode(&bad)
                .unwrap_err()
                .to_string()
                .contains("envelope version 1, this server reads version 2")
        );
        let mut bad = bytes.clone();
        bad[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Envelope::decode(&bad),
            Err(EnvelopeError::TooLarge(_))
        ));
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
