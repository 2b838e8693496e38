//! Border modes: how pixels outside the image are made up.

use serde::{Deserialize, Serialize};

use crate::pixels::PixelImage;

/// How a filter sees pixels outside the image, as in OpenCV.
///
/// The mode is fixed when an image is encrypted: horizontal padding lives
/// inside the packed plaintexts, so the encoder applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum BorderMode {
    /// `aaaa|abcd|dddd` (OpenCV `BORDER_REPLICATE`); the default.
    #[default]
    Replicate,
    /// `dcb|abcd|cba` (OpenCV `BORDER_REFLECT_101`, OpenCV's own default).
    Reflect101,
    /// `kkkk|abcd|kkkk` with a constant value k (OpenCV `BORDER_CONSTANT`).
    Constant(u8),
}

impl BorderMode {
    /// The source index for index `p` of a line of `len` pixels, or `None`
    /// for the constant mode outside the line. Same as OpenCV's
    /// `borderInterpolate` (including a line of one pixel, and offsets
    /// larger than the line for reflection).
    #[must_use]
    pub fn source_index(self, p: i64, len: usize) -> Option<usize> {
        let n = len as i64;
        if (0..n).contains(&p) {
            return Some(p as usize);
        }
        match self {
            BorderMode::Replicate => Some(if p < 0 { 0 } else { len - 1 }),
            BorderMode::Reflect101 => {
                if len == 1 {
                    return Some(0);
                }
                let mut p = p;
                while !(0..n).contains(&p) {
                    p = if p < 0 { -p } else { 2 * (n - 1) - p };
                }
                Some(p as usize)
            }
            BorderMode::Constant(_) => None,
        }
    }

    /// The sample of channel `chan` at `(x, y)` of `img`, where `(x, y)`
    /// may lie outside the image.
    #[must_use]
    pub fn sample(self, img: &PixelImage, chan: usize, x: i64, y: i64) -> u8 {
        match (
            self.source_index(x, img.width()),
            self.source_index(y, img.height()),
        ) {
            (Some(sx), Some(sy)) => img.get(sx, sy, chan),
            _ => match self {
                BorderMode::Constant(k) => k,
                _ => 0,
            },
        }
    }

    /// A short name (`replicate`, `reflect101`, `constant:K`).
    #[must_use]
    pub fn name(self) -> String {
        match self {
            BorderMode::Replicate => "replicate".into(),
            BorderMode::Reflect101 => "reflect101".into(),
            BorderMode::Constant(k) => format!("constant:{k}"),
        }
    }
}

impl std::str::FromStr for BorderMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "replicate" => Ok(BorderMode::Replicate),
            "reflect101" | "reflect-101" | "reflect_101" => Ok(BorderMode::Reflect101),
            "constant" => Ok(BorderMode::Constant(0)),
            _ => match s.strip_prefix("constant:") {
                Some(k) => k
                    .parse::<u8>()
                    .map(BorderMode::Constant)
                    .map_err(|_| format!("constant border value must be 0..=255, got {k:?}")),
                None => Err(format!(
                    "unknown border mode {s:?} (replicate, reflect101, constant[:K])"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_opencv_border_interpolate() {
        // Values from OpenCV's documentation: "gfedcb|abcdefgh|gfedcba".
        let r = BorderMode::Reflect101;
        let got: Vec<usize> = (-6..0).map(|p| r.source_index(p, 8).unwrap()).collect();
        assert_eq!(got, vec![6, 5, 4, 3, 2, 1]);
        let got: Vec<usize> = (8..15).map(|p| r.source_index(p, 8).unwrap()).collect();
        assert_eq!(got, vec![6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(r.source_index(-3, 1), Some(0));
        assert_eq!(r.source_index(-2, 2), Some(0));
        assert_eq!(r.source_index(-3, 2), Some(1));
        let rep = BorderMode::Replicate;
        assert_eq!(rep.source_index(-5, 3), Some(0));
        assert_eq!(rep.source_index(7, 3), Some(2));
        assert_eq!(BorderMode::Constant(9).source_index(-1, 3), None);
    }

    #[test]
    fn parses_names() {
        assert_eq!(
            "reflect101".parse::<BorderMode>(),
            Ok(BorderMode::Reflect101)
        );
        assert_eq!(
            "constant:7".parse::<BorderMode>(),
            Ok(BorderMode::Constant(7))
        );
        assert!("constant:300".parse::<BorderMode>().is_err());
        assert!("wrap".parse::<BorderMode>().is_err());
    }
}
