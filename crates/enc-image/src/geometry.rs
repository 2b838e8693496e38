//! Where each pixel value lives: packing many values into one plaintext.
//!
//! # The layout
//!
//! A plaintext of a `k`-bit key holds `E = floor((k - 1) / b)` slots of `b`
//! bits; slot `i` is worth `2^(b*i)`. Raising a ciphertext to
//! `W = sum_j w_j 2^(b*j)` turns slot `i` into `sum_j w_j x_(i-j)`: a whole
//! horizontal filter in one exponentiation. Vertical neighbours must sit in
//! other ciphertexts at the same slot, so the layout is built as follows.
//!
//! 1. The image is cut into `bands` horizontal bands of `band_rows` rows.
//!    Each band is padded by `halo` pixels on all four sides with the border
//!    mode (interior bands get their real neighbour rows).
//! 2. Ciphertext row `t` (of `band_rows + 2*halo`) is the concatenation of
//!    padded row `t` of every band: a stream of `bands * (width + 2*halo)`
//!    values, the same shape for every `t`. Ciphertext rows `t - 1` and
//!    `t + 1` hold the vertical neighbours of row `t`, slot for slot.
//! 3. Each stream is cut into `chunks` chunks of `core` values; a chunk's
//!    plaintext holds its core plus `halo` values of each neighbour chunk
//!    (`core + 2*halo` slots), and `2*halo` empty slots on top as headroom
//!    for the slot shifts a filter makes.
//!
//! So `E = core + 4*halo` and every output value of a filter of radius up
//! to `halo` sees all its inputs in its own ciphertexts. The number of bands
//! is chosen to minimise the ciphertexts (decryptions weigh 3x encryptions).
//!
//! Ciphertexts are ordered channel, then row `t`, then chunk.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Bytes of one ciphertext on the wire for a key of `key_bits` bits.
#[must_use]
pub fn ciphertext_width(key_bits: u32) -> usize {
    (2 * key_bits as usize).div_ceil(8)
}

/// Largest slot width: decoded digits must fit an `i64`.
pub const MAX_SLOT_BITS: u32 = 62;
/// Smallest slot width: an 8-bit pixel must fit.
pub const MIN_SLOT_BITS: u32 = 8;

/// The packed layout of an image (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Geometry {
    /// Bits per slot.
    pub slot_bits: u32,
    /// Halo fixed at encryption: the largest kernel radius supported.
    pub halo: u32,
    /// Values of the stream per chunk (without halos).
    pub core: u32,
    /// Number of bands.
    pub bands: u32,
    /// Image rows per band.
    pub band_rows: u32,
    /// Chunks per stream (ciphertexts per row `t` and channel).
    pub chunks: u32,
}

