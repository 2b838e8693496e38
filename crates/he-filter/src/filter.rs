//! The filters people use, by name, and what each one computes.
//!
//! Every [`Filter`] lowers to one [`Step`]: a kernel (a weighted sum of
//! neighbours with a public divisor), an affine map of each value
//! (`a * x + b` with exact rationals), or the RGB-to-grey weighted sum of
//! channels. The definitions, with the OpenCV call a user knows as the
//! reference, are in the README's filter table and on each variant.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernel::{Kernel, MAX_KERNEL_SIZE};
use crate::ratio::Ratio;

/// Fraction bits of the Gaussian's fixed-point 1-D weights: each weight is
/// `round(2^8 * g_i / sum g)`.
pub const GAUSSIAN_FRACTION_BITS: u32 = 8;
/// Largest accepted Gaussian sigma.
pub const MAX_SIGMA: f64 = 10.0;
/// Largest accepted brightness change, in pixel units.
pub const MAX_BRIGHTNESS: i64 = 1 << 16;

/// ITU-R BT.601 luma weights, in thousandths: `Y = 0.299 R + 0.587 G + 0.114 B`.
pub const BT601: [i64; 3] = [299, 587, 114];

/// A filter to run on an encrypted image, as a client asks for it.
///
/// In serde form (the service's JSON) a filter is an object tagged by
/// `"filter"` with its parameters, e.g. `{"filter": "gaussian", "k": 0,
/// "sigma": 1.5}`; an unknown parameter of a filter that takes parameters
/// is an error, so that a misspelt one is not replaced by a default.
///
/// Neighbourhood filters need the image to have been encrypted with a halo
/// of at least their radius, and every filter needs slots wide enough for
/// its results: [`encrypt_options`](crate::encrypt_options) says what a
/// whole chain needs. Results are exact: see the crate docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "filter", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Filter {
    /// `k x k` box mean: all weights 1, divisor `k^2` (OpenCV `blur`).
    Mean {
        /// Odd side.
        k: usize,
    },
    /// Gaussian blur, separable. Without `sigma`: the binomial kernel
    /// (row `k - 1` of Pascal's triangle, divisor `4^(k-1)`; for k = 3 and 5
    /// these are OpenCV's `GaussianBlur(ksize, 0)` weights). With `sigma`:
    /// 1-D weights `round(256 g_i / sum g)` with `g_i = exp(-(i - k/2)^2 /
    /// (2 sigma^2))`, divisor `(sum w)^2`; `k = 0` picks `round(6 sigma + 1)`
    /// made odd, as OpenCV does for 8-bit images.
    Gaussian {
        /// Odd side, or 0 to derive it from sigma.
        k: usize,
        /// Standard deviation in pixels, or none for the binomial kernel.
        sigma: Option<f64>,
    },
    /// Sharpen: `[0 -1 0; -1 5 -1; 0 -1 0]` (`filter2D` with that kernel).
    Sharpen,
    /// Unsharp mask: `x + amount * (x - B x)` with `B` the `k x k` binomial
    /// blur, as one exact kernel (divisor `den(amount) * 4^(k-1)`).
    Unsharp {
        /// Odd side of the blur.
        k: usize,
        /// How much of the detail to add (1.5 adds 150%).
        amount: Ratio,
    },
    /// Laplacian `[0 1 0; 1 -4 1; 0 1 0]` (OpenCV `Laplacian`, ksize 1).
    Laplacian,
    /// Sobel x `[-1 0 1; -2 0 2; -1 0 1]` (OpenCV `Sobel(dx=1, dy=0, ksize=3)`).
    SobelX,
    /// Sobel y, the transpose of Sobel x (OpenCV `Sobel(dx=0, dy=1)`).
    SobelY,
    /// Prewitt x `[-1 0 1]` on three rows (`filter2D`).
    PrewittX,
    /// Prewitt y, the transpose of Prewitt x.
    PrewittY,
    /// Scharr x `[-3 0 3; -10 0 10; -3 0 3]` (OpenCV `Scharr(dx=1, dy=0)`).
    ScharrX,
    /// Scharr y, the transpose of Scharr x (OpenCV `Scharr(dx=0, dy=1)`).
    ScharrY,
    /// Emboss `[-2 -1 0; -1 1 1; 0 1 2]` (`filter2D`).
    Emboss,
    /// Horizontal motion blur: a `k x k` kernel whose middle row is ones,
    /// divisor `k`.
    MotionH {
        /// Odd length of the streak.
        k: usize,
    },
    /// Vertical motion blur: the middle column is ones, divisor `k`.
    MotionV {
        /// Odd length of the streak.
        k: usize,
    },
    /// A separable filter `column x row` (outer product) with a divisor
    /// (OpenCV `sepFilter2D`, which takes the row kernel first). Runs as
    /// two 1-D passes.
    Separable {
        /// Vertical weights, odd length.
        column: Vec<i64>,
        /// Horizontal weights, same length.
        row: Vec<i64>,
        /// Positive divisor of the result.
        divisor: u64,
    },
    /// Any square integer kernel with a divisor (OpenCV `filter2D` with
    /// `kernel / divisor`); rational weights are integers over one common
    /// divisor. Separable kernels are detected and run as 1-D passes.
    Kernel {
        /// Odd side.
        size: usize,
        /// Row-major weights, `size^2` of them.
        weights: Vec<i64>,
        /// Positive divisor.
        divisor: u64,
    },
    /// `255 - x` (OpenCV `bitwise_not` on 8-bit images).
    Invert,
    /// `x + delta`.
    Brightness {
        /// Added to every value, in pixel units.
        delta: i64,
    },
    /// `factor * (x - pivot) + pivot`.
    Contrast {
        /// Gain; above 1 raises contrast.
        factor: Ratio,
        /// The value left unchanged (128 for mid-grey).
        pivot: i64,
    },
    /// RGB to grey with the ITU-R BT.601 weights
    /// `Y = (299 R + 587 G + 114 B) / 1000`, exact (OpenCV `cvtColor` with
    /// `COLOR_RGB2GRAY` rounds its 14-bit fixed-point weights instead).
    /// Alpha is kept.
    Grey,
}

