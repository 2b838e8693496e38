//! Tiles: an image cut into horizontal bands of rows, each encrypted,
//! filtered and decrypted on its own, so that neither side ever holds the
//! whole encrypted image.
//!
//! A tile is the rows [`TilePlan::rows`] of the image, encrypted as an
//! image of their own ([`EncryptedImage::encrypt_tile`](crate::EncryptedImage::encrypt_tile))
//! whose vertical halo (`halo_rows` above and below, the chain's total
//! radius) holds the image's neighbouring rows, and the border mode only
//! beyond the image's top and bottom: exactly the rows the whole-image
//! encryption puts there. Every filter output of the tile's rows therefore
//! sees the same inputs as in the whole image, and the decrypted tile is
//! bit for bit those rows of the whole image's result. The price is the
//! halo rows encrypted twice, `2 * halo_rows / tile_rows` more input
//! ciphertexts (outputs are not duplicated).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::geometry::{Geometry, ciphertext_width};
use crate::options::{EncryptOptions, Layout};
use crate::pixels::ColorLayout;

/// The input ciphertext bytes a tile of the default height holds, about:
/// 4 MiB. Large enough that the halo rows are a few percent of a tile and
/// per-tile overheads vanish, small enough that a window of a few tiles
/// (and the copies a filter makes) stays in the tens of MiB whatever the
/// image size. A 4000-pixel-wide RGB row at 2048 bits is about 38 KiB of
/// ciphertexts, so its tiles have at most 109 rows (108 by default: of the
/// heights within a quarter below, the one that packs best).
pub const DEFAULT_TILE_BYTES: usize = 4 << 20;

/// The fewest rows a tile of the default height has (unless the image is
/// shorter), so that very wide images keep the halo overhead small.
pub const MIN_TILE_ROWS: usize = 16;

/// How an image of `width x height` is cut into tiles of `tile_rows` rows
/// (the last one may be shorter), each carrying `halo_rows` rows of
/// vertical context above and below. Public: a server may check each tile
/// it receives against the plan.
///
/// ```
/// use enc_image::TilePlan;
/// let plan = TilePlan::new(640, 100, 32, 2)?;
/// assert_eq!(plan.count(), 4);
/// assert_eq!(plan.rows(3), Some(96..100));
/// assert_eq!(plan.rows_with_halo(0), Some(-2..34));
/// assert_eq!(plan.rows(4), None);
/// # Ok::<(), enc_image::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "TilePlanRepr", into = "TilePlanRepr")]
pub struct TilePlan {
    width: u32,
    height: u32,
    tile_rows: u32,
    halo_rows: u32,
}

/// The serde form, checked on the way in.
#[derive(Serialize, Deserialize)]
struct TilePlanRepr {
    width: u32,
    height: u32,
    tile_rows: u32,
    halo_rows: u32,
}

impl TryFrom<TilePlanRepr> for TilePlan {
    type Error = Error;
    fn try_from(r: TilePlanRepr) -> Result<Self> {
        TilePlan::new(
            r.width as usize,
            r.height as usize,
            r.tile_rows as usize,
            r.halo_rows,
        )
    }
}

impl From<TilePlan> for TilePlanRepr {
    fn from(p: TilePlan) -> Self {
        TilePlanRepr {
            width: p.width,
            height: p.height,
            tile_rows: p.tile_rows,
            halo_rows: p.halo_rows,
        }
    }
}

/// Of the tile heights from three quarters of `most` rows up to `most`,
/// the one whose tiles of a `width x height` image cost the fewest
/// ciphertexts ([`Geometry::cost`], the last, shorter tile included); the
/// tallest of equals. `most` itself when the image fits one tile.
///
/// A tile's rows pack into bands and chunks more or less tightly: at 2048
/// bits, 109 rows of a 4000-pixel-wide image are 2 bands of 55 rows (a row
/// of ciphertexts wasted), while 108 rows are 3 bands of 36. A 12 MP photo
/// in tiles of 108 rows decrypts 1.6% fewer ciphertexts (and encrypts 0.2%
/// more) than in tiles of 109.
fn tightest_tile_rows(
    width: usize,
    height: usize,
    key_bits: u32,
    slot_bits: u32,
    halo: u32,
    most: usize,
) -> usize {
    if most >= height {
        return most;
    }
    let layout = |rows: usize| Geometry::plan(width, rows, key_bits, slot_bits, halo).ok();
    let cost = |rows: usize| -> Option<u64> {
        let (full, last) = (height / rows, height % rows);
        let last = if last == 0 { 0 } else { layout(last)?.cost() };
        Some(layout(rows)?.cost() * full as u64 + last)
    };
    let least = (most * 3 / 4).clamp(MIN_TILE_ROWS.min(most), most);
    (least..=most)
        .filter_map(|rows| Some((cost(rows)?, std::cmp::Reverse(rows))))
        .min()
        .map_or(most, |(_, std::cmp::Reverse(rows))| rows)
}

