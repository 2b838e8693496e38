//! The online service and its client, in one process on loopback.
//!
//! ```text
//! cargo run --release --example service
//! ```
//!
//! Starts the HTTP service on a free loopback port, then, as a client,
//! encrypts the bundled photo, submits a Sobel-x job, waits for it,
//! downloads the encrypted result, checks its history, decrypts it and
//! compares it with the plaintext filter. `he serve` and `he submit` are
//! the same two sides as commands.

use std::error::Error;
use std::time::Duration;

use enc_image::{EncryptedImage, Limits, NoProgress, PixelImage};
use he_filter::{Filter, reference};
use he_service::client::{Client, check_history};
use he_service::server::{Config, ServerHandle};
use he_service::wire::{Envelope, JobSpec};
use paillier::Keypair;

fn main() -> Result<(), Box<dyn Error>> {
    let server = ServerHandle::start(Config {
        listen: "127.0.0.1:0".parse()?,
        ..Config::default()
    })?;
    println!("service on {}", server.url());

    let photo = image::load_from_memory(he_toolkit::BUNDLED_PHOTO)?.resize_exact(
        64,
        64,
        image::imageops::FilterType::Triangle,
    );
    let img = PixelImage::from_dynamic(&photo);
    let chain = vec![Filter::SobelX];
    let kp = Keypair::generate(2048)?;
    let enc = EncryptedImage::encrypt(
        &img,
        kp.private_key(),
        &he_filter::encrypt_options(&chain)?,
        &NoProgress,
    )?;
    let spec = JobSpec { filters: chain };
    let envelope = Envelope::encode(&spec, &kp.public_key().to_bytes(), &enc.to_bytes());

    let client = Client::new(&server.url())?;
    let run = client.run_job(&envelope, &NoProgress, Duration::from_secs(300))?;
    println!(
        "job {} done in {:.2?} on the server",
        run.status.id, run.wait
    );

    let result = EncryptedImage::from_bytes(&run.result, kp.public_key(), &Limits::default())?;
    check_history(&enc, &result, &spec)?;
    let exact = result.decrypt(kp.private_key(), &NoProgress)?;
    let want = reference::apply_chain(&img, &spec.filters, enc.meta().border())?;
    server.stop()?;
    if exact != want {
        return Err("the result differs from the plaintext filter".into());
    }
    println!(
        "every value equals the plaintext Sobel x ({} values)",
        want.values().len()
    );
    Ok(())
}
