//! The wire format of encrypted images, and loading with limits.
//!
//! ```text
//! magic    8 bytes  "HEIMAGE\0"
//! version  u16 LE   1
//! length   u32 LE   length of the header
//! header   bincode 2 (serde) of ImageMeta: dimensions, layout, packing,
//!          border, scale, value range, history, key size and fingerprint
//! payload  every ciphertext as exactly ceil(2 * key_bits / 8) big-endian bytes
//! digest   32 bytes, SHA-256 of everything before it
//! ```
//!
//! Loading never trusts the bytes: the size is checked against [`Limits`]
//! before anything is allocated, the digest is checked before anything is
//! decoded (so corruption in transit or on disk is an error, never a
//! silently different image), the header is decoded with a size limit,
//! the packing is checked against the dimensions and the key, the payload
//! length must match exactly, and every ciphertext must lie in `[1, n^2)`
//! and be coprime to n for the key given.

use paillier::{Ciphertext, Integer, PublicKey};
use rayon::prelude::*;
use rug::integer::Order;

use crate::error::{Error, Result};
use crate::image::EncryptedImage;
use crate::meta::{ImageMeta, Packing};

const MAGIC: &[u8; 8] = b"HEIMAGE\0";
/// The format version this build writes and reads (2 added the digest).
pub const FORMAT_VERSION: u16 = 2;
/// Bytes of the trailing SHA-256 digest.
const DIGEST_LEN: usize = 32;
/// Magic, version and header length.
const PREFIX_LEN: usize = 14;

fn digest(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
const HEADER_LIMIT: usize = 64 * 1024;

/// Limits applied when loading an encrypted image from bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest width in pixels.
    pub max_width: usize,
    /// Largest height in pixels.
    pub max_height: usize,
    /// Largest number of ciphertexts.
    pub max_ciphertexts: usize,
    /// Largest encoded size in bytes.
    pub max_bytes: usize,
}

impl Default for Limits {
    /// 16384 x 16384 pixels, 2^20 ciphertexts, 512 MiB.
    fn default() -> Self {
        Limits {
            max_width: 16384,
            max_height: 16384,
            max_ciphertexts: 1 << 20,
            max_bytes: 512 << 20,
        }
    }
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<HEADER_LIMIT>()
}

