//! The wire format of encrypted images, and loading with limits.
//!
//! The toolkit's framing ([`paillier::frame`]) around a header and the
//! ciphertexts:
//!
//! ```text
//! magic    8 bytes  "HEIMAGE\0"
//! version  u16 LE   3 (FORMAT_VERSION)
//! length   u64 LE   bytes of the body
//! body:
//!   header   u32 LE length, then bincode 2 (serde) of ImageMeta: dimensions,
//!            layout, packing, border, scale, value range, history, key size
//!            and fingerprint
//!   payload  every ciphertext as exactly ceil(2 * key_bits / 8) big-endian bytes
//! digest   32 bytes, SHA-256 of everything before it
//! ```
//!
//! Version 2 had no body length; such files are refused with a message
//! naming both versions.
//!
//! Loading never trusts the bytes: the size is checked against [`Limits`]
//! before anything is allocated, the digest is checked before anything is
//! decoded (so corruption in transit or on disk is an error, never a
//! silently different image), the header is decoded with a size limit,
//! the packing is checked against the dimensions and the key, the payload
//! length must match exactly, and every ciphertext must lie in `[1, n^2)`
//! and be coprime to n for the key given.

use paillier::frame::{Format, FrameError, Parts, write_part};
use paillier::{Ciphertext, Integer, PublicKey};
use rayon::prelude::*;
use rug::integer::Order;

use crate::error::{Error, Result};
use crate::geometry::ciphertext_width;
use crate::image::EncryptedImage;
use crate::meta::{ImageMeta, Packing};

/// The format version this build writes and reads (2 added the digest,
/// 3 the common framing with a body length).
pub const FORMAT_VERSION: u16 = 3;
/// The framing of encrypted images.
pub const FORMAT: Format<8> = Format::new(*b"HEIMAGE\0", FORMAT_VERSION, "encrypted image");
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

impl EncryptedImage {
    /// Encodes the image in the wire format.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let meta = self.meta();
        // ImageMeta holds only integers, strings and enums: encoding cannot fail.
        let header = bincode::serde::encode_to_vec(meta, bincode_config()).unwrap_or_default();
        let width = ciphertext_width(meta.key_bits());
        let mut w = FORMAT.writer(4 + header.len() + width * self.ciphertexts().len());
        let out = w.body();
        write_part(out, &header);
        for c in self.ciphertexts() {
            let digits = c.as_integer().significant_digits::<u8>();
            let start = out.len();
            out.resize(start + width, 0);
            c.as_integer()
                .write_digits(&mut out[start + width - digits..], Order::Msf);
        }
        w.finish()
    }

    /// The ciphertext bytes of an encoding made by [`to_bytes`](Self::to_bytes)
    /// (without framing and header), or `None` if `encoded` is not one: what
    /// a picture of "what the server sees" shows. Checks the framing only.
    #[must_use]
    pub fn payload_of(encoded: &[u8]) -> Option<&[u8]> {
        let body = FORMAT.open(encoded, encoded.len()).ok()?;
        let mut parts = Parts::new(body, FORMAT.name());
        parts.next("header", HEADER_LIMIT).ok()?;
        Some(parts.rest())
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
        let body = FORMAT.open(bytes, limits.max_bytes).map_err(|e| match e {
            FrameError::Magic { .. } => {
                fmt("not an encrypted image of this toolkit (bad magic)".into())
            }
            FrameError::TooLarge { .. } => Error::Limit(e.to_string()),
            other => fmt(other.to_string()),
        })?;
        let mut parts = Parts::new(body, FORMAT.name());
        let header = parts
            .next("header", HEADER_LIMIT)
            .map_err(|e| fmt(format!("header length: {e}")))?;
        let (meta, used): (ImageMeta, usize) =
            bincode::serde::decode_from_slice(header, bincode_config())
                .map_err(|e| fmt(format!("header: {e}")))?;
        if used != header.len() {
            return Err(fmt("header has trailing bytes".into()));
        }
        check_meta(&meta, limits)?;
        meta.check_key(pk)?;
        let count = meta.ciphertext_count();
        if count > limits.max_ciphertexts {
            return Err(Error::Limit(format!(
                "{count} ciphertexts, at most {} allowed",
                limits.max_ciphertexts
            )));
        }
        let width = ciphertext_width(meta.key_bits());
        let payload = parts.rest();
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
