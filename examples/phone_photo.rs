//! A stand-in for a phone photo of any size, for measurements: the bundled
//! photo resized (Lanczos3) to `WxH` and written as PNG or JPEG (by the
//! extension). `scripts/phone-targets.sh` uses it.
//!
//! ```text
//! cargo run --release --example phone_photo -- 4000x3000 photo.png
//! ```

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (size, output) = match (args.next(), args.next()) {
        (Some(s), Some(o)) => (s, o),
        _ => return Err("usage: phone_photo WxH OUTPUT.png|OUTPUT.jpg".into()),
    };
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|&(w, h)| (1..=16_384).contains(&w) && (1..=16_384).contains(&h))
        .ok_or("the size is WxH, each side 1 to 16384")?;
    let photo = image::load_from_memory(he_toolkit::BUNDLED_PHOTO)?;
    let big = photo.resize_exact(w, h, image::imageops::FilterType::Lanczos3);
    image::DynamicImage::ImageRgb8(big.to_rgb8()).save(&output)?;
    println!("wrote {output}: {w}x{h} RGB");
    Ok(())
}
