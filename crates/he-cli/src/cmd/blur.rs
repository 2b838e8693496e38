//! `he blur`: both sides in one process, exactly as the network would see
//! them: the client encrypts; the "server" gets only the bytes of the
//! public key, the chain and the ciphertexts, filters and returns bytes; the
//! client decrypts, spot-checks the result (as `he submit` does), then
//! compares every value with the chain computed in plain. The result is
//! written only if all of them match.

use anyhow::{Context, Result};
use clap::ArgMatches;
use enc_image::{EncryptOptions, EncryptedImage, Limits};
use he_filter::{Filter, reference};
use paillier::{Keypair, PublicKey};

use crate::VerificationFailed;
use crate::chain;
use crate::cli::BlurArgs;
use crate::files;
use crate::ui::{
    Bar, Input, bytes, count_value_differences, noise_picture, output_paths, secs, timed,
};

/// The server's side: bytes in, bytes out, no secret.
fn serve(public_key: &[u8], chain_json: &[u8], image: &[u8]) -> Result<(Vec<u8>, usize)> {
    let pk = PublicKey::from_bytes(public_key).context("server")?;
    let enc = EncryptedImage::from_bytes(image, &pk, &Limits::default()).context("server")?;
    let chain: Vec<Filter> =
        serde_json::from_slice(chain_json).context("server: filter request")?;
    he_filter::check_chain(enc.meta(), &chain).context("server")?;
    let out = he_filter::apply_chain(&enc, &pk, &chain, &Bar::new())?.trim_halo();
    Ok((out.to_bytes(), out.ciphertexts().len()))
}

/// Runs `he blur`.
pub(crate) fn run(a: BlurArgs, m: &ArgMatches) -> Result<()> {
    let spec = chain::from_matches(m)?;
    super::set_threads(a.threads)?;
    let border = super::border(&a.image_opts.border)?;
    let input = Input::load(a.image.as_deref(), a.image_opts.resize.as_deref())?;
    let (out_path, view_path) = output_paths(a.output.as_deref(), &input, &spec.filters, a.force)?;
    let img = input.pixels();
    let labels: Vec<String> = spec.filters.iter().map(Filter::label).collect();
    println!(
        "{}: {}x{} {:?}, {}, {}-bit key, border {}, {}",
        input.path.display(),
        img.width(),
        img.height(),
        img.color(),
        labels.join(" then "),
        a.key_bits,
        border.name(),
        if a.unpacked {
            "one value per ciphertext"
        } else {
            "packed"
        }
    );

    let spin = Bar::spinner(&format!("generating a {}-bit key", a.key_bits));
    let (kp, t_keygen) = timed(|| Keypair::generate(a.key_bits));
    drop(spin);
    let kp = kp?;
    let opts = if a.unpacked {
        EncryptOptions::unpacked()
    } else {
        he_filter::encrypt_options(&spec.filters)?
    }
    .border(border);
    let bar = Bar::new();
    let (enc, t_encrypt) = timed(|| {
        kp.private_key().precompute();
        EncryptedImage::encrypt(&img, kp.private_key(), &opts, &bar)
    });
    let enc = enc?;
    let ciphertexts_in = enc.ciphertexts().len();
    let (key_bytes, upload) = (kp.public_key().to_bytes(), enc.to_bytes());
    drop(enc);
    let chain_json = serde_json::to_vec(&spec.filters)?;

    let (served, t_filter) = timed(|| serve(&key_bytes, &chain_json, &upload));
    let (download, ciphertexts_out) = served?;

    let bar = Bar::new();
    let (exact, t_decrypt) = timed(|| -> Result<_> {
        let enc = EncryptedImage::from_bytes(&download, kp.public_key(), &Limits::default())
            .context("the result")?;
        if enc.meta().history() != labels {
            return Err(VerificationFailed(format!(
                "the server applied {:?}, not {labels:?}",
                enc.meta().history()
            ))
            .into());
        }
        let exact = enc
            .decrypt(kp.private_key(), &bar)
            .map_err(|e| VerificationFailed(format!("decryption: {e}")))?;
        Ok((enc.meta().clone(), exact))
    });
    let (meta, exact) = exact?;
    drop(bar);
    let spot = super::spot_check(
        &img,
        &spec.filters,
        border,
        &meta,
        &exact,
        he_filter::DEFAULT_RANDOM_VALUES,
    )?;
    let (want, t_reference) = timed(|| reference::apply_chain(&img, &spec.filters, border));
    let want = want?;
    let differing = count_value_differences(&exact, &want, spec.mapping);
    println!(
        "  key generation      {:>10}   (reported apart)",
        secs(t_keygen)
    );
    println!(
        "  encrypt (client)    {:>10}   {ciphertexts_in} ciphertexts",
        secs(t_encrypt)
    );
    println!(
        "  filter (server)     {:>10}   {} ciphertexts out (includes loading and checking)",
        secs(t_filter),
        ciphertexts_out
    );
    println!(
        "  decrypt (client)    {:>10}   (includes loading and checking the result)",
        secs(t_decrypt)
    );
    println!(
        "  encrypt+filter+decrypt {:>7}",
        secs(t_encrypt + t_filter + t_decrypt)
    );
    let values = img.len();
    println!(
        "  uploaded {} ({:.2} bytes per pixel value), downloaded {} ({:.2} bytes per pixel value)",
        bytes(key_bytes.len() + upload.len()),
        (key_bytes.len() + upload.len()) as f64 / values as f64,
        bytes(download.len()),
        download.len() as f64 / values as f64
    );
    println!("{spot}");
    println!(
        "  plaintext reference ({}): {differing} of {} values differ (exact values and pixels)",
        secs(t_reference),
        want.values().len()
    );
    if differing != 0 {
        return Err(VerificationFailed(format!(
            "the decrypted image differs from the plaintext filter in {differing} values"
        ))
        .into());
    }
    let result = exact.to_pixels_with(spec.mapping).to_dynamic()?;
    files::write_image(&out_path, &result, a.force)?;
    let view = noise_picture(
        EncryptedImage::payload_of(&upload).unwrap_or(&upload),
        img.width() as u32,
    );
    files::write_image(&view_path, &image::DynamicImage::ImageRgb8(view), false)?;
    println!(
        "wrote {} and {} (what the server saw)",
        out_path.display(),
        view_path.display()
    );
    Ok(())
}