fn div_ceil(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

/// The cost [`Geometry::plan`] minimises for bands of `band_rows` rows,
/// `halo` rows of context and `chunks` ciphertexts per row, per channel:
/// `3 * outputs + inputs` (a decryption weighs about 3 encryptions), and
/// the inputs, which break ties.
fn cost_of(band_rows: u64, halo: u64, chunks: u64) -> (u64, u64) {
    let outputs = band_rows * chunks;
    let inputs = (band_rows + 2 * halo) * chunks;
    (3 * outputs + inputs, inputs)
}

impl Geometry {
    /// Slots per plaintext for a key of `key_bits` bits.
    #[must_use]
    pub fn total_slots(key_bits: u32, slot_bits: u32) -> u32 {
        (key_bits.saturating_sub(1)) / slot_bits
    }

    /// Plans the layout of a `width x height` image for a key of
    /// `key_bits` bits, `slot_bits`-bit slots and the given halo.
    pub fn plan(
        width: usize,
        height: usize,
        key_bits: u32,
        slot_bits: u32,
        halo: u32,
    ) -> Result<Self> {
        if !(MIN_SLOT_BITS..=MAX_SLOT_BITS).contains(&slot_bits) {
            return Err(Error::Parameter(format!(
                "slot width of {slot_bits} bits is outside {MIN_SLOT_BITS}..={MAX_SLOT_BITS}"
            )));
        }
        let e = Self::total_slots(key_bits, slot_bits);
        if e < 4 * halo + 1 {
            return Err(Error::Parameter(format!(
                "a {key_bits}-bit key holds {e} slots of {slot_bits} bits, too few for a halo of {halo} \
                 (needs at least {})",
                4 * halo + 1
            )));
        }
        let core = u64::from(e - 4 * halo);
        let (w, h, hl) = (width as u64, height as u64, u64::from(halo));
        let wp = w + 2 * hl;
        let mut best: Option<(u64, u64, Geometry)> = None;
        let mut last_t = 0;
        for b in 1..=h {
            let t = div_ceil(h, b);
            if t == last_t {
                continue;
            }
            last_t = t;
            let bands = div_ceil(h, t);
            let chunks = div_ceil(bands * wp, core);
            let (cost, inputs) = cost_of(t, hl, chunks);
            if best
                .as_ref()
                .is_none_or(|(c, i, _)| (cost, inputs) < (*c, *i))
            {
                let g = Geometry {
                    slot_bits,
                    halo,
                    core: core as u32,
                    bands: u32::try_from(bands)
                        .map_err(|_| Error::Limit("too many bands".into()))?,
                    band_rows: u32::try_from(t)
                        .map_err(|_| Error::Limit("band too tall".into()))?,
                    chunks: u32::try_from(chunks)
                        .map_err(|_| Error::Limit("too many chunks".into()))?,
                };
                best = Some((cost, inputs, g));
            }
        }
        best.map(|(_, _, g)| g)
            .ok_or_else(|| Error::Parameter("image is empty".into()))
    }

    /// The ciphertext cost of the layout per channel, the one
    /// [`Geometry::plan`] minimises: `3 * outputs + inputs`, in units of
    /// one encryption.
    #[must_use]
    pub fn cost(&self) -> u64 {
        cost_of(
            u64::from(self.band_rows),
            u64::from(self.halo),
            u64::from(self.chunks),
        )
        .0
    }

    /// Checks that a geometry read from a file is consistent with the image
    /// and the key (never trusts the file).
    pub fn check(&self, width: usize, height: usize, key_bits: u32) -> Result<()> {
        let bad = |what: &str| Err(Error::Format(format!("inconsistent packing: {what}")));
        if !(MIN_SLOT_BITS..=MAX_SLOT_BITS).contains(&self.slot_bits) {
            return bad("slot width");
        }
        let e = u64::from(Self::total_slots(key_bits, self.slot_bits));
        let (core, halo) = (u64::from(self.core), u64::from(self.halo));
        if core == 0 || core + 4 * halo > e {
            return bad("slots per ciphertext exceed the key's plaintext");
        }
        let (bands, t) = (u64::from(self.bands), u64::from(self.band_rows));
        let h = height as u64;
        if bands == 0 || t == 0 || bands * t < h || (bands - 1) * t >= h {
            return bad("bands do not cover the image exactly");
        }
        let wp = width as u64 + 2 * halo;
        if u64::from(self.chunks) != div_ceil(bands * wp, core) {
            return bad("chunk count does not match the width");
        }
        Ok(())
    }

    /// Width of a padded band row.
    #[must_use]
    pub fn padded_width(&self, width: usize) -> usize {
        width + 2 * self.halo as usize
    }

    /// Slots of data per chunk at encryption (`core + 2*halo`).
    #[must_use]
    pub fn chunk_slots(&self) -> usize {
        (self.core + 2 * self.halo) as usize
    }

    /// Slots that may hold data after filters (`core + 4*halo`).
    #[must_use]
    pub fn extent(&self) -> usize {
        (self.core + 4 * self.halo) as usize
    }

    /// The stream position of pixel `(x, y)`, and its band row.
    fn stream_pos(&self, width: usize, x: usize, y: usize) -> (usize, usize) {
        let t = self.band_rows as usize;
        let band = y / t;
        (
            band * self.padded_width(width) + self.halo as usize + x,
            y % t,
        )
    }

    /// Where pixel `(x, y)` lives: `(row t in the band grid, chunk, slot)`,
    /// given the rows above band row 0 (`row_margin`) and the slot shift
    /// made by filters.
    #[must_use]
    pub fn locate(
        &self,
        width: usize,
        x: usize,
        y: usize,
        row_margin: u32,
        shift: u32,
    ) -> (usize, usize, usize) {
        let (p, i) = self.stream_pos(width, x, y);
        let core = self.core as usize;
        let j = p / core;
        let slot = p - j * core + self.halo as usize + shift as usize;
        (row_margin as usize + i, j, slot)
    }

    /// The pixels `(x, y)` whose values chunk `j` of band row `i` carries
    /// (the outputs [`locate`](Self::locate) sends there), in slot order:
    /// at most `core` of them, none in the border or halo slots.
    pub fn outputs(
        &self,
        width: usize,
        height: usize,
        i: usize,
        j: usize,
    ) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (core, halo) = (self.core as usize, self.halo as usize);
        let wp = self.padded_width(width);
        let end = ((j + 1) * core).min(self.bands as usize * wp);
        let band_rows = self.band_rows as usize;
        (j * core..end).filter_map(move |p| {
            let (band, px) = (p / wp, p % wp);
            let y = band * band_rows + i;
            (px >= halo && px - halo < width && i < band_rows && y < height).then(|| (px - halo, y))
        })
    }

    /// The source of slot `s` of chunk `j` in ciphertext row `t` at
    /// encryption: the pixel coordinates `(x, y)` (possibly outside the
    /// image, for the border), or `None` for an empty slot.
    #[must_use]
    pub fn source(&self, width: usize, t: usize, j: usize, s: usize) -> Option<(i64, i64)> {
        let (core, halo) = (i64::from(self.core), i64::from(self.halo));
        let p = j as i64 * core - halo + s as i64;
        let wp = self.padded_width(width) as i64;
        if p < 0 || p >= i64::from(self.bands) * wp {
            return None;
        }
        let band = p / wp;
        let x = p % wp - halo;
        let y = band * i64::from(self.band_rows) - halo + t as i64;
        Some((x, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_dense_for_a_512_rgb_image() {
        let g = Geometry::plan(512, 512, 2048, 12, 1).unwrap();
        g.check(512, 512, 2048).unwrap();
        assert_eq!(g.extent(), 170);
        // Outputs per channel close to the 512*514/166 = 1585 lower bound.
        let outputs = g.band_rows * g.chunks;
        assert!(outputs <= 1650, "{g:?}: {outputs} output ciphertexts");
        // Slots used >= 90% of the plaintext's bits.
        assert!(g.extent() as u32 * g.slot_bits * 100 >= 90 * 2047);
    }

    #[test]
    fn every_pixel_has_one_home_and_its_source_is_itself() {
        for (w, h, halo) in [(1, 1, 1), (1, 7, 2), (9, 1, 3), (37, 23, 1), (100, 3, 2)] {
            let g = Geometry::plan(w, h, 512, 12, halo).unwrap();
            g.check(w, h, 512).unwrap();
            for y in 0..h {
                for x in 0..w {
                    let (t, j, s) = g.locate(w, x, y, halo, 0);
                    assert!(j < g.chunks as usize && s < g.chunk_slots());
                    assert_eq!(
                        g.source(w, t, j, s),
                        Some((x as i64, y as i64)),
                        "{w}x{h} at {x},{y}"
                    );
                    // Every neighbour within the halo is in the same chunk.
                    for d in -(halo as i64)..=(halo as i64) {
                        let (sx, sy) = g.source(w, t, j, (s as i64 + d) as usize).unwrap();
                        assert_eq!((sx, sy), (x as i64 + d, y as i64));
                        let (vx, vy) = g.source(w, (t as i64 + d) as usize, j, s).unwrap();
                        assert_eq!((vx, vy), (x as i64, y as i64 + d));
                    }
                }
            }
        }
    }

    #[test]
    fn outputs_are_the_inverse_of_locate() {
        for (w, h, halo) in [(1, 1, 1), (1, 7, 2), (9, 1, 3), (37, 23, 1), (100, 3, 2)] {
            let g = Geometry::plan(w, h, 512, 12, halo).unwrap();
            let mut seen = vec![0u32; w * h];
            for i in 0..g.band_rows as usize {
                for j in 0..g.chunks as usize {
                    let mut last_slot = None;
                    for (x, y) in g.outputs(w, h, i, j) {
                        let (t, jj, s) = g.locate(w, x, y, 0, 0);
                        assert_eq!((t, jj), (i, j), "{w}x{h} pixel {x},{y}");
                        assert!(last_slot < Some(s), "slot order");
                        last_slot = Some(s);
                        seen[y * w + x] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{w}x{h}: {seen:?}");
            assert_eq!(g.outputs(w, h, g.band_rows as usize, 0).count(), 0);
        }
    }

    #[test]
    fn refuses_impossible_parameters() {
        assert!(Geometry::plan(8, 8, 512, 7, 1).is_err());
        assert!(Geometry::plan(8, 8, 512, 63, 1).is_err());
        assert!(Geometry::plan(8, 8, 512, 60, 2).is_err()); // 8 slots < 4*2+1
        let mut g = Geometry::plan(30, 30, 512, 12, 1).unwrap();
        g.chunks += 1;
        assert!(g.check(30, 30, 512).is_err());
    }
}
