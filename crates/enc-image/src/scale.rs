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
        // In i128: g may be 2^63 (num = i64::MIN), which is no i64.
        let num = i64::try_from(i128::from(num) / i128::from(g))
            .map_err(|_| Error::Parameter("scale numerator overflows".into()))?;
        Ok(Scale { num, den: den / g })
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

/// How exact (possibly negative) results become 8-bit pixels, after the
/// scale is applied and the result rounded to nearest (ties away from zero).
///
/// Edge filters (Sobel, Laplacian...) give signed values; which mapping
/// suits depends on what the picture is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum OutputMapping {
    /// Clamp to `0..=255` (OpenCV's `saturate_cast<uchar>`, the default
    /// for 8-bit output): negative values become 0.
    #[default]
    Saturate,
    /// `|x|` clamped to `0..=255` (OpenCV's `cv2.convertScaleAbs`).
    Abs,
    /// `x + 128` clamped to `0..=255`: zero becomes mid-grey.
    Shift128,
}

impl OutputMapping {
    /// Every mapping, for help texts.
    pub const ALL: [OutputMapping; 3] = [
        OutputMapping::Saturate,
        OutputMapping::Abs,
        OutputMapping::Shift128,
    ];

    /// The name used on command lines: `saturate`, `abs` or `shift128`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            OutputMapping::Saturate => "saturate",
            OutputMapping::Abs => "abs",
            OutputMapping::Shift128 => "shift128",
        }
    }
}

impl std::str::FromStr for OutputMapping {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        OutputMapping::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown output mapping {s:?}; expected saturate, abs or shift128")
            })
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
    fn output_mappings() {
        let half = Scale::new(1, 2).unwrap();
        // -7/2 = -3.5 rounds to -4.
        assert_eq!(half.to_u8_with(-7, OutputMapping::Saturate), 0);
        assert_eq!(half.to_u8_with(-7, OutputMapping::Abs), 4);
        assert_eq!(half.to_u8_with(-7, OutputMapping::Shift128), 124);
        assert_eq!(Scale::ONE.to_u8_with(-600, OutputMapping::Abs), 255);
        assert_eq!(Scale::ONE.to_u8_with(200, OutputMapping::Shift128), 255);
        assert_eq!(Scale::ONE.to_u8_with(-200, OutputMapping::Shift128), 0);
        for m in OutputMapping::ALL {
            assert_eq!(m.name().parse::<OutputMapping>().unwrap(), m);
        }
        assert!("clamp".parse::<OutputMapping>().is_err());
    }

    #[test]
    fn reduces_and_refuses_zero_denominator() {
        assert_eq!(Scale::new(6, 8).unwrap(), Scale::new(3, 4).unwrap());
        assert!(Scale::new(1, 0).is_err());
        assert_eq!(Scale::ONE.divided_by(9).unwrap().den(), 9);
        assert!(Scale::new(1, u64::MAX).unwrap().divided_by(2).is_err());
        assert_eq!(
            Scale::new(i64::MIN, 1 << 63).unwrap(),
            Scale::new(-1, 1).unwrap()
        );
    }
}
