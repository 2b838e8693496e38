//! Every built-in filter of the toolkit, computed under encryption, on one
//! contact sheet.
//!
//! ```text
//! cargo run --release --example gallery -- [INPUT] [-o DIR] [--key-bits 2048]
//!     [--resize WxH] [--force]
//! ```
//!
//! The client encrypts the photo once, with a halo and slot width that
//! every built-in filter fits in; the server (public key only) runs each
//! filter on those ciphertexts; the client decrypts each result, checks it
//! against the plaintext reference value for value, and writes
//! `DIR/NN-NAME.png` for each filter plus `DIR/contact-sheet.png`: the
//! original, every filter, and the gradient magnitude of Sobel x and y
//! (computed by the client after decryption), each labelled.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use enc_image::{EncryptOptions, EncryptedImage, Layout, OutputMapping, PixelImage};
use font8x8::UnicodeFonts;
use he_filter::{Filter, reference};
use he_toolkit::cli::{flag_value, number, size};
use he_toolkit::{Bar, count_differences, secs, timed};
use image::{Rgb, RgbImage};
use paillier::Keypair;

const USAGE: &str = "usage: gallery [INPUT] [-o DIR] [--key-bits BITS] [--resize WxH] [--force]

  INPUT          PNG or JPEG (default: the bundled astronaut photo)
  -o DIR         output directory (default: gallery); created if missing
  --key-bits B   Paillier key size, 2048 or more (default 2048: 21 filters
                 are decrypted, and the gallery is a demonstration)
  --resize WxH   resize the input first
  --force        overwrite files already in DIR";

struct Args {
    input: Option<PathBuf>,
    dir: PathBuf,
    key_bits: u32,
    resize: Option<(u32, u32)>,
    force: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        input: None,
        dir: PathBuf::from("gallery"),
        key_bits: 2048,
        resize: None,
        force: false,
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "-o" | "--output" => a.dir = flag_value(&mut it, &arg)?.into(),
            "--key-bits" => a.key_bits = number(&flag_value(&mut it, &arg)?, "--key-bits")?,
            "--resize" => a.resize = Some(size(&flag_value(&mut it, &arg)?, "--resize", 4096)?),
            "--force" => a.force = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ if a.input.is_none() => a.input = Some(arg.into()),
            _ => return Err(format!("unexpected argument {arg:?} (only one INPUT)")),
        }
    }
    Ok(a)
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

fn run(args: Args) -> Result<usize, String> {
    let input = args
        .input
        .clone()
        .unwrap_or_else(|| PathBuf::from(he_toolkit::DEFAULT_IMAGE));
    let mut photo =
        image::open(&input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    if let Some((w, h)) = args.resize {
        photo = photo.resize_exact(w, h, image::imageops::FilterType::Lanczos3);
    }
    let img = PixelImage::from_dynamic(&photo);
    let filters = Filter::every_builtin();
    let names: Vec<String> = filters
        .iter()
        .enumerate()
        .map(|(i, f)| format!("{i:02}-{}.png", f.label().replace([' ', '=', '/'], "_")))
        .chain(["contact-sheet.png".to_string()])
        .collect();
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    if !args.force
        && let Some(n) = names.iter().find(|n| args.dir.join(n).exists())
    {
        return Err(format!(
            "{} exists; choose another -o DIR or pass --force to overwrite",
            args.dir.join(n).display()
        ));
    }

    let spin = Bar::spinner(&format!("generating a {}-bit key", args.key_bits));
    let kp = Keypair::generate(args.key_bits).map_err(|e| e.to_string())?;
    drop(spin);
    let (sk, pk) = (kp.private_key(), kp.public_key());
    let opts = common_options(&filters)?;
    let bar = Bar::new();
    let (enc, t) = timed(|| EncryptedImage::encrypt(&img, sk, &opts, &bar));
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
        let want = reference::apply_chain(&img, std::slice::from_ref(f), opts.border)
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
        let path = args.dir.join(name);
        pixels
            .to_dynamic()
            .and_then(|d| Ok(d.save(&path)?))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
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
    let sheet = contact_sheet(&tiles)?;
    let path = args.dir.join("contact-sheet.png");
    sheet
        .save(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!(
        "wrote {} images and {}",
        filters.len(),
        Path::new(&path).display()
    );
    Ok(differing)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(n) => {
            eprintln!("error: {n} decrypted values differ from the plaintext reference");
            ExitCode::FAILURE
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
