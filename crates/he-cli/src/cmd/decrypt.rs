//! `he decrypt`: check, decrypt, write only what passed.

use anyhow::{Context, Result, bail};
use clap::ArgMatches;
use enc_image::{EncryptedImage, Limits};
use he_filter::{Filter, reference};

use crate::chain;

use crate::VerificationFailed;
use crate::cli::DecryptArgs;
use crate::cmd::filter::MAX_JOB_FILE;
use crate::files;
use crate::jobfile::{JobFile, input_tag};
use crate::ui::{Bar, Input, count_value_differences, secs, timed};

/// Runs `he decrypt`.
pub(crate) fn run(a: DecryptArgs, m: &ArgMatches) -> Result<()> {
    let stated = chain::from_matches(m)?;
    let mapping = stated.mapping;
    files::check_free(&a.output, a.force)?;
    let quality = files::jpeg_quality(&a.output, a.quality)?;
    let kp = files::load_keypair(&a.key.key, a.key.allow_readable_key)?;
    let file = JobFile::from_bytes(&files::read_capped(&a.input, MAX_JOB_FILE, "job file")?)
        .with_context(|| a.input.display().to_string())?;
    if file.public_key != kp.public_key().to_bytes() {
        bail!(
            "{} was encrypted under another public key than {}'s",
            a.input.display(),
            a.key.key.display()
        );
    }
    let chain = match file.authentic_chain(&kp)? {
        Some(chain) if stated.given && stated.filters != chain => bail!(
            "{} was encrypted for {:?}, not the {:?} given here",
            a.input.display(),
            labels(&chain),
            labels(&stated.filters)
        ),
        Some(chain) => chain,
        None if !stated.given => bail!(
            "{} was encrypted with the public key only, so its filter chain cannot be \
             authenticated: restate the chain you asked for with --filter ...",
            a.input.display()
        ),
        None if file.chain()? != stated.filters => {
            return Err(VerificationFailed(format!(
                "the file says it was encrypted for {:?}, you asked for {:?}",
                labels(&file.chain()?),
                labels(&stated.filters)
            ))
            .into());
        }
        None => stated.filters,
    };
    let want: Vec<String> = chain.iter().map(|f| f.label()).collect();
    let enc = EncryptedImage::from_bytes(&file.image, kp.public_key(), &Limits::default())
        .context("the encrypted image does not belong to this key, or is damaged")?;
    let history = enc.meta().history();
    if history.is_empty() {
        bail!(
            "{} is not filtered yet (it was encrypted for {}); run `he filter` first",
            a.input.display(),
            want.join(" then ")
        );
    }
    if history != want.as_slice() {
        return Err(VerificationFailed(format!(
            "the file was encrypted for {want:?} but its result says {history:?}"
        ))
        .into());
    }
    let bar = Bar::new();
    let (dec, t) = timed(|| enc.decrypt(kp.private_key(), &bar));
    let dec = dec.map_err(|e| VerificationFailed(format!("decryption: {e}")))?;
    let mut checked = "the chain recorded at encryption";
    if let Some(orig) = &a.original {
        let input = Input::load(Some(orig), None)?;
        let img = input.pixels();
        if file
            .input_tag
            .is_some_and(|tag| input_tag(&kp, img).is_ok_and(|t| t != tag))
        {
            bail!(
                "{} is not the image this file was encrypted from (its tag differs; \
                 was it resized?)",
                orig.display()
            );
        }
        let reference = reference::apply_chain(img, &chain, enc.meta().border())?;
        let differing = count_value_differences(&dec, &reference, mapping);
        if differing != 0 {
            return Err(VerificationFailed(format!(
                "{differing} decrypted values differ from the chain computed in plain on {}",
                orig.display()
            ))
            .into());
        }
        checked = "every value against the chain computed in plain on --input";
    }
    let out = dec.to_pixels_with(mapping).to_dynamic()?;
    files::write_image_with(&a.output, &out, a.force, quality)?;
    println!(
        "decrypted {} ciphertexts in {}, checked {checked}; wrote {}",
        enc.ciphertexts().len(),
        secs(t),
        a.output.display()
    );
    Ok(())
}

fn labels(chain: &[Filter]) -> Vec<String> {
    chain.iter().map(Filter::label).collect()
}
