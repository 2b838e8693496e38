//! What an encrypted image says about itself in public.

use serde::{Deserialize, Serialize};

use crate::border::BorderMode;
use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::options::{EncryptOptions, Layout};
use crate::pixels::ColorLayout;
use crate::rational::Rational;

/// How pixel values are laid out in plaintexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Packing {
    /// Many values per plaintext (the default; see [`Geometry`]).
    Packed(Geometry),
    /// One value per ciphertext: what a naive implementation does, kept as
    /// the baseline for benchmarks. Any kernel size works.
    Unpacked,
}

/// The public description of an encrypted image: everything but the
/// ciphertexts. The server reads and updates it; nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) color: ColorLayout,
    pub(crate) packing: Packing,
    pub(crate) border: BorderMode,
    /// Sum of the radii of the filters applied: the slot shift.
    pub(crate) shift: u32,
    /// Ciphertext rows above band row 0 (packed layout).
    pub(crate) row_margin: u32,
    /// Every slot's value lies in `[digit_lo, digit_hi]` (`lo <= 0 <= hi`).
    pub(crate) digit_lo: i64,
    pub(crate) digit_hi: i64,
    pub(crate) scale: Rational,
    /// The operations applied on the server, in order.
    pub(crate) history: Vec<String>,
    pub(crate) key_bits: u32,
    pub(crate) key_fingerprint: [u8; 32],
}

impl ImageMeta {
    /// The description a fresh encryption of a `width x height` image (or
    /// tile of rows) in `color` under `pk` with `opts` has: what the
    /// client will send, known before any ciphertext work (a job's
    /// manifest, progress totals).
    pub fn for_encryption(
        width: usize,
        height: usize,
        color: ColorLayout,
        pk: &paillier::PublicKey,
        opts: &EncryptOptions,
    ) -> Result<ImageMeta> {
        let limit = |what: &str, v: usize| Error::Limit(format!("{what} {v}"));
        let (w32, h32) = (
            u32::try_from(width).map_err(|_| limit("width", width))?,
            u32::try_from(height).map_err(|_| limit("height", height))?,
        );
        let (packing, row_margin) = match opts.layout {
            Layout::Packed { slot_bits, halo } => (
                Packing::Packed(Geometry::plan(width, height, pk.bits(), slot_bits, halo)?),
                halo,
            ),
            Layout::Unpacked => (Packing::Unpacked, 0),
        };
        let meta = ImageMeta {
            width: w32,
            height: h32,
            color,
            packing,
            border: opts.border,
            shift: 0,
            row_margin,
            digit_lo: 0,
            digit_hi: 255,
            scale: Rational::ONE,
            history: Vec::new(),
            key_bits: pk.bits(),
            key_fingerprint: pk.fingerprint(),
        };
        meta.check_digit_range(0, 255, "an 8-bit image")?;
        Ok(meta)
    }

    /// Width in pixels.
    #[must_use]
    pub fn width(&self) -> usize {
        self.width as usize
    }
    /// Height in pixels.
    #[must_use]
    pub fn height(&self) -> usize {
        self.height as usize
    }
    /// Colour layout.
    #[must_use]
    pub fn color(&self) -> ColorLayout {
        self.color
    }
    /// Number of channels.
    #[must_use]
    pub fn channels(&self) -> usize {
        self.color.channels()
    }
    /// The packing.
    #[must_use]
    pub fn packing(&self) -> Packing {
        self.packing
    }
    /// The border mode applied when packing.
    #[must_use]
    pub fn border(&self) -> BorderMode {
        self.border
    }
    /// The public scale: decrypted values are multiplied by it.
    #[must_use]
    pub fn scale(&self) -> Rational {
        self.scale
    }
    /// The range `[lo, hi]` every slot's value lies in.
    #[must_use]
    pub fn digit_range(&self) -> (i64, i64) {
        (self.digit_lo, self.digit_hi)
    }
    /// Operations applied so far, oldest first.
    #[must_use]
    pub fn history(&self) -> &[String] {
        &self.history
    }
    /// Size of the key's n in bits.
    #[must_use]
    pub fn key_bits(&self) -> u32 {
        self.key_bits
    }
    /// Fingerprint of the public key the image is encrypted under.
    #[must_use]
    pub fn key_fingerprint(&self) -> &[u8; 32] {
        &self.key_fingerprint
    }
    /// The slot shift made by filters so far.
    #[must_use]
    pub fn shift(&self) -> u32 {
        self.shift
    }
    /// Ciphertext rows above the first image row of each band.
    #[must_use]
    pub fn row_margin(&self) -> u32 {
        self.row_margin
    }

    /// The largest kernel radius a further filter may have, or `None` for
    /// no limit (unpacked layout).
    #[must_use]
    pub fn halo_left(&self) -> Option<u32> {
        match self.packing {
            Packing::Packed(g) => Some((g.halo - self.shift).min(self.row_margin)),
            Packing::Unpacked => None,
        }
    }

    /// Bits a slot's value range may span: `2^bits > hi - lo` must hold.
    #[must_use]
    pub fn slot_bits(&self) -> u32 {
        match self.packing {
            Packing::Packed(g) => g.slot_bits,
            // One value per plaintext, signed, with a bit of margin.
            Packing::Unpacked => self.key_bits - 2,
        }
    }

