//! The one exact rational of the toolkit: the public scale of an encrypted
//! image, and the rational parameters of filters (an unsharp amount, a
//! contrast factor), with its parser, its limits and the rounding of
//! decryption.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::output::OutputMapping;

/// The greatest common divisor of `a` and `b` (`gcd(0, 0) = 0`).
#[must_use]
pub const fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// An exact rational `num / den` (`den > 0`, in lowest terms).
///
/// Paillier cannot divide, so dividing an encrypted image by a public
/// constant multiplies its scale's denominator instead; decryption computes
/// the exact quotient in integers and rounds it once. Filter parameters
/// that people write as decimals are rationals too: `"1.5"` is `3/2`
/// exactly, so the filter on the server and its plaintext reference agree
/// to the bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RationalRepr", into = "RationalRepr")]
pub struct Rational {
    num: i64,
    den: u64,
}

/// The serde form, `{"num": n, "den": d}`, checked and reduced on the way in.
#[derive(Serialize, Deserialize)]
struct RationalRepr {
    num: i64,
    den: u64,
}

impl TryFrom<RationalRepr> for Rational {
    type Error = Error;
    fn try_from(r: RationalRepr) -> Result<Self> {
        Rational::new(r.num, r.den)
    }
}

impl From<Rational> for RationalRepr {
    fn from(r: Rational) -> Self {
        RationalRepr {
            num: r.num,
            den: r.den,
        }
    }
}

impl Default for Rational {
    fn default() -> Self {
        Rational::ONE
    }
}

impl Rational {
    /// The rational 1.
    pub const ONE: Rational = Rational { num: 1, den: 1 };

    /// `num / den`, reduced; `den` must be non-zero.
    pub fn new(num: i64, den: u64) -> Result<Self> {
        if den == 0 {
            return Err(Error::Parameter("a rational's denominator is zero".into()));
        }
        let g = gcd(u128::from(num.unsigned_abs()), u128::from(den)).max(1);
        // In i128: g may be 2^63 (num = i64::MIN), which is no i64.
        let num = i64::try_from(i128::from(num) / g as i128)
            .map_err(|_| Error::Parameter("a rational's numerator overflows".into()))?;
        Ok(Rational {
            num,
            den: den / g as u64,
        })
    }

    /// The integer `n`.
    #[must_use]
    pub const fn integer(n: i64) -> Self {
        Rational { num: n, den: 1 }
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

    /// This rational if both its terms are at most `max_term` in absolute
    /// value, or an error that says to use a simpler value.
    pub fn within(self, max_term: u64) -> Result<Self> {
        if self.num.unsigned_abs() > max_term || self.den > max_term {
            return Err(Error::Parameter(format!(
                "{self} has terms beyond {max_term}; use a simpler value"
            )));
        }
        Ok(self)
    }

    /// This rational divided by `d` (d > 0): what dividing an image by d
    /// does to its scale.
    pub fn divided_by(self, d: u64) -> Result<Self> {
        let den = self
            .den
            .checked_mul(d)
            .ok_or_else(|| Error::Parameter("scale denominator overflows".into()))?;
        Rational::new(self.num, den)
    }

    /// This rational times `num / den`.
    pub fn times(self, num: i64, den: u64) -> Result<Self> {
        let over = || Error::Parameter("scale overflows".into());
        let n = self.num.checked_mul(num).ok_or_else(over)?;
        let d = self.den.checked_mul(den).ok_or_else(over)?;
        Rational::new(n, d)
    }

    /// `v * num / den` rounded to the nearest integer, ties away from zero.
    #[must_use]
    pub fn apply_rounded(self, v: i64) -> i128 {
        let x = i128::from(v) * i128::from(self.num);
        let d = i128::from(self.den);
        let q = (2 * x.abs() + d) / (2 * d);
        if x < 0 { -q } else { q }
    }

    /// `v * num / den` rounded (ties away from zero), then saturated to
    /// `0..=255`.
    #[must_use]
    pub fn to_u8(self, v: i64) -> u8 {
        self.to_u8_with(v, OutputMapping::Saturate)
    }

    /// `v * num / den` rounded (ties away from zero), then mapped to
    /// `0..=255` by `mapping`.
    #[must_use]
    pub fn to_u8_with(self, v: i64, mapping: OutputMapping) -> u8 {
        let x = self.apply_rounded(v);
        let y = match mapping {
            OutputMapping::Saturate => x,
            OutputMapping::Abs => x.abs(),
            OutputMapping::Shift128 => x + 128,
        };
        y.clamp(0, 255) as u8
    }
}

impl std::fmt::Display for Rational {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

impl std::str::FromStr for Rational {
    type Err = Error;

