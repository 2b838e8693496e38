//! Homomorphic evaluation of a kernel on an encrypted image, with the
//! public key only.
//!
//! Packed layout: a horizontal 1-D filter `v` over a whole chunk is one
//! exponentiation by `W = sum_j v[2r - j] * 2^(b*j)` (slot `i` becomes
//! `sum_j v[2r-j] x_(i-j)`, so the output for slot `s` lands in slot
//! `s + r`); vertical taps are products of the ciphertexts of neighbouring
//! rows raised to their (small) weights. Separable kernels (and a separable
//! kernel plus a centre weight, as the unsharp mask) cost one large
//! exponentiation per output ciphertext after the vertical taps; others one
//! per distinct kernel row and output ciphertext (equal rows are multiplied
//! first). Unpacked layout: every output is the product of its `k x k`
//! neighbours raised to their weights, borders by index.

use enc_image::{ColorLayout, EncryptedImage, ImageMeta, Packing, Progress, Scale};
use paillier::{Ciphertext, Integer, PublicKey};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::filter::{BT601, Step};
use crate::kernel::{Kernel, range_after};
use crate::ratio::Ratio;

/// `c^w` for a small public weight, avoiding work for 0, 1 and -1.
fn pow_small(pk: &PublicKey, c: &Ciphertext, w: i64) -> Option<Ciphertext> {
    match w {
        0 => None,
        1 => Some(c.clone()),
        -1 => Some(pk.neg(c)),
        _ => Some(pk.mul_plain(c, &Integer::from(w))),
    }
}

/// The product of `terms`, or the (deterministic) encryption of 0 when
/// there are none.
fn product(pk: &PublicKey, terms: impl Iterator<Item = Ciphertext>) -> Result<Ciphertext> {
    let mut acc: Option<Ciphertext> = None;
    for t in terms {
        acc = Some(match acc {
            None => t,
            Some(a) => pk.add(&a, &t),
        });
    }
    match acc {
        Some(a) => Ok(a),
        None => Ok(pk.trivial_encrypt_raw(&Integer::new())?),
    }
}

/// `prod c_i^(w_i)`, multiplying the ciphertexts of equal weights first so
/// that each distinct weight costs one exponentiation (symmetric kernels:
/// about half of them). `pow` gives `c^w`, or `None` for the identity.
fn weighted_product<'a, W: PartialEq + 'a>(
    pk: &PublicKey,
    taps: impl Iterator<Item = (&'a Ciphertext, &'a W)>,
    pow: impl Fn(&Ciphertext, &W) -> Option<Ciphertext>,
) -> Result<Ciphertext> {
    let mut groups: Vec<(&W, Ciphertext)> = Vec::new();
    for (c, w) in taps {
        match groups.iter_mut().find(|(gw, _)| *gw == w) {
            Some((_, acc)) => *acc = pk.add(acc, c),
            None => groups.push((w, c.clone())),
        }
    }
    product(pk, groups.iter().filter_map(|(w, c)| pow(c, w)))
}

/// The exponent of a horizontal pass with weights `row` on `bits`-bit slots.
fn row_exponent(row: &[i64], bits: u32) -> Integer {
    let k = row.len();
    let mut w = Integer::new();
    for j in 0..k {
        w += Integer::from(row[k - 1 - j]) << (bits as usize * j);
    }
    w
}

/// Applies `kernel` to `img` (see the module docs). All checks happen
/// before any ciphertext work.
pub(crate) fn apply(
    img: &EncryptedImage,
    pk: &PublicKey,
    kernel: &Kernel,
    progress: &dyn Progress,
) -> Result<EncryptedImage> {
    run(
        img,
        pk,
        &Step::Kernel(kernel.clone()),
        kernel.name(),
        progress,
    )
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
    pub(crate) scale: Scale,
}

fn fit(v: i128, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Parameter(format!("{what}: values overflow 64 bits")))
}

