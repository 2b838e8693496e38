//! The one error type of this crate.

use enc_image::Rational;

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
    Verification(#[from] Mismatch),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Rng(getrandom::Error),
    /// The work was stopped because its [`enc_image::Progress`] said
    /// [`cancelled`](enc_image::Progress::cancelled).
    #[error("cancelled")]
    Cancelled,
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a result failed a [`spot_check`](crate::spot_check): the server's answer is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// The result's size or colour layout is not the chain's.
    #[error("the result is {found}, the chain on this input gives {expected}")]
    Shape {
        /// What the chain gives (`WxH layout`).
        expected: String,
        /// What the result is.
        found: String,
    },
    /// The result's public scale is not the chain's.
    #[error("the result's scale is {found}, the chain gives {expected}")]
    Scale {
        /// The chain's scale.
        expected: Rational,
        /// The result's scale.
        found: Rational,
    },
    /// A value differs from the chain recomputed on the input.
    #[error(
        "the value at ({x}, {y}) channel {channel} (ciphertext {ciphertext}) is {found}, \
         the chain gives {expected}"
    )]
    Value {
        /// Column.
        x: usize,
        /// Row.
        y: usize,
        /// Channel.
        channel: usize,
        /// The ciphertext that carried it.
        ciphertext: usize,
        /// The chain's value.
        expected: i64,
        /// The decrypted value.
        found: i64,
    },
}
