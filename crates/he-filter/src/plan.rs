//! Planning: what a filter or a chain does to an image's public
//! description (halo, value ranges and slot width, scale, colour layout),
//! checked in full without any ciphertext work. The server checks a job
//! with it before accepting it, the evaluator before computing, and the
//! plaintext reference computes the same exact values with its scale.
//!
//! # What a chain computes
//!
//! The border is applied once, when the image is encrypted (horizontal
//! padding lives inside the packed plaintexts, and ciphertext slots cannot
//! be moved down). So a chain computes every step on the image extended
//! once by its border mode, as if the whole chain were one filter: for a
//! single filter this is exactly the usual filter (OpenCV's `filter2D` with
//! that border); for a chain it differs from calling the filters one after
//! another, each re-applying the border, only within the chain's total
//! radius of the image's edges. [`reference::apply_chain`](crate::reference::apply_chain)
//! computes the same thing on plain pixels.

use enc_image::{
    BorderMode, ColorLayout, EncryptOptions, ImageMeta, Layout, MAX_SLOT_BITS, Packing, Rational,
    bits_for_range, gcd,
};

use crate::error::{Error, Result};
use crate::filter::{BT601, Filter};
use crate::kernel::range_after;
use crate::lower::Step;

/// The description of the image after the whole chain, checked in full
/// (halo, slot width of every intermediate value, scale, colour layout)
/// without any ciphertext work: what a server checks before accepting a
/// job.
pub fn check_chain(meta: &ImageMeta, chain: &[Filter]) -> Result<ImageMeta> {
    let mut m = meta.clone();
    for f in chain {
        m = plan(&m, &f.step()?, &f.label())?;
    }
    Ok(m)
}

/// What the client must encrypt with so that the server can run `chain`:
/// a halo of the chain's total radius and slots wide enough for every
/// intermediate value (replicate border; change it with
/// [`EncryptOptions::border`]).
pub fn encrypt_options(chain: &[Filter]) -> Result<EncryptOptions> {
    let (mut lo, mut hi) = (0i64, 255i64);
    let (mut need_lo, mut need_hi) = (lo, hi);
    let mut scale = Rational::ONE;
    let mut halo = 0usize;
    for f in chain {
        let step = f.step()?;
        halo += f.radius()?;
        let r = step_ranges(&step, lo, hi, scale, &f.label())?;
        for (clo, chi, _) in &r.checks {
            // Keep the widest span: a slot must hold hi - lo.
            if i128::from(*chi) - i128::from(*clo) > i128::from(need_hi) - i128::from(need_lo) {
                (need_lo, need_hi) = (*clo, *chi);
            }
        }
        (lo, hi) = r.out;
        scale = r.scale;
    }
    let bits = bits_for_range(need_lo, need_hi);
    if bits > MAX_SLOT_BITS {
        return Err(Error::Parameter(format!(
            "the chain's values span [{need_lo}, {need_hi}], wider than the largest slot ({MAX_SLOT_BITS} bits); \
             use a shorter chain or smaller weights"
        )));
    }
    let halo = u32::try_from(halo)
        .map_err(|_| Error::Parameter("the chain's total radius is too large".into()))?;
    Ok(EncryptOptions {
        layout: Layout::Packed {
            slot_bits: bits,
            halo,
        },
        border: BorderMode::Replicate,
    })
}

/// The description of `meta` after `step`, checked in full: halo, slot
/// width of every intermediate result, scale, colour layout. No ciphertext
/// work.
pub(crate) fn plan(meta: &ImageMeta, step: &Step, label: &str) -> Result<ImageMeta> {
    match step {
        Step::Kernel(kernel) => meta.check_radius(kernel.radius() as u32, label)?,
        Step::Grey => {
            grey_layout(meta.color(), label)?;
        }
        Step::Affine { .. } => {}
    }
    let (lo, hi) = meta.digit_range();
    let r = step_ranges(step, lo, hi, meta.scale(), label)?;
    for (clo, chi, what) in &r.checks {
        meta.check_digit_range(*clo, *chi, what)?;
    }
    let (olo, ohi) = r.out;
    match step {
        Step::Kernel(kernel) => {
            let radius = kernel.radius() as u32;
            if meta.packing() == Packing::Unpacked && radius > 0 && !meta.history().is_empty() {
                return Err(Error::Parameter(format!(
                    "{label}: in the unpacked layout (the one-value-per-ciphertext baseline) a \
                     neighbourhood filter must come first, because that layout re-applies the border \
                     after each step; use the packed layout for chains"
                )));
            }
            Ok(meta.after_filter(radius, olo, ohi, r.scale, label.to_string())?)
        }
        Step::Affine { .. } => Ok(meta.after_pointwise(olo, ohi, r.scale, label.to_string())?),
        Step::Grey => {
            let color = grey_layout(meta.color(), label)?;
            Ok(meta.after_recolor(color, olo, ohi, r.scale, label.to_string())?)
        }
    }
}