    /// `"2"`, `"-0.25"`, `"1.5"` or `"3/2"`, exactly; at most six decimals.
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
            return Rational::new(n, d);
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
        Rational::new(if neg { -mag } else { mag }, 10u64.pow(frac.len() as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_ties_away_from_zero() {
        let half = Rational::new(1, 2).unwrap();
        assert_eq!(half.apply_rounded(1), 1);
        assert_eq!(half.apply_rounded(3), 2);
        assert_eq!(half.apply_rounded(-1), -1);
        assert_eq!(half.apply_rounded(-3), -2);
        let ninth = Rational::new(1, 9).unwrap();
        assert_eq!(ninth.apply_rounded(13), 1); // 1.44
        assert_eq!(ninth.apply_rounded(14), 2); // 1.56
        assert_eq!(ninth.to_u8(2295), 255);
        assert_eq!(Rational::ONE.to_u8(-4), 0);
        assert_eq!(Rational::ONE.to_u8(300), 255);
    }

    #[test]
    fn output_mappings() {
        let half = Rational::new(1, 2).unwrap();
        // -7/2 = -3.5 rounds to -4.
        assert_eq!(half.to_u8_with(-7, OutputMapping::Saturate), 0);
        assert_eq!(half.to_u8_with(-7, OutputMapping::Abs), 4);
        assert_eq!(half.to_u8_with(-7, OutputMapping::Shift128), 124);
        assert_eq!(Rational::ONE.to_u8_with(-600, OutputMapping::Abs), 255);
        assert_eq!(Rational::ONE.to_u8_with(200, OutputMapping::Shift128), 255);
        assert_eq!(Rational::ONE.to_u8_with(-200, OutputMapping::Shift128), 0);
        for m in OutputMapping::ALL {
            assert_eq!(m.name().parse::<OutputMapping>().unwrap(), m);
        }
        assert!("clamp".parse::<OutputMapping>().is_err());
    }

    #[test]
    fn reduces_and_refuses_zero_denominator() {
        assert_eq!(Rational::new(6, 8).unwrap(), Rational::new(3, 4).unwrap());
        assert!(Rational::new(1, 0).is_err());
        assert_eq!(Rational::ONE.divided_by(9).unwrap().den(), 9);
        assert!(Rational::new(1, u64::MAX).unwrap().divided_by(2).is_err());
        // gcd(2^63, 2^63) = 2^63 is no i64: the sign must survive.
        assert_eq!(
            Rational::new(i64::MIN, 1 << 63).unwrap(),
            Rational::integer(-1)
        );
        assert_eq!(gcd(0, 0), 0);
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(1 << 100, 3 << 90), 1 << 90);
    }

    #[test]
    fn parses_decimals_and_fractions_exactly() {
        let r = |s: &str| s.parse::<Rational>().unwrap();
        assert_eq!(r("1.5"), Rational::new(3, 2).unwrap());
        assert_eq!(r("-0.25"), Rational::new(-1, 4).unwrap());
        assert_eq!(r("3/2"), Rational::new(3, 2).unwrap());
        assert_eq!(r("2"), Rational::integer(2));
        assert_eq!(r(".5"), Rational::new(1, 2).unwrap());
        assert_eq!(r("+1."), Rational::integer(1));
        assert_eq!(r("6/4").to_string(), "3/2");
        for bad in ["", ".", "1.2.3", "abc", "1/0", "1e3", "0.1234567", "- 1"] {
            assert!(bad.parse::<Rational>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits_of_terms() {
        let max = 1 << 20;
        assert!(Rational::new(1, max + 1).unwrap().within(max).is_err());
        assert!(Rational::integer(i64::MIN).within(max).is_err());
        assert_eq!(
            Rational::new(3, max).unwrap().within(max).unwrap(),
            Rational::new(3, max).unwrap()
        );
        let e = Rational::new(-(1 << 21), 3)
            .unwrap()
            .within(max)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("-2097152/3 has terms beyond 1048576"),
            "{e}"
        );
    }

    #[test]
    fn serde_checks_and_reduces() {
        let r: Rational = serde_json::from_str(r#"{"num":6,"den":4}"#).unwrap();
        assert_eq!(r, Rational::new(3, 2).unwrap());
        assert!(serde_json::from_str::<Rational>(r#"{"num":3,"den":0}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Rational::new(-1, 4).unwrap()).unwrap(),
            r#"{"num":-1,"den":4}"#
        );
    }
}
