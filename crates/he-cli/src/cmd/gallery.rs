//! `he gallery`: every built-in filter under encryption, on one contact
//! sheet. The client encrypts the photo once, with a halo and slot width
//! that every built-in filter fits in; the server's side (public key only)
//! runs each filter on those ciphertexts; the client decrypts each result,
//! checks it against the plaintext reference value for value, and writes
//! `DIR/NN-NAME.png` for each filter plus `DIR/contact-sheet.png`: the
//! original, every filter, and the gradient magnitude of Sobel x and y
//! (computed by the client after decryption), each labelled.

use std::path::Path;

use anyhow::{Result, anyhow};
use enc_image::{EncryptOptions, EncryptedImage, Layout, OutputMapping, PixelImage};
use font8x8::UnicodeFonts;
use he_filter::{Filter, reference};
use image::{Rgb, RgbImage};
use paillier::Keypair;

use crate::cli::GalleryArgs;
use crate::ui::{Bar, Input, count_differences, secs, timed};

/// Runs `he gallery`; fails if any decrypted value differs from the reference.
pub(crate) fn run(a: GalleryArgs) -> Result<()> {
    match run_checked(&a).map_err(|e| anyhow!(e))? {
        0 => Ok(()),
        n => Err(crate::VerificationFailed(format!(
            "{n} decrypted values differ from the plaintext reference"
        ))
        .into()),
    }
}

/// How a filter's result is best shown: derivatives by their magnitude.
fn mapping(f: &Filter) -> OutputMapping {
    match f {
        Filter::Laplacian
        | Filter::SobelX
        | Filter::SobelY
        | Filter::PrewittX
        | Filter::PrewittY
        | Filter::ScharrX
        | Filter::ScharrY => OutputMapping::Abs,
        _ => OutputMapping::Saturate,
    }
}

/// Encryption options that every filter of `filters` fits in.
fn common_options(filters: &[Filter]) -> Result<EncryptOptions, String> {
    let (mut bits, mut halo) = (0, 0);
    for f in filters {
        let o = he_filter::encrypt_options(std::slice::from_ref(f)).map_err(|e| e.to_string())?;
        if let Layout::Packed { slot_bits, halo: h } = o.layout {
            bits = bits.max(slot_bits);
            halo = halo.max(h);
        }
    }
    Ok(EncryptOptions {
        layout: Layout::Packed {
            slot_bits: bits,
            halo,
        },
        border: enc_image::BorderMode::Replicate,
    })
}

const LABEL_H: u32 = 14;

/// `text` in white 8x8 glyphs on the label band below a tile.
fn draw_label(sheet: &mut RgbImage, x0: u32, y0: u32, max_w: u32, text: &str) {
    let mut x = x0 + 2;
    for ch in text.chars() {
        if x + 8 > x0 + max_w {
            break;
        }
        if let Some(glyph) = font8x8::BASIC_FONTS.get(ch) {
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        sheet.put_pixel(x + col, y0 + 3 + row as u32, Rgb([255, 255, 255]));
                    }
                }
            }
        }
        x += 7;
    }
}

/// Tiles in a grid, each with its label underneath.
fn contact_sheet(tiles: &[(String, PixelImage)]) -> Result<RgbImage, String> {
    let (tw, th) = tiles
        .first()
        .map(|(_, t)| (t.width() as u32, t.height() as u32))
        .ok_or("no tiles")?;
    let cols = 6u32.min(tiles.len() as u32);
    let rows = (tiles.len() as u32).div_ceil(cols);
    let gap = 4;
    let (cw, ch) = (tw.max(120) + gap, th + LABEL_H + gap);
    let mut sheet = RgbImage::from_pixel(cols * cw + gap, rows * ch + gap, Rgb([24, 24, 28]));
    for (i, (label, tile)) in tiles.iter().enumerate() {
        let (cx, cy) = (gap + (i as u32 % cols) * cw, gap + (i as u32 / cols) * ch);
        let rgb = tile.to_dynamic().map_err(|e| e.to_string())?.to_rgb8();
        image::imageops::overlay(&mut sheet, &rgb, i64::from(cx), i64::from(cy));
        draw_label(&mut sheet, cx, cy + th, cw - gap, label);
    }
    Ok(sheet)
}

