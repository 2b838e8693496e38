//! Low-level doors: encryption and decryption of raw residues, explicit
//! nonces and trivial (deterministic) encryptions.
//!
//! These skip the protections of [`PublicKey::encrypt`] and
//! [`PrivateKey::decrypt`]: residues in `[0, n)` carry no sign, a
//! caller-chosen nonce is only as secret and fresh as the caller makes it,
//! and a trivial encryption hides nothing. Containers that pack their own
//! plaintexts (such as encrypted images) and known-answer tests need them;
//! ordinary use does not.

use crate::{Ciphertext, Integer, PrivateKey, PublicKey, Result};

/// Something that can encrypt plaintext residues for a public key: the
/// [`PublicKey`] itself, or a [`PrivateKey`] (several times faster, same
/// distribution). Containers take either through this trait.
pub trait Encryptor: Sync {
    /// The public key ciphertexts are made for.
    fn public_key(&self) -> &PublicKey;
    /// Encrypts a residue in `[0, n)` with fresh randomness.
    fn encrypt_raw(&self, m: &Integer) -> Result<Ciphertext>;
    /// Prepares for many encryptions (builds tables); a no-op by default.
    fn prepare(&self) {}
}

impl Encryptor for PublicKey {
    fn public_key(&self) -> &PublicKey {
        self
    }
    fn encrypt_raw(&self, m: &Integer) -> Result<Ciphertext> {
        PublicKey::encrypt_raw(self, m)
    }
}

impl Encryptor for PrivateKey {
    fn public_key(&self) -> &PublicKey {
        PrivateKey::public_key(self)
    }
    fn encrypt_raw(&self, m: &Integer) -> Result<Ciphertext> {
        PrivateKey::encrypt_raw(self, m)
    }
    fn prepare(&self) {
        self.precompute();
    }
}

/// Encrypts a residue `m` in `[0, n)` (no signed mapping) with a fresh
/// nonce, with the public key or (faster) the private key.
pub fn encrypt_raw<E: Encryptor + ?Sized>(key: &E, m: &Integer) -> Result<Ciphertext> {
    key.encrypt_raw(m)
}

/// Encrypts a signed plaintext with a caller-chosen nonce `r` in `Z*_n`.
///
/// For known-answer tests and interoperability. The nonce must be secret
/// and uniform; never reuse one.
pub fn encrypt_with_nonce(pk: &PublicKey, m: &Integer, r: &Integer) -> Result<Ciphertext> {
    pk.encrypt_with_nonce(m, r)
}

/// The encryption of the residue `m` with nonce 1: deterministic, so it
/// hides nothing. Useful to add a public constant (see
/// [`PublicKey::add_plain`]) or as a neutral element.
pub fn trivial_encrypt_raw(pk: &PublicKey, m: &Integer) -> Result<Ciphertext> {
    pk.trivial_encrypt_raw(m)
}

/// Decrypts to the plaintext residue in `[0, n)`.
pub fn decrypt_raw(sk: &PrivateKey, c: &Ciphertext) -> Result<Integer> {
    sk.decrypt_raw(c)
}

/// Decrypts many ciphertexts to residues in `[0, n)`, in parallel (rayon).
pub fn decrypt_many_raw(sk: &PrivateKey, cs: &[Ciphertext]) -> Result<Vec<Integer>> {
    sk.decrypt_many_raw(cs)
}
