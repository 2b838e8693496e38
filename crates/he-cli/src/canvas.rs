//! Where a tiled run's result and the picture of what the server saw are
//! put together, bounded in memory whatever the photo's size: the result in
//! one buffer of the image's size, each tile copied to its rows as it
//! comes back (never a second copy of the image), and the server's view
//! from its first bytes only, at most [`VIEW_MAX_PIXELS`] pixels.
//! `he blur` and `he submit` share them.

use std::ops::Range;

use enc_image::{ColorLayout, PixelImage, TilePlan};
use he_filter::Error;

/// The result of a tiled run, filled tile by tile.
#[derive(Debug)]
pub(crate) struct Canvas {
    plan: TilePlan,
    /// The layout of the tiles seen so far (they must all agree).
    color: Option<ColorLayout>,
    /// The image's samples, allocated at the first tile (its layout tells
    /// the size); zeroed pages cost no memory until a tile is written.
    data: Vec<u8>,
    filled: Vec<bool>,
}

impl Canvas {
    /// An empty canvas for the tiles of `plan`.
    pub(crate) fn new(plan: TilePlan) -> Self {
        Canvas {
            plan,
            color: None,
            data: Vec::new(),
            filled: vec![false; plan.count()],
        }
    }

    /// Whether tile `index` is in.
    pub(crate) fn has(&self, index: usize) -> bool {
        self.filled.get(index).copied().unwrap_or(false)
    }

    /// The rows of tile `index` in the image.
    fn rows(&self, index: usize) -> Result<Range<usize>, Error> {
        self.plan.rows(index).ok_or_else(|| {
            Error::Parameter(format!(
                "tile {index} is not in the plan of {} tiles",
                self.plan.count()
            ))
        })
    }

    /// Copies tile `index`'s pixels (`color` layout, its rows without the
    /// halo) into place. A tile of another layout than the others, or of
    /// the wrong size, is refused.
    pub(crate) fn put(
        &mut self,
        index: usize,
        color: ColorLayout,
        pixels: &[u8],
    ) -> Result<(), Error> {
        let rows = self.rows(index)?;
        if self.color.is_some_and(|c| c != color) {
            return Err(Error::Parameter(format!(
                "tile {index} has another colour layout than the others"
            )));
        }
        let row_bytes = self.plan.width() * color.channels();
        let want = rows.len() * row_bytes;
        if pixels.len() != want {
            return Err(Error::Parameter(format!(
                "tile {index} has {} bytes of pixels, its {} rows need {want}",
                pixels.len(),
                rows.len()
            )));
        }
        if self.color.is_none() {
            self.color = Some(color);
            self.data = vec![0; self.plan.height() * row_bytes];
        }
        self.data[rows.start * row_bytes..rows.end * row_bytes].copy_from_slice(pixels);
        self.filled[index] = true;
        Ok(())
    }

    /// The whole image, once every tile is in (the buffer is moved, not
    /// copied).
    pub(crate) fn into_image(self) -> anyhow::Result<PixelImage> {
        if let Some(missing) = self.filled.iter().position(|&f| !f) {
            anyhow::bail!("tile {missing} of {} is missing", self.filled.len());
        }
        let color = self
            .color
            .ok_or_else(|| anyhow::anyhow!("no tile came back"))?;
        Ok(PixelImage::new(
            self.plan.width(),
            self.plan.height(),
            color,
            self.data,
        )?)
    }
}

/// The largest picture of what the server saw, in pixels: about a
/// megapixel, whatever the photo's size.
pub(crate) const VIEW_MAX_PIXELS: usize = 1 << 20;

/// The first bytes the server received, for a picture of them (uniform
/// noise, whatever the photo): the photo's aspect, at most
/// [`VIEW_MAX_PIXELS`] pixels.
#[derive(Debug)]
pub(crate) struct ServerView {
    width: usize,
    height: usize,
    bytes: Vec<u8>,
}

