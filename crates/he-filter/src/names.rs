//! Filters by name with parameters, as a command line or a form gives
//! them: [`Filter::from_name`] and [`FilterParams`], checked by lowering.

use enc_image::Rational;

use crate::error::{Error, Result};
use crate::filter::{BUILTINS, Filter};

/// Parameters given by name on a command line or in a form, for
/// [`Filter::from_name`]. Unset parameters take the defaults listed there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterParams {
    /// Kernel side (`-k`).
    pub k: Option<usize>,
    /// Gaussian sigma.
    pub sigma: Option<f64>,
    /// Unsharp amount.
    pub amount: Option<Rational>,
    /// Brightness change.
    pub delta: Option<i64>,
    /// Contrast factor.
    pub factor: Option<Rational>,
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
    /// A built-in filter by its command-line name (see [`BUILTINS`]) with
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
                    amount: p.amount.unwrap_or(Rational::integer(1)),
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
                let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
                return Err(Error::Parameter(format!(
                    "unknown filter {name:?}; known: {}",
                    names.join(", ")
                )));
            }
        };
        f.step()?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::MAX_BRIGHTNESS;

    #[test]
    fn names_parse_and_typos_are_refused() {
        let p = FilterParams::default();
        for b in BUILTINS {
            let name = &b.name;
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
                    factor: Some(Rational::new(3, 2).unwrap()),
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
                factor: Rational::integer(2),
                pivot,
            };
            assert!(f.step().is_err(), "{pivot}");
        }
        assert!(Filter::from_name("mean", &FilterParams { k: Some(4), ..p }).is_err());
    }
}
