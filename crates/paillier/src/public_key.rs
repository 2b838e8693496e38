//! The public key: encryption and every homomorphic operation.

use rayon::prelude::*;
use rug::ops::RemRounding;
use rug::{Complete, Integer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::arith::{self, Timing};
use crate::ciphertext::Ciphertext;
use crate::encoding;
use crate::error::{Error, Result};
use crate::rng;

/// A Paillier public key, `n = p*q` with generator `g = n + 1`.
///
/// Anyone holding it can encrypt and compute on ciphertexts: add two
/// ciphertexts, add or multiply by a public integer, negate, rerandomize.
/// Plaintexts are signed integers in `[-(n-1)/2, (n-1)/2]`; residues in
/// `[0, n)` are reached through [`hazmat`](crate::hazmat) instead.
#[derive(Clone)]
pub struct PublicKey {
    n: Integer,
    nn: Integer,
    /// `(n - 1) / 2`, the largest signed plaintext.
    half: Integer,
    bits: u32,
    timing: Timing,
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n
    }
}
impl Eq for PublicKey {}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fp = self.fingerprint();
        f.debug_struct("PublicKey")
            .field("bits", &self.bits)
            .field(
                "fingerprint",
                &format_args!("{:02x}{:02x}{:02x}{:02x}..", fp[0], fp[1], fp[2], fp[3]),
            )
            .finish()
    }
}

impl PublicKey {
    /// The framing of public-key files ([`to_bytes`](Self::to_bytes)):
    /// magic `PAIL\x01`, version, length, bincode body, digest.
    pub const FILE_FORMAT: crate::frame::Format<5> = crate::file::PUBLIC_KEY;

    /// Makes a public key from its modulus, checking it.
    ///
    /// n must be odd, not a perfect square, free of small prime factors and
    /// of an accepted size: at least [`MIN_KEY_BITS`](crate::MIN_KEY_BITS)
    /// (or 128 in a test process that opted in to small keys, which needs
    /// the `insecure-test-keys` feature and a call by name), at most
    /// [`MAX_KEY_BITS`](crate::MAX_KEY_BITS).
    pub fn from_modulus(n: Integer) -> Result<Self> {
        if n < 0 {
            return Err(Error::InvalidPublicKey("n is negative"));
        }
        let bits = n.significant_bits();
        crate::check_key_bits(bits)?;
        if n.is_even() {
            return Err(Error::InvalidPublicKey("n is even"));
        }
        if n.is_probably_prime(2) != rug::integer::IsPrime::No {
            return Err(Error::InvalidPublicKey("n is prime (anyone could decrypt)"));
        }
        if n.is_perfect_square() {
            return Err(Error::InvalidPublicKey("n is a perfect square"));
        }
        for f in SMALL_PRIMES {
            if n.is_divisible_u(f) {
                return Err(Error::InvalidPublicKey("n has a small prime factor"));
            }
        }
        Ok(Self::new_unchecked(n))
    }

    pub(crate) fn new_unchecked(n: Integer) -> Self {
        let nn = Integer::from(n.square_ref());
        let half = Integer::from(&n - 1u32) >> 1;
        let bits = n.significant_bits();
        PublicKey {
            n,
            nn,
            half,
            bits,
            timing: Timing::Fast,
        }
    }