/// The colour layout after RGB-to-grey, or why there is none.
pub(crate) fn grey_layout(color: ColorLayout, label: &str) -> Result<ColorLayout> {
    match color {
        ColorLayout::Rgb8 => Ok(ColorLayout::Luma8),
        ColorLayout::Rgba8 => Ok(ColorLayout::LumaA8),
        other => Err(Error::Parameter(format!(
            "{label}: needs an RGB or RGBA image, this one is {other:?}"
        ))),
    }
}

/// Ranges a step produces from slot values in `[lo, hi]` at `scale`.
pub(crate) struct StepRanges {
    /// Every intermediate and final range that must fit a slot, named.
    pub(crate) checks: Vec<(i64, i64, String)>,
    /// The output range (`lo <= 0 <= hi`).
    pub(crate) out: (i64, i64),
    /// The output scale.
    pub(crate) scale: Rational,
}

fn fit(v: i128, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Parameter(format!("{what}: values overflow 64 bits")))
}

/// `(W, K, scale')` with `W v + K` at `scale'` equal to `mul * (v * scale) + add`,
/// in lowest terms.
pub(crate) fn affine_params(
    scale: Rational,
    mul: Rational,
    add: Rational,
    what: &str,
) -> Result<(i64, i64, Rational)> {
    let (num, den) = (i128::from(scale.num()), i128::from(scale.den()));
    let (an, ad) = (i128::from(mul.num()), i128::from(mul.den()));
    let (bn, bd) = (i128::from(add.num()), i128::from(add.den()));
    // (an/ad) (v num/den) + bn/bd = (an num bd v + bn ad den) / (ad den bd)
    let w = an * num * bd;
    let k = bn * ad * den;
    let d = ad * den * bd;
    let g = gcd(gcd(w.unsigned_abs(), k.unsigned_abs()), d.unsigned_abs()).max(1) as i128;
    let (w, k, d) = (w / g, k / g, d / g);
    let d = u64::try_from(d).map_err(|_| Error::Parameter(format!("{what}: scale overflows")))?;
    Ok((fit(w, what)?, fit(k, what)?, Rational::new(1, d)?))
}

pub(crate) fn step_ranges(
    step: &Step,
    lo: i64,
    hi: i64,
    scale: Rational,
    label: &str,
) -> Result<StepRanges> {
    match step {
        Step::Kernel(kernel) => {
            let mut checks = Vec::new();
            if let Some((col, row)) = kernel.separable() {
                let (vlo, vhi) = range_after(&col, lo, hi)?;
                checks.push((vlo, vhi, format!("{label} (vertical pass)")));
                let out = range_after(&row, vlo, vhi)?;
                checks.push((out.0, out.1, label.to_string()));
                let scale = scale.times(1, kernel.divisor())?;
                return Ok(StepRanges { checks, out, scale });
            }
            if let Some((alpha, col, row)) = kernel.separable_plus_centre() {
                let (vlo, vhi) = range_after(&col, lo, hi)?;
                checks.push((vlo, vhi, format!("{label} (vertical pass)")));
                let (slo, shi) = range_after(&row, vlo, vhi)?;
                checks.push((slo, shi, format!("{label} (separable part)")));
                let (clo, chi) = range_after(&[alpha], lo, hi)?;
                checks.push((clo, chi, format!("{label} (centre)")));
                let out = range_after(kernel.weights(), lo, hi)?;
                checks.push((out.0, out.1, label.to_string()));
                let scale = scale.times(1, kernel.divisor())?;
                return Ok(StepRanges { checks, out, scale });
            }
            for i in 0..kernel.size() {
                let (rlo, rhi) = range_after(kernel.row(i), lo, hi)?;
                checks.push((rlo, rhi, format!("{label} (row {i})")));
            }
            let out = range_after(kernel.weights(), lo, hi)?;
            checks.push((out.0, out.1, label.to_string()));
            let scale = scale.times(1, kernel.divisor())?;
            Ok(StepRanges { checks, out, scale })
        }
        Step::Affine { mul, add } => {
            let (w, k, scale) = affine_params(scale, *mul, *add, label)?;
            let (a, b) = (
                i128::from(w) * i128::from(lo),
                i128::from(w) * i128::from(hi),
            );
            let olo = fit(a.min(b) + i128::from(k), label)?.min(0);
            let ohi = fit(a.max(b) + i128::from(k), label)?.max(0);
            Ok(StepRanges {
                checks: vec![(olo, ohi, label.to_string())],
                out: (olo, ohi),
                scale,
            })
        }
        Step::Grey => {
            let total: i64 = BT601.iter().sum();
            let out = range_after(&[total], lo, hi)?;
            Ok(StepRanges {
                checks: vec![(out.0, out.1, label.to_string())],
                out,
                scale: scale.times(1, total as u64)?,
            })
        }
    }
}
