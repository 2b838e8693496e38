//! Checking a server's result without filtering the whole image again.
//!
//! The client owns the input, so it can recompute the chain at any output
//! value from the small window around it ([`reference::Windowed`]) and
//! compare with what it decrypted. [`spot_check`] does that at one random
//! value of every output ciphertext and at a few thousand random values of
//! the image; see its docs for what that catches, and with what
//! probability.

use enc_image::BorderMode;
use enc_image::{DecryptedImage, ImageMeta, PixelImage, ValuePosition};
use rayon::prelude::*;

use crate::error::{Error, Mismatch, Result};
use crate::filter::Filter;
use crate::reference::Windowed;

/// How many random values [`spot_check`] compares by default: a server that
/// changed 1% of the values escapes with probability `0.99^2000`, about
/// `2e-9`.
pub const DEFAULT_RANDOM_VALUES: usize = 2000;

/// What [`spot_check`] samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpotCheck {
    /// Values drawn uniformly (with replacement) from the whole image.
    pub random_values: usize,
    /// Also one random value of every ciphertext that carries output values.
    pub every_ciphertext: bool,
}

impl Default for SpotCheck {
    /// [`DEFAULT_RANDOM_VALUES`] random values and one of every ciphertext.
    fn default() -> Self {
        SpotCheck {
            random_values: DEFAULT_RANDOM_VALUES,
            every_ciphertext: true,
        }
    }
}

impl SpotCheck {
    /// The default check with `n` random values instead of
    /// [`DEFAULT_RANDOM_VALUES`].
    #[must_use]
    pub fn with_random_values(n: usize) -> Self {
        SpotCheck {
            random_values: n,
            ..SpotCheck::default()
        }
    }
}

/// What a passed [`spot_check`] compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpotCheckReport {
    /// Pixels at which the chain was recomputed (each from its window, all
    /// channels at once): the cost of the check.
    pub pixels_evaluated: usize,
    /// Values compared (every channel of every evaluated pixel).
    pub values_compared: usize,
    /// Ciphertexts of which a randomly chosen value was compared.
    pub ciphertexts_sampled: usize,
    /// Values drawn uniformly from the whole image.
    pub random_values: usize,
    /// Values the image has (`width * height * channels`): what a full
    /// comparison would recompute.
    pub total_values: usize,
}

impl SpotCheckReport {
    /// The probability that a server which changed a fraction `g` of the
    /// values (chosen without knowing the sample) passes this check's
    /// uniformly drawn values: `(1 - g)^s`, an upper bound that ignores the
    /// per-ciphertext samples.
    #[must_use]
    pub fn miss_probability(&self, g: f64) -> f64 {
        (1.0 - g.clamp(0.0, 1.0)).powi(i32::try_from(self.random_values).unwrap_or(i32::MAX))
    }
}

/// Checks a decrypted result against the chain recomputed on the input at
/// random values, without filtering the whole image.
///
/// `input` is the image the client encrypted (with `border`), `chain` what
/// it asked for, `meta` the public description of the encrypted result it
/// decrypted (it says which ciphertext carries which value) and `result`
/// the decryption. Every value compared is recomputed from its
/// `(2R + 1)^2` window of the input (R the chain's total radius), so the
/// cost is O(samples x window), not a whole-image filter. Checks first that
/// the result has the chain's size, colour layout and public scale.
///
/// What is compared, with positions drawn from the operating system's
/// CSPRNG (`getrandom`), so a server cannot know them in advance:
///
/// - with [`SpotCheck::every_ciphertext`], one random value of every
///   ciphertext that carries output values ([`ImageMeta::values_of`]).
///   Replacing any single ciphertext (by an encryption of zero, a fresh
///   encryption of other values, another ciphertext of this or another
///   image) or swapping two is caught whenever it changes the sampled
///   value, which for a replaced ciphertext means nearly always: only the
///   slots that happen to hold the right value escape. Every ciphertext is
///   sampled, so no ciphertext can be wrong in all its values unseen;
/// - [`SpotCheck::random_values`] values drawn uniformly from the image
///   (each evaluated pixel compares all its channels). A server that
///   changed a fraction g of the values passes all s of them with
///   probability at most `(1 - g)^s`: with the default s = 2000, 1% of the
///   values changed is missed with probability about `2e-9`, 0.1% with
///   about 0.14. Skipping the filter, filtering another image, changing the
///   scale or the border change far more than 1%.
///
/// What it cannot see: a server that changes a handful of values in some
/// ciphertexts and leaves the sampled ones alone escapes with the
/// probability above; compare the whole image
/// ([`reference::apply_chain`](crate::reference::apply_chain)) when every
/// value matters more than the time.
///
/// On a wrong result, returns [`Error::Verification`] with the first
/// [`Mismatch`] found.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use enc_image::{ColorLayout, EncryptedImage, NoProgress, PixelImage};
/// use he_filter::{Filter, SpotCheck};
/// # let kp = paillier::Keypair::generate_insecure_for_tests(512)?;
/// # /*
/// let kp = paillier::Keypair::generate(3072)?;
/// # */
/// let img = PixelImage::new(30, 20, ColorLayout::Luma8, (0..600).map(|v| (v * 7 % 256) as u8).collect())?;
/// let chain = [Filter::Mean { k: 3 }];
/// let opts = he_filter::encrypt_options(&chain)?;
/// let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress)?;
/// let out = he_filter::apply_chain(&enc, kp.public_key(), &chain, &NoProgress)?.trim_halo();
/// let exact = out.decrypt(kp.private_key(), &NoProgress)?;
/// let report = he_filter::spot_check(&img, &chain, opts.border, out.meta(), &exact, &SpotCheck::default())?;
/// assert!(report.pixels_evaluated <= report.total_values);
/// # Ok(()) }
/// ```
pub fn spot_check(
    input: &PixelImage,
    chain: &[Filter],
    border: BorderMode,
    meta: &ImageMeta,
    result: &DecryptedImage,
    options: &SpotCheck,
) -> Result<SpotCheckReport> {
    spot_check_rows(
        input,
        chain,
        border,
        meta,
        result,
        0..input.height(),
        options,
    )
}

