//! Lowering: what each [`Filter`] computes, as one [`Step`] the planner
//! and the evaluators work in (a kernel, an exact affine map, or the
//! RGB-to-grey sum), with every parameter checked.

use crate::error::{Error, Result};
use crate::filter::{
    Filter, GAUSSIAN_FRACTION_BITS, MAX_BRIGHTNESS, MAX_PARAM_TERM, MAX_SIGMA, gaussian_size,
};
use crate::kernel::{Kernel, MAX_KERNEL_SIZE};
use enc_image::Rational;

/// What a filter computes, in the terms the evaluator works in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// A weighted sum of neighbours with a divisor.
    Kernel(Kernel),
    /// `mul * x + add` on every value, exact.
    Affine {
        /// Multiplier.
        mul: Rational,
        /// Addend, in pixel units.
        add: Rational,
    },
    /// The BT.601 weighted sum of the colour channels.
    Grey,
}

/// `r` if its terms are at most [`MAX_PARAM_TERM`].
fn param(r: Rational, what: &str) -> Result<Rational> {
    r.within(MAX_PARAM_TERM).map_err(|_| {
        Error::Parameter(format!(
            "{what}: {r} has terms beyond {MAX_PARAM_TERM}; use a simpler value"
        ))
    })
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
                let amount = param(*amount, "unsharp")?;
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
                mul: Rational::integer(-1),
                add: Rational::integer(255),
            }),
            Filter::Brightness { delta } => {
                if delta.unsigned_abs() > MAX_BRIGHTNESS.unsigned_abs() {
                    return Err(Error::Parameter(format!(
                        "brightness: change must be within +-{MAX_BRIGHTNESS}; got {delta}"
                    )));
                }
                Ok(Step::Affine {
                    mul: Rational::integer(1),
                    add: Rational::new(*delta, 1)?,
                })
            }
            Filter::Contrast { factor, pivot } => {
                if pivot.unsigned_abs() > MAX_BRIGHTNESS.unsigned_abs() {
                    return Err(Error::Parameter(format!(
                        "contrast: pivot must be within +-{MAX_BRIGHTNESS}; got {pivot}"
                    )));
                }
                // a (x - p) + p = a x + (1 - a) p
                let factor = param(*factor, "contrast")?;
                let add =
                    Rational::new((factor.den() as i64 - factor.num()) * pivot, factor.den())?;
                let add = param(add, "contrast")?;
                Ok(Step::Affine { mul: factor, add })
            }
            Filter::Grey => Ok(Step::Grey),
        }
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
            amount: Rational::integer(1),
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
}