    pub(crate) fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
    }

    /// The modulus n.
    #[must_use]
    pub fn n(&self) -> &Integer {
        &self.n
    }

    /// `n^2`, the ciphertext modulus.
    #[must_use]
    pub fn n_squared(&self) -> &Integer {
        &self.nn
    }

    /// The size of n in bits.
    #[must_use]
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Bytes of a ciphertext in fixed-width form (`ceil(2 * bits / 8)`).
    #[must_use]
    pub fn ciphertext_bytes(&self) -> usize {
        arith::byte_len(self.nn.significant_bits())
    }

    /// The largest signed plaintext, `(n - 1) / 2`.
    #[must_use]
    pub fn max_plaintext(&self) -> &Integer {
        &self.half
    }

    /// SHA-256 of the key's canonical encoding: a short name for the key that
    /// containers record so that a ciphertext is never used with another key.
    #[must_use]
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"paillier public key v1\0");
        h.update(encoding::to_be_bytes(&self.n));
        h.finalize().into()
    }

    fn out_of_range(&self) -> Error {
        Error::PlaintextOutOfRange {
            bits: self.bits,
            max_bits: self.bits - 1,
        }
    }

    /// Maps a signed plaintext to its residue in `[0, n)`.
    pub(crate) fn encode_signed(&self, m: &Integer) -> Result<Integer> {
        if m.as_abs().cmp(&self.half) == std::cmp::Ordering::Greater {
            return Err(self.out_of_range());
        }
        Ok(if *m < 0 {
            Integer::from(m + &self.n)
        } else {
            m.clone()
        })
    }

    /// Maps a residue in `[0, n)` to the signed range.
    pub(crate) fn decode_signed(&self, r: Integer) -> Integer {
        if r > self.half { r - &self.n } else { r }
    }

    fn check_raw(&self, m: &Integer) -> Result<()> {
        if *m < 0 || *m >= self.n {
            return Err(Error::PlaintextOutOfRange {
                bits: self.bits,
                max_bits: self.bits,
            });
        }
        Ok(())
    }

    /// `(1 + m*n) * rn mod n^2` for a residue m and an n-th power rn.
    pub(crate) fn combine(&self, m: &Integer, rn: Integer) -> Ciphertext {
        let mut gm = Integer::from(m * &self.n);
        gm += 1u32;
        let mut c = gm * rn;
        c %= &self.nn;
        Ciphertext(c)
    }

    /// `r^n mod n^2` for a fresh uniform r in `Z*_n`.
    fn random_nth_power(&self) -> Result<Integer> {
        let r = rng::random_unit(&self.n)?;
        Ok(arith::pow_secret(&r, &self.n, &self.nn, self.timing))
    }

    /// Encrypts a signed plaintext with a fresh nonce from the OS CSPRNG.
    pub fn encrypt(&self, m: &Integer) -> Result<Ciphertext> {
        let m = self.encode_signed(m)?;
        self.encrypt_raw(&m)
    }

    /// Encrypts a residue `m` in `[0, n)` (no signed mapping).
    pub(crate) fn encrypt_raw(&self, m: &Integer) -> Result<Ciphertext> {
        self.check_raw(m)?;
        Ok(self.combine(m, self.random_nth_power()?))
    }

    /// Encrypts a signed plaintext with a caller-chosen nonce `r` in `Z*_n`.
    ///
    /// For known-answer tests and interoperability. The nonce must be secret
    /// and uniform; never reuse one.
    pub(crate) fn encrypt_with_nonce(&self, m: &Integer, r: &Integer) -> Result<Ciphertext> {
        let m = self.encode_signed(m)?;
        if *r <= 0 || *r >= self.n || r.gcd_ref(&self.n).complete() != 1 {
            return Err(Error::InvalidNonce);
        }
        Ok(self.combine(&m, arith::pow_secret(r, &self.n, &self.nn, self.timing)))
    }

    /// Encrypts many signed plaintexts in parallel (rayon).
    pub fn encrypt_many(&self, ms: &[Integer]) -> Result<Vec<Ciphertext>> {
        ms.par_iter().map(|m| self.encrypt(m)).collect()
    }

    /// The encryption of `m` with nonce 1: deterministic, so it hides
    /// nothing. Useful to add a public constant; see [`add_plain`](Self::add_plain).
    pub(crate) fn trivial_encrypt_raw(&self, m: &Integer) -> Result<Ciphertext> {
        self.check_raw(m)?;
        Ok(self.combine(m, Integer::from(1)))
    }

    /// Checks that `c` is a ciphertext for this key: in `[1, n^2)` and
    /// coprime to n.
    pub fn validate(&self, c: &Ciphertext) -> Result<()> {
        self.check_ciphertext(&c.0)
    }

    fn check_ciphertext(&self, c: &Integer) -> Result<()> {
        if *c <= 0 || *c >= self.nn || c.gcd_ref(&self.n).complete() != 1 {
            return Err(Error::CiphertextOutOfRange { bits: self.bits });
        }
        Ok(())
    }

    /// Makes a ciphertext from an integer, checking it against this key.
    pub fn ciphertext_from_integer(&self, c: Integer) -> Result<Ciphertext> {
        self.check_ciphertext(&c)?;
        Ok(Ciphertext(c))
    }

    /// Makes a ciphertext from big-endian bytes (fixed width or minimal;
    /// leading zeros allowed up to [`ciphertext_bytes`](Self::ciphertext_bytes)),
    /// checking it against this key.
    pub fn ciphertext_from_bytes(&self, bytes: &[u8]) -> Result<Ciphertext> {
        if bytes.len() > self.ciphertext_bytes() {
            return Err(Error::CiphertextOutOfRange { bits: self.bits });
        }
        self.ciphertext_from_integer(Integer::from_digits(bytes, rug::integer::Order::Msf))
    }

    /// Appends `c` as exactly [`ciphertext_bytes`](Self::ciphertext_bytes)
    /// big-endian bytes.
    pub fn write_ciphertext(&self, c: &Ciphertext, out: &mut Vec<u8>) {
        encoding::to_be_bytes_fixed(&c.0, self.ciphertext_bytes(), out);
    }

    /// `E(a + b)`: the product of the ciphertexts.
    #[must_use]
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        let mut c = Integer::from(&a.0 * &b.0);
        c %= &self.nn;
        Ciphertext(c)
    }

    /// `E(a - b)`.
    #[must_use]
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        self.add(a, &self.neg(b))
    }

    /// `E(-a)`: the inverse of the ciphertext modulo `n^2`.
    #[must_use]
    pub fn neg(&self, a: &Ciphertext) -> Ciphertext {
        match a.0.invert_ref(&self.nn) {
            Some(inv) => Ciphertext(Integer::from(inv)),
            // Unreachable for a valid ciphertext (coprime to n). c^(n-1) has
            // the same plaintext -m for any c, so the result stays exact.
            None => Ciphertext(arith::pow_public(
                &a.0,
                &Integer::from(&self.n - 1u32),
                &self.nn,
            )),
        }
    }

    /// `E(k * a)` for any integer k (the product is taken modulo n, which is
    /// exact plaintext arithmetic). A negative k costs one inversion more.
    #[must_use]
    pub fn mul_plain(&self, a: &Ciphertext, k: &Integer) -> Ciphertext {
        let k = if k.as_abs().cmp(&self.n) == std::cmp::Ordering::Less {
            k.clone()
        } else {
            k.clone().rem_euc(&self.n)
        };
        if k < 0 {
            let inv = self.neg(a);
            Ciphertext(arith::pow_public(&inv.0, &(-k), &self.nn))
        } else {
            Ciphertext(arith::pow_public(&a.0, &k, &self.nn))
        }
    }

    /// `E(a + k)` for any integer k (taken modulo n): one product with the
    /// trivial encryption `1 + k*n`.
    #[must_use]
    pub fn add_plain(&self, a: &Ciphertext, k: &Integer) -> Ciphertext {
        let k = k.clone().rem_euc(&self.n);
        let mut gm = k * &self.n;
        gm += 1u32;
        gm *= &a.0;
        gm %= &self.nn;
        Ciphertext(gm)
    }

    /// A fresh ciphertext of the same plaintext: `a * r^n` for a new nonce.
    pub fn rerandomize(&self, a: &Ciphertext) -> Result<Ciphertext> {
        let rn = self.random_nth_power()?;
        let mut c = rn * &a.0;
        c %= &self.nn;
        Ok(Ciphertext(c))
    }

    /// Serializes the key in the toolkit's versioned binary format.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::file::encode(crate::file::Kind::PublicKey, &self.n_bytes_struct())
    }

    fn n_bytes_struct(&self) -> PublicKeyRepr {
        PublicKeyRepr {
            n: encoding::to_be_bytes(&self.n),
        }
    }

    /// Loads a key written by [`to_bytes`](Self::to_bytes), checking it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let repr: PublicKeyRepr = crate::file::decode(crate::file::Kind::PublicKey, bytes)?;
        repr.into_key()
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct PublicKeyRepr {
    #[serde(with = "serde_bytes_compat")]
    n: Vec<u8>,
}

impl PublicKeyRepr {
    fn into_key(self) -> Result<PublicKey> {
        let n = encoding::from_be_bytes(&self.n, crate::MAX_KEY_BITS as usize / 8, "modulus")
            .map_err(|reason| Error::Malformed {
                what: "public key",
                reason,
            })?;
        PublicKey::from_modulus(n)
    }
}

/// Byte vectors as serde bytes (compact in bincode, hex in JSON).
pub(crate) mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        super::encoding::serialize_byte_slice(v, s)
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        super::encoding::deserialize_raw(d)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.n_bytes_struct().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let repr = PublicKeyRepr::deserialize(d)?;
        repr.into_key().map_err(serde::de::Error::custom)
    }
}

/// Odd primes below 200, for a cheap sanity check of n.
const SMALL_PRIMES: [u32; 45] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191, 193,
    197, 199,
];