/// [`spot_check`] of a result that is the rows `rows` of the whole
/// image's result (a decrypted tile, [`enc_image::TilePlan`]): `meta` and
/// `result` are `rows.len()` rows high, and their row `y` is compared with
/// the chain on `input` at image row `rows.start + y` (the border applies
/// at the image's edges only, as for the whole image). Sampling is per
/// result as `spot_check`'s: one value of every ciphertext and
/// `options.random_values` values of these rows. A [`Mismatch::Value`]
/// names the image row.
pub fn spot_check_rows(
    input: &PixelImage,
    chain: &[Filter],
    border: BorderMode,
    meta: &ImageMeta,
    result: &DecryptedImage,
    rows: std::ops::Range<usize>,
    options: &SpotCheck,
) -> Result<SpotCheckReport> {
    if rows.is_empty() || rows.end > input.height() {
        return Err(Error::Parameter(format!(
            "rows {rows:?} are not within the image's {} rows",
            input.height()
        )));
    }
    let reference = Windowed::new(input, chain, border)?;
    let shape = |w: usize, h: usize, c: enc_image::ColorLayout| format!("{w}x{h} {c:?}");
    let expected = shape(input.width(), rows.len(), reference.color());
    for found in [
        shape(result.width(), result.height(), result.color()),
        shape(meta.width(), meta.height(), meta.color()),
    ] {
        if found != expected {
            return Err(Mismatch::Shape { expected, found }.into());
        }
    }
    if result.scale() != reference.scale() {
        return Err(Mismatch::Scale {
            expected: reference.scale(),
            found: result.scale(),
        }
        .into());
    }
    let (w, h, ch) = (result.width(), result.height(), result.color().channels());
    let total_values = w * h * ch;
    if total_values == 0 {
        return Ok(SpotCheckReport {
            pixels_evaluated: 0,
            values_compared: 0,
            ciphertexts_sampled: 0,
            random_values: 0,
            total_values,
        });
    }
    let mut rng = OsRandom::new();
    // The pixels to evaluate, as y * w + x.
    let mut pixels = Vec::new();
    let mut ciphertexts_sampled = 0;
    if options.every_ciphertext {
        for i in 0..meta.ciphertext_count() {
            let values = meta.values_of(i);
            if values.is_empty() {
                continue;
            }
            let ValuePosition { x, y, .. } = values[rng.below(values.len())?];
            pixels.push(y * w + x);
            ciphertexts_sampled += 1;
        }
    }
    for _ in 0..options.random_values {
        pixels.push(rng.below(total_values)? / ch);
    }
    pixels.sort_unstable();
    pixels.dedup();
    let mismatch = pixels.par_iter().find_map_any(|&p| {
        let (x, y) = (p % w, p / w);
        let want = reference.values_at(x, rows.start + y);
        let got = &result.values()[p * ch..(p + 1) * ch];
        (0..ch)
            .find(|&c| want[c] != got[c])
            .map(|c| Mismatch::Value {
                x,
                y: rows.start + y,
                channel: c,
                ciphertext: meta.ciphertext_of(x, y, c),
                expected: want[c],
                found: got[c],
            })
    });
    if let Some(m) = mismatch {
        return Err(m.into());
    }
    Ok(SpotCheckReport {
        pixels_evaluated: pixels.len(),
        values_compared: pixels.len() * ch,
        ciphertexts_sampled,
        random_values: options.random_values,
        total_values,
    })
}

/// Uniform indices from the operating system's CSPRNG, read in blocks.
struct OsRandom {
    buf: [u8; 4096],
    pos: usize,
}

impl OsRandom {
    fn new() -> Self {
        OsRandom {
            buf: [0; 4096],
            pos: 4096,
        }
    }

    fn next_u64(&mut self) -> Result<u64> {
        if self.pos + 8 > self.buf.len() {
            getrandom::fill(&mut self.buf).map_err(Error::Rng)?;
            self.pos = 0;
        }
        let mut b = [0; 8];
        b.copy_from_slice(&self.buf[self.pos..self.pos + 8]);
        self.pos += 8;
        Ok(u64::from_le_bytes(b))
    }

    /// A uniform integer in `[0, n)` (`n > 0`), by rejection: no modulo bias.
    fn below(&mut self, n: usize) -> Result<usize> {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64()?;
            if v < zone {
                return Ok((v % n) as usize);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_in_range_and_spread() {
        let mut rng = OsRandom::new();
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[rng.below(7).unwrap()] += 1;
        }
        // Each bucket expects 1000; 700 is more than 9 standard deviations off.
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
        assert_eq!(rng.below(1).unwrap(), 0);
    }

    #[test]
    fn miss_probability_is_one_minus_g_to_the_s() {
        let r = SpotCheckReport {
            pixels_evaluated: 0,
            values_compared: 0,
            ciphertexts_sampled: 0,
            random_values: 2000,
            total_values: 1,
        };
        let p = r.miss_probability(0.01);
        assert!((1.5e-9..2.0e-9).contains(&p), "{p}");
        assert_eq!(r.miss_probability(0.0), 1.0);
    }
}
