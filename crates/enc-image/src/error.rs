//! The one error type of this crate.

/// Everything that can go wrong with encrypted images.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the Paillier layer (keys, ciphertexts, randomness).
    #[error(transparent)]
    Paillier(#[from] paillier::Error),
    /// Parameters that cannot work together (slot width, halo, key size...).
    #[error("invalid parameters: {0}")]
    Parameter(String),
    /// An image or payload beyond the configured [`Limits`](crate::Limits).
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// Bytes that are not a valid encrypted image.
    #[error("malformed encrypted image: {0}")]
    Format(String),
    /// The encrypted image was made for another public key.
    #[error(
        "the encrypted image was made for another public key (fingerprint {found}, this key is {expected})"
    )]
    WrongKey {
        /// Short fingerprint of the key the image names.
        found: String,
        /// Short fingerprint of the key given.
        expected: String,
    },
    /// A decrypted value outside the range the computation allows: the
    /// ciphertexts were corrupted or computed with other parameters.
    #[error(
        "decrypted data is inconsistent: {0}; the result is corrupted or was computed with other parameters"
    )]
    Corrupted(String),
    /// An image the toolkit cannot read or write.
    #[error("image: {0}")]
    Image(#[from] image::ImageError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
