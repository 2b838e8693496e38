//! Homomorphic evaluation of a kernel on an encrypted image, with the
//! public key only.
//!
//! Packed layout: a horizontal 1-D filter `v` over a whole chunk is one
//! exponentiation by `W = sum_j v[2r - j] * 2^(b*j)` (slot `i` becomes
//! `sum_j v[2r-j] x_(i-j)`, so the output for slot `s` lands in slot
//! `s + r`); vertical taps are products of the ciphertexts of neighbouring
//! rows raised to their (small) weights. Separable kernels cost one large
//! exponentiation per input ciphertext; others one per kernel row and
//! output ciphertext. Unpacked layout: every output is the product of its
//! `k x k` neighbours raised to their weights, borders by index.

use enc_image::{EncryptedImage, ImageMeta, Packing, Progress};
use paillier::{Ciphertext, Integer, PublicKey};
use rayon::prelude::*;

use crate::error::Result;
use crate::kernel::{Kernel, range_after};

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

/// The exponent of a horizontal pass with weights `row` on `bits`-bit slots.
fn row_exponent(row: &[i64], bits: u32) -> Integer {
    let k = row.len();
    let mut w = Integer::new();
    for j in 0..k {
        w += Integer::from(row[k - 1 - j]) << (bits as usize * j);
    }
    w
}

/// The digit range after applying `kernel` to an image, and the range of
/// the intermediate horizontal results, both checked against the slots.
fn ranges(meta: &ImageMeta, kernel: &Kernel) -> Result<(i64, i64)> {
    let (lo, hi) = meta.digit_range();
    if let Some((col, row)) = kernel.separable() {
        let (hlo, hhi) = range_after(&row, lo, hi)?;
        meta.check_digit_range(hlo, hhi, &format!("{} (horizontal pass)", kernel.name()))?;
        return range_after(&col, hlo, hhi);
    }
    for i in 0..kernel.size() {
        let (rlo, rhi) = range_after(kernel.row(i), lo, hi)?;
        meta.check_digit_range(rlo, rhi, &format!("{} (row {i})", kernel.name()))?;
    }
    range_after(kernel.weights(), lo, hi)
}

/// Applies `kernel` to `img` (see the module docs). All checks happen
/// before any ciphertext work.
pub(crate) fn apply(
    img: &EncryptedImage,
    pk: &PublicKey,
    kernel: &Kernel,
    progress: &dyn Progress,
) -> Result<EncryptedImage> {
    img.check_key(pk)?;
    let meta = img.meta();
    meta.check_radius(kernel.radius() as u32, kernel.name())?;
    let (lo, hi) = ranges(meta, kernel)?;
    let scale = meta.scale().times(1, kernel.divisor())?;
    let r = kernel.radius();
    let out_meta = meta.after_filter(r as u32, lo, hi, scale, kernel.name().to_string())?;
    let cts = match meta.packing() {
        Packing::Packed(g) => packed(img, pk, kernel, &out_meta, g.slot_bits, progress)?,
        Packing::Unpacked => unpacked(img, pk, kernel, progress)?,
    };
    Ok(EncryptedImage::from_parts(out_meta, cts)?)
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
    match kernel.separable() {
        Some((col, row)) => {
            // Horizontal pass on every input ciphertext, then vertical taps.
            let w = row_exponent(&row, bits);
            progress.start("filter", (cts.len() + count) as u64);
            let horizontal: Vec<Ciphertext> = cts
                .par_iter()
                .map(|c| {
                    let h = pk.mul_plain(c, &w);
                    progress.advance(1);
                    h
                })
                .collect();
            let out = (0..count)
                .into_par_iter()
                .map(|idx| {
                    let (c, t, j) = split(idx);
                    let terms = (0..k).filter_map(|dy| {
                        pow_small(pk, &horizontal[meta.index(c, t + dy, j)], col[dy])
                    });
                    let p = product(pk, terms);
                    progress.advance(1);
                    p
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
                    let terms = (0..k)
                        .filter(|&dy| ws[dy] != 0)
                        .map(|dy| pk.mul_plain(at(c, t + dy, j), &ws[dy]));
                    let p = product(pk, terms);
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
