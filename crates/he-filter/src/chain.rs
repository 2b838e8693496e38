//! Chains of filters: checked in full before any work, then run step by
//! step on the server.
//!
//! # What a chain computes
//!
//! The border is applied once, when the image is encrypted (horizontal
//! padding lives inside the packed plaintexts, and ciphertext slots cannot
//! be moved down). So a chain computes every step on the image extended
//! once by its border mode, as if the whole chain were one filter: for a
//! single filter this is exactly the usual filter (OpenCV's `filter2D` with
//! that border); for a chain it differs from calling the filters one after
//! another, each re-applying the border, only within the chain's total
//! radius of the image's edges. [`reference::apply_chain`](crate::reference::apply_chain)
//! computes the same thing on plain pixels.

use enc_image::{
    BorderMode, EncryptOptions, EncryptedImage, ImageMeta, Layout, MAX_SLOT_BITS, Progress, Scale,
    bits_for_range,
};
use paillier::PublicKey;

use crate::error::{Error, Result};
use crate::eval;
use crate::filter::Filter;

/// The description of the image after the whole chain, checked in full
/// (halo, slot width of every intermediate value, scale, colour layout)
/// without any ciphertext work: what a server checks before accepting a
/// job.
pub fn check_chain(meta: &ImageMeta, chain: &[Filter]) -> Result<ImageMeta> {
    let mut m = meta.clone();
    for f in chain {
        m = eval::plan(&m, &f.step()?, &f.label())?;
    }
    Ok(m)
}

/// Applies a chain of filters, in order, with the public key only. The
/// whole chain is checked first ([`check_chain`]): a chain that would not
/// fit is refused before any work. Each filter's label is appended to the
/// image's history.
pub fn apply_chain(
    img: &EncryptedImage,
    pk: &PublicKey,
    chain: &[Filter],
    progress: &dyn Progress,
) -> Result<EncryptedImage> {
    img.check_key(pk)?;
    check_chain(img.meta(), chain)?;
    let mut cur: Option<EncryptedImage> = None;
    for f in chain {
        let next = eval::run(
            cur.as_ref().unwrap_or(img),
            pk,
            &f.step()?,
            &f.label(),
            progress,
        )?;
        cur = Some(next);
    }
    Ok(cur.unwrap_or_else(|| img.clone()))
}

/// What the client must encrypt with so that the server can run `chain`:
/// a halo of the chain's total radius and slots wide enough for every
/// intermediate value (replicate border; change it with
/// [`EncryptOptions::border`]).
pub fn encrypt_options(chain: &[Filter]) -> Result<EncryptOptions> {
    let (mut lo, mut hi) = (0i64, 255i64);
    let (mut need_lo, mut need_hi) = (lo, hi);
    let mut scale = Scale::ONE;
    let mut halo = 0usize;
    for f in chain {
        let step = f.step()?;
        halo += f.radius()?;
        let r = eval::step_ranges(&step, lo, hi, scale, &f.label())?;
        for (clo, chi, _) in &r.checks {
            // Keep the widest span: a slot must hold hi - lo.
            if i128::from(*chi) - i128::from(*clo) > i128::from(need_hi) - i128::from(need_lo) {
                (need_lo, need_hi) = (*clo, *chi);
            }
        }
        (lo, hi) = r.out;
        scale = r.scale;
    }
    let bits = bits_for_range(need_lo, need_hi);
    if bits > MAX_SLOT_BITS {
        return Err(Error::Parameter(format!(
            "the chain's values span [{need_lo}, {need_hi}], wider than the largest slot ({MAX_SLOT_BITS} bits); \
             use a shorter chain or smaller weights"
        )));
    }
    let halo = u32::try_from(halo)
        .map_err(|_| Error::Parameter("the chain's total radius is too large".into()))?;
    Ok(EncryptOptions {
        layout: Layout::Packed {
            slot_bits: bits,
            halo,
        },
        border: BorderMode::Replicate,
    })
}
