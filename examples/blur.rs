//! Blur a photo under encryption, in one process, with the library alone.
//!
//! ```text
//! cargo run --release --example blur -- [INPUT] [OUTPUT] [KEY_BITS]
//! ```
//!
//! The client's side generates a key and encrypts; the server's side sees
//! only the public key and the ciphertexts and computes a 3x3 mean; the
//! client decrypts and checks every value against the same filter computed
//! in plain. The result is written only if they all match. The `he blur`
//! command does the same with every option (`he blur --help`).

use std::error::Error;

use enc_image::{EncryptedImage, Limits, NoProgress, PixelImage};
use he_filter::{Filter, reference};
use paillier::{Keypair, PublicKey};

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

    // The client: a key pair, and the image encrypted with the halo and
    // slot width the chain needs.
    let t = std::time::Instant::now();
    let kp = Keypair::generate(bits)?;
    let opts = he_filter::encrypt_options(&chain)?;
    let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress)?;
    let (key_bytes, upload) = (kp.public_key().to_bytes(), enc.to_bytes());
    println!(
        "encrypted {} ciphertexts in {:.2?}",
        enc.ciphertexts().len(),
        t.elapsed()
    );

    // The server: bytes in, bytes out, public key only.
    let t = std::time::Instant::now();
    let pk = PublicKey::from_bytes(&key_bytes)?;
    let received = EncryptedImage::from_bytes(&upload, &pk, &Limits::default())?;
    let filtered = he_filter::apply_chain(&received, &pk, &chain, &NoProgress)?.trim_halo();
    let download = filtered.to_bytes();
    println!("filtered on ciphertexts in {:.2?}", t.elapsed());

    // The client again: load with checks, decrypt, compare, write.
    let t = std::time::Instant::now();
    let result = EncryptedImage::from_bytes(&download, kp.public_key(), &Limits::default())?;
    let labels: Vec<String> = chain.iter().map(Filter::label).collect();
    if result.meta().history() != labels {
        return Err("the server applied another filter".into());
    }
    let exact = result.decrypt(kp.private_key(), &NoProgress)?;
    println!("decrypted in {:.2?}", t.elapsed());
    let want = reference::apply_chain(&img, &chain, opts.border)?;
    if exact != want {
        return Err(
            "the decrypted image differs from the plaintext filter; nothing written".into(),
        );
    }
    exact.to_pixels().to_dynamic()?.save(&output)?;
    println!("every value equals the plaintext 3x3 mean; wrote {output}");
    Ok(())
}
