//! Work the client does after decryption.

use enc_image::{DecryptedImage, PixelImage};
use rug::Integer;

use crate::error::{Error, Result};

/// The gradient magnitude `sqrt(gx^2 + gy^2)` of two decrypted derivative
/// images (for example Sobel x and Sobel y of the same image), computed
/// exactly from their values and scales, rounded to nearest (ties away from
/// zero) and saturated to `0..=255`. The square root is not linear, so it
/// cannot run under Paillier: the client computes it after decryption.
pub fn gradient_magnitude(gx: &DecryptedImage, gy: &DecryptedImage) -> Result<PixelImage> {
    if (gx.width(), gx.height(), gx.color()) != (gy.width(), gy.height(), gy.color()) {
        return Err(Error::Parameter(format!(
            "gradient magnitude needs two images of one size and layout, got {}x{} {:?} and {}x{} {:?}",
            gx.width(),
            gx.height(),
            gx.color(),
            gy.width(),
            gy.height(),
            gy.color()
        )));
    }
    let (sx, sy) = (gx.scale(), gy.scale());
    let data = gx
        .values()
        .iter()
        .zip(gy.values())
        .map(|(&a, &b)| {
            // x = a nx/dx, y = b ny/dy; 4 (x^2 + y^2) over the common
            // denominator (dx dy)^2, floored, then the integer square root
            // t = floor(2 sqrt(x^2 + y^2)); round(sqrt(.)) = floor((t+1)/2).
            let xa = Integer::from(a) * sx.num() * sy.den();
            let yb = Integer::from(b) * sy.num() * sx.den();
            let den = Integer::from(sx.den()) * sy.den();
            let num4 = (xa.square() + yb.square()) * 4u32;
            let q = num4 / den.square();
            let t = q.sqrt();
            let r: Integer = (t + 1u32) / 2u32;
            r.to_u32().map_or(255, |v| v.min(255) as u8)
        })
        .collect();
    Ok(PixelImage::new(gx.width(), gx.height(), gx.color(), data)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use enc_image::{ColorLayout, Rational};

    fn img(values: Vec<i64>, scale: Rational) -> DecryptedImage {
        DecryptedImage::new(values.len(), 1, ColorLayout::Luma8, values, scale).unwrap()
    }

    #[test]
    fn magnitude_is_exact_and_rounds_half_up() {
        let one = Rational::ONE;
        let m = gradient_magnitude(
            &img(vec![3, -5, 0, 1, 300], one),
            &img(vec![4, 12, 0, 1, 0], one),
        )
        .unwrap();
        // 5, 13, 0, sqrt(2) = 1.41 -> 1, 300 -> 255.
        assert_eq!(m.data(), &[5, 13, 0, 1, 255]);
        // sqrt(2.25) = 1.5 exactly: ties away from zero -> 2.
        let half = Rational::new(1, 2).unwrap();
        let m = gradient_magnitude(&img(vec![3], half), &img(vec![0], half)).unwrap();
        assert_eq!(m.data(), &[2]);
        // Different scales are honoured: x = 6/2 = 3, y = 4.
        let m = gradient_magnitude(&img(vec![6], half), &img(vec![4], one)).unwrap();
        assert_eq!(m.data(), &[5]);
        assert!(gradient_magnitude(&img(vec![1, 2], one), &img(vec![1], one)).is_err());
    }
}
