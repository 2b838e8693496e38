//! Paillier additively homomorphic encryption on GMP (through `rug`).
//!
//! ```
//! # fn main() -> Result<(), paillier::Error> {
//! # #[cfg(feature = "insecure-test-keys")] {
//! use paillier::{Ciphertext, Integer, Keypair, PublicKey};
//! # let kp = Keypair::generate_insecure_for_tests(512)?;
//! # /*
//! let kp = Keypair::generate(Keypair::default_bits())?; // 3072 bits
//! # */
//! let pk: &PublicKey = kp.public_key();
//! let sk = kp.private_key();
//! let a: Ciphertext = pk.encrypt(&Integer::from(-42))?; // anyone with the public key
//! let b = sk.encrypt(&Integer::from(7))?;                // key holder: faster, same distribution
//! let sum = pk.add(&a, &b);
//! let scaled = pk.mul_plain(&sum, &Integer::from(3));
//! assert_eq!(sk.decrypt(&scaled)?, -105);
//! # }
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! - `g = n + 1`, so encrypting m costs one product besides `r^n`.
//! - Decryption by CRT: `c^(p-1) mod p^2` and `c^(q-1) mod q^2`, the two
//!   halves in parallel for a single ciphertext.
//! - The key holder encrypts by CRT with precomputed fixed-base tables over a
//!   proven generator of the `p`-th powers; the ciphertexts have exactly the
//!   textbook distribution ([`PrivateKey`] explains why).
//! - Holders of the public key only can opt in to [`ShortExponentEncryptor`]
//!   (Damgard-Jurik-Nielsen short-exponent nonces, 65x faster at 2048 bits,
//!   one extra assumption); [`PublicKey::encrypt`] stays textbook.
//! - All randomness (primes, nonces) comes from the operating system's
//!   CSPRNG through `getrandom`; GMP's `RandState` is never used.
//! - Plaintexts are signed integers in `[-(n-1)/2, (n-1)/2]`; values outside
//!   are refused, never reduced. Raw residues in `[0, n)`, explicit nonces
//!   and trivial encryptions are low-level doors, in [`hazmat`].
//! - Keys are 3072 bits by default; 2048 is accepted; smaller keys exist
//!   only in tests: behind the `insecure-test-keys` feature *and* a call
//!   whose name says so (see `insecure_test_keys`), so that a program
//!   refuses them even when `cargo test --workspace` builds it with the
//!   feature on.
//! - [`Timing`] chooses between the fastest routines (default: the timing of
//!   decryption and key-holder encryption depends on secrets, which the
//!   toolkit's threat model allows because they run only on the key holder's
//!   machine) and constant-time exponentiation everywhere.
//!
//! # Loading
//!
//! Keys load from the versioned format of [`PublicKey::to_bytes`] and
//! [`Keypair::to_bytes`] (the toolkit's one framing, [`frame`], which the
//! higher crates' encrypted images share), or through serde (compact bytes
//! in binary formats, hex in text formats). Loading checks everything: n
//! odd, of an accepted size, not a square, free of small factors; p and q
//! prime, distinct, of equal size and consistent with n. A [`Ciphertext`] from serde must still be
//! checked against its key with [`PublicKey::validate`].

mod arith;
mod ciphertext;
mod encoding;
mod error;
mod file;
pub mod frame;
pub mod hazmat;
#[cfg(feature = "insecure-test-keys")]
pub mod insecure_test_keys;
mod keypair;
mod primes;
mod private_key;
mod public_key;
mod rng;
mod short_exponent;
mod zeroize;

pub use arith::Timing;
pub use ciphertext::Ciphertext;
pub use error::{Error, Result};
pub use keypair::Keypair;
pub use private_key::PrivateKey;
pub use public_key::PublicKey;
pub use rug::Integer;
pub use short_exponent::{ExponentLength, ShortExponentEncryptor};

/// The smallest accepted size of n outside tests: 2048 bits (about 112-bit
/// security).
pub const MIN_KEY_BITS: u32 = 2048;

/// The largest accepted size of n: 8192 bits.
pub const MAX_KEY_BITS: u32 = 8192;

/// With the `insecure-test-keys` feature, the smallest size of n a test
/// may use (see `insecure_test_keys`).
#[cfg(feature = "insecure-test-keys")]
pub const MIN_TEST_KEY_BITS: u32 = insecure_test_keys::MIN_BITS;

/// The smallest size of n a test may use (in every build, so that the
/// checks below have one shape; only test constructors pass `small`).
const TEST_MIN_KEY_BITS: u32 = 128;

/// Whether this process is a test that asked for small keys by name
/// (never true without the `insecure-test-keys` feature).
fn small_keys_allowed() -> bool {
    #[cfg(feature = "insecure-test-keys")]
    return insecure_test_keys::allowed_in_this_process();
    #[cfg(not(feature = "insecure-test-keys"))]
    false
}

/// Checks the size of a key being loaded: at least [`MIN_KEY_BITS`], or
/// the test minimum in a process that opted in to small test keys.
fn check_key_bits(bits: u32) -> Result<()> {
    check_key_bits_from(bits, small_keys_allowed())
}

/// Checks a key size, allowing test sizes only when `small` is true.
fn check_key_bits_from(bits: u32, small: bool) -> Result<()> {
    let (min, why) = if small {
        (TEST_MIN_KEY_BITS, "below the test minimum of 128 bits")
    } else {
        (
            MIN_KEY_BITS,
            "below the minimum of 2048 bits (about 112-bit security)",
        )
    };
    if bits < min {
        return Err(Error::KeySize { bits, reason: why });
    }
    if bits > MAX_KEY_BITS {
        return Err(Error::KeySize {
            bits,
            reason: "above the maximum of 8192 bits",
        });
    }
    Ok(())
}

/// Counters of secret-exponent exponentiations by timing mode (tests only).
#[cfg(feature = "insecure-test-keys")]
#[doc(hidden)]
pub fn secret_pow_counts() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        arith::SECRET_POWS_CT.load(Relaxed),
        arith::SECRET_POWS_VARTIME.load(Relaxed),
    )
}

// The examples in the crate's README.md (its page on crates.io) run as doc
// tests, so that they stay true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
