//! The he-toolkit workspace's umbrella crate: it owns the examples and the
//! criterion benches, and re-exports the library crates under one roof.
//!
//! - [`paillier`]: keys, encryption, decryption and the homomorphic
//!   operations (GMP through `rug`);
//! - [`enc_image`]: how pixels become packed plaintexts, the encrypted-image
//!   container and its checked wire format;
//! - [`he_filter`]: filters evaluated on ciphertexts with the public key
//!   only, and their plaintext reference;
//! - [`he_service`]: the HTTP service and its client.
//!
//! The `he` command lives in `crates/he-cli`.

pub use enc_image;
pub use he_filter;
pub use he_service;
pub use paillier;

/// The photo the examples use (NASA, public domain, via scikit-image),
/// 256 x 256 RGB, as PNG bytes.
pub const BUNDLED_PHOTO: &[u8] = include_bytes!("../crates/he-cli/assets/astronaut-256.png");
