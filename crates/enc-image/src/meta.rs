//! What an encrypted image says about itself in public.

use serde::{Deserialize, Serialize};

use crate::border::BorderMode;
use crate::error::{Error, Result};
use crate::geometry::Geometry;
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

/// Where one output value lies in the image: a pixel and a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValuePosition {
    /// Column.
    pub x: usize,
    /// Row.
    pub y: usize,
    /// Channel.
    pub channel: usize,
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

    /// The ciphertext that carries the decrypted value of channel `channel`
    /// at pixel `(x, y)` (inside the image): the map decryption reads.
    #[must_use]
    pub fn ciphertext_of(&self, x: usize, y: usize, channel: usize) -> usize {
        match self.packing {
            Packing::Unpacked => self.index(channel, y, x),
            Packing::Packed(g) => {
                let (t, j, _) = g.locate(self.width(), x, y, self.row_margin, self.shift);
                self.index(channel, t, j)
            }
        }
    }

    /// The output values ciphertext `index` carries: every position whose
    /// decrypted value [`EncryptedImage::decrypt`](crate::EncryptedImage::decrypt)
    /// reads from it, the inverse of [`ciphertext_of`](Self::ciphertext_of).
    /// Empty for ciphertexts that only hold halo rows for further filters,
    /// and for an index beyond [`ciphertext_count`](Self::ciphertext_count).
    /// Costs O(values per plaintext), whatever the image's size.
    #[must_use]
    pub fn values_of(&self, index: usize) -> Vec<ValuePosition> {
        let per_channel = self.rows() * self.row_len();
        if index >= self.ciphertext_count() || per_channel == 0 {
            return Vec::new();
        }
        let (channel, rest) = (index / per_channel, index % per_channel);
        let (t, j) = (rest / self.row_len(), rest % self.row_len());
        match self.packing {
            Packing::Unpacked => vec![ValuePosition {
                x: j,
                y: t,
                channel,
            }],
            Packing::Packed(g) => {
                let margin = self.row_margin as usize;
                if t < margin || t - margin >= g.band_rows as usize {
                    return Vec::new();
                }
                g.outputs(self.width(), self.height(), t - margin, j)
                    .map(|(x, y)| ValuePosition { x, y, channel })
                    .collect()
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(w: usize, h: usize, packing: Packing, halo: u32) -> ImageMeta {
        ImageMeta {
            width: w as u32,
            height: h as u32,
            color: ColorLayout::Rgb8,
            packing,
            border: BorderMode::Replicate,
            shift: 0,
            row_margin: halo,
            digit_lo: 0,
            digit_hi: 255,
            scale: Rational::ONE,
            history: Vec::new(),
            key_bits: 512,
            key_fingerprint: [0; 32],
        }
    }

    /// Every value has one ciphertext, and that ciphertext lists it: fresh,
    /// after filters (shifted slots), trimmed, and unpacked.
    #[test]
    fn values_of_is_the_inverse_of_ciphertext_of() {
        for (w, h) in [(1, 1), (13, 9), (40, 3), (2, 30)] {
            let g = Geometry::plan(w, h, 512, 16, 2).unwrap();
            let fresh = meta(w, h, Packing::Packed(g), 2);
            let one = fresh
                .after_filter(1, 0, 255 * 9, Rational::ONE, "a".into())
                .unwrap();
            let two = one
                .after_filter(1, 0, 255 * 81, Rational::ONE, "b".into())
                .unwrap();
            let metas = [
                fresh.clone(),
                one.clone(),
                two.clone(),
                two.trimmed(),
                meta(w, h, Packing::Unpacked, 0),
            ];
            for m in metas {
                let mut listed = 0;
                for i in 0..m.ciphertext_count() + 2 {
                    for p in m.values_of(i) {
                        assert_eq!(m.ciphertext_of(p.x, p.y, p.channel), i, "{m:?} {p:?}");
                        listed += 1;
                    }
                }
                assert_eq!(listed, w * h * 3, "{m:?}");
                for c in 0..3 {
                    let i = m.ciphertext_of(w - 1, h - 1, c);
                    let want = ValuePosition {
                        x: w - 1,
                        y: h - 1,
                        channel: c,
                    };
                    assert!(m.values_of(i).contains(&want));
                }
            }
        }
    }
}
