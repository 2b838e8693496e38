//! Exact rational parameters (an unsharp amount, a contrast factor).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An exact rational `num / den` (`den > 0`, lowest terms), for filter
/// parameters that people write as decimals: `"1.5"` is `3/2` exactly, so
/// the filter on the server and its plaintext reference agree to the bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RatioRepr", into = "RatioRepr")]
pub struct Ratio {
    num: i64,
    den: u64,
}

#[derive(Serialize, Deserialize)]
struct RatioRepr {
    num: i64,
    den: u64,
}

impl TryFrom<RatioRepr> for Ratio {
    type Error = Error;
    fn try_from(r: RatioRepr) -> Result<Self> {
        Ratio::new(r.num, r.den)
    }
}

impl From<Ratio> for RatioRepr {
    fn from(r: Ratio) -> Self {
        RatioRepr {
            num: r.num,
            den: r.den,
        }
    }
}

/// Largest accepted numerator or denominator: parameters are small
/// numbers, and small terms keep the kernels' weights within limits.
pub const MAX_RATIO_TERM: u64 = 1 << 20;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Ratio {
    /// `num / den` in lowest terms; `den > 0`, both at most
    /// [`MAX_RATIO_TERM`] in absolute value after reduction.
    pub fn new(num: i64, den: u64) -> Result<Self> {
        if den == 0 {
            return Err(Error::Parameter(
                "a ratio's denominator must be positive".into(),
            ));
        }
        let g = gcd(num.unsigned_abs(), den).max(1);
        // In i128: g may be 2^63, which is no i64.
        let (num, den) = (i128::from(num) / i128::from(g), den / g);
        if num.unsigned_abs() > u128::from(MAX_RATIO_TERM) || den > MAX_RATIO_TERM {
            return Err(Error::Parameter(format!(
                "{num}/{den} has terms beyond {MAX_RATIO_TERM}; use a simpler value"
            )));
        }
        Ok(Ratio {
            num: num as i64, // |num| <= MAX_RATIO_TERM
            den,
        })
    }

    /// The integer `n`.
    #[must_use]
    pub fn integer(n: i32) -> Self {
        Ratio {
            num: i64::from(n),
            den: 1,
        }
    }

    /// Numerator.
    #[must_use]
    pub fn num(self) -> i64 {
        self.num
    }

    /// Denominator (positive).
    #[must_use]
    pub fn den(self) -> u64 {
        self.den
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

impl std::str::FromStr for Ratio {
    type Err = Error;

    /// `"2"`, `"-0.25"`, `"1.5"` or `"3/2"`, exactly.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Parameter(format!(
                "{s:?} is not a number; write an integer, a decimal such as 1.5, or a fraction such as 3/2"
            ))
        };
        let t = s.trim();
        if let Some((n, d)) = t.split_once('/') {
            let n: i64 = n.trim().parse().map_err(|_| bad())?;
            let d: u64 = d.trim().parse().map_err(|_| bad())?;
            return Ratio::new(n, d);
        }
        let (neg, body) = match t.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 6
        {
            return Err(bad());
        }
        let digits = format!("{int}{frac}");
        let mag: i64 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| bad())?
        };
        Ratio::new(if neg { -mag } else { mag }, 10u64.pow(frac.len() as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimals_and_fractions_exactly() {
        let r = |s: &str| s.parse::<Ratio>().unwrap();
        assert_eq!(r("1.5"), Ratio::new(3, 2).unwrap());
        assert_eq!(r("-0.25"), Ratio::new(-1, 4).unwrap());
        assert_eq!(r("3/2"), Ratio::new(3, 2).unwrap());
        assert_eq!(r("2"), Ratio::integer(2));
        assert_eq!(r(".5"), Ratio::new(1, 2).unwrap());
        assert_eq!(r("+1."), Ratio::integer(1));
        assert_eq!(r("6/4").to_string(), "3/2");
        for bad in ["", ".", "1.2.3", "abc", "1/0", "1e3", "0.1234567", "- 1"] {
            assert!(bad.parse::<Ratio>().is_err(), "{bad:?}");
        }
        assert!(Ratio::new(1, MAX_RATIO_TERM + 1).is_err());
        // gcd(2^63, 2^63) = 2^63 is no i64: the sign must survive.
        assert_eq!(Ratio::new(i64::MIN, 1 << 63).unwrap(), Ratio::integer(-1));
        assert!(Ratio::new(i64::MIN, 1).is_err());
    }
}
