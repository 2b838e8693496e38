//! Encryption of whole images by a holder of the public key only, with a
//! named choice of nonce.

use paillier::{PublicKey, ShortExponentEncryptor};

use crate::error::Result;
use crate::image::EncryptedImage;
use crate::options::EncryptOptions;
use crate::pixels::PixelImage;
use crate::progress::Progress;

/// How a holder of the public key only makes the nonces of an image's
/// ciphertexts. Either way the result is an ordinary encrypted image: the
/// server filters it and the key holder decrypts it without knowing which.
///
/// The key holder encrypts faster still, and with textbook security, by
/// passing its [`PrivateKey`](paillier::PrivateKey) to
/// [`EncryptedImage::encrypt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PublicEncryption {
    /// Textbook Paillier, `r^n mod n^2` per ciphertext: secure under the
    /// decisional composite residuosity assumption alone. The default.
    #[default]
    Textbook,
    /// Damgard-Jurik-Nielsen short exponents
    /// ([`ShortExponentEncryptor`]): 65x faster at 2048 bits, and
    /// secure under the short-exponent assumption as well as decisional
    /// composite residuosity. Builds a table of a few MiB per image
    /// (3.5 MiB at 2048 bits, 6.0 MiB at 3072).
    ShortExponent,
}

impl EncryptedImage {
    /// Encrypts an image with the public key alone, in parallel, with the
    /// chosen [`PublicEncryption`] mode. To encrypt many images with the
    /// short-exponent mode, build one [`ShortExponentEncryptor`] and pass it
    /// to [`EncryptedImage::encrypt`] instead (the table is built once).
    pub fn encrypt_with_public_key(
        img: &PixelImage,
        pk: &PublicKey,
        mode: PublicEncryption,
        opts: &EncryptOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        match mode {
            PublicEncryption::Textbook => Self::encrypt(img, pk, opts, progress),
            PublicEncryption::ShortExponent => {
                Self::encrypt(img, &ShortExponentEncryptor::new(pk), opts, progress)
            }
        }
    }
}
