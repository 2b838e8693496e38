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

/// The longest a job's exchange with the server may take when nobody
/// says otherwise: an hour per started 12 megapixels of the photo (a 48 MP
/// photo takes more than an hour on two cores; a deadline of one hour
/// would stop it). `he submit` (without `--timeout`) and the studio use it.
pub(crate) fn job_deadline(width: usize, height: usize) -> std::time::Duration {
    const PIXELS_PER_HOUR: usize = 12_000_000;
    let hours = width
        .saturating_mul(height)
        .div_ceil(PIXELS_PER_HOUR)
        .max(1);
    std::time::Duration::from_secs(3600 * hours as u64)
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

/// Where a filtering command's key pair comes from (`--key`, `--new-key`,
/// `--key-bits`, `--allow-readable-key`, `--force`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySource<'a> {
    /// `--key FILE`: loaded if it exists, else generated and written there.
    pub(crate) path: Option<&'a std::path::Path>,
    /// Generate a new key into `path` even if one is there (with `force`).
    pub(crate) new_key: bool,
    /// Size of a generated key.
    pub(crate) bits: u32,
    /// Load a key file that others can read.
    pub(crate) allow_readable: bool,
    /// Replace an existing key file (with `new_key`).
    pub(crate) force: bool,
}

/// A key pair and how it was had.
#[derive(Debug)]
pub(crate) struct KeyUsed {
    /// The key pair.
    pub(crate) keypair: paillier::Keypair,
    /// Whether it is in a file (loaded or written), so that a later run can
    /// use it again: what resuming needs.
    pub(crate) kept: bool,
    /// What was done, for the summary.
    pub(crate) what: String,
    /// How long it took.
    pub(crate) took: std::time::Duration,
}

/// The key pair: loaded from `--key` if it exists, else generated (and
/// written to `--key` if given, owner-only).
pub(crate) fn keypair(src: &KeySource<'_>) -> anyhow::Result<KeyUsed> {
    use crate::files;
    use crate::ui::{Bar, timed};
    if let Some(path) = src.path.filter(|p| p.exists() && !src.new_key) {
        let (kp, took) = timed(|| files::load_keypair(path, src.allow_readable));
        let keypair = kp?;
        let what = format!(
            "{}-bit key from {}",
            keypair.public_key().bits(),
            path.display()
        );
        return Ok(KeyUsed {
            keypair,
            kept: true,
            what,
            took,
        });
    }
    if let Some(path) = src.path {
        files::check_free(path, src.force)?;
    }
    let spin = Bar::spinner(&format!("generating a {}-bit key", src.bits));
    let (kp, took) = timed(|| paillier::Keypair::generate(src.bits));
    drop(spin);
    let keypair = kp?;
    let what = match src.path {
        Some(path) => {
            files::save_keypair(path, &keypair, src.force)?;
            format!(
                "new {}-bit key, written to {} (owner-only)",
                src.bits,
                path.display()
            )
        }
        None => format!("new {}-bit key, not kept (use --key FILE)", src.bits),
    };
    Ok(KeyUsed {
        keypair,
        kept: src.path.is_some(),
        what,
        took,
    })
}

#[cfg(test)]
mod tests {
    use super::job_deadline;

    #[test]
    fn the_job_deadline_is_an_hour_per_started_12_megapixels() {
        let hours = |w, h| job_deadline(w, h).as_secs() / 3600;
        assert_eq!(hours(1, 1), 1);
        assert_eq!(hours(0, 0), 1);
        assert_eq!(hours(4000, 3000), 1);
        assert_eq!(hours(4000, 3001), 2);
        assert_eq!(hours(8000, 6000), 4);
    }
}
