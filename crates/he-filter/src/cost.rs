//! What a chain costs before it runs: a count of modular multiplications
//! from the lowered steps, the image's ciphertext counts and the key size,
//! so that a server can refuse a job too large before any work.
//!
//! The model follows the evaluator (`eval.rs`) step by step:
//!
//! - `c^e` with an `e` of `b` bits costs about `b` squarings and `b / 5`
//!   multiplications (GMP's sliding window): `1.2 b` multiplications;
//!   `c^-1` (a negative weight) is an inversion, counted as
//!   [`INVERSE_MULS`] multiplications; a product of two ciphertexts is one.
//! - Packed layout, separable kernel: per output ciphertext, the vertical
//!   taps (small powers and products) and one exponentiation by the row's
//!   packed exponent (`slot_bits * (k - 1)` bits and the weight's), plus
//!   the centre's for a separable kernel plus a centre weight.
//! - Packed layout, other kernels: per output ciphertext, one packed
//!   exponentiation per distinct non-zero row, and the products.
//! - Unpacked layout: per output ciphertext, a small power and a product
//!   per non-zero weight.
//! - Affine maps and the grey sum: small powers per ciphertext.
//!
//! A multiplication modulo `n^2` costs about `(key_bits / 2048)^`[`KEY_EXPONENT`]
//! times one at 2048 bits (GMP's Karatsuba and Toom range). The
//! [`Cost`] is in units of [`MULS_PER_UNIT`] multiplications at 2048 bits
//! (see [`SECONDS_PER_UNIT`] for what one unit took on the machine it was
//! calibrated on).

use enc_image::{ImageMeta, Packing};

use crate::error::Result;
use crate::filter::{BT601, Filter};
use crate::kernel::Kernel;
use crate::lower::Step;
use crate::plan::plan;

/// Multiplications an inversion modulo `n^2` is counted as.
pub const INVERSE_MULS: f64 = 20.0;
/// How the cost of a multiplication grows with the key: `(bits / 2048)^KEY_EXPONENT`.
pub const KEY_EXPONENT: f64 = 1.6;
/// Multiplications modulo `n^2` at 2048 bits in one cost unit (a million).
pub const MULS_PER_UNIT: f64 = 1e6;
/// Seconds of one core per cost unit, measured on the machine of
/// 2026-11-26 (2 cores shared by several builds) with `he blur --threads 1`
/// on the astronaut at 128x128 and 256x256, 2048 and 3072 bits, with a 3x3
/// and 7x7 mean, sharpen and a random 7x7 0/1 kernel: 4 to 10 s per unit
/// (the filter time includes loading and checking the upload), median
/// about 6 (docs/SERVICE.md, "Cost").
pub const SECONDS_PER_UNIT: f64 = 6.0;

/// The estimated work of a job, in units of [`MULS_PER_UNIT`]
/// multiplications modulo `n^2` at 2048 bits (about [`SECONDS_PER_UNIT`]
/// core-seconds each). Ordered, so that it compares with a budget.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Cost {
    units: f64,
}

impl Cost {
    /// The cost in units.
    #[must_use]
    pub fn units(self) -> f64 {
        self.units
    }

    /// The cost in whole units, rounded up (what budgets and quotas count).
    #[must_use]
    pub fn whole_units(self) -> u64 {
        self.units.ceil() as u64
    }

    /// About how many core-seconds the job takes (see [`SECONDS_PER_UNIT`]).
    #[must_use]
    pub fn core_seconds(self) -> f64 {
        self.units * SECONDS_PER_UNIT
    }
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} units (about {:.0} core-seconds)",
            self.units,
            self.core_seconds()
        )
    }
}

/// Bits of `|w|` (0 for 0).
fn bits(w: u128) -> f64 {
    f64::from(128 - w.leading_zeros())
}

/// Multiplications of `c^w` for a small weight, as `pow_small` does it.
fn small_pow(w: i64) -> f64 {
    match w {
        0 | 1 => 0.0,
        -1 => INVERSE_MULS,
        w => 1.2 * bits(u128::from(w.unsigned_abs())) + if w < 0 { INVERSE_MULS } else { 0.0 },
    }
}

/// Multiplications of `c^W` for the packed exponent of `row` on
/// `slot_bits`-bit slots (`W = sum_j row[k-1-j] 2^(b j)`).
fn packed_pow(row: &[i64], slot_bits: u32) -> f64 {
    // The highest slot is that of the first non-zero weight, which also
    // gives the exponent its sign.
    let Some(first) = row.iter().position(|&w| w != 0) else {
        return 0.0;
    };
    let (top, lead) = (row.len() - 1 - first, row[first]);
    let negative = lead < 0;
    let lead = lead.unsigned_abs();
    let exp_bits = f64::from(slot_bits) * top as f64 + bits(u128::from(lead));
    1.2 * exp_bits + if negative { INVERSE_MULS } else { 0.0 }
}

