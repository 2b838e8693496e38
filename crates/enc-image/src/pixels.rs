//! Plain 8-bit images: the client's side of the story.

use image::{DynamicImage, ImageBuffer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The colour layouts an encrypted image can have. Every channel, alpha
/// included, is encrypted and filtered (so a filter treats alpha as OpenCV
/// does, and the server learns nothing about transparency either).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColorLayout {
    /// One grey channel.
    Luma8,
    /// Grey and alpha.
    LumaA8,
    /// Red, green, blue.
    Rgb8,
    /// Red, green, blue, alpha.
    Rgba8,
}

impl ColorLayout {
    /// Number of channels.
    #[must_use]
    pub fn channels(self) -> usize {
        match self {
            ColorLayout::Luma8 => 1,
            ColorLayout::LumaA8 => 2,
            ColorLayout::Rgb8 => 3,
            ColorLayout::Rgba8 => 4,
        }
    }

    /// The layout with this many channels.
    #[must_use]
    pub fn from_channels(n: usize) -> Option<Self> {
        match n {
            1 => Some(ColorLayout::Luma8),
            2 => Some(ColorLayout::LumaA8),
            3 => Some(ColorLayout::Rgb8),
            4 => Some(ColorLayout::Rgba8),
            _ => None,
        }
    }
}

/// An 8-bit image with interleaved channels, row-major.
#[derive(Clone, PartialEq, Eq)]
pub struct PixelImage {
    width: usize,
    height: usize,
    color: ColorLayout,
    data: Vec<u8>,
}

impl std::fmt::Debug for PixelImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PixelImage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("color", &self.color)
            .finish_non_exhaustive()
    }
}

impl PixelImage {
    /// Wraps pixel data; its length must be `width * height * channels`,
    /// and the image must not be empty.
    pub fn new(width: usize, height: usize, color: ColorLayout, data: Vec<u8>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::Parameter(format!(
                "image is empty ({width}x{height})"
            )));
        }
        let want = width
            .checked_mul(height)
            .and_then(|p| p.checked_mul(color.channels()))
            .ok_or_else(|| Error::Limit(format!("{width}x{height} is too large")))?;
        if data.len() != want {
            return Err(Error::Parameter(format!(
                "{width}x{height} {color:?} needs {want} bytes, got {}",
                data.len()
            )));
        }
        Ok(PixelImage {
            width,
            height,
            color,
            data,
        })
    }

    /// For dimensions already checked elsewhere (a decrypted image).
    pub(crate) fn from_checked_parts(
        width: usize,
        height: usize,
        color: ColorLayout,
        data: Vec<u8>,
    ) -> Self {
        debug_assert_eq!(data.len(), width * height * color.channels());
        PixelImage {
            width,
            height,
            color,
            data,
        }
    }

    /// Converts any image the `image` crate decodes. 8-bit grey, grey+alpha,
    /// RGB and RGBA are kept as they are; other formats (16-bit, float) are
    /// converted to the 8-bit layout with the same channels.
    #[must_use]
    pub fn from_dynamic(img: &DynamicImage) -> Self {
        Self::from_dynamic_owned(img.clone())
    }

    /// [`from_dynamic`](Self::from_dynamic), moving the samples of an
    /// 8-bit image instead of copying them: for a large photo, one buffer
    /// of its size instead of two.
    #[must_use]
    pub fn from_dynamic_owned(img: DynamicImage) -> Self {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (color, data) = match img {
            DynamicImage::ImageLuma8(b) => (ColorLayout::Luma8, b.into_raw()),
            DynamicImage::ImageLumaA8(b) => (ColorLayout::LumaA8, b.into_raw()),
            DynamicImage::ImageRgb8(b) => (ColorLayout::Rgb8, b.into_raw()),
            DynamicImage::ImageRgba8(b) => (ColorLayout::Rgba8, b.into_raw()),
            other => {
                let c = other.color();
                match (c.has_color(), c.has_alpha()) {
                    (false, false) => (ColorLayout::Luma8, other.to_luma8().into_raw()),
                    (false, true) => (ColorLayout::LumaA8, other.to_luma_alpha8().into_raw()),
                    (true, false) => (ColorLayout::Rgb8, other.to_rgb8().into_raw()),
                    (true, true) => (ColorLayout::Rgba8, other.to_rgba8().into_raw()),
                }
            }
        };
        PixelImage {
            width: w,
            height: h,
            color,
            data,
        }
    }

    /// Converts to an `image` crate image (for saving); a copy.
    pub fn to_dynamic(&self) -> Result<DynamicImage> {
        self.clone().into_dynamic()
    }

    /// Converts to an `image` crate image, moving the samples (no copy:
    /// for a large photo, one buffer of its size instead of two).
    pub fn into_dynamic(self) -> Result<DynamicImage> {
        let (w, h) = (
            u32::try_from(self.width).map_err(|_| Error::Limit("width".into()))?,
            u32::try_from(self.height).map_err(|_| Error::Limit("height".into()))?,
        );
        let d = self.data;
        let bad = || Error::Parameter("buffer size".into());
        Ok(match self.color {
            ColorLayout::Luma8 => {
                DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, d).ok_or_else(bad)?)
            }
            ColorLayout::LumaA8 => {
                DynamicImage::ImageLumaA8(ImageBuffer::from_raw(w, h, d).ok_or_else(bad)?)
            }
            ColorLayout::Rgb8 => {
                DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, d).ok_or_else(bad)?)
            }
            ColorLayout::Rgba8 => {
                DynamicImage::ImageRgba8(ImageBuffer::from_raw(w, h, d).ok_or_else(bad)?)
            }
        })
    }

    /// Width in pixels.
    #[must_use]
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    #[must_use]
    pub fn height(&self) -> usize {
        self.height
    }
    /// Colour layout.
    #[must_use]
    pub fn color(&self) -> ColorLayout {
        self.color
    }
    /// Number of channels.
    #[must_use]
    pub fn channels(&self) -> usize {
        self.color.channels()
    }
    /// The interleaved samples.
    #[must_use]
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// The sample of channel `c` at `(x, y)`.
    #[must_use]
    pub fn get(&self, x: usize, y: usize, c: usize) -> u8 {
        self.data[(y * self.width + x) * self.channels() + c]
    }
    /// Number of samples (`width * height * channels`).
    #[must_use]
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// Always false: images are never empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}
