//! The one error type of this crate.

/// Everything that can go wrong in this crate.
///
/// Decryption failures are deliberately coarse: they say that a ciphertext
/// does not belong to the key, never anything about the key's secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key size that is refused (too small to be safe, too large, or odd).
    #[error("key size of {bits} bits is not accepted: {reason}")]
    KeySize {
        /// The requested or found size of n in bits.
        bits: u32,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A plaintext outside the signed range `[-(n-1)/2, (n-1)/2]` (or `[0, n)`
    /// for the raw API). Plaintexts are never reduced silently.
    #[error(
        "plaintext out of range: a {bits}-bit key encrypts integers of absolute value at most (n-1)/2 (about 2^{max_bits})"
    )]
    PlaintextOutOfRange {
        /// The size of n in bits.
        bits: u32,
        /// The approximate bit length of the largest plaintext.
        max_bits: u32,
    },
    /// A ciphertext that is not in `[1, n^2)` or not coprime to n.
    #[error(
        "ciphertext is not valid for this {bits}-bit key: it must be in [1, n^2) and coprime to n"
    )]
    CiphertextOutOfRange {
        /// The size of n in bits.
        bits: u32,
    },
    /// A public key that fails validation.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),
    /// A private key that fails validation.
    #[error("invalid private key: {0}")]
    InvalidPrivateKey(&'static str),
    /// A private key that is well formed but belongs to another public key.
    #[error("the private key does not belong to this public key (n differs)")]
    KeyMismatch,
    /// A nonce given to [`hazmat::encrypt_with_nonce`](crate::hazmat::encrypt_with_nonce) that is not in `Z*_n`.
    #[error("nonce must be in [1, n) and coprime to n")]
    InvalidNonce,
    /// Bytes that do not decode as the expected object.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded ("public key", "ciphertext", ...).
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Rng(getrandom::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
