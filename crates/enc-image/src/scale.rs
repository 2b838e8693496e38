//! The exact public scale of an encrypted image, and rounding.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An exact rational scale `num / den` (den > 0, in lowest terms).
///
/// Paillier cannot divide, so dividing an encrypted image by a public
/// constant multiplies this scale's denominator instead; decryption computes
/// the exact quotient in integers and rounds it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scale {
    num: i64,
    den: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Default for Scale {
    fn default() -> Self {
        Scale::ONE
    }
}

impl Scale {
    /// The scale 1.
    pub const ONE: Scale = Scale { num: 1, den: 1 };

    /// `num / den`, reduced; `den` must be non-zero.
    pub fn new(num: i64, den: u64) -> Result<Self> {
        if den == 0 {
            return Err(Error::Parameter("scale denominator is zero".into()));
        }
        let g = gcd(num.unsigned_abs(), den).max(1);
        Ok(Scale {
            num: num / g as i64,
            den: den / g,
        })
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

    /// This scale divided by `d` (d > 0): what dividing the image by d does.
    pub fn divided_by(self, d: u64) -> Result<Self> {
        let den = self
            .den
            .checked_mul(d)
            .ok_or_else(|| Error::Parameter("scale denominator overflows".into()))?;
        Scale::new(self.num, den)
    }

    /// This scale times the rational `num / den`.
    pub fn times(self, num: i64, den: u64) -> Result<Self> {
        let over = || Error::Parameter("scale overflows".into());
        let n = self.num.checked_mul(num).ok_or_else(over)?;
        let d = self.den.checked_mul(den).ok_or_else(over)?;
        Scale::new(n, d)
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
        self.apply_rounded(v).clamp(0, 255) as u8
    }
}

impl std::fmt::Display for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_ties_away_from_zero() {
        let half = Scale::new(1, 2).unwrap();
        assert_eq!(half.apply_rounded(1), 1);
        assert_eq!(half.apply_rounded(3), 2);
        assert_eq!(half.apply_rounded(-1), -1);
        assert_eq!(half.apply_rounded(-3), -2);
        let ninth = Scale::new(1, 9).unwrap();
        assert_eq!(ninth.apply_rounded(13), 1); // 1.44
        assert_eq!(ninth.apply_rounded(14), 2); // 1.56
        assert_eq!(ninth.to_u8(2295), 255);
        assert_eq!(Scale::ONE.to_u8(-4), 0);
        assert_eq!(Scale::ONE.to_u8(300), 255);
    }

    #[test]
    fn reduces_and_refuses_zero_denominator() {
        assert_eq!(Scale::new(6, 8).unwrap(), Scale::new(3, 4).unwrap());
        assert!(Scale::new(1, 0).is_err());
        assert_eq!(Scale::ONE.divided_by(9).unwrap().den(), 9);
        assert!(Scale::new(1, u64::MAX).unwrap().divided_by(2).is_err());
    }
}
