//! `he filter`: what a server does, with the public key only.

use anyhow::{Context, Result, bail};
use clap::ArgMatches;
use enc_image::{EncryptedImage, Limits};
use paillier::PublicKey;

use crate::chain;
use crate::cli::FilterArgs;
use crate::files;
use crate::jobfile::JobFile;
use crate::ui::{Bar, bytes, secs, timed};

/// Job files hold ciphertexts: a 48 MP RGB image at 3072 bits packs into
/// well under 2 GiB.
pub(crate) const MAX_JOB_FILE: u64 = 2 << 30;

/// Runs `he filter`.
pub(crate) fn run(a: FilterArgs, m: &ArgMatches) -> Result<()> {
    let given = chain::from_matches(m)?;
    files::check_free(&a.output, a.force)?;
    let file = JobFile::from_bytes(&files::read_capped(&a.input, MAX_JOB_FILE, "job file")?)
        .with_context(|| a.input.display().to_string())?;
    let recorded = file.chain()?;
    if given.given && given.filters != recorded {
        bail!(
            "{} was encrypted for {:?}, not {:?}; `he decrypt` checks the result against the \
             chain recorded at encryption, so encrypt for the chain you want (he encrypt --filter ...)",
            a.input.display(),
            labels(&recorded),
            labels(&given.filters)
        );
    }
    let pk = PublicKey::from_bytes(&file.public_key).context("the job file's public key")?;
    let enc = EncryptedImage::from_bytes(&file.image, &pk, &Limits::default())
        .context("the job file's encrypted image")?;
    if !enc.meta().history().is_empty() {
        bail!(
            "{} is filtered already ({:?}); decrypt it with `he decrypt`",
            a.input.display(),
            enc.meta().history()
        );
    }
    he_filter::check_chain(enc.meta(), &recorded)?;
    let bar = Bar::new();
    let (out, t) = timed(|| he_filter::apply_chain(&enc, &pk, &recorded, &bar));
    let out = out?.trim_halo();
    let bytes_out = file.with_image(out.to_bytes()).to_bytes()?;
    files::write_atomic(&a.output, &bytes_out, a.force, false)?;
    println!(
        "applied {} to {} ciphertexts in {} with the public key only: {} ciphertexts, {} written to {}",
        labels(&recorded).join(" then "),
        enc.ciphertexts().len(),
        secs(t),
        out.ciphertexts().len(),
        bytes(bytes_out.len()),
        a.output.display()
    );
    Ok(())
}

fn labels(chain: &[he_filter::Filter]) -> Vec<String> {
    chain.iter().map(|f| f.label()).collect()
}
