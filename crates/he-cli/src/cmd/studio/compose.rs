//! The region tool: keep the filter only inside rectangles drawn on the
//! photo. The server filters the whole image (it cannot be told where the
//! faces are without being shown them); this process puts the original
//! pixels back outside the rectangles after decryption.

use anyhow::{Result, bail};
use enc_image::{ColorLayout, PixelImage};
use serde::Deserialize;

/// Most rectangles one job may carry.
pub(super) const MAX_REGIONS: usize = 64;

/// A rectangle in the photo's pixels (upright, as the page shows it):
/// left, top, width and height. Parts outside the photo are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) struct Region {
    /// Left edge.
    pub(super) x: u32,
    /// Top edge.
    pub(super) y: u32,
    /// Width.
    pub(super) w: u32,
    /// Height.
    pub(super) h: u32,
}

/// The filtered image inside `regions` and the original outside them.
/// Without regions, the filtered image as it is. When the chain changed
/// the colour layout (grey), the filtered pixels are converted to the
/// original's layout first, so that the photo keeps its colours outside.
pub(super) fn composite(
    original: &PixelImage,
    filtered: &PixelImage,
    regions: &[Region],
) -> Result<PixelImage> {
    if regions.is_empty() {
        return Ok(filtered.clone());
    }
    if regions.len() > MAX_REGIONS {
        bail!("at most {MAX_REGIONS} regions, not {}", regions.len());
    }
    let (w, h) = (original.width(), original.height());
    if (filtered.width(), filtered.height()) != (w, h) {
        bail!("the result has other dimensions than the photo");
    }
    let filtered = same_layout(filtered, original.color())?;
    let c = original.channels();
    let mut data = original.data().to_vec();
    for r in regions {
        let (x0, y0) = ((r.x as usize).min(w), (r.y as usize).min(h));
        let x1 = (r.x as usize).saturating_add(r.w as usize).min(w);
        let y1 = (r.y as usize).saturating_add(r.h as usize).min(h);
        for y in y0..y1 {
            let span = (y * w + x0) * c..(y * w + x1) * c;
            data[span.clone()].copy_from_slice(&filtered.data()[span]);
        }
    }
    Ok(PixelImage::new(w, h, original.color(), data)?)
}

/// `img` in the colour layout `color`.
fn same_layout(img: &PixelImage, color: ColorLayout) -> Result<PixelImage> {
    if img.color() == color {
        return Ok(img.clone());
    }
    let d = img.to_dynamic()?;
    let converted = match color {
        ColorLayout::Luma8 => image::DynamicImage::ImageLuma8(d.to_luma8()),
        ColorLayout::LumaA8 => image::DynamicImage::ImageLumaA8(d.to_luma_alpha8()),
        ColorLayout::Rgb8 => image::DynamicImage::ImageRgb8(d.to_rgb8()),
        ColorLayout::Rgba8 => image::DynamicImage::ImageRgba8(d.to_rgba8()),
    };
    Ok(PixelImage::from_dynamic(&converted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: usize, h: usize, color: ColorLayout, f: impl Fn(usize) -> u8) -> PixelImage {
        let data = (0..w * h * color.channels()).map(f).collect();
        PixelImage::new(w, h, color, data).unwrap()
    }

    #[test]
    fn only_the_rectangles_are_filtered() {
        let a = img(7, 5, ColorLayout::Rgb8, |i| (i % 200) as u8);
        let b = img(7, 5, ColorLayout::Rgb8, |i| 255 - (i % 200) as u8);
        let regions = [
            Region {
                x: 1,
                y: 1,
                w: 2,
                h: 2,
            },
            Region {
                x: 5,
                y: 3,
                w: 100,
                h: 100,
            },
        ];
        let out = composite(&a, &b, &regions).unwrap();
        for y in 0..5 {
            for x in 0..7 {
                let inside = (1..3).contains(&x) && (1..3).contains(&y) || x >= 5 && y >= 3;
                for c in 0..3 {
                    let want = if inside {
                        b.get(x, y, c)
                    } else {
                        a.get(x, y, c)
                    };
                    assert_eq!(out.get(x, y, c), want, "({x}, {y}) channel {c}");
                }
            }
        }
        assert_eq!(composite(&a, &b, &[]).unwrap(), b);
    }

    #[test]
    fn a_grey_result_keeps_the_colours_outside() {
        let a = img(4, 4, ColorLayout::Rgb8, |i| (i * 7 % 256) as u8);
        let g = img(4, 4, ColorLayout::Luma8, |i| (i * 13 % 256) as u8);
        let out = composite(
            &a,
            &g,
            &[Region {
                x: 0,
                y: 0,
                w: 2,
                h: 4,
            }],
        )
        .unwrap();
        assert_eq!(out.color(), ColorLayout::Rgb8);
        assert_eq!(out.get(3, 2, 1), a.get(3, 2, 1));
        for c in 0..3 {
            assert_eq!(out.get(1, 2, c), g.get(1, 2, 0));
        }
        let small = img(3, 4, ColorLayout::Rgb8, |_| 0);
        assert!(
            composite(
                &a,
                &small,
                &[Region {
                    x: 0,
                    y: 0,
                    w: 1,
                    h: 1
                }]
            )
            .is_err()
        );
    }
}
