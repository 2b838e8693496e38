//! The encrypted image container: encryption and decryption of whole
//! images, in parallel.

use std::ops::Range;

use paillier::hazmat::{self, Encryptor};
use paillier::{Ciphertext, Integer, PrivateKey, PublicKey};
use rayon::prelude::*;
use rug::integer::Order;

use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::meta::{ImageMeta, Packing};
use crate::options::EncryptOptions;
use crate::output::OutputMapping;
use crate::pixels::{ColorLayout, PixelImage};
use crate::progress::{Phase, Progress};
use crate::rational::Rational;
use crate::tiles::TilePlan;

/// An encrypted image: its public description and its ciphertexts.
///
/// ```
/// # fn main() -> Result<(), enc_image::Error> {
/// use enc_image::{ColorLayout, EncryptOptions, EncryptedImage, NoProgress, PixelImage};
/// # let kp = paillier::Keypair::generate_insecure_for_tests(512)?;
/// # /*
/// let kp = paillier::Keypair::generate(3072)?;
/// # */
/// let img = PixelImage::new(4, 2, ColorLayout::Luma8, (0..8).collect())?;
/// let enc = EncryptedImage::encrypt(&img, kp.private_key(), &EncryptOptions::default(), &NoProgress)?;
/// let back = enc.decrypt(kp.private_key(), &NoProgress)?.to_pixels();
/// assert_eq!(back, img);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EncryptedImage {
    meta: ImageMeta,
    ciphertexts: Vec<Ciphertext>,
}

impl std::fmt::Debug for EncryptedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedImage")
            .field("meta", &self.meta)
            .field("ciphertexts", &self.ciphertexts.len())
            .finish()
    }
}

/// Packs digits `v_i` (each `< 2^bits`, non-negative) into `sum v_i 2^(bits*i)`.
pub(crate) fn pack(values: impl Iterator<Item = u64>, bits: u32, slots: usize) -> Integer {
    let total_bits = slots * bits as usize;
    let mut limbs = vec![0u64; total_bits.div_ceil(64) + 1];
    for (i, v) in values.enumerate() {
        let off = i * bits as usize;
        let (w, s) = (off / 64, off % 64);
        limbs[w] |= v << s;
        if s + bits as usize > 64 {
            limbs[w + 1] |= v >> (64 - s);
        }
    }
    Integer::from_digits(&limbs, Order::Lsf)
}

/// The base-`2^bits` digits of `u` (`slots` of them).
fn unpack(u: &Integer, bits: u32, slots: usize) -> Vec<u64> {
    let limbs = u.to_digits::<u64>(Order::Lsf);
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    (0..slots)
        .map(|i| {
            let off = i * bits as usize;
            let (w, s) = (off / 64, off % 64);
            let lo = limbs.get(w).copied().unwrap_or(0) >> s;
            let hi = if s + bits as usize > 64 {
                limbs.get(w + 1).copied().unwrap_or(0) << (64 - s)
            } else {
                0
            };
            (lo | hi) & mask
        })
        .collect()
}

impl EncryptedImage {
    /// Encrypts an image, in parallel. `key` is the private key (fast path)
    /// or only the public key.
    pub fn encrypt<E: Encryptor + ?Sized>(
        img: &PixelImage,
        key: &E,
        opts: &EncryptOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        Self::encrypt_rows(img, 0..img.height(), key, opts, progress)
    }

    /// Encrypts tile `index` of `plan`: the image rows
    /// [`TilePlan::rows`] as an image of their own, whose vertical halo
    /// holds the neighbouring rows of `img` (and the border mode only
    /// beyond the top and bottom of `img`). Filtered and decrypted, it
    /// gives exactly these rows of the whole image's result. The plan must
    /// be made for `img` and for `opts`' halo
    /// ([`TilePlan::for_encryption`]); the unpacked layout, which applies
    /// the border when filtering, only has whole-image plans.
    pub fn encrypt_tile<E: Encryptor + ?Sized>(
        img: &PixelImage,
        plan: &TilePlan,
        index: usize,
        key: &E,
        opts: &EncryptOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        plan.check_image(img.width(), img.height(), opts)?;
        let rows = plan.rows(index).ok_or_else(|| {
            Error::Parameter(format!(
                "tile {index} does not exist, the plan has {} tiles",
                plan.count()
            ))
        })?;
        Self::encrypt_rows(img, rows, key, opts, progress)
    }

