//! The plaintext reference: the same filters on plain pixels, in integers.
//! Tests and the examples compare every decrypted result against it.
//!
//! It shares nothing with the encrypted evaluation but the filters'
//! definitions (their kernels and exact parameters): here a filter is a
//! plain loop over a grid of integers.

use std::ops::Range;

use enc_image::{BorderMode, ColorLayout, DecryptedImage, PixelImage, Rational};

use crate::error::{Error, Result};
use crate::filter::{BT601, Filter};
use crate::kernel::Kernel;
use crate::lower::Step;
use crate::plan::affine_params;

/// One channel's values on a grid.
#[derive(Clone)]
struct Grid {
    w: usize,
    h: usize,
    v: Vec<i64>,
}

impl Grid {
    fn at(&self, x: usize, y: usize) -> i64 {
        self.v[y * self.w + x]
    }
}

/// A chain of filters on plain pixels, with the semantics of the encrypted
/// evaluation (see [`apply_chain`](crate::apply_chain)): the image is
/// extended once by `border` by the chain's total radius, every step runs
/// on that grid (each neighbourhood filter shrinking it by its radius), and
/// what remains is the image. Returns the exact values and their scale,
/// which a decryption must equal value for value.
pub fn apply_chain(
    img: &PixelImage,
    chain: &[Filter],
    border: BorderMode,
) -> Result<DecryptedImage> {
    apply_chain_rows(img, chain, border, 0..img.height())
}

/// The rows `rows` of [`apply_chain`]'s result (the image's full width),
/// computed from those rows and the chain's total radius of rows around
/// them, with the border only beyond the image's top and bottom: what a
/// decrypted tile ([`enc_image::TilePlan`]) must equal, without computing
/// (or holding) the whole image's result.
pub fn apply_chain_rows(
    img: &PixelImage,
    chain: &[Filter],
    border: BorderMode,
    rows: Range<usize>,
) -> Result<DecryptedImage> {
    if rows.is_empty() || rows.end > img.height() {
        return Err(Error::Parameter(format!(
            "rows {rows:?} are not within the image's {} rows",
            img.height()
        )));
    }
    let steps = chain
        .iter()
        .map(|f| Ok((f.step()?, f.label())))
        .collect::<Result<Vec<_>>>()?;
    let pad: usize = steps
        .iter()
        .map(|(s, _)| match s {
            Step::Kernel(k) => k.radius(),
            _ => 0,
        })
        .sum();
    let (w, h) = (img.width(), rows.len());
    let top = rows.start as i64 - pad as i64;
    let mut color = img.color();
    let mut grids: Vec<Grid> = (0..img.channels())
        .map(|c| {
            let (gw, gh) = (w + 2 * pad, h + 2 * pad);
            let mut v = Vec::with_capacity(gw * gh);
            for y in 0..gh as i64 {
                for x in 0..gw as i64 {
                    v.push(i64::from(border.sample(img, c, x - pad as i64, top + y)));
                }
            }
            Grid { w: gw, h: gh, v }
        })
        .collect();
    let mut scale = Rational::ONE;
    for (step, label) in &steps {
        match step {
            Step::Kernel(k) => {
                grids = grids.iter().map(|g| correlate_valid(g, k)).collect();
                scale = scale.times(1, k.divisor())?;
            }
            Step::Affine { mul, add } => {
                let (wt, add, s) = affine_params(scale, *mul, *add, label)?;
                for g in &mut grids {
                    for v in &mut g.v {
                        *v = *v * wt + add;
                    }
                }
                scale = s;
            }
            Step::Grey => {
                color = match color {
                    ColorLayout::Rgb8 => ColorLayout::Luma8,
                    ColorLayout::Rgba8 => ColorLayout::LumaA8,
                    other => {
                        return Err(Error::Parameter(format!(
                            "{label}: needs an RGB or RGBA image, not {other:?}"
                        )));
                    }
                };
                let total: i64 = BT601.iter().sum();
                let luma = Grid {
                    v: (0..grids[0].v.len())
                        .map(|i| (0..3).map(|c| BT601[c] * grids[c].v[i]).sum())
                        .collect(),
                    ..grids[0].clone()
                };
                let mut next = vec![luma];
                if grids.len() == 4 {
                    let mut alpha = grids[3].clone();
                    alpha.v.iter_mut().for_each(|v| *v *= total);
                    next.push(alpha);
                }
                grids = next;
                scale = scale.times(1, total as u64)?;
            }
        }
    }
    let mut values = Vec::with_capacity(w * h * grids.len());
    for y in 0..h {
        for x in 0..w {
            for g in &grids {
                values.push(g.at(x, y));
            }
        }
    }
    Ok(DecryptedImage::new(w, h, color, values, scale)?)
}

