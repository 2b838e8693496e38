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
#[derive(Clone, Debug)]
struct Grid {
    w: usize,
    h: usize,
    v: Vec<i64>,
}

impl Grid {
    fn at(&self, x: usize, y: usize) -> i64 {
        self.v[y * self.w + x]
    }

    /// Channel `c` of `img` on the `w x h` grid whose corner is `(x0, y0)`
    /// (possibly outside the image: sampled with `border`).
    fn sample(
        img: &PixelImage,
        border: BorderMode,
        c: usize,
        x0: i64,
        y0: i64,
        w: usize,
        h: usize,
    ) -> Grid {
        let mut v = Vec::with_capacity(w * h);
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                v.push(i64::from(border.sample(img, c, x0 + x, y0 + y)));
            }
        }
        Grid { w, h, v }
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
    let plan = Plan::new(chain, img.color())?;
    let (w, h) = (img.width(), rows.len());
    let pad = plan.radius;
    let grids = (0..img.channels())
        .map(|c| {
            Grid::sample(
                img,
                border,
                c,
                -(pad as i64),
                rows.start as i64 - pad as i64,
                w + 2 * pad,
                h + 2 * pad,
            )
        })
        .collect();
    let grids = plan.run(grids);
    let mut values = Vec::with_capacity(w * h * grids.len());
    for y in 0..h {
        for x in 0..w {
            for g in &grids {
                values.push(g.at(x, y));
            }
        }
    }
    Ok(DecryptedImage::new(w, h, plan.color, values, plan.scale)?)
}

/// The reference chain at single pixels: the values [`apply_chain`] gives
/// at `(x, y)`, computed from the `(2R + 1) x (2R + 1)` window around it
/// (R the chain's total radius), sampled with the border exactly as the
/// whole-image reference pads. One pixel costs about `sum_i s_i^2 k_i^2`
/// products per channel (`s_i` the window side before step i, `k_i` its
/// kernel side), whatever the image's size: what a spot check
/// ([`spot_check`](crate::spot_check)) needs.
///
/// ```
/// # fn main() -> Result<(), he_filter::Error> {
/// use enc_image::{BorderMode, ColorLayout, PixelImage};
/// use he_filter::{Filter, reference};
/// let img = PixelImage::new(7, 5, ColorLayout::Rgb8, (0..105).map(|v| (v * 41 % 256) as u8).collect())?;
/// let chain = [Filter::Gaussian { k: 3, sigma: None }, Filter::SobelX];
/// let whole = reference::apply_chain(&img, &chain, BorderMode::Reflect101)?;
/// let at = reference::Windowed::new(&img, &chain, BorderMode::Reflect101)?;
/// assert_eq!(at.scale(), whole.scale());
/// assert_eq!(at.values_at(6, 0), &whole.values()[6 * 3..7 * 3]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Windowed<'a> {
    img: &'a PixelImage,
    border: BorderMode,
    plan: Plan,
}

impl<'a> Windowed<'a> {
    /// Prepares `chain` on `img` with `border`, checking the chain as
    /// [`apply_chain`] does.
    pub fn new(img: &'a PixelImage, chain: &[Filter], border: BorderMode) -> Result<Self> {
        Ok(Windowed {
            img,
            border,
            plan: Plan::new(chain, img.color())?,
        })
    }

    /// The chain's total radius R: a value depends on the `(2R + 1)^2`
    /// input pixels around it.
    #[must_use]
    pub fn radius(&self) -> usize {
        self.plan.radius
    }

    /// The colour layout of the result.
    #[must_use]
    pub fn color(&self) -> ColorLayout {
        self.plan.color
    }

    /// The public scale of the result.
    #[must_use]
    pub fn scale(&self) -> Rational {
        self.plan.scale
    }

