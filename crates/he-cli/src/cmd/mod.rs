//! One module per subcommand.

pub(crate) mod blur;
pub(crate) mod decrypt;
pub(crate) mod docs;
pub(crate) mod encrypt;
pub(crate) mod filter;
pub(crate) mod gallery;
pub(crate) mod keygen;
pub(crate) mod loadtest;
pub(crate) mod preview;
pub(crate) mod serve;
pub(crate) mod siege;
pub(crate) mod studio;
pub(crate) mod submit;
pub(crate) mod token;

/// Sets the number of rayon threads for the whole process.
pub(crate) fn set_threads(threads: Option<u16>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(usize::from(n))
            .build_global()?;
    }
    Ok(())
}

/// The border mode named on the command line.
pub(crate) fn border(s: &str) -> anyhow::Result<enc_image::BorderMode> {
    s.parse()
        .map_err(|e: String| anyhow::anyhow!("--border: {e}"))
}

/// Spot-checks a decrypted result against the chain recomputed on the
/// input at one random value of every output ciphertext and `random`
/// random values ([`he_filter::spot_check`]); returns a line saying what
/// it compared. A wrong result is a
/// [`VerificationFailed`](crate::VerificationFailed).
pub(crate) fn spot_check(
    input: &enc_image::PixelImage,
    chain: &[he_filter::Filter],
    border: enc_image::BorderMode,
    meta: &enc_image::ImageMeta,
    result: &enc_image::DecryptedImage,
    random: usize,
) -> anyhow::Result<String> {
    let options = he_filter::SpotCheck::with_random_values(random);
    let (report, t) =
        crate::ui::timed(|| he_filter::spot_check(input, chain, border, meta, result, &options));
    let report = report.map_err(|e| match e {
        he_filter::Error::Verification(m) => {
            anyhow::Error::new(crate::VerificationFailed(format!("spot check: {m}")))
        }
        other => anyhow::Error::new(other).context("spot check"),
    })?;
    Ok(format!(
        "  spot check ({}): {} of {} pixels recomputed ({} ciphertexts sampled, {} random values): all match",
        crate::ui::secs(t),
        report.pixels_evaluated,
        input.width() * input.height(),
        report.ciphertexts_sampled,
        report.random_values
    ))
}