/// `out(x, y) = sum_ij w_ij in(x + j, y + i)` where the whole window fits.
fn correlate_valid(g: &Grid, k: &Kernel) -> Grid {
    let s = k.size();
    let (w, h) = (g.w + 1 - s, g.h + 1 - s);
    let mut v = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0i64;
            for i in 0..s {
                for j in 0..s {
                    acc += k.weight(i, j) * g.at(x + j, y + i);
                }
            }
            v.push(acc);
        }
    }
    Grid { w, h, v }
}

/// The exact weighted sums `sum w * in` (before the divisor), interleaved
/// like the image's samples.
#[must_use]
pub fn filter_sums(img: &PixelImage, kernel: &Kernel, border: BorderMode) -> Vec<i64> {
    let (w, h, ch) = (img.width(), img.height(), img.channels());
    let r = kernel.radius() as i64;
    let mut out = Vec::with_capacity(img.len());
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            for c in 0..ch {
                let mut acc = 0i64;
                for i in 0..kernel.size() {
                    for j in 0..kernel.size() {
                        let wgt = kernel.weight(i, j);
                        if wgt != 0 {
                            let v = border.sample(img, c, x + j as i64 - r, y + i as i64 - r);
                            acc += wgt * i64::from(v);
                        }
                    }
                }
                out.push(acc);
            }
        }
    }
    out
}

