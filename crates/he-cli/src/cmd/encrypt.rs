//! `he encrypt`: an image into a job file, for a chain.

use anyhow::{Context, Result};
use clap::ArgMatches;
use enc_image::EncryptedImage;

use crate::chain;
use crate::cli::EncryptArgs;
use crate::files;
use crate::jobfile::JobFile;
use crate::ui::{Bar, Input, bytes, secs, timed};

/// Runs `he encrypt`.
pub(crate) fn run(a: EncryptArgs, m: &ArgMatches) -> Result<()> {
    let spec = chain::from_matches(m)?;
    files::check_free(&a.output, a.force)?;
    let kp = files::load_keypair(&a.key.key, a.key.allow_readable_key)?;
    let input = Input::load(Some(&a.image), a.image_opts.resize.as_deref())?;
    let img = input.pixels();
    let opts =
        he_filter::encrypt_options(&spec.filters)?.border(super::border(&a.image_opts.border)?);
    let bar = Bar::new();
    let (enc, t) = timed(|| {
        kp.private_key().precompute();
        EncryptedImage::encrypt(&img, kp.private_key(), &opts, &bar)
    });
    let enc = enc.context("encryption")?;
    let file = JobFile::new(&kp, &img, &spec.filters, enc.to_bytes())?;
    let out = file.to_bytes()?;
    files::write_atomic(&a.output, &out, a.force, false)?;
    let labels: Vec<String> = spec.filters.iter().map(|f| f.label()).collect();
    println!(
        "encrypted {} ({}x{}) for {} in {}: {} ciphertexts, {} written to {}",
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