/// `(W, K, scale')` with `W v + K` at `scale'` equal to `mul * (v * scale) + add`,
/// in lowest terms.
pub(crate) fn affine_params(
    scale: Scale,
    mul: Ratio,
    add: Ratio,
    what: &str,
) -> Result<(i64, i64, Scale)> {
    let (num, den) = (i128::from(scale.num()), i128::from(scale.den()));
    let (an, ad) = (i128::from(mul.num()), i128::from(mul.den()));
    let (bn, bd) = (i128::from(add.num()), i128::from(add.den()));
    // (an/ad) (v num/den) + bn/bd = (an num bd v + bn ad den) / (ad den bd)
    let w = an * num * bd;
    let k = bn * ad * den;
    let d = ad * den * bd;
    let g = gcd128(gcd128(w.abs(), k.abs()), d).max(1);
    let (w, k, d) = (w / g, k / g, d / g);
    let d = u64::try_from(d).map_err(|_| Error::Parameter(format!("{what}: scale overflows")))?;
    Ok((fit(w, what)?, fit(k, what)?, Scale::new(1, d)?))
}

fn gcd128(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

pub(crate) fn step_ranges(
    step: &Step,
    lo: i64,
    hi: i64,
    scale: Scale,
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

/// Runs one step on ciphertexts after checking it in full.
pub(crate) fn run(
    img: &EncryptedImage,
    pk: &PublicKey,
    step: &Step,
    label: &str,
    progress: &dyn Progress,
) -> Result<EncryptedImage> {
    img.check_key(pk)?;
    let meta = img.meta();
    let out_meta = plan(meta, step, label)?;
    let cts = match (step, meta.packing()) {
        (Step::Kernel(kernel), Packing::Packed(g)) => {
            packed(img, pk, kernel, &out_meta, g.slot_bits, progress)?
        }
        (Step::Kernel(kernel), Packing::Unpacked) => unpacked(img, pk, kernel, progress)?,
        (Step::Affine { mul, add }, _) => {
            let (w, k, _) = affine_params(meta.scale(), *mul, *add, label)?;
            affine(img, pk, w, &meta.broadcast(k), progress)
        }
        (Step::Grey, _) => grey(img, pk, &out_meta, progress),
    };
    Ok(EncryptedImage::from_parts(out_meta, cts)?)
}

/// `c^w * E(add)` for every ciphertext: `w v + add` in every slot.
fn affine(
    img: &EncryptedImage,
    pk: &PublicKey,
    w: i64,
    add: &Integer,
    progress: &dyn Progress,
) -> Vec<Ciphertext> {
    let cts = img.ciphertexts();
    progress.start("filter", cts.len() as u64);
    let out = cts
        .par_iter()
        .map(|c| {
            let scaled = pow_small(pk, c, w).unwrap_or_else(|| pk.mul_plain(c, &Integer::new()));
            let r = if *add == 0 {
                scaled
            } else {
                pk.add_plain(&scaled, add)
            };
            progress.advance(1);
            r
        })
        .collect();
    progress.finish();
    out
}

/// The BT.601 weighted sum of the colour channels, slot by slot (the
/// channels share their layout); alpha is multiplied by the same total so
/// that it keeps its value under the new scale.
fn grey(
    img: &EncryptedImage,
    pk: &PublicKey,
    out_meta: &ImageMeta,
    progress: &dyn Progress,
) -> Vec<Ciphertext> {
    let cts = img.ciphertexts();
    let per_channel = out_meta.rows() * out_meta.row_len();
    let count = out_meta.ciphertext_count();
    let total: i64 = BT601.iter().sum();
    progress.start("filter", count as u64);
    let out = (0..count)
        .into_par_iter()
        .map(|idx| {
            let (c, rest) = (idx / per_channel, idx % per_channel);
            let r = if c == 0 {
                let mut acc = pk.mul_plain(&cts[rest], &Integer::from(BT601[0]));
                for (ch, &wt) in BT601.iter().enumerate().skip(1) {
                    let t = pk.mul_plain(&cts[ch * per_channel + rest], &Integer::from(wt));
                    acc = pk.add(&acc, &t);
                }
                acc
            } else {
                pk.mul_plain(&cts[3 * per_channel + rest], &Integer::from(total))
            };
            progress.advance(1);
            r
        })
        .collect();
    progress.finish();
    out
}

fn packed(
    img: &EncryptedImage,
    pk: &PublicKey,
    kernel: &Kernel,
    out_meta: &ImageMeta,
    bits: u32,
    progress: &dyn Progress,
) -> Result<Vec<Ciphertext>> {
    let meta = img.meta();
    let cts = img.ciphertexts();
    let k = kernel.size();
    let (rows_out, len) = (out_meta.rows(), meta.row_len());
    let count = out_meta.ciphertext_count();
    let at = |c: usize, t: usize, j: usize| &cts[meta.index(c, t, j)];
    let split = |idx: usize| (idx / (rows_out * len), (idx / len) % rows_out, idx % len);
    let decomposed = kernel
        .separable()
        .map(|(col, row)| (0, col, row))
        .or_else(|| kernel.separable_plus_centre());
    match decomposed {
        Some((alpha, col, row)) => {
            // Vertical taps first (products and small powers of the rows
            // above and below), then one horizontal exponentiation per
            // output, and for `alpha != 0` the centre times `alpha`,
            // shifted to where the passes put their output (`r` slots up).
            // Vertical first costs one large exponentiation per output
            // rather than per input row (the margin rows make more inputs).
            let w = row_exponent(&row, bits);
            let r = k / 2;
            let centre = (alpha != 0).then(|| Integer::from(alpha) << (bits as usize * r));
            progress.start("filter", count as u64);
            let out = (0..count)
                .into_par_iter()
                .map(|idx| {
                    let (c, t, j) = split(idx);
                    let taps = (0..k)
                        .filter(|&dy| col[dy] != 0)
                        .map(|dy| (at(c, t + dy, j), &col[dy]));
                    let vertical = weighted_product(pk, taps, |c, &w| pow_small(pk, c, w))?;
                    let mut p = pk.mul_plain(&vertical, &w);
                    if let Some(e) = &centre {
                        p = pk.add(&p, &pk.mul_plain(at(c, t + r, j), e));
                    }
                    progress.advance(1);
                    Ok(p)
                })
                .collect::<Result<Vec<_>>>();
            progress.finish();
            out
        }
        None => {
            let ws: Vec<Integer> = (0..k).map(|i| row_exponent(kernel.row(i), bits)).collect();
            progress.start("filter", count as u64);
            let out = (0..count)
                .into_par_iter()
                .map(|idx| {
                    let (c, t, j) = split(idx);
                    let taps = (0..k)
                        .filter(|&dy| ws[dy] != 0)
                        .map(|dy| (at(c, t + dy, j), &ws[dy]));
                    let p = weighted_product(pk, taps, |c, w| Some(pk.mul_plain(c, w)));
                    progress.advance(1);
                    p
                })
                .collect::<Result<Vec<_>>>();
            progress.finish();
            out
        }
    }
}

fn unpacked(
    img: &EncryptedImage,
    pk: &PublicKey,
    kernel: &Kernel,
    progress: &dyn Progress,
) -> Result<Vec<Ciphertext>> {
    let meta = img.meta();
    let cts = img.ciphertexts();
    let (w, h) = (meta.width(), meta.height());
    let border = meta.border();
    let r = kernel.radius() as i64;
    let count = cts.len();
    let constant = match border {
        enc_image::BorderMode::Constant(v) => i64::from(v),
        _ => 0,
    };
    // E(value * weight) for a pixel outside the image (constant border).
    let outside = |weight: i64| -> Result<Ciphertext> {
        let m = Integer::from(constant * weight).rem_euc(pk.n());
        Ok(pk.trivial_encrypt_raw(&m)?)
    };
    progress.start("filter", count as u64);
    let out = (0..count)
        .into_par_iter()
        .map(|idx| {
            let (c, y, x) = (idx / (w * h), (idx / w) % h, idx % w);
            let mut terms = Vec::with_capacity(kernel.size() * kernel.size());
            for i in 0..kernel.size() {
                let sy = border.source_index(y as i64 + i as i64 - r, h);
                for j in 0..kernel.size() {
                    let wt = kernel.weight(i, j);
                    if wt == 0 {
                        continue;
                    }
                    let sx = border.source_index(x as i64 + j as i64 - r, w);
                    match (sx, sy) {
                        (Some(sx), Some(sy)) => {
                            terms.extend(pow_small(pk, &cts[meta.index(c, sy, sx)], wt))
                        }
                        _ => terms.push(outside(wt)?),
                    }
                }
            }
            let p = product(pk, terms.into_iter());
            progress.advance(1);
            p
        })
        .collect::<Result<Vec<_>>>();
    progress.finish();
    out
}

use rug::ops::RemRounding;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_exponent_reverses_for_correlation() {
        // v = [a, b, c] -> W = c + b 2^8 + a 2^16
        assert_eq!(
            row_exponent(&[1, 2, 3], 8),
            Integer::from(3 + (2 << 8) + (1 << 16))
        );
        assert_eq!(row_exponent(&[-1, 0, 1], 4), Integer::from(1 - (1 << 8)));
    }
}