impl TilePlan {
    /// Tiles of `tile_rows` rows (at most the height: a taller tile is the
    /// whole image) with `halo_rows` rows of context. Refuses an empty
    /// image and empty tiles.
    pub fn new(width: usize, height: usize, tile_rows: usize, halo_rows: u32) -> Result<Self> {
        if width == 0 || height == 0 || tile_rows == 0 {
            return Err(Error::Parameter(format!(
                "cannot cut a {width}x{height} image into tiles of {tile_rows} rows"
            )));
        }
        let side = |what: &str, v: usize| {
            u32::try_from(v).map_err(|_| Error::Limit(format!("{what} of {v} pixels")))
        };
        Ok(TilePlan {
            width: side("width", width)?,
            height: side("height", height)?,
            tile_rows: side("tile", tile_rows.min(height))?,
            halo_rows,
        })
    }

    /// The plan for encrypting a `width x height` image in `color` under a
    /// `key_bits`-bit key with `opts`: tiles of `tile_rows` rows, or when
    /// `None` of the height up to [`Self::default_tile_rows`] (and at most a
    /// quarter below it) whose tiles cost the fewest ciphertexts, with the
    /// layout's halo as context. The unpacked layout re-applies the border
    /// when filtering, so it has only the whole-image plan (one tile):
    /// asking it for shorter tiles is an error.
    pub fn for_encryption(
        width: usize,
        height: usize,
        color: ColorLayout,
        key_bits: u32,
        opts: &EncryptOptions,
        tile_rows: Option<usize>,
    ) -> Result<Self> {
        match opts.layout {
            Layout::Packed { slot_bits, halo } => {
                let rows = tile_rows.unwrap_or_else(|| {
                    let most = Self::default_tile_rows(width, color, key_bits, opts);
                    tightest_tile_rows(width, height, key_bits, slot_bits, halo, most)
                });
                TilePlan::new(width, height, rows, halo)
            }
            Layout::Unpacked => match tile_rows {
                Some(rows) if rows < height => Err(Error::Parameter(format!(
                    "the unpacked layout cannot be cut into tiles of {rows} rows (it applies the \
                     border when filtering, at the tile's edges); use the packed layout or whole images"
                ))),
                _ => TilePlan::new(width, height, height, 0),
            },
        }
    }

    /// The tallest default tile for an image `width` pixels wide: about
    /// [`DEFAULT_TILE_BYTES`] of input ciphertexts per tile (estimated from
    /// the key size, the slots per plaintext and the halo), and at least
    /// [`MIN_TILE_ROWS`].
    #[must_use]
    pub fn default_tile_rows(
        width: usize,
        color: ColorLayout,
        key_bits: u32,
        opts: &EncryptOptions,
    ) -> usize {
        let per_row = match opts.layout {
            Layout::Packed { slot_bits, halo } => {
                let slots = Geometry::total_slots(key_bits, slot_bits) as usize;
                let core = slots.saturating_sub(4 * halo as usize).max(1);
                (width + 2 * halo as usize).div_ceil(core)
            }
            Layout::Unpacked => width,
        };
        let row_bytes = (per_row * color.channels() * ciphertext_width(key_bits)).max(1);
        (DEFAULT_TILE_BYTES / row_bytes).max(MIN_TILE_ROWS)
    }

    /// Width of the image in pixels.
    #[must_use]
    pub fn width(&self) -> usize {
        self.width as usize
    }

    /// Height of the image in pixels.
    #[must_use]
    pub fn height(&self) -> usize {
        self.height as usize
    }