impl ServerView {
    /// A view for a photo of `width` x `height` pixels.
    pub(crate) fn new(width: usize, height: usize) -> Self {
        let (w, h) = (width.max(1), height.max(1));
        let scale = (VIEW_MAX_PIXELS as f64 / (w * h) as f64).sqrt().min(1.0);
        let width = ((w as f64 * scale) as usize).clamp(1, w);
        let height = ((h as f64 * scale) as usize).clamp(1, h);
        ServerView {
            width,
            height,
            bytes: Vec::new(),
        }
    }

    /// Keeps what still fits of `payload`, bytes the server received.
    pub(crate) fn push(&mut self, payload: &[u8]) {
        let room = (self.width * self.height * 3).saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&payload[..room.min(payload.len())]);
    }

    /// The bytes laid out as RGB pixels (black where none came).
    pub(crate) fn picture(&self) -> image::RgbImage {
        let mut data = self.bytes.clone();
        data.resize(self.width * self.height * 3, 0);
        image::RgbImage::from_raw(self.width as u32, self.height as u32, data)
            .unwrap_or_else(|| image::RgbImage::new(self.width as u32, self.height as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> TilePlan {
        TilePlan::new(5, 7, 3, 1).unwrap()
    }

    #[test]
    fn tiles_in_any_order_make_the_image() {
        let plan = plan();
        assert_eq!(plan.count(), 3);
        let whole: Vec<u8> = (0..5 * 7 * 3).map(|i| i as u8).collect();
        let mut c = Canvas::new(plan);
        for i in [2, 0, 1] {
            let r = plan.rows(i).unwrap();
            assert!(!c.has(i));
            c.put(i, ColorLayout::Rgb8, &whole[r.start * 15..r.end * 15])
                .unwrap();
            assert!(c.has(i));
        }
        let img = c.into_image().unwrap();
        assert_eq!((img.width(), img.height()), (5, 7));
        assert_eq!(img.data(), &whole[..]);
    }

    #[test]
    fn a_missing_or_wrong_tile_is_refused() {
        let plan = plan();
        let mut c = Canvas::new(plan);
        c.put(0, ColorLayout::Rgb8, &[1; 45]).unwrap();
        let e = c.put(1, ColorLayout::Luma8, &[1; 15]).unwrap_err();
        assert!(e.to_string().contains("another colour layout"), "{e}");
        let e = c.put(1, ColorLayout::Rgb8, &[1; 44]).unwrap_err();
        assert!(e.to_string().contains("44 bytes"), "{e}");
        let e = c.put(3, ColorLayout::Rgb8, &[1; 15]).unwrap_err();
        assert!(e.to_string().contains("not in the plan"), "{e}");
        c.put(2, ColorLayout::Rgb8, &[1; 15]).unwrap();
        let e = c.into_image().unwrap_err();
        assert!(e.to_string().contains("tile 1 of 3 is missing"), "{e}");
        let e = Canvas::new(plan).into_image().unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn the_server_view_is_bounded_and_keeps_the_aspect() {
        let mut v = ServerView::new(8000, 6000);
        assert!(v.width * v.height <= VIEW_MAX_PIXELS);
        assert_eq!((v.width, v.height), (1182, 886));
        v.push(&vec![7; 10_000_000]);
        v.push(&[9; 10]);
        assert_eq!(v.bytes.len(), v.width * v.height * 3);
        let p = v.picture();
        assert_eq!((p.width(), p.height()), (1182, 886));
        assert!(p.as_raw().iter().all(|&b| b == 7));
        // A small photo keeps its size; bytes that never came are black.
        let mut v = ServerView::new(4, 2);
        v.push(&[5; 6]);
        let p = v.picture();
        assert_eq!((p.width(), p.height()), (4, 2));
        assert_eq!(&p.as_raw()[..8], &[5, 5, 5, 5, 5, 5, 0, 0]);
    }
}
