//! Keys below 2048 bits, for fast tests only (the `insecure-test-keys`
//! feature).
//!
//! A Cargo feature is not enough to keep small keys in tests: `cargo test
//! --workspace` unifies a dev-dependency's features into every binary it
//! builds, so a program built that way would accept a 512-bit key if the
//! feature alone lowered the minimum. So the feature only makes the door
//! exist; a process must also walk through it by name:
//!
//! - [`Keypair::generate_insecure_for_tests`](crate::Keypair::generate_insecure_for_tests)
//!   makes a small key, and
//! - [`allow_in_this_process`] lets key loading
//!   ([`PublicKey::from_bytes`](crate::PublicKey::from_bytes),
//!   [`Keypair::from_bytes`](crate::Keypair::from_bytes),
//!   [`PrivateKey::from_primes`](crate::PrivateKey::from_primes), serde)
//!   accept small keys from then on, in this process only.
//!
//! Generating a test key also allows loading them: a process that calls a
//! function named `_for_tests` has declared itself a test, and a test must
//! be able to load the keys it makes (a server running inside the test
//! process loads the client's public key with `PublicKey::from_bytes`). No
//! program calls either function, so every program refuses keys below
//! [`MIN_KEY_BITS`](crate::MIN_KEY_BITS) whatever features it was built
//! with, and [`Keypair::generate`](crate::Keypair::generate) refuses them
//! always.
//!
//! A process-wide switch was chosen over `from_bytes_insecure_for_tests`
//! twins of every loader because keys are also loaded deep inside code
//! under test (the service's request handler, serde in an envelope), which
//! must run unchanged in tests and in production.

use std::sync::atomic::{AtomicBool, Ordering};

static ALLOWED: AtomicBool = AtomicBool::new(false);

/// The smallest size of n a test may use: 128 bits.
pub const MIN_BITS: u32 = crate::TEST_MIN_KEY_BITS;

/// From now on, this process loads keys down to [`MIN_BITS`] bits. Call it
/// at the start of a test that loads small keys it did not generate (fixed
/// test vectors, fuzz seeds). Never call it from a program.
pub fn allow_in_this_process() {
    ALLOWED.store(true, Ordering::SeqCst);
}

/// Whether [`allow_in_this_process`] (or a test-key generation) has run in
/// this process.
#[must_use]
pub fn allowed_in_this_process() -> bool {
    ALLOWED.load(Ordering::SeqCst)
}
