//! Homomorphic evaluation of filters and chains on an encrypted image,
//! with the public key only, after planning has checked them in full.
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

use enc_image::{EncryptedImage, ImageMeta, Packing, Phase, Progress};
use paillier::hazmat::trivial_encrypt_raw;
use paillier::{Ciphertext, Integer, PublicKey};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::filter::{BT601, Filter};
use crate::kernel::Kernel;
use crate::lower::Step;
use crate::plan::{affine_params, check_chain, plan};

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
        None => Ok(trivial_encrypt_raw(pk, &Integer::new())?),
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

/// Applies a chain of filters, in order, with the public key only. The
/// whole chain is checked first ([`check_chain`]): a chain that would not
/// fit is refused before any work. Each filter's label is appended to the
/// image's history.
pub fn apply_chain(
    img: &EncryptedImage,
    pk: &PublicKey,
    chain: &[Filter],
    progress: &dyn Progress,
) -> Result<EncryptedImage> {
    img.check_key(pk)?;
    check_chain(img.meta(), chain)?;
    let mut cur: Option<EncryptedImage> = None;
    for f in chain {
        check_cancel(progress)?;
        let next = run(
            cur.as_ref().unwrap_or(img),
            pk,
            &f.step()?,
            &f.label(),
            progress,
        )?;
        cur = Some(next);
    }
    Ok(cur.unwrap_or_else(|| img.clone()))
}

/// Stops the work with [`Error::Cancelled`] once `progress` says so;
/// called between ciphertexts, so that a cancelled job stops within the
/// time of one output ciphertext per thread.
fn check_cancel(progress: &dyn Progress) -> Result<()> {
    if progress.cancelled() {
        Err(Error::Cancelled)
    } else {
        Ok(())
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
            affine(img, pk, w, &meta.broadcast(k), progress)?
        }
        (Step::Grey, _) => grey(img, pk, &out_meta, progress)?,
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
) -> Result<Vec<Ciphertext>> {
    let cts = img.ciphertexts();
    progress.start(Phase::Filter, cts.len() as u64);
    let out = cts
        .par_iter()
        .map(|c| {
            check_cancel(progress)?;
            let scaled = pow_small(pk, c, w).unwrap_or_else(|| pk.mul_plain(c, &Integer::new()));
            let r = if *add == 0 {
                scaled
            } else {
                pk.add_plain(&scaled, add)
            };
            progress.advance(1);
            Ok(r)
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
) -> Result<Vec<Ciphertext>> {
    let cts = img.ciphertexts();
    let per_channel = out_meta.rows() * out_meta.row_len();
    let count = out_meta.ciphertext_count();
    let total: i64 = BT601.iter().sum();
    progress.start(Phase::Filter, count as u64);
    let out = (0..count)
        .into_par_iter()
        .map(|idx| {
            check_cancel(progress)?;
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
            Ok(r)
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
            progress.start(Phase::Filter, count as u64);
            let out = (0..count)
                .into_par_iter()
                .map(|idx| {
                    check_cancel(progress)?;
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
            progress.start(Phase::Filter, count as u64);
            let out = (0..count)
                .into_par_iter()
                .map(|idx| {
                    check_cancel(progress)?;
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
        Ok(trivial_encrypt_raw(pk, &m)?)
    };
    progress.start(Phase::Filter, count as u64);
    let out = (0..count)
        .into_par_iter()
        .map(|idx| {
            check_cancel(progress)?;
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