    /// Encrypts `rows` of `img` as an image of their own, with the rows
    /// around them as vertical halo (see [`Self::encrypt_tile`]).
    fn encrypt_rows<E: Encryptor + ?Sized>(
        img: &PixelImage,
        rows: Range<usize>,
        key: &E,
        opts: &EncryptOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let pk = key.public_key();
        let meta = ImageMeta::for_encryption(
            img.width(),
            rows.len(),
            img.color(),
            pk.bits(),
            pk.fingerprint(),
            opts,
        )?;
        let count = meta.ciphertext_count();
        key.prepare();
        progress.start(Phase::Encrypt, count as u64);
        let ciphertexts = (0..count)
            .into_par_iter()
            .map(|idx| {
                let m = Self::plaintext_of(&meta, img, rows.start, idx);
                let c = key.encrypt_raw(&m);
                progress.advance(1);
                c
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        progress.finish();
        Ok(EncryptedImage { meta, ciphertexts })
    }

    /// The plaintext of ciphertext `idx` of a fresh encryption of the rows
    /// of `img` from `row0` on, described by `meta`.
    fn plaintext_of(meta: &ImageMeta, img: &PixelImage, row0: usize, idx: usize) -> Integer {
        let w = img.width();
        let per_channel = meta.rows() * meta.row_len();
        let (c, rest) = (idx / per_channel, idx % per_channel);
        let (t, j) = (rest / meta.row_len(), rest % meta.row_len());
        match meta.packing {
            Packing::Unpacked => Integer::from(img.get(j, row0 + t, c)),
            Packing::Packed(g) => {
                let border = meta.border;
                let values = (0..g.chunk_slots()).map(|s| match g.source(w, t, j, s) {
                    Some((x, y)) => u64::from(border.sample(img, c, x, row0 as i64 + y)),
                    None => 0,
                });
                pack(values, g.slot_bits, g.chunk_slots())
            }
        }
    }

    /// Joins a description and ciphertexts, checking that the count matches.
    /// For filters, which compute new ciphertexts with the public key.
    pub fn from_parts(meta: ImageMeta, ciphertexts: Vec<Ciphertext>) -> Result<Self> {
        if ciphertexts.len() != meta.ciphertext_count() {
            return Err(Error::Parameter(format!(
                "{} ciphertexts given, the image description needs {}",
                ciphertexts.len(),
                meta.ciphertext_count()
            )));
        }
        Ok(EncryptedImage { meta, ciphertexts })
    }

    /// The public description.
    #[must_use]
    pub fn meta(&self) -> &ImageMeta {
        &self.meta
    }

    /// The ciphertexts, ordered channel, row, position (see [`ImageMeta::index`]).
    #[must_use]
    pub fn ciphertexts(&self) -> &[Ciphertext] {
        &self.ciphertexts
    }

    /// Checks that the image belongs to `pk`.
    pub fn check_key(&self, pk: &PublicKey) -> Result<()> {
        self.meta.check_key(pk)
    }

    /// Drops the ciphertext rows that only serve further filters (the
    /// vertical halo), so that less is downloaded and decrypted. No further
    /// neighbourhood filter can be applied to the result.
    #[must_use]
    pub fn trim_halo(&self) -> Self {
        let Packing::Packed(g) = self.meta.packing else {
            return self.clone();
        };
        let m = self.meta.row_margin as usize;
        let rows = g.band_rows as usize;
        let meta = self.meta.trimmed();
        let mut ciphertexts = Vec::with_capacity(meta.ciphertext_count());
        for c in 0..self.meta.channels() {
            for t in m..m + rows {
                let start = self.meta.index(c, t, 0);
                ciphertexts
                    .extend_from_slice(&self.ciphertexts[start..start + self.meta.row_len()]);
            }
        }
        EncryptedImage { meta, ciphertexts }
    }

    /// Decrypts to exact values, in parallel. Checks the key and that every
    /// decrypted slot lies in the range the computation allows.
    pub fn decrypt(&self, sk: &PrivateKey, progress: &dyn Progress) -> Result<DecryptedImage> {
        let pk = sk.public_key();
        self.check_key(pk)?;
        let meta = &self.meta;
        let (w, h, ch) = (meta.width(), meta.height(), meta.channels());
        let (lo, hi) = meta.digit_range();
        let bits = meta.slot_bits();
        // Which ciphertexts hold output values, and how many slots to read.
        let (needed, slots): (Vec<usize>, usize) = match meta.packing {
            Packing::Unpacked => ((0..self.ciphertexts.len()).collect(), 1),
            Packing::Packed(g) => {
                let m = meta.row_margin as usize;
                let rows = m..m + g.band_rows as usize;
                let needed = (0..self.ciphertexts.len())
                    .filter(|&i| rows.contains(&((i / meta.row_len()) % meta.rows())))
                    .collect();
                (
                    needed,
                    Geometry::total_slots(meta.key_bits, g.slot_bits) as usize,
                )
            }
        };
        // V = sum v_i 2^(b i) with v_i in [lo, hi] lies in [vmin, vmin + n):
        // U = (m - vmin) mod n has the digits v_i - lo.
        let geometric = (Integer::from(1) << (bits as usize * slots)) - 1u32;
        let vmin = Integer::from(lo) * (geometric / ((Integer::from(1) << bits) - 1u32));
        let limit = Integer::from(1) << (bits as usize * slots);
        progress.start(Phase::Decrypt, needed.len() as u64);
        let digits: Vec<Vec<i64>> = needed
            .par_iter()
            .map(|&i| {
                let m = hazmat::decrypt_raw(sk, &self.ciphertexts[i])?;
                let mut u = m - &vmin;
                u = u.rem_euc(pk.n());
                if u >= limit {
                    return Err(Error::Corrupted(format!(
                        "ciphertext {i} decrypts beyond its slots"
                    )));
                }
                let d = if slots == 1 {
                    // Unpacked: one value, wider than a bit field.
                    let v = u.to_i64().and_then(|u| u.checked_add(lo));
                    vec![v.ok_or_else(|| {
                        Error::Corrupted(format!("ciphertext {i} decrypts beyond its range"))
                    })?]
                } else {
                    unpack(&u, bits, slots)
                        .into_iter()
                        .map(|x| x as i64 + lo)
                        .collect()
                };
                progress.advance(1);
                Ok(d)
            })
            .collect::<Result<_>>()?;
        progress.finish();
        let mut pos = vec![usize::MAX; self.ciphertexts.len()];
        for (k, &i) in needed.iter().enumerate() {
            pos[i] = k;
        }
        let mut values = Vec::with_capacity(w * h * ch);
        for y in 0..h {
            for x in 0..w {
                for c in 0..ch {
                    let (i, s) = match meta.packing {
                        Packing::Unpacked => (meta.index(c, y, x), 0),
                        Packing::Packed(g) => {
                            let (t, j, s) = g.locate(w, x, y, meta.row_margin, meta.shift);
                            (meta.index(c, t, j), s)
                        }
                    };
                    let v = digits[pos[i]][s];
                    if v > hi {
                        return Err(Error::Corrupted(format!(
                            "value {v} at ({x}, {y}) channel {c} is outside the possible range [{lo}, {hi}]"
                        )));
                    }
                    values.push(v);
                }
            }
        }
        Ok(DecryptedImage {
            width: w,
            height: h,
            color: meta.color,
            values,
            scale: meta.scale,
        })
    }
}

use rug::ops::RemRounding;

/// A decrypted image: exact integer values and the public scale they are
/// multiplied by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptedImage {
    width: usize,
    height: usize,
    color: ColorLayout,
    values: Vec<i64>,
    scale: Rational,
}

impl DecryptedImage {
    /// Exact values (interleaved like the pixels, `width * height *
    /// channels` of them) with their scale: what a plaintext computation
    /// produces to compare with a decryption.
    pub fn new(
        width: usize,
        height: usize,
        color: ColorLayout,
        values: Vec<i64>,
        scale: Rational,
    ) -> Result<Self> {
        let want = width
            .checked_mul(height)
            .and_then(|p| p.checked_mul(color.channels()));
        if want != Some(values.len()) {
            return Err(Error::Parameter(format!(
                "{} values given for a {width}x{height} image with {} channels",
                values.len(),
                color.channels()
            )));
        }
        Ok(DecryptedImage {
            width,
            height,
            color,
            values,
            scale,
        })
    }