/// What a filter computes, in the terms the evaluator works in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// A weighted sum of neighbours with a divisor.
    Kernel(Kernel),
    /// `mul * x + add` on every value, exact.
    Affine {
        /// Multiplier.
        mul: Ratio,
        /// Addend, in pixel units.
        add: Ratio,
    },
    /// The BT.601 weighted sum of the colour channels.
    Grey,
}

fn odd_size(k: usize, what: &str) -> Result<()> {
    if k == 0 || k.is_multiple_of(2) || k > MAX_KERNEL_SIZE {
        return Err(Error::Parameter(format!(
            "{what}: size must be odd, 1 to {MAX_KERNEL_SIZE}; got {k}"
        )));
    }
    Ok(())
}

/// Row `k - 1` of Pascal's triangle.
fn binomial(k: usize) -> Vec<i64> {
    let mut row = vec![1i64];
    for _ in 1..k {
        let mut next = vec![1i64; row.len() + 1];
        for i in 1..row.len() {
            next[i] = row[i - 1] + row[i];
        }
        row = next;
    }
    row
}

/// The fixed-point 1-D Gaussian weights (see [`Filter::Gaussian`]).
pub(crate) fn gaussian_weights(k: usize, sigma: f64) -> Vec<i64> {
    let r = (k / 2) as f64;
    let g: Vec<f64> = (0..k)
        .map(|i| {
            let x = i as f64 - r;
            (-(x * x) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f64 = g.iter().sum();
    let one = f64::from(1u32 << GAUSSIAN_FRACTION_BITS);
    g.iter().map(|v| (one * v / sum).round() as i64).collect()
}

fn transpose(k: usize, w: &[i64]) -> Vec<i64> {
    (0..k * k).map(|idx| w[(idx % k) * k + idx / k]).collect()
}

fn fixed(name: &str, w: [i64; 9]) -> Result<Kernel> {
    Ok(Kernel::new(3, w.to_vec(), 1)?.named(name))
}

const SOBEL_X: [i64; 9] = [-1, 0, 1, -2, 0, 2, -1, 0, 1];
const PREWITT_X: [i64; 9] = [-1, 0, 1, -1, 0, 1, -1, 0, 1];
const SCHARR_X: [i64; 9] = [-3, 0, 3, -10, 0, 10, -3, 0, 3];

fn transposed3(w: [i64; 9]) -> [i64; 9] {
    let t = transpose(3, &w);
    let mut out = [0; 9];
    out.copy_from_slice(&t);
    out
}

impl Filter {
    /// The `k x k` mean filter.
    #[must_use]
    pub fn mean(k: usize) -> Self {
        Filter::Mean { k }
    }

    /// The name recorded in the image's history and shown to users, for
    /// example `"mean 3x3"` or `"gaussian 7x7 sigma=1.5"`.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Filter::Mean { k } => format!("mean {k}x{k}"),
            Filter::Gaussian { k, sigma: None } => format!("gaussian {k}x{k} binomial"),
            Filter::Gaussian { k, sigma: Some(s) } => {
                let k = if *k == 0 { gaussian_size(*s) } else { *k };
                format!("gaussian {k}x{k} sigma={s}")
            }
            Filter::Sharpen => "sharpen".into(),
            Filter::Unsharp { k, amount } => format!("unsharp {k}x{k} amount={amount}"),
            Filter::Laplacian => "laplacian".into(),
            Filter::SobelX => "sobel-x".into(),
            Filter::SobelY => "sobel-y".into(),
            Filter::PrewittX => "prewitt-x".into(),
            Filter::PrewittY => "prewitt-y".into(),
            Filter::ScharrX => "scharr-x".into(),
            Filter::ScharrY => "scharr-y".into(),
            Filter::Emboss => "emboss".into(),
            Filter::MotionH { k } => format!("motion-h {k}"),
            Filter::MotionV { k } => format!("motion-v {k}"),
            Filter::Separable {
                column,
                row,
                divisor,
            } => format!("separable {}x{} /{divisor}", column.len(), row.len()),
            Filter::Kernel { size, divisor, .. } => format!("kernel {size}x{size} /{divisor}"),
            Filter::Invert => "invert".into(),
            Filter::Brightness { delta } => format!("brightness {delta:+}"),
            Filter::Contrast { factor, pivot } => format!("contrast {factor} about {pivot}"),
            Filter::Grey => "grey BT.601".into(),
        }
    }

    /// The kernel radius this filter needs from the halo (0 for pixel-wise
    /// operations).
    pub fn radius(&self) -> Result<usize> {
        Ok(match self.step()? {
            Step::Kernel(k) => k.radius(),
            Step::Affine { .. } | Step::Grey => 0,
        })
    }

    /// The kernel of a neighbourhood filter (weights and divisor), or
    /// `None` for a pixel-wise operation.
    pub fn kernel(&self) -> Result<Option<Kernel>> {
        Ok(match self.step()? {
            Step::Kernel(k) => Some(k),
            Step::Affine { .. } | Step::Grey => None,
        })
    }

    /// Lowers the filter to what the evaluator computes, checking its
    /// parameters.
    pub(crate) fn step(&self) -> Result<Step> {
        let label = self.label();
        let kernel = |k: Kernel| Ok(Step::Kernel(k.named(label.clone())));
        match self {
            Filter::Mean { k } => {
                odd_size(*k, "mean")?;
                kernel(Kernel::mean(*k)?)
            }
            Filter::Gaussian { k, sigma } => {
                let w = match sigma {
                    None => {
                        odd_size(*k, "gaussian")?;
                        binomial(*k)
                    }
                    Some(s) => {
                        if !(s.is_finite() && *s > 0.0 && *s <= MAX_SIGMA) {
                            return Err(Error::Parameter(format!(
                                "gaussian: sigma must be in (0, {MAX_SIGMA}]; got {s}"
                            )));
                        }
                        let k = if *k == 0 { gaussian_size(*s) } else { *k };
                        odd_size(k, "gaussian")?;
                        gaussian_weights(k, *s)
                    }
                };
                let sum: i64 = w.iter().sum();
                kernel(Kernel::outer(&w, &w, (sum * sum) as u64)?)
            }
            Filter::Sharpen => kernel(fixed("sharpen", [0, -1, 0, -1, 5, -1, 0, -1, 0])?),
            Filter::Unsharp { k, amount } => {
                odd_size(*k, "unsharp")?;
                if amount.num() < 0 {
                    return Err(Error::Parameter(format!(
                        "unsharp: amount must not be negative; got {amount}"
                    )));
                }
                let b = binomial(*k);
                let d: i64 = b.iter().sum::<i64>().pow(2);
                let (an, ad) = (amount.num(), amount.den() as i64);
                let r = k / 2;
                let mut w = Vec::with_capacity(k * k);
                for i in 0..*k {
                    for j in 0..*k {
                        let centre = if i == r && j == r { (ad + an) * d } else { 0 };
                        w.push(centre - an * b[i] * b[j]);
                    }
                }
                kernel(Kernel::new(*k, w, (ad * d) as u64)?)
            }
            Filter::Laplacian => kernel(fixed("laplacian", [0, 1, 0, 1, -4, 1, 0, 1, 0])?),
            Filter::SobelX => kernel(fixed("sobel-x", SOBEL_X)?),
            Filter::SobelY => kernel(fixed("sobel-y", transposed3(SOBEL_X))?),
            Filter::PrewittX => kernel(fixed("prewitt-x", PREWITT_X)?),
            Filter::PrewittY => kernel(fixed("prewitt-y", transposed3(PREWITT_X))?),
            Filter::ScharrX => kernel(fixed("scharr-x", SCHARR_X)?),
            Filter::ScharrY => kernel(fixed("scharr-y", transposed3(SCHARR_X))?),
            Filter::Emboss => kernel(fixed("emboss", [-2, -1, 0, -1, 1, 1, 0, 1, 2])?),
            Filter::MotionH { k } | Filter::MotionV { k } => {
                odd_size(*k, "motion blur")?;
                let mut w = vec![0; k * k];
                let r = k / 2;
                for j in 0..*k {
                    w[r * k + j] = 1;
                }
                if matches!(self, Filter::MotionV { .. }) {
                    w = transpose(*k, &w);
                }
                kernel(Kernel::new(*k, w, *k as u64)?)
            }
            Filter::Separable {
                column,
                row,
                divisor,
            } => {
                if column.len() != row.len() {
                    return Err(Error::Parameter(format!(
                        "separable: the column ({}) and row ({}) kernels must have the same length",
                        column.len(),
                        row.len()
                    )));
                }
                odd_size(row.len(), "separable")?;
                kernel(Kernel::outer(column, row, *divisor)?)
            }
            Filter::Kernel {
                size,
                weights,
                divisor,
            } => kernel(Kernel::new(*size, weights.clone(), *divisor)?),
            Filter::Invert => Ok(Step::Affine {
                mul: Ratio::integer(-1),
                add: Ratio::integer(255),
            }),
            Filter::Brightness { delta } => {
                if delta.unsigned_abs() > MAX_BRIGHTNESS.unsigned_abs() {
                    return Err(Error::Parameter(format!(
                        "brightness: change must be within +-{MAX_BRIGHTNESS}; got {delta}"
                    )));
                }
                Ok(Step::Affine {
                    mul: Ratio::integer(1),
                    add: Ratio::new(*delta, 1)?,
                })
            }
            Filter::Contrast { factor, pivot } => {
                if pivot.unsigned_abs() > MAX_BRIGHTNESS.unsigned_abs() {
                    return Err(Error::Parameter(format!(
                        "contrast: pivot must be within +-{MAX_BRIGHTNESS}; got {pivot}"
                    )));
                }
                // a (x - p) + p = a x + (1 - a) p
                let add = Ratio::new((factor.den() as i64 - factor.num()) * pivot, factor.den())?;
                Ok(Step::Affine { mul: *factor, add })
            }
            Filter::Grey => Ok(Step::Grey),
        }
    }
}

/// OpenCV's kernel size for a sigma on 8-bit images: `round(6 sigma + 1)`,
/// made odd.
#[must_use]
pub fn gaussian_size(sigma: f64) -> usize {
    ((sigma * 6.0 + 1.0).round() as usize) | 1
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

/// The built-in filters' command-line names, with what parameters each
/// takes, for help texts and the gallery.
pub const NAMES: &[(&str, &str)] = &[
    ("mean", "k x k box mean (aliases: blur, box); -k"),
    ("gaussian", "Gaussian blur; -k (binomial), or --sigma [-k]"),
    ("sharpen", "3x3 sharpen"),
    ("unsharp", "unsharp mask; -k, --amount"),
    ("laplacian", "3x3 Laplacian (signed)"),
    ("sobel-x", "Sobel x derivative (signed)"),
    ("sobel-y", "Sobel y derivative (signed)"),
    ("prewitt-x", "Prewitt x (signed)"),
    ("prewitt-y", "Prewitt y (signed)"),
    ("scharr-x", "Scharr x (signed)"),
    ("scharr-y", "Scharr y (signed)"),
    ("emboss", "3x3 emboss"),
    ("motion-h", "horizontal motion blur; -k"),
    ("motion-v", "vertical motion blur; -k"),
    (
        "separable",
        "column x row kernel; --column, --row, --divisor",
    ),
    ("invert", "255 - x"),
    ("brightness", "x + delta; --delta"),
    ("contrast", "factor (x - pivot) + pivot; --factor, --pivot"),
    ("grey", "RGB to grey, BT.601 (alias: gray)"),
];

/// Parameters given by name on a command line or in a form, for
/// [`Filter::from_name`]. Unset parameters take the defaults listed there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterParams {
    /// Kernel side (`-k`).
    pub k: Option<usize>,
    /// Gaussian sigma.
    pub sigma: Option<f64>,
    /// Unsharp amount.
    pub amount: Option<Ratio>,
    /// Brightness change.
    pub delta: Option<i64>,
    /// Contrast factor.
    pub factor: Option<Ratio>,
    /// Contrast pivot.
    pub pivot: Option<i64>,
    /// Separable column weights.
    pub column: Option<Vec<i64>>,
    /// Separable row weights.
    pub row: Option<Vec<i64>>,
    /// Separable divisor.
    pub divisor: Option<u64>,
}

impl Filter {
    /// A built-in filter by its command-line name (see [`NAMES`]) with
    /// parameters; defaults: `k = 3`, unsharp `amount = 1`, contrast
    /// `pivot = 128`, separable `divisor = 1`. A parameter the filter does
    /// not take is an error, so that a typo is not silently ignored.
    pub fn from_name(name: &str, p: &FilterParams) -> Result<Filter> {
        let k = p.k.unwrap_or(3);
        let takes = |allowed: &[&str]| -> Result<()> {
            let given = [
                ("k", p.k.is_some()),
                ("sigma", p.sigma.is_some()),
                ("amount", p.amount.is_some()),
                ("delta", p.delta.is_some()),
                ("factor", p.factor.is_some()),
                ("pivot", p.pivot.is_some()),
                ("column", p.column.is_some()),
                ("row", p.row.is_some()),
                ("divisor", p.divisor.is_some()),
            ];
            match given.iter().find(|(n, set)| *set && !allowed.contains(n)) {
                Some((n, _)) => Err(Error::Parameter(format!("{name} takes no parameter {n}"))),
                None => Ok(()),
            }
        };
        fn need<T>(v: Option<T>, name: &str, what: &str) -> Result<T> {
            v.ok_or_else(|| Error::Parameter(format!("{name} needs --{what}")))
        }
        let f = match name {
            "mean" | "blur" | "box" => {
                takes(&["k"])?;
                Filter::Mean { k }
            }
            "gaussian" => {
                takes(&["k", "sigma"])?;
                Filter::Gaussian {
                    k: match (p.k, p.sigma) {
                        (None, Some(_)) => 0,
                        _ => k,
                    },
                    sigma: p.sigma,
                }
            }
            "sharpen" => {
                takes(&[])?;
                Filter::Sharpen
            }
            "unsharp" => {
                takes(&["k", "amount"])?;
                Filter::Unsharp {
                    k,
                    amount: p.amount.unwrap_or(Ratio::integer(1)),
                }
            }
            "laplacian" | "sobel-x" | "sobel-y" | "prewitt-x" | "prewitt-y" | "scharr-x"
            | "scharr-y" | "emboss" | "invert" => {
                takes(&[])?;
                match name {
                    "laplacian" => Filter::Laplacian,
                    "sobel-x" => Filter::SobelX,
                    "sobel-y" => Filter::SobelY,
                    "prewitt-x" => Filter::PrewittX,
                    "prewitt-y" => Filter::PrewittY,
                    "scharr-x" => Filter::ScharrX,
                    "scharr-y" => Filter::ScharrY,
                    "emboss" => Filter::Emboss,
                    _ => Filter::Invert,
                }
            }
            "motion-h" => {
                takes(&["k"])?;
                Filter::MotionH { k }
            }
            "motion-v" => {
                takes(&["k"])?;
                Filter::MotionV { k }
            }
            "separable" => {
                takes(&["column", "row", "divisor"])?;
                Filter::Separable {
                    column: need(p.column.clone(), name, "column")?,
                    row: need(p.row.clone(), name, "row")?,
                    divisor: p.divisor.unwrap_or(1),
                }
            }
            "brightness" => {
                takes(&["delta"])?;
                Filter::Brightness {
                    delta: need(p.delta, name, "delta")?,
                }
            }
            "contrast" => {
                takes(&["factor", "pivot"])?;
                Filter::Contrast {
                    factor: need(p.factor, name, "factor")?,
                    pivot: p.pivot.unwrap_or(128),
                }
            }
            "grey" | "gray" => {
                takes(&[])?;
                Filter::Grey
            }
            _ => {
                let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
                return Err(Error::Parameter(format!(
                    "unknown filter {name:?}; known: {}",
                    names.join(", ")
                )));
            }
        };
        f.step()?;
        Ok(f)
    }

    /// Every built-in filter with its default parameters (the gallery).
    #[must_use]
    pub fn builtins() -> Vec<Filter> {
        vec![
            Filter::Mean { k: 5 },
            Filter::Gaussian { k: 5, sigma: None },
            Filter::Gaussian {
                k: 0,
                sigma: Some(1.5),
            },
            Filter::Sharpen,
            Filter::Unsharp {
                k: 5,
                amount: Ratio::integer(2),
            },
            Filter::Laplacian,
            Filter::SobelX,
            Filter::SobelY,
            Filter::PrewittX,
            Filter::PrewittY,
            Filter::ScharrX,
            Filter::ScharrY,
            Filter::Emboss,
            Filter::MotionH { k: 9 },
            Filter::MotionV { k: 9 },
            Filter::Separable {
                column: vec![1, 2, 1],
                row: vec![1, 1, 1],
                divisor: 12,
            },
            Filter::Invert,
            Filter::Brightness { delta: 60 },
            Filter::Contrast {
                factor: Ratio::integer(2),
                pivot: 128,
            },
            Filter::Grey,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(f: &Filter) -> (Vec<i64>, u64) {
        let k = f.kernel().unwrap().unwrap();
        (k.weights().to_vec(), k.divisor())
    }

    #[test]
    fn kernels_match_their_textbook_definitions() {
        assert_eq!(
            weights(&Filter::Gaussian { k: 3, sigma: None }),
            (vec![1, 2, 1, 2, 4, 2, 1, 2, 1], 16)
        );
        assert_eq!(binomial(5), vec![1, 4, 6, 4, 1]);
        assert_eq!(
            weights(&Filter::SobelY).0,
            vec![-1, -2, -1, 0, 0, 0, 1, 2, 1]
        );
        assert_eq!(
            weights(&Filter::ScharrY).0,
            vec![-3, -10, -3, 0, 0, 0, 3, 10, 3]
        );
        assert_eq!(
            weights(&Filter::MotionV { k: 3 }),
            (vec![0, 1, 0, 0, 1, 0, 0, 1, 0], 3)
        );
        // Unsharp, amount 1, 3x3: 2 x - B x = (32 delta - b b^T) / 16.
        let (w, d) = weights(&Filter::Unsharp {
            k: 3,
            amount: Ratio::integer(1),
        });
        assert_eq!(d, 16);
        assert_eq!(w, vec![-1, -2, -1, -2, 28, -2, -1, -2, -1]);
        assert_eq!(w.iter().sum::<i64>(), 16, "a flat image stays flat");
    }

    #[test]
    fn gaussian_sigma_weights_are_documented_fixed_point() {
        // sigma 1, 7 taps: 256 * exp(-x^2/2) / 2.5066 rounded.
        assert_eq!(gaussian_weights(7, 1.0), vec![1, 14, 62, 102, 62, 14, 1]);
        assert_eq!(gaussian_size(1.0), 7);
        assert_eq!(gaussian_size(1.5), 11);
        let f = Filter::Gaussian {
            k: 0,
            sigma: Some(1.0),
        };
        assert_eq!(f.radius().unwrap(), 3);
        assert_eq!(weights(&f).1, 256 * 256);
        assert!(
            Filter::Gaussian {
                k: 3,
                sigma: Some(0.0)
            }
            .step()
            .is_err()
        );
    }

    #[test]
    fn names_parse_and_typos_are_refused() {
        let p = FilterParams::default();
        for (name, _) in NAMES {
            let p = match *name {
                "separable" => FilterParams {
                    column: Some(vec![1, 2, 1]),
                    row: Some(vec![1, 0, -1]),
                    ..p.clone()
                },
                "brightness" => FilterParams {
                    delta: Some(-20),
                    ..p.clone()
                },
                "contrast" => FilterParams {
                    factor: Some(Ratio::new(3, 2).unwrap()),
                    ..p.clone()
                },
                _ => p.clone(),
            };
            Filter::from_name(name, &p).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(
            Filter::from_name("blur", &p).unwrap(),
            Filter::Mean { k: 3 }
        );
        assert!(Filter::from_name("blurr", &p).is_err());
        let with_sigma = FilterParams {
            sigma: Some(1.0),
            ..p.clone()
        };
        assert!(Filter::from_name("mean", &with_sigma).is_err());
        assert_eq!(
            Filter::from_name("gaussian", &with_sigma)
                .unwrap()
                .radius()
                .unwrap(),
            3
        );
        assert!(Filter::from_name("brightness", &p).is_err());
        // Extremes are refused, not wrapped (i64::MIN has no i64 absolute value).
        for delta in [i64::MIN, i64::MAX, MAX_BRIGHTNESS + 1] {
            assert!(Filter::Brightness { delta }.step().is_err(), "{delta}");
        }
        for pivot in [i64::MIN, i64::MAX] {
            let f = Filter::Contrast {
                factor: Ratio::integer(2),
                pivot,
            };
            assert!(f.step().is_err(), "{pivot}");
        }
        assert!(Filter::from_name("mean", &FilterParams { k: Some(4), ..p }).is_err());
    }

    #[test]
    fn json_round_trip() {
        for f in Filter::builtins() {
            let s = serde_json::to_string(&f).unwrap();
            let back: Filter = serde_json::from_str(&s).unwrap();
            assert_eq!(back, f, "{s}");
        }
        let f: Filter =
            serde_json::from_str(r#"{"filter":"unsharp","k":3,"amount":{"num":3,"den":2}}"#)
                .unwrap();
        assert_eq!(f.label(), "unsharp 3x3 amount=3/2");
        assert!(
            serde_json::from_str::<Filter>(
                r#"{"filter":"unsharp","k":3,"amount":{"num":3,"den":0}}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<Filter>(r#"{"filter":"nope"}"#).is_err());
        // A misspelt parameter is an error, not a default silently taken.
        let typo = r#"{"filter":"gaussian","k":0,"sigm":1.5}"#;
        assert!(serde_json::from_str::<Filter>(typo).is_err());
    }
}