/// Multiplications per output ciphertext of a kernel.
fn kernel_muls(kernel: &Kernel, packing: Packing) -> f64 {
    let k = kernel.size();
    match packing {
        Packing::Packed(g) => {
            let b = g.slot_bits;
            let decomposed = kernel
                .separable()
                .map(|(col, row)| (0, col, row))
                .or_else(|| kernel.separable_plus_centre());
            match decomposed {
                Some((alpha, col, row)) => {
                    let vertical: f64 = col
                        .iter()
                        .filter(|&&w| w != 0)
                        .map(|&w| small_pow(w) + 1.0)
                        .sum();
                    let centre = if alpha == 0 {
                        0.0
                    } else {
                        1.2 * (f64::from(b) * (k / 2) as f64
                            + bits(u128::from(alpha.unsigned_abs())))
                            + 1.0
                    };
                    vertical + packed_pow(&row, b) + centre
                }
                None => {
                    let mut distinct: Vec<&[i64]> = Vec::new();
                    let mut products = 0.0;
                    for i in 0..k {
                        let row = kernel.row(i);
                        if row.iter().all(|&w| w == 0) {
                            continue;
                        }
                        products += 1.0;
                        if !distinct.contains(&row) {
                            distinct.push(row);
                        }
                    }
                    products + distinct.iter().map(|r| packed_pow(r, b)).sum::<f64>()
                }
            }
        }
        Packing::Unpacked => kernel
            .weights()
            .iter()
            .filter(|&&w| w != 0)
            .map(|&w| small_pow(w) + 1.0)
            .sum(),
    }
}

/// Multiplications per output ciphertext of one step on an image laid out as `meta`.
fn step_muls(step: &Step, meta: &ImageMeta) -> f64 {
    match step {
        Step::Kernel(kernel) => kernel_muls(kernel, meta.packing()),
        // c^w and a product with E(add): the multiplier is at most a few
        // bits beyond the parameter terms; count it as 16.
        Step::Affine { .. } => 1.2 * 16.0 + 1.0,
        Step::Grey => BT601.iter().map(|&w| small_pow(w) + 1.0).sum::<f64>(),
    }
}

/// Estimates the work of `chain` on an image described by `meta`, without
/// any ciphertext work: the chain is planned step by step (as
/// [`check_chain`](crate::check_chain) does, with the same errors) and
/// each step is charged for the ciphertexts it writes.
pub fn estimate_cost(meta: &ImageMeta, chain: &[Filter]) -> Result<Cost> {
    let key = (f64::from(meta.key_bits()) / 2048.0).powf(KEY_EXPONENT);
    let mut m = meta.clone();
    let mut muls = 0.0;
    for f in chain {
        let step = f.step()?;
        let out = plan(&m, &step, &f.label())?;
        muls += step_muls(&step, &m) * out.ciphertext_count() as f64;
        m = out;
    }
    Ok(Cost {
        units: muls * key / MULS_PER_UNIT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use enc_image::ColorLayout;

    fn meta(w: usize, h: usize, bits: u32, chain: &[Filter]) -> ImageMeta {
        let opts = crate::encrypt_options(chain).unwrap();
        ImageMeta::for_encryption(w, h, ColorLayout::Rgb8, bits, [0; 32], &opts).unwrap()
    }

    #[test]
    fn cost_grows_with_kernel_image_and_key() {
        let mean3 = [Filter::Mean { k: 3 }];
        let mean7 = [Filter::Mean { k: 7 }];
        let c =
            |w, h, bits, chain: &[Filter]| estimate_cost(&meta(w, h, bits, chain), chain).unwrap();
        assert!(c(256, 256, 2048, &mean3) < c(256, 256, 2048, &mean7));
        assert!(c(256, 256, 2048, &mean3) < c(512, 512, 2048, &mean3));
        assert!(c(256, 256, 2048, &mean3) < c(256, 256, 4096, &mean3));
        // A non-separable kernel costs more than a separable one of its size.
        let emboss = [Filter::Emboss];
        assert!(c(256, 256, 2048, &mean3) < c(256, 256, 2048, &emboss));
    }

    #[test]
    fn a_cancelled_progress_stops_the_filter() {
        struct Stop;
        impl enc_image::Progress for Stop {
            fn cancelled(&self) -> bool {
                true
            }
        }
        let kp = paillier::Keypair::generate_insecure_for_tests(512).unwrap();
        let img = enc_image::PixelImage::new(8, 8, ColorLayout::Luma8, vec![7; 64]).unwrap();
        let chain = [Filter::Mean { k: 3 }];
        let opts = crate::encrypt_options(&chain).unwrap();
        let enc = enc_image::EncryptedImage::encrypt(
            &img,
            kp.private_key(),
            &opts,
            &enc_image::NoProgress,
        )
        .unwrap();
        let r = crate::apply_chain(&enc, kp.public_key(), &chain, &Stop);
        assert!(matches!(r, Err(crate::Error::Cancelled)), "{r:?}");
        crate::apply_chain(&enc, kp.public_key(), &chain, &enc_image::NoProgress).unwrap();
    }
}
