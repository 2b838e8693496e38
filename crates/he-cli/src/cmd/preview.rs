//! `he preview`: the filter chain on a plain image, no key and no
//! encryption. It is the exact result a private job (`he blur`,
//! `he submit`, the studio) must give, pixel for pixel, so it doubles as
//! the reference the studio's browser tests compare with.

use anyhow::Result;
use clap::ArgMatches;
use he_filter::reference;

use crate::chain;
use crate::cli::PreviewArgs;
use crate::files;
use crate::ui::Input;

/// Runs `he preview`.
pub(crate) fn run(a: PreviewArgs, m: &ArgMatches) -> Result<()> {
    let spec = chain::from_matches(m)?;
    let border = super::border(&a.image_opts.border)?;
    files::check_free(&a.output, a.force)?;
    let input = Input::load(Some(&a.image), a.image_opts.resize.as_deref())?;
    let img = input.pixels();
    let exact = reference::apply_chain(img, &spec.filters, border)?;
    files::write_image(
        &a.output,
        &exact.to_pixels_with(spec.mapping).to_dynamic()?,
        a.force,
    )?;
    println!(
        "wrote {} (plaintext filter, no encryption)",
        a.output.display()
    );
    Ok(())
}
