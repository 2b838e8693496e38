//! Linear filters on Paillier-encrypted images, computed with the public
//! key only: the untrusted server's side of the toolkit.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use enc_image::{ColorLayout, EncryptOptions, EncryptedImage, NoProgress, PixelImage};
//! # let kp = paillier::Keypair::generate_insecure_for_tests(512)?;
//! # /*
//! let kp = paillier::Keypair::generate(3072)?;
//! # */
//! let img = PixelImage::new(8, 8, ColorLayout::Luma8, (0..64).map(|v| v * 4).collect())?;
//! // Client: encrypt for kernels up to 3x3.
//! let enc = EncryptedImage::encrypt(&img, kp.private_key(), &EncryptOptions::for_mean(3), &NoProgress)?;
//! // Server: public key only.
//! let blurred = he_filter::mean_filter(&enc, kp.public_key(), 3)?;
//! // Client: decrypt, and compare with the same filter on the plain image.
//! let out = blurred.decrypt(kp.private_key(), &NoProgress)?.to_pixels();
//! let kernel = he_filter::Kernel::mean(3)?;
//! assert_eq!(out, he_filter::reference::filter(&img, &kernel, enc.meta().border()));
//! # Ok(()) }
//! ```
//!
//! Results are exact: a decrypted image equals the plaintext filter
//! ([`reference`](mod@reference)) on every pixel, with the image's border mode, rounded to
//! nearest with ties away from zero and saturated to `0..=255`. The
//! division by the kernel's divisor is carried as the image's public scale.
//!
//! Kernel size is limited by the halo the image was encrypted with, and the
//! range of the results by its slot width: both are checked before any work,
//! with an error that says what to change.
//!
//! # Checking a server's answer
//!
//! The client owns the input, so [`spot_check`] recomputes the chain at one
//! random value of every output ciphertext and a few thousand random
//! values more, from small windows of the input, and compares them with
//! the decrypted result: a substituted, swapped or zeroed ciphertext, or a
//! result that skipped the filter, is caught without filtering the whole
//! image again (the probabilities are in its docs).
//!
//! # Any filter, and chains
//!
//! [`Filter`] names every built-in filter (Gaussian, sharpen, unsharp mask,
//! Laplacian, Sobel, Prewitt, Scharr, emboss, motion blur, separable and
//! custom kernels, invert, brightness, contrast, RGB to grey).
//! [`encrypt_options`] tells the client what a chain needs, and
//! [`apply_chain`] runs it on the server, checked in full first:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use enc_image::{ColorLayout, EncryptedImage, NoProgress, OutputMapping, PixelImage};
//! use he_filter::{Filter, reference};
//! # let kp = paillier::Keypair::generate_insecure_for_tests(768)?;
//! # /*
//! let kp = paillier::Keypair::generate(3072)?;
//! # */
//! let img = PixelImage::new(6, 5, ColorLayout::Rgb8, (0..90).map(|v| (v * 29 % 256) as u8).collect())?;
//! let chain = [Filter::Gaussian { k: 3, sigma: None }, Filter::SobelX];
//! let opts = he_filter::encrypt_options(&chain)?; // halo 2, slots for signed sums
//! let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress)?;
//! let edges = he_filter::apply_chain(&enc, kp.public_key(), &chain, &NoProgress)?;
//! let exact = edges.decrypt(kp.private_key(), &NoProgress)?; // signed values and their scale
//! assert_eq!(exact, reference::apply_chain(&img, &chain, opts.border)?);
//! let picture = exact.to_pixels_with(OutputMapping::Abs); // as cv2.convertScaleAbs
//! # let _ = picture;
//! # Ok(()) }
//! ```

//! # Large images
//!
//! [`tiled`] runs a chain tile by tile (bands of rows with their vertical
//! context), as a pipeline whose memory is bounded by a few tiles whatever
//! the image size; the result is bit for bit the whole-image one.

mod cost;
mod error;
mod eval;
mod filter;
mod kernel;
mod lower;
mod names;
mod plan;
mod post;
pub mod reference;
pub mod tiled;
mod verify;

pub use cost::{Cost, INVERSE_MULS, KEY_EXPONENT, MULS_PER_UNIT, SECONDS_PER_UNIT, estimate_cost};
pub use error::{Error, Mismatch, Result};
pub use eval::apply_chain;
pub use filter::{
    BT601, BUILTINS, Builtin, Filter, GAUSSIAN_FRACTION_BITS, MAX_BRIGHTNESS, MAX_PARAM_TERM,
    MAX_SIGMA, gaussian_size,
};
pub use kernel::{Kernel, MAX_KERNEL_SIZE, MAX_WEIGHT};
pub use names::FilterParams;
pub use plan::{check_chain, encrypt_options};
pub use post::gradient_magnitude;
pub use verify::{DEFAULT_RANDOM_VALUES, SpotCheck, SpotCheckReport, spot_check, spot_check_rows};

use enc_image::{EncryptedImage, NoProgress, Progress};
use paillier::PublicKey;

/// The `k x k` mean filter (k odd, up to `2 * halo + 1`): the sum of the
/// `k^2` neighbours, divided exactly by `k^2` through the public scale.
pub fn mean_filter(img: &EncryptedImage, pk: &PublicKey, k: usize) -> Result<EncryptedImage> {
    apply(img, pk, &Kernel::mean(k)?, &NoProgress)
}

/// Applies any kernel, in parallel (rayon), reporting progress.
pub fn apply(
    img: &EncryptedImage,
    pk: &PublicKey,
    kernel: &Kernel,
    progress: &dyn Progress,
) -> Result<EncryptedImage> {
    eval::apply(img, pk, kernel, progress)
}

// The examples in the crate's README.md (its page on crates.io) run as doc
// tests, so that they stay true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
