//! The catalogue: the filters people use ([`Filter`]), their names,
//! parameters and labels.
//!
//! What each one computes is its lowering (`lower.rs`) to a kernel (a
//! weighted sum of neighbours with a public divisor), an affine map of each
//! value (`a * x + b` with exact rationals), or the RGB-to-grey weighted
//! sum of channels. The definitions, with the OpenCV call a user knows as
//! the reference, are in the README's filter table and on each variant.

use enc_image::Rational;
use serde::{Deserialize, Serialize};

/// Fraction bits of the Gaussian's fixed-point 1-D weights: each weight is
/// `round(2^8 * g_i / sum g)`.
pub const GAUSSIAN_FRACTION_BITS: u32 = 8;
/// Largest accepted Gaussian sigma.
pub const MAX_SIGMA: f64 = 10.0;
/// Largest accepted brightness change, in pixel units.
pub const MAX_BRIGHTNESS: i64 = 1 << 16;

/// Largest numerator or denominator of a rational parameter (an unsharp
/// amount, a contrast factor): parameters are small numbers, and small
/// terms keep the kernels' weights within limits.
pub const MAX_PARAM_TERM: u64 = 1 << 20;

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
        amount: Rational,
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
        factor: Rational,
        /// The value left unchanged (128 for mid-grey).
        pivot: i64,
    },
    /// RGB to grey with the ITU-R BT.601 weights
    /// `Y = (299 R + 587 G + 114 B) / 1000`, exact (OpenCV `cvtColor` with
    /// `COLOR_RGB2GRAY` rounds its 14-bit fixed-point weights instead).
    /// Alpha is kept.
    Grey,
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

/// A built-in filter as the catalogue lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// Its name (the `"filter"` tag of its JSON form).
    pub name: &'static str,
    /// Other names [`Filter::from_name`](crate::Filter::from_name) accepts for it.
    pub aliases: &'static [&'static str],
    /// What it computes, in a few words.
    pub summary: &'static str,
    /// The parameters it takes (fields of [`FilterParams`](crate::FilterParams)).
    pub params: &'static [&'static str],
}

const fn builtin(
    name: &'static str,
    aliases: &'static [&'static str],
    summary: &'static str,
    params: &'static [&'static str],
) -> Builtin {
    Builtin {
        name,
        aliases,
        summary,
        params,
    }
}

/// Every built-in filter by name, with its aliases, a summary and its
/// parameters ([`Filter::Kernel`], which takes a whole kernel, is not named).
pub const BUILTINS: &[Builtin] = &[
    builtin("mean", &["blur", "box"], "k x k box mean", &["k"]),
    builtin(
        "gaussian",
        &[],
        "Gaussian blur: binomial weights, or from sigma",
        &["k", "sigma"],
    ),
    builtin("sharpen", &[], "3x3 sharpen", &[]),
    builtin("unsharp", &[], "unsharp mask", &["k", "amount"]),
    builtin("laplacian", &[], "3x3 Laplacian (signed)", &[]),
    builtin("sobel-x", &[], "Sobel x derivative (signed)", &[]),
    builtin("sobel-y", &[], "Sobel y derivative (signed)", &[]),
    builtin("prewitt-x", &[], "Prewitt x (signed)", &[]),
    builtin("prewitt-y", &[], "Prewitt y (signed)", &[]),
    builtin("scharr-x", &[], "Scharr x (signed)", &[]),
    builtin("scharr-y", &[], "Scharr y (signed)", &[]),
    builtin("emboss", &[], "3x3 emboss", &[]),
    builtin("motion-h", &[], "horizontal motion blur", &["k"]),
    builtin("motion-v", &[], "vertical motion blur", &["k"]),
    builtin(
        "separable",
        &[],
        "column x row kernel",
        &["column", "row", "divisor"],
    ),
    builtin("invert", &[], "255 - x", &[]),
    builtin("brightness", &[], "x + delta", &["delta"]),
    builtin(
        "contrast",
        &[],
        "factor (x - pivot) + pivot",
        &["factor", "pivot"],
    ),
    builtin("grey", &["gray"], "RGB to grey, BT.601", &[]),
];

impl Filter {
    /// Every built-in filter once, with default parameters: what a gallery
    /// shows and what a test runs over.
    #[must_use]
    pub fn every_builtin() -> Vec<Filter> {
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
                amount: Rational::integer(2),
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
                factor: Rational::integer(2),
                pivot: 128,
            },
            Filter::Grey,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        for f in Filter::every_builtin() {
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
