//! Encrypted images: how pixels become Paillier plaintexts, the container
//! that carries them to an untrusted server, and its checked wire format.
//!
//! - [`PixelImage`]: the plain 8-bit image on the client.
//! - [`EncryptedImage`]: the public description ([`ImageMeta`]) and the
//!   ciphertexts; [`EncryptedImage::encrypt`] and
//!   [`EncryptedImage::decrypt`] run in parallel with a [`Progress`] callback;
//!   [`EncryptedImage::encrypt_with_public_key`] names the [`PublicEncryption`]
//!   mode of a holder of the public key only.
//! - Packing ([`Geometry`]): many pixel values per plaintext, with a halo
//!   of neighbours and the [`BorderMode`] applied at encryption.
//! - [`Scale`]: the exact public rational a filter divides by; decryption
//!   rounds once, to nearest with ties away from zero, then saturates.
//! - Wire format: magic, version, header, fixed-width ciphertexts, loaded
//!   with [`Limits`] and checked in full ([`EncryptedImage::from_bytes`]).

mod border;
mod error;
mod geometry;
mod image;
mod meta;
mod options;
mod pixels;
mod progress;
mod public_mode;
mod scale;
mod wire;

pub use border::BorderMode;
pub use error::{Error, Result};
pub use geometry::{Geometry, MAX_SLOT_BITS, MIN_SLOT_BITS};
pub use image::{DecryptedImage, EncryptedImage};
pub use meta::{ImageMeta, Packing};
pub use options::{EncryptOptions, Layout, bits_for_range};
pub use pixels::{ColorLayout, PixelImage};
pub use progress::{NoProgress, Progress};
pub use public_mode::PublicEncryption;
pub use scale::{OutputMapping, Scale};
pub use wire::{FORMAT_VERSION, Limits, ciphertext_width};