    /// The exact values of every channel of the result at `(x, y)` (inside
    /// the image), before the scale.
    #[must_use]
    pub fn values_at(&self, x: usize, y: usize) -> Vec<i64> {
        let r = self.plan.radius;
        let side = 2 * r + 1;
        let (x0, y0) = (x as i64 - r as i64, y as i64 - r as i64);
        let grids = (0..self.img.channels())
            .map(|c| Grid::sample(self.img, self.border, c, x0, y0, side, side))
            .collect();
        self.plan.run(grids).iter().map(|g| g.at(0, 0)).collect()
    }
}

/// One step with its exact integer parameters, fixed from the chain and
/// the scale before it.
#[derive(Debug)]
enum Op {
    Kernel(Kernel),
    Affine { mul: i64, add: i64 },
    Grey,
}

/// A chain lowered to integer operations, with what it produces.
#[derive(Debug)]
struct Plan {
    ops: Vec<Op>,
    /// The sum of the kernels' radii.
    radius: usize,
    color: ColorLayout,
    scale: Rational,
}

impl Plan {
    fn new(chain: &[Filter], mut color: ColorLayout) -> Result<Plan> {
        let mut ops = Vec::with_capacity(chain.len());
        let (mut radius, mut scale) = (0, Rational::ONE);
        for f in chain {
            let label = f.label();
            match f.step()? {
                Step::Kernel(k) => {
                    radius += k.radius();
                    scale = scale.times(1, k.divisor())?;
                    ops.push(Op::Kernel(k));
                }
                Step::Affine { mul, add } => {
                    let (mul, add, s) = affine_params(scale, mul, add, &label)?;
                    scale = s;
                    ops.push(Op::Affine { mul, add });
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
                    scale = scale.times(1, BT601.iter().sum::<i64>() as u64)?;
                    ops.push(Op::Grey);
                }
            }
        }
        Ok(Plan {
            ops,
            radius,
            color,
            scale,
        })
    }

    /// Runs the operations on one grid per channel, padded by `radius`.
    fn run(&self, mut grids: Vec<Grid>) -> Vec<Grid> {
        for op in &self.ops {
            match op {
                Op::Kernel(k) => grids = grids.iter().map(|g| correlate_valid(g, k)).collect(),
                Op::Affine { mul, add } => {
                    for g in &mut grids {
                        for v in &mut g.v {
                            *v = *v * mul + add;
                        }
                    }
                }
                Op::Grey => {
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
                }
            }
        }
        grids
    }
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
    fn windowed_values_equal_the_whole_image_reference_everywhere() {
        let chains: [&[Filter]; 4] = [
            &[Filter::Mean { k: 3 }],
            &[Filter::Gaussian { k: 5, sigma: None }, Filter::SobelX],
            &[
                Filter::Mean { k: 3 },
                Filter::Invert,
                Filter::Grey,
                Filter::Laplacian,
            ],
            &[Filter::Contrast {
                factor: Rational::new(3, 2).unwrap(),
                pivot: 100,
            }],
        ];
        // 1xN and Nx1 images, where the window is larger than the image.
        for (w, h) in [(6, 5), (1, 7), (8, 1), (1, 1)] {
            let img = PixelImage::new(
                w,
                h,
                ColorLayout::Rgba8,
                (0..w * h * 4).map(|v| (v * 89 % 251) as u8).collect(),
            )
            .unwrap();
            for border in [
                BorderMode::Replicate,
                BorderMode::Reflect101,
                BorderMode::Constant(7),
            ] {
                for chain in chains {
                    let whole = apply_chain(&img, chain, border).unwrap();
                    let at = Windowed::new(&img, chain, border).unwrap();
                    assert_eq!((at.color(), at.scale()), (whole.color(), whole.scale()));
                    let ch = whole.color().channels();
                    for y in 0..h {
                        for x in 0..w {
                            let i = (y * w + x) * ch;
                            assert_eq!(
                                at.values_at(x, y),
                                &whole.values()[i..i + ch],
                                "{w}x{h} {border:?} {chain:?} at {x},{y}"
                            );
                        }
                    }
                }
            }
        }
        let luma = PixelImage::new(1, 1, ColorLayout::Luma8, vec![1]).unwrap();
        assert!(Windowed::new(&luma, &[Filter::Grey], BorderMode::Replicate).is_err());
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