fn run_checked(args: &GalleryArgs) -> Result<usize, String> {
    let loaded =
        Input::load(args.image.as_deref(), args.resize.as_deref()).map_err(|e| format!("{e:#}"))?;
    let input = loaded.path.clone();
    let img = loaded.pixels();
    let filters = Filter::every_builtin();
    let names: Vec<String> = filters
        .iter()
        .enumerate()
        .map(|(i, f)| format!("{i:02}-{}.png", f.label().replace([' ', '=', '/'], "_")))
        .chain(["contact-sheet.png".to_string()])
        .collect();
    std::fs::create_dir_all(&args.output)
        .map_err(|e| format!("cannot create {}: {e}", args.output.display()))?;
    if !args.force
        && let Some(n) = names.iter().find(|n| args.output.join(n).exists())
    {
        return Err(format!(
            "{} exists; choose another -o DIR or pass --force to overwrite",
            args.output.join(n).display()
        ));
    }

    let spin = Bar::spinner(&format!("generating a {}-bit key", args.key_bits));
    let kp = Keypair::generate(args.key_bits).map_err(|e| e.to_string())?;
    drop(spin);
    let (sk, pk) = (kp.private_key(), kp.public_key());
    let opts = common_options(&filters)?;
    let bar = Bar::new();
    let (enc, t) = timed(|| EncryptedImage::encrypt(img, sk, &opts, &bar));
    let enc = enc.map_err(|e| e.to_string())?;
    println!(
        "{}: {}x{} {:?}, {}-bit key, encrypted once ({} ciphertexts, {:?}) in {}",
        input.display(),
        img.width(),
        img.height(),
        img.color(),
        args.key_bits,
        enc.ciphertexts().len(),
        opts.layout,
        secs(t)
    );

    let mut tiles = vec![("original".to_string(), img.clone())];
    let mut differing = 0;
    let mut sobel = (None, None);
    for (f, name) in filters.iter().zip(&names) {
        let bar = Bar::new();
        let (res, t) = timed(|| -> Result<_, String> {
            let out = he_filter::apply_chain(&enc, pk, std::slice::from_ref(f), &bar)
                .map_err(|e| format!("{f}: {e}"))?
                .trim_halo();
            let dec = out.decrypt(sk, &bar).map_err(|e| format!("{f}: {e}"))?;
            Ok((out, dec))
        });
        let (out, dec) = res?;
        let want = reference::apply_chain(img, std::slice::from_ref(f), opts.border)
            .map_err(|e| e.to_string())?;
        let pixels = dec.to_pixels_with(mapping(f));
        let diff = count_differences(&pixels, &want.to_pixels_with(mapping(f)))
            + dec
                .values()
                .iter()
                .zip(want.values())
                .filter(|(a, b)| a != b)
                .count();
        differing += diff;
        println!(
            "  {:<28} {:>9}  {:>5} ciphertexts back, {diff} values differ from the reference",
            f.label(),
            secs(t),
            out.ciphertexts().len()
        );
        if diff != 0 {
            // A result that failed its check is never written.
            continue;
        }
        let path = args.output.join(name);
        let d = pixels.to_dynamic().map_err(|e| e.to_string())?;
        crate::files::write_image(&path, &d, args.force).map_err(|e| format!("{e:#}"))?;
        match f {
            Filter::SobelX => sobel.0 = Some(dec),
            Filter::SobelY => sobel.1 = Some(dec),
            _ => {}
        }
        tiles.push((f.label().to_lowercase(), pixels));
    }
    if let (Some(gx), Some(gy)) = (&sobel.0, &sobel.1) {
        let mag = he_filter::gradient_magnitude(gx, gy).map_err(|e| e.to_string())?;
        tiles.push(("sobel magnitude (client)".to_string(), mag));
    }
    if differing != 0 {
        return Ok(differing);
    }
    let sheet = contact_sheet(&tiles)?;
    let path = args.output.join("contact-sheet.png");
    crate::files::write_image(&path, &image::DynamicImage::ImageRgb8(sheet), args.force)
        .map_err(|e| format!("{e:#}"))?;
    println!(
        "wrote {} images and {}",
        filters.len(),
        Path::new(&path).display()
    );
    Ok(differing)
}
