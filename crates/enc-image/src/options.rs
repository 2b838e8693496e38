//! Choices made when an image is encrypted.

use crate::border::BorderMode;
use crate::geometry::{MAX_SLOT_BITS, MIN_SLOT_BITS};

/// How an image is packed into plaintexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Many values per plaintext with this slot width and halo.
    Packed {
        /// Bits per slot: must hold the range of every value a filter makes.
        slot_bits: u32,
        /// Largest kernel radius (a `2*halo+1` square kernel) supported.
        halo: u32,
    },
    /// One value per ciphertext (the naive baseline).
    Unpacked,
}

/// Options of [`EncryptedImage::encrypt`](crate::EncryptedImage::encrypt).
///
/// The default supports mean filters up to 5x5 (halo 2, 13-bit slots) with
/// the replicate border.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptOptions {
    /// Packing.
    pub layout: Layout,
    /// Border mode (fixed at encryption for the packed layout).
    pub border: BorderMode,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        Self::for_mean(5)
    }
}

/// Smallest slot width holding every value of `[lo, hi]` (`lo <= 0 <= hi`).
#[must_use]
pub fn bits_for_range(lo: i64, hi: i64) -> u32 {
    let span = (i128::from(hi) - i128::from(lo)).max(1) as u128;
    (128 - span.leading_zeros()).clamp(MIN_SLOT_BITS, MAX_SLOT_BITS + 1)
}

impl EncryptOptions {
    /// Packed for `k x k` mean filters of 8-bit images (`k` odd): halo
    /// `k/2`, slots wide enough for `255 * k^2`.
    #[must_use]
    pub fn for_mean(k: u32) -> Self {
        let k = k.max(1) | 1;
        Self::for_kernel(k / 2, 255 * i64::from(k) * i64::from(k), 0)
    }

    /// Packed for kernels of radius up to `halo` whose results on 8-bit
    /// input lie in `[lo, hi]` (for weights w: `hi = 255 * sum(w > 0)`,
    /// `lo = 255 * sum(w < 0)`).
    #[must_use]
    pub fn for_kernel(halo: u32, hi: i64, lo: i64) -> Self {
        EncryptOptions {
            layout: Layout::Packed {
                slot_bits: bits_for_range(lo.min(0), hi.max(255)),
                halo,
            },
            border: BorderMode::Replicate,
        }
    }

    /// One value per ciphertext.
    #[must_use]
    pub fn unpacked() -> Self {
        EncryptOptions {
            layout: Layout::Unpacked,
            border: BorderMode::Replicate,
        }
    }

    /// Sets the border mode.
    #[must_use]
    pub fn border(mut self, border: BorderMode) -> Self {
        self.border = border;
        self
    }
}
