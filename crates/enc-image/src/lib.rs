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
//! - [`Rational`]: the exact public scale a filter divides by (and the
//!   rational parameters of filters); decryption
//!   rounds once, to nearest with ties away from zero, then saturates.
//! - Tiles ([`TilePlan`]): horizontal bands of rows encrypted one by one
//!   with their neighbour rows as vertical halo
//!   ([`EncryptedImage::encrypt_tile`]), so that a large image never lives
//!   encrypted in memory at once and each band decrypts to exactly its
//!   rows of the whole-image result.
//! - Wire format: the toolkit's framing ([`FORMAT`]) around a header and
//!   fixed-width ciphertexts, loaded with [`Limits`] and checked in full
//!   ([`EncryptedImage::from_bytes`]).

mod border;
mod error;
mod geometry;
mod image;
mod meta;
mod options;
mod output;
mod pixels;
mod progress;
mod public_mode;
mod rational;
mod tiles;
mod wire;

pub use border::BorderMode;
pub use error::{Error, Result};
pub use geometry::{Geometry, MAX_SLOT_BITS, MIN_SLOT_BITS, ciphertext_width};
pub use image::{DecryptedImage, EncryptedImage};
pub use meta::{ImageMeta, Packing, ValuePosition};
pub use options::{EncryptOptions, Layout, bits_for_range};
pub use output::OutputMapping;
pub use pixels::{ColorLayout, PixelImage};
pub use progress::{NoProgress, Phase, Progress};
pub use public_mode::PublicEncryption;
pub use rational::{Rational, gcd};
pub use tiles::{DEFAULT_TILE_BYTES, MIN_TILE_ROWS, TilePlan};
pub use wire::{FORMAT, FORMAT_VERSION, Limits};

// The examples in the crate's README.md (its page on crates.io) run as doc
// tests, so that they stay true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