fn short(fp: &[u8; 32]) -> String {
    fp[..6].iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn check_fingerprint(meta: &ImageMeta, pk: &PublicKey) -> Result<()> {
    let fp = pk.fingerprint();
    if meta.key_fingerprint != fp || meta.key_bits != pk.bits() {
        return Err(Error::WrongKey {
            found: short(&meta.key_fingerprint),
            expected: short(&fp),
        });
    }
    Ok(())
}

/// Bytes of one ciphertext on the wire for a key of `key_bits` bits.
#[must_use]
pub fn ciphertext_width(key_bits: u32) -> usize {
    (2 * key_bits as usize).div_ceil(8)
}

impl EncryptedImage {
    /// Encodes the image in the wire format.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let meta = self.meta();
        // ImageMeta holds only integers, strings and enums: encoding cannot fail.
        let header = bincode::serde::encode_to_vec(meta, bincode_config()).unwrap_or_default();
        let width = ciphertext_width(meta.key_bits());
        let mut out = Vec::with_capacity(
            PREFIX_LEN + header.len() + width * self.ciphertexts().len() + DIGEST_LEN,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for c in self.ciphertexts() {
            let digits = c.as_integer().significant_digits::<u8>();
            let start = out.len();
            out.resize(start + width, 0);
            c.as_integer()
                .write_digits(&mut out[start + width - digits..], Order::Msf);
        }
        let d = digest(&out);
        out.extend_from_slice(&d);
        out
    }

    /// The ciphertext bytes of an encoding made by [`to_bytes`](Self::to_bytes)
    /// (without magic, header and digest), or `None` if `encoded` is not
    /// one: what a picture of "what the server sees" shows.
    #[must_use]
    pub fn payload_of(encoded: &[u8]) -> Option<&[u8]> {
        let hlen = u32::from_le_bytes(encoded.get(10..14)?.try_into().ok()?) as usize;
        encoded.get(PREFIX_LEN + hlen..encoded.len().checked_sub(DIGEST_LEN)?)
    }

    /// Decodes and checks an image in the wire format for the key `pk`.
    pub fn from_bytes(bytes: &[u8], pk: &PublicKey, limits: &Limits) -> Result<Self> {
        let fmt = |s: String| Error::Format(s);
        if bytes.len() > limits.max_bytes {
            return Err(Error::Limit(format!(
                "{} bytes, at most {} allowed",
                bytes.len(),
                limits.max_bytes
            )));
        }
        if bytes.len() < PREFIX_LEN + DIGEST_LEN || &bytes[..8] != MAGIC {
            return Err(fmt(
                "not an encrypted image of this toolkit (bad magic)".into()
            ));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            return Err(fmt(format!(
                "format version {version}, this build reads version {FORMAT_VERSION}"
            )));
        }
        let (bytes, sealed) = bytes.split_at(bytes.len() - DIGEST_LEN);
        if digest(bytes) != sealed {
            return Err(fmt(
                "digest mismatch: the bytes were corrupted in transit or on disk".into(),
            ));
        }
        let hlen = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
        if hlen > HEADER_LIMIT || PREFIX_LEN + hlen > bytes.len() {
            return Err(fmt(format!("header length {hlen} is impossible")));
        }
        let (meta, used): (ImageMeta, usize) = bincode::serde::decode_from_slice(
            &bytes[PREFIX_LEN..PREFIX_LEN + hlen],
            bincode_config(),
        )
        .map_err(|e| fmt(format!("header: {e}")))?;
        if used != hlen {
            return Err(fmt("header has trailing bytes".into()));
        }
        check_meta(&meta, limits)?;
        check_fingerprint(&meta, pk)?;
        let count = meta.ciphertext_count();
        if count > limits.max_ciphertexts {
            return Err(Error::Limit(format!(
                "{count} ciphertexts, at most {} allowed",
                limits.max_ciphertexts
            )));
        }
        let width = ciphertext_width(meta.key_bits());
        let payload = &bytes[PREFIX_LEN + hlen..];
        if payload.len() != count * width {
            return Err(fmt(format!(
                "payload is {} bytes, {count} ciphertexts of {width} bytes need {}",
                payload.len(),
                count * width
            )));
        }
        let ciphertexts = payload
            .par_chunks_exact(width)
            .enumerate()
            .map(|(i, b)| {
                pk.ciphertext_from_integer(Integer::from_digits(b, Order::Msf))
                    .map_err(|_| {
                        fmt(format!(
                            "ciphertext {i} is not valid for this key (out of range)"
                        ))
                    })
            })
            .collect::<Result<Vec<Ciphertext>>>()?;
        EncryptedImage::from_parts(meta, ciphertexts)
    }
}

/// Checks a decoded header for internal consistency and limits.
fn check_meta(meta: &ImageMeta, limits: &Limits) -> Result<()> {
    let fmt = |s: &str| Err(Error::Format(s.to_string()));
    let (w, h) = (meta.width(), meta.height());
    if w == 0 || h == 0 {
        return fmt("image is empty");
    }
    if w > limits.max_width || h > limits.max_height {
        return Err(Error::Limit(format!(
            "{w}x{h} pixels, at most {}x{} allowed",
            limits.max_width, limits.max_height
        )));
    }
    let (lo, hi) = meta.digit_range();
    meta.check_digit_range(lo, hi, "the header's value range")
        .map_err(|e| Error::Format(e.to_string()))?;
    if meta.scale().den() == 0 {
        return fmt("scale denominator is zero");
    }
    if meta.history().len() > 1024 {
        return fmt("history too long");
    }
    match meta.packing() {
        Packing::Unpacked => {
            if meta.shift() != 0 || meta.row_margin() != 0 {
                return fmt("unpacked image with a halo state");
            }
        }
        Packing::Packed(g) => {
            g.check(w, h, meta.key_bits())?;
            if meta.shift() > g.halo
                || meta.row_margin() > g.halo
                || meta.row_margin() + meta.shift() > g.halo
            {
                return fmt("filter state exceeds the halo");
            }
        }
    }
    Ok(())
}