    /// The exact values before scaling, interleaved like the pixels.
    #[must_use]
    pub fn values(&self) -> &[i64] {
        &self.values
    }
    /// The scale: pixel = value * scale.
    #[must_use]
    pub fn scale(&self) -> Rational {
        self.scale
    }
    /// Width in pixels.
    #[must_use]
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    #[must_use]
    pub fn height(&self) -> usize {
        self.height
    }
    /// Colour layout.
    #[must_use]
    pub fn color(&self) -> ColorLayout {
        self.color
    }

    /// The 8-bit image: each value times the scale, rounded to nearest with
    /// ties away from zero, saturated to `0..=255`.
    #[must_use]
    pub fn to_pixels(&self) -> PixelImage {
        self.to_pixels_with(OutputMapping::Saturate)
    }

    /// The 8-bit image: each value times the scale, rounded to nearest with
    /// ties away from zero, mapped to `0..=255` by `mapping` (for signed
    /// results such as edges).
    #[must_use]
    pub fn to_pixels_with(&self, mapping: OutputMapping) -> PixelImage {
        let data = self
            .values
            .iter()
            .map(|&v| self.scale.to_u8_with(v, mapping))
            .collect();
        PixelImage::from_checked_parts(self.width, self.height, self.color, data)
    }
}