    /// Ciphertext rows per channel.
    #[must_use]
    pub fn rows(&self) -> usize {
        match self.packing {
            Packing::Packed(g) => (g.band_rows + 2 * self.row_margin) as usize,
            Packing::Unpacked => self.height(),
        }
    }

    /// Ciphertexts per row and channel.
    #[must_use]
    pub fn row_len(&self) -> usize {
        match self.packing {
            Packing::Packed(g) => g.chunks as usize,
            Packing::Unpacked => self.width(),
        }
    }

    /// Number of ciphertexts the image has.
    #[must_use]
    pub fn ciphertext_count(&self) -> usize {
        self.channels() * self.rows() * self.row_len()
    }

    /// Index of the ciphertext of channel `c`, row `t`, position `j`.
    #[must_use]
    pub fn index(&self, c: usize, t: usize, j: usize) -> usize {
        (c * self.rows() + t) * self.row_len() + j
    }

    /// Checks that the image was made for `pk` (fingerprint and size).
    pub(crate) fn check_key(&self, pk: &paillier::PublicKey) -> Result<()> {
        let short =
            |fp: &[u8; 32]| -> String { fp[..6].iter().map(|b| format!("{b:02x}")).collect() };
        let fp = pk.fingerprint();
        if self.key_fingerprint != fp || self.key_bits != pk.bits() {
            return Err(Error::WrongKey {
                found: short(&self.key_fingerprint),
                expected: short(&fp),
            });
        }
        Ok(())
    }

    /// Checks that values in `[lo, hi]` fit a slot.
    pub fn check_digit_range(&self, lo: i64, hi: i64, what: &str) -> Result<()> {
        let span = i128::from(hi) - i128::from(lo);
        let bits = self.slot_bits();
        if lo > 0 || hi < 0 || bits < 127 && span >= 1i128 << bits {
            return Err(Error::Parameter(format!(
                "{what} needs slot values in [{lo}, {hi}], which do not fit the image's {bits}-bit slots \
                 (range at most 2^{bits} - 1); encrypt with wider slots"
            )));
        }
        Ok(())
    }

    /// Checks that a kernel of radius `radius` fits the remaining halo.
    pub fn check_radius(&self, radius: u32, name: &str) -> Result<()> {
        let (Some(h), Packing::Packed(g)) = (self.halo_left(), self.packing) else {
            return Ok(());
        };
        if radius <= h {
            return Ok(());
        }
        let k = 2 * radius + 1;
        let used = g.halo - h;
        Err(Error::Parameter(format!(
            "{name}: a {k}x{k} kernel needs a halo of {radius}, this image was encrypted with halo {}{}; \
             encrypt with a larger halo",
            g.halo,
            if used > 0 {
                format!(" of which {used} is used by earlier filters")
            } else {
                String::new()
            }
        )))
    }

    /// The description of the image after a filter of radius `radius`
    /// whose results lie in `[lo, hi]` and whose output is multiplied by
    /// `scale`. Refuses a radius beyond the halo and a range beyond the slot.
    pub fn after_filter(
        &self,
        radius: u32,
        lo: i64,
        hi: i64,
        scale: Rational,
        name: String,
    ) -> Result<ImageMeta> {
        self.check_radius(radius, &name)?;
        self.check_digit_range(lo, hi, &name)?;
        let mut m = self.clone();
        if let Packing::Packed(_) = self.packing {
            m.shift += radius;
            m.row_margin -= radius;
        }
        m.digit_lo = lo;
        m.digit_hi = hi;
        m.scale = scale;
        m.history.push(name);
        Ok(m)
    }

    /// The description after a pixel-wise operation (no neighbours).
    pub fn after_pointwise(
        &self,
        lo: i64,
        hi: i64,
        scale: Rational,
        name: String,
    ) -> Result<ImageMeta> {
        self.after_filter(0, lo, hi, scale, name)
    }

    /// The description after a pixel-wise operation that changes the
    /// colour layout (RGB to grey): same packing, `color`'s channels.
    pub fn after_recolor(
        &self,
        color: ColorLayout,
        lo: i64,
        hi: i64,
        scale: Rational,
        name: String,
    ) -> Result<ImageMeta> {
        let mut m = self.after_pointwise(lo, hi, scale, name)?;
        m.color = color;
        Ok(m)
    }

    /// The plaintext that adds `value` to every slot that may hold data
    /// (a pixel, its border or a partial sum at a chunk's edge), and leaves
    /// the headroom slots that later filters shift into at zero. `value`
    /// may be negative; the result is an integer to add modulo n.
    #[must_use]
    pub fn broadcast(&self, value: i64) -> rug::Integer {
        let (slots, bits) = match self.packing {
            Packing::Packed(g) => (g.chunk_slots() + 2 * self.shift as usize, g.slot_bits),
            Packing::Unpacked => (1, 1),
        };
        // sum_{i < slots} 2^(bits i) = (2^(bits slots) - 1) / (2^bits - 1)
        let one = rug::Integer::from(1);
        let all = (one.clone() << (bits as usize * slots)) - 1u32;
        let unit = (one << bits as usize) - 1u32;
        (all / unit) * value
    }

    pub(crate) fn trimmed(&self) -> ImageMeta {
        let mut m = self.clone();
        if let Packing::Packed(_) = self.packing {
            m.row_margin = 0;
        }
        m
    }
}
