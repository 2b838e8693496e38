//! Blur a photo under encryption, in one process, with the library alone.
//!
//! ```text
//! cargo run --release --example blur -- [INPUT] [OUTPUT] [KEY_BITS]
//! ```
//!
//! The client's side generates a key and encrypts, tile by tile; the
//! server's side sees only the public key and the ciphertexts and computes
//! a 3x3 mean; the client decrypts and checks every value against the same
//! filter computed in plain. The result is written only if they all match. The `he blur`
//! command does the same with every option (`he blur --help`).

use std::error::Error;

use enc_image::{Limits, NoProgress, PixelImage};
use he_filter::tiled::{LocalServer, TileOptions, TiledJob};
use he_filter::{Filter, reference};
use paillier::Keypair;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let input = args.next();
    let output = args.next().unwrap_or_else(|| "blurred.png".into());
    let bits: u32 = match args.next() {
        Some(b) => b.parse()?,
        None => Keypair::default_bits(),
    };
    let photo = match &input {
        Some(path) => image::open(path)?,
        None => image::load_from_memory(he_toolkit::BUNDLED_PHOTO)?,
    };
    if std::path::Path::new(&output).exists() {
        return Err(format!("{output} exists; choose another name").into());
    }
    let img = PixelImage::from_dynamic(&photo);
    let chain = [Filter::Mean { k: 3 }];

    // The client: a key pair, and the encryption the chain needs (halo,
    // slot width). The image goes through as a pipeline of tiles (bands
    // of rows): while one is decrypted the next is encrypted, and only a
    // few exist at once, whatever the image's size.
    let t = std::time::Instant::now();
    let kp = Keypair::generate(bits)?;
    let opts = he_filter::encrypt_options(&chain)?;
    let job = TiledJob::new(
        &img,
        &chain,
        &opts,
        kp.public_key(),
        &TileOptions::default(),
    )?;

    // The server: it gets the public key's bytes and each tile's bytes,
    // and returns bytes; it never holds the private key.
    let server = LocalServer::from_bytes(&kp.public_key().to_bytes(), &chain, Limits::default())?;

    // Each decrypted tile (its rows, checked against the server's history
    // and dimensions) is compared with the same rows of the plaintext
    // filter as it arrives.
    let (mut pixels, mut differing) = (Vec::with_capacity(img.len()), Vec::new());
    job.run(kp.private_key(), &server, &NoProgress, |tile| {
        let want = reference::apply_chain_rows(&img, &chain, opts.border, tile.rows.clone())?;
        if tile.image != want {
            differing.push(tile.index);
        }
        pixels.extend_from_slice(tile.image.to_pixels().data());
        Ok(())
    })?;
    if !differing.is_empty() {
        return Err(format!(
            "tiles {differing:?} differ from the plaintext filter; nothing written"
        )
        .into());
    }
    println!(
        "encrypted, filtered and decrypted {} tiles of {} rows in {:.2?}",
        job.plan().count(),
        job.plan().tile_rows(),
        t.elapsed()
    );
    let out = PixelImage::new(img.width(), img.height(), img.color(), pixels)?;
    out.to_dynamic()?.save(&output)?;
    println!("every value equals the plaintext 3x3 mean; wrote {output}");
    Ok(())
}
