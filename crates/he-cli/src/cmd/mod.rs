//! One module per subcommand.

pub(crate) mod blur;
pub(crate) mod decrypt;
pub(crate) mod docs;
pub(crate) mod encrypt;
pub(crate) mod filter;
pub(crate) mod gallery;
pub(crate) mod keygen;
pub(crate) mod loadtest;
pub(crate) mod serve;
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
