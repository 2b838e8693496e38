//! The one error type of this crate.

/// Everything that can go wrong when filtering an encrypted image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the encrypted-image layer (halo, slot width, key...).
    #[error(transparent)]
    Image(#[from] enc_image::Error),
    /// An error of the Paillier layer.
    #[error(transparent)]
    Paillier(#[from] paillier::Error),
    /// A kernel that cannot be used.
    #[error("invalid kernel: {0}")]
    Kernel(String),
    /// A filter or parameter that cannot be used (unknown name, value out
    /// of range, a chain the image cannot carry).
    #[error("invalid filter: {0}")]
    Parameter(String),
    /// A result that failed a [`spot_check`](crate::spot_check): the
    /// server's answer is wrong.
    #[error("the server's result is wrong: {0}")]
    Verification(#[from] crate::verify::Mismatch),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Rng(getrandom::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
