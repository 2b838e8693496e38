//! `he encrypt`: an image into a job file, for a chain: with the key pair
//! (the fast key-holder encryption), or with a public key only (textbook,
//! or the opt-in short-exponent mode).

use anyhow::{Context, Result};
use clap::ArgMatches;
use enc_image::{EncryptedImage, PublicEncryption};

use crate::chain;
use crate::cli::EncryptArgs;
use crate::files;
use crate::jobfile::JobFile;
use crate::ui::{Bar, Input, bytes, secs, timed};

/// Runs `he encrypt`.
pub(crate) fn run(a: EncryptArgs, m: &ArgMatches) -> Result<()> {
    let spec = chain::from_matches(m)?;
    files::check_free(&a.output, a.force)?;
    let input = Input::load(Some(&a.image), a.image_opts.resize.as_deref())?;
    let img = input.pixels();
    let opts =
        he_filter::encrypt_options(&spec.filters)?.border(super::border(&a.image_opts.border)?);
    let bar = Bar::new();
    let (file, enc, t, mode) = if let Some(key) = &a.key {
        let kp = files::load_keypair(key, a.allow_readable_key)?;
        let (enc, t) = timed(|| {
            kp.private_key().precompute();
            EncryptedImage::encrypt(img, kp.private_key(), &opts, &bar)
        });
        let enc = enc.context("encryption")?;
        let file = JobFile::new(&kp, img, &spec.filters, enc.to_bytes())?;
        (file, enc, t, "key holder")
    } else {
        let path = a.public_key.as_ref().context("--key or --public-key")?;
        let pk = files::load_public_key(path)?;
        let (mode, name) = if a.short_exponent {
            (
                PublicEncryption::ShortExponent,
                "public key, short exponents",
            )
        } else {
            (PublicEncryption::Textbook, "public key, textbook")
        };
        let (enc, t) =
            timed(|| EncryptedImage::encrypt_with_public_key(img, &pk, mode, &opts, &bar));
        let enc = enc.context("encryption")?;
        let file = JobFile::for_public_key(&pk, &spec.filters, enc.to_bytes())?;
        (file, enc, t, name)
    };
    let out = file.to_bytes()?;
    files::write_atomic(&a.output, &out, a.force, false)?;
    let labels: Vec<String> = spec.filters.iter().map(|f| f.label()).collect();
    println!(
        "encrypted {} ({}x{}) for {} in {} ({mode}): {} ciphertexts, {} written to {}",
        input.path.display(),
        img.width(),
        img.height(),
        labels.join(" then "),
        secs(t),
        enc.ciphertexts().len(),
        bytes(out.len()),
        a.output.display()
    );
    Ok(())
}