    /// Rows per tile (the last tile may have fewer).
    #[must_use]
    pub fn tile_rows(&self) -> usize {
        self.tile_rows as usize
    }

    /// Rows of context above and below each tile.
    #[must_use]
    pub fn halo_rows(&self) -> u32 {
        self.halo_rows
    }

    /// Number of tiles.
    #[must_use]
    pub fn count(&self) -> usize {
        self.height().div_ceil(self.tile_rows())
    }

    /// The image rows tile `index` gives, or `None` past the last tile.
    #[must_use]
    pub fn rows(&self, index: usize) -> Option<Range<usize>> {
        let start = index.checked_mul(self.tile_rows())?;
        (start < self.height()).then(|| start..(start + self.tile_rows()).min(self.height()))
    }

    /// The rows tile `index` encrypts: its rows and `halo_rows` on each
    /// side, beyond the image where it is at the top or bottom (there the
    /// border mode makes them up).
    #[must_use]
    pub fn rows_with_halo(&self, index: usize) -> Option<Range<i64>> {
        let r = self.rows(index)?;
        let h = i64::from(self.halo_rows);
        Some(r.start as i64 - h..r.end as i64 + h)
    }

    /// Every tile's rows, in order.
    pub fn iter(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..self.count()).filter_map(|i| self.rows(i))
    }

    /// Checks that the plan was made for a `width x height` image encrypted
    /// with `opts`.
    pub(crate) fn check_image(
        &self,
        width: usize,
        height: usize,
        opts: &EncryptOptions,
    ) -> Result<()> {
        if (self.width(), self.height()) != (width, height) {
            return Err(Error::Parameter(format!(
                "the tile plan is for a {}x{} image, this one is {width}x{height}",
                self.width, self.height
            )));
        }
        match opts.layout {
            Layout::Packed { halo, .. } if halo != self.halo_rows => {
                Err(Error::Parameter(format!(
                    "the tile plan carries {} halo rows, the encryption's halo is {halo}; make the plan \
                 with TilePlan::for_encryption",
                    self.halo_rows
                )))
            }
            Layout::Unpacked if self.count() > 1 => Err(Error::Parameter(
                "the unpacked layout cannot be tiled (it applies the border when filtering)".into(),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_image_once_in_order() {
        for (h, t) in [(1, 1), (1, 5), (7, 1), (7, 3), (10, 5), (10, 4), (100, 32)] {
            let plan = TilePlan::new(3, h, t, 2).unwrap();
            let rows: Vec<usize> = plan.iter().flatten().collect();
            assert_eq!(rows, (0..h).collect::<Vec<_>>(), "{h} rows by {t}");
            assert_eq!(plan.iter().count(), plan.count());
            assert!(plan.iter().all(|r| !r.is_empty() && r.len() <= t));
            assert_eq!(plan.rows(plan.count()), None);
        }
        assert_eq!(TilePlan::new(3, 5, 9, 0).unwrap().tile_rows(), 5);
        assert!(TilePlan::new(3, 5, 0, 1).is_err());
        assert!(TilePlan::new(0, 5, 1, 1).is_err());
        assert!(TilePlan::new(3, 0, 1, 1).is_err());
    }

    #[test]
    fn halo_rows_surround_each_tile() {
        let plan = TilePlan::new(4, 10, 4, 3).unwrap();
        assert_eq!(plan.rows_with_halo(0), Some(-3..7));
        assert_eq!(plan.rows_with_halo(1), Some(1..11));
        assert_eq!(plan.rows_with_halo(2), Some(5..13));
        assert_eq!(plan.rows_with_halo(3), None);
    }

    #[test]
    fn default_height_aims_at_a_few_mib() {
        let opts = EncryptOptions::for_mean(3);
        // 4000 RGB at 2048 bits: 25 ciphertexts of 512 bytes per channel row.
        let rows = TilePlan::default_tile_rows(4000, ColorLayout::Rgb8, 2048, &opts);
        assert_eq!(rows, DEFAULT_TILE_BYTES / (25 * 3 * 512));
        // Very wide images keep a minimum height.
        let wide = TilePlan::default_tile_rows(1 << 20, ColorLayout::Rgba8, 3072, &opts);
        assert_eq!(wide, MIN_TILE_ROWS);
        let plan =
            TilePlan::for_encryption(4000, 3000, ColorLayout::Rgb8, 2048, &opts, None).unwrap();
        assert_eq!(plan.halo_rows(), 1);
        assert!(
            (rows * 3 / 4..=rows).contains(&plan.tile_rows()),
            "{plan:?}"
        );
    }

    /// The ciphertext cost of encrypting and decrypting every tile of `plan`.
    fn cost(plan: &TilePlan, key_bits: u32, opts: &EncryptOptions) -> u64 {
        let Layout::Packed { slot_bits, halo } = opts.layout else {
            unreachable!("packed options")
        };
        plan.iter()
            .map(|r| {
                Geometry::plan(plan.width(), r.len(), key_bits, slot_bits, halo)
                    .unwrap()
                    .cost()
            })
            .sum()
    }

    #[test]
    fn default_tiles_take_the_height_that_packs_best() {
        let opts = EncryptOptions::for_mean(3);
        // 12 MP at 2048 bits: 108 rows (3 bands of 36) instead of 109 (2
        // bands of 55, one row of ciphertexts wasted): 1.1% cheaper.
        let most = TilePlan::default_tile_rows(4000, ColorLayout::Rgb8, 2048, &opts);
        let plan =
            TilePlan::for_encryption(4000, 3000, ColorLayout::Rgb8, 2048, &opts, None).unwrap();
        assert_eq!((most, plan.tile_rows()), (109, 108));
        let tallest = TilePlan::new(4000, 3000, most, 1).unwrap();
        let (chosen, naive) = (cost(&plan, 2048, &opts), cost(&tallest, 2048, &opts));
        assert!(chosen * 1000 <= naive * 990, "{chosen} against {naive}");
        // No height in range does better, at several sizes and keys.
        for (w, h, bits, k) in [
            (4000, 3000, 2048, 3),
            (8000, 6000, 3072, 5),
            (1000, 750, 2048, 7),
        ] {
            let opts = EncryptOptions::for_mean(k);
            let most = TilePlan::default_tile_rows(w, ColorLayout::Rgb8, bits, &opts);
            let plan =
                TilePlan::for_encryption(w, h, ColorLayout::Rgb8, bits, &opts, None).unwrap();
            let c = cost(&plan, bits, &opts);
            for rows in most * 3 / 4..=most {
                let other = TilePlan::new(w, h, rows, plan.halo_rows()).unwrap();
                assert!(
                    c <= cost(&other, bits, &opts),
                    "{w}x{h}: {plan:?} against {rows} rows"
                );
            }
        }
        // An image that fits one tile stays one tile.
        let small =
            TilePlan::for_encryption(512, 512, ColorLayout::Rgb8, 2048, &opts, None).unwrap();
        assert_eq!(small.count(), 1);
    }

    #[test]
    fn unpacked_images_are_one_tile() {
        let opts = EncryptOptions::unpacked();
        let whole = TilePlan::for_encryption(5, 9, ColorLayout::Luma8, 512, &opts, None).unwrap();
        assert_eq!((whole.count(), whole.halo_rows()), (1, 0));
        assert!(TilePlan::for_encryption(5, 9, ColorLayout::Luma8, 512, &opts, Some(3)).is_err());
        assert!(whole.check_image(5, 9, &opts).is_ok());
        let cut = TilePlan::new(5, 9, 3, 0).unwrap();
        assert!(cut.check_image(5, 9, &opts).is_err());
        assert!(cut.check_image(5, 9, &EncryptOptions::for_mean(3)).is_err());
        assert!(cut.check_image(5, 8, &EncryptOptions::for_mean(1)).is_err());
        assert!(cut.check_image(5, 9, &EncryptOptions::for_mean(1)).is_ok());
    }

    #[test]
    fn deserializing_checks_the_plan() {
        let plan = TilePlan::new(7, 9, 4, 1).unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<TilePlan>(&json).unwrap(), plan);
        let bad = r#"{"width":7,"height":9,"tile_rows":0,"halo_rows":1}"#;
        assert!(serde_json::from_str::<TilePlan>(bad).is_err());
    }
}
