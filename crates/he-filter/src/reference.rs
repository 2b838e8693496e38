//! The plaintext reference: the same filters on plain pixels, in integers.
//! Tests and the examples compare every decrypted result against it.

use enc_image::{BorderMode, PixelImage, Scale};

use crate::kernel::Kernel;

/// The exact weighted sums `sum w * in` (before the divisor), interleaved
/// like the image's samples.
#[must_use]
pub fn filter_sums(img: &PixelImage, kernel: &Kernel, border: BorderMode) -> Vec<i64> {
    let (w, h, ch) = (img.width(), img.height(), img.channels());
    let r = kernel.radius() as i64;
    let mut out = Vec::with_capacity(img.len());
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            for c in 0..ch {
                let mut acc = 0i64;
                for i in 0..kernel.size() {
                    for j in 0..kernel.size() {
                        let wgt = kernel.weight(i, j);
                        if wgt != 0 {
                            let v = border.sample(img, c, x + j as i64 - r, y + i as i64 - r);
                            acc += wgt * i64::from(v);
                        }
                    }
                }
                out.push(acc);
            }
        }
    }
    out
}

/// The filtered 8-bit image: sums divided by the divisor, rounded to
/// nearest with ties away from zero, saturated to `0..=255`. For the mean
/// filter with the replicate border this is OpenCV's
/// `cv2.blur(img, (k, k), borderType=cv2.BORDER_REPLICATE)` (k odd).
#[must_use]
pub fn filter(img: &PixelImage, kernel: &Kernel, border: BorderMode) -> PixelImage {
    let scale = Scale::new(1, kernel.divisor()).unwrap_or(Scale::ONE);
    let data: Vec<u8> = filter_sums(img, kernel, border)
        .into_iter()
        .map(|v| scale.to_u8(v))
        .collect();
    PixelImage::new(img.width(), img.height(), img.color(), data).unwrap_or_else(|_| img.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use enc_image::ColorLayout;

    #[test]
    fn mean_3x3_by_hand() {
        // 3x3 image 1..9, replicate border: the centre is the mean 5; the
        // corner (0,0) sees 1 1 2 / 1 1 2 / 4 4 5 = 21 -> 21/9 = 2.33 -> 2.
        let img = PixelImage::new(3, 3, ColorLayout::Luma8, (1..=9).collect()).unwrap();
        let k = Kernel::mean(3).unwrap();
        let sums = filter_sums(&img, &k, BorderMode::Replicate);
        assert_eq!(sums[4], 45);
        assert_eq!(sums[0], 21);
        let out = filter(&img, &k, BorderMode::Replicate);
        assert_eq!(out.get(1, 1, 0), 5);
        assert_eq!(out.get(0, 0, 0), 2);
        // Constant 0 border at the corner: 1+2+4+5 = 12 -> 12/9 -> 1.
        assert_eq!(filter(&img, &k, BorderMode::Constant(0)).get(0, 0, 0), 1);
        // Reflect-101 corner: 5 4 5 / 2 1 2 / 5 4 5 = 33 -> 3.67 -> 4.
        assert_eq!(filter(&img, &k, BorderMode::Reflect101).get(0, 0, 0), 4);
    }
}
