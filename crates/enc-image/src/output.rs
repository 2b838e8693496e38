//! How exact results become 8-bit pixels.

use serde::{Deserialize, Serialize};

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