/// The filtered 8-bit image: sums divided by the divisor, rounded to
/// nearest with ties away from zero, saturated to `0..=255`. For the mean
/// filter with the replicate border this is OpenCV's
/// `cv2.blur(img, (k, k), borderType=cv2.BORDER_REPLICATE)` (k odd).
#[must_use]
pub fn filter(img: &PixelImage, kernel: &Kernel, border: BorderMode) -> PixelImage {
    let scale = Rational::new(1, kernel.divisor()).unwrap_or(Rational::ONE);
    let data: Vec<u8> = filter_sums(img, kernel, border)
        .into_iter()
        .map(|v| scale.to_u8(v))
        .collect();
    PixelImage::new(img.width(), img.height(), img.color(), data).unwrap_or_else(|_| img.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use enc_image::OutputMapping;

    #[test]
    fn single_filters_agree_with_the_plain_filter() {
        let img = PixelImage::new(
            5,
            4,
            ColorLayout::Rgb8,
            (0..60).map(|v| (v * 37 % 256) as u8).collect(),
        )
        .unwrap();
        for border in [
            BorderMode::Replicate,
            BorderMode::Reflect101,
            BorderMode::Constant(9),
        ] {
            for f in [
                Filter::Mean { k: 3 },
                Filter::SobelX,
                Filter::Gaussian { k: 5, sigma: None },
            ] {
                let k = f.kernel().unwrap().unwrap();
                let got = apply_chain(&img, std::slice::from_ref(&f), border).unwrap();
                assert_eq!(
                    got.values(),
                    &filter_sums(&img, &k, border)[..],
                    "{f} {border:?}"
                );
                assert_eq!(got.to_pixels(), filter(&img, &k, border));
            }
        }
    }

    #[test]
    fn pointwise_operations_by_hand() {
        let img = PixelImage::new(4, 1, ColorLayout::Luma8, vec![0, 100, 128, 255]).unwrap();
        let b = BorderMode::Replicate;
        let px = |chain: &[Filter]| {
            apply_chain(&img, chain, b)
                .unwrap()
                .to_pixels()
                .data()
                .to_vec()
        };
        assert_eq!(px(&[Filter::Invert]), vec![255, 155, 127, 0]);
        assert_eq!(
            px(&[Filter::Brightness { delta: 30 }]),
            vec![30, 130, 158, 255]
        );
        // 1.5 (x - 128) + 128: -64, 86, 128, 318.5 -> 0, 86, 128, 255
        let c = Filter::Contrast {
            factor: Rational::new(3, 2).unwrap(),
            pivot: 128,
        };
        assert_eq!(px(std::slice::from_ref(&c)), vec![0, 86, 128, 255]);
        let exact = apply_chain(&img, &[c], b).unwrap();
        assert_eq!(
            exact.to_pixels_with(OutputMapping::Shift128).data(),
            &[64, 214, 255, 255]
        );
        // A mean then invert: scale 1/9 carried into the affine step.
        let chain = [Filter::Mean { k: 3 }, Filter::Invert];
        let mean = filter(&img, &Kernel::mean(3).unwrap(), b);
        let want: Vec<u8> = filter_sums(&img, &Kernel::mean(3).unwrap(), b)
            .iter()
            .map(|&s| {
                // 255 - s/9, rounded half away from zero
                let x = 255.0 - s as f64 / 9.0;
                x.round() as u8
            })
            .collect();
        assert_eq!(px(&chain), want);
        assert_ne!(px(&chain), mean.data());
    }

    #[test]
    fn grey_uses_bt601_and_keeps_alpha() {
        let img = PixelImage::new(
            2,
            1,
            ColorLayout::Rgba8,
            vec![255, 0, 0, 7, 10, 200, 30, 255],
        )
        .unwrap();
        let out = apply_chain(&img, &[Filter::Grey], BorderMode::Replicate).unwrap();
        assert_eq!(out.color(), ColorLayout::LumaA8);
        // 0.299 * 255 = 76.2 -> 76; 2.99 + 117.4 + 3.42 = 123.8 -> 124
        assert_eq!(out.to_pixels().data(), &[76, 7, 124, 255]);
        let luma = PixelImage::new(1, 1, ColorLayout::Luma8, vec![1]).unwrap();
        assert!(apply_chain(&luma, &[Filter::Grey], BorderMode::Replicate).is_err());
    }

    #[test]
    fn a_chain_pads_once() {
        // 1xN: mean 3 twice with replicate, padded once by 2: the edge
        // value sees the replicated original, not the replicated blur.
        let img = PixelImage::new(4, 1, ColorLayout::Luma8, vec![0, 0, 0, 90]).unwrap();
        let twice = [Filter::Mean { k: 3 }, Filter::Mean { k: 3 }];
        let got = apply_chain(&img, &twice, BorderMode::Replicate).unwrap();
        // one composed 5x5 kernel (1 2 3 2 1)^2 / 81 on the padded row
        let composed = Kernel::outer(&[1, 2, 3, 2, 1], &[1, 2, 3, 2, 1], 81).unwrap();
        assert_eq!(
            got.values(),
            &filter_sums(&img, &composed, BorderMode::Replicate)[..]
        );
    }

    #[test]
    fn mean_3x3_by_hand() {
        // 3x3 image 1..9, replicate border: the centre is the mean 5; the
        // corner (0,0) sees 1 1 2 / 1 1 2 / 4 4 5 = 21 -> 21/9 = 2.33 -> 2.
        let img = PixelImage::new(3, 3, ColorLayout::Luma8, (1..=9).collect()).unwrap();
        let k = Kernel::mean(3).unwrap();
        let sums = filter_sums(&img, &k, BorderMode::Replicate);
        assert_eq!(sums[4], 45);
        assert_eq!(sums[0], 21);
        let out = filter(&img, &k, BorderMode::Replicate);
        assert_eq!(out.get(1, 1, 0), 5);
        assert_eq!(out.get(0, 0, 0), 2);
        // Constant 0 border at the corner: 1+2+4+5 = 12 -> 12/9 -> 1.
        assert_eq!(filter(&img, &k, BorderMode::Constant(0)).get(0, 0, 0), 1);
        // Reflect-101 corner: 5 4 5 / 2 1 2 / 5 4 5 = 33 -> 3.67 -> 4.
        assert_eq!(filter(&img, &k, BorderMode::Reflect101).get(0, 0, 0), 4);
    }
}
