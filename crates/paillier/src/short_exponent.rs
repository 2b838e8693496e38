//! Opt-in short-exponent encryption for holders of the public key only, in
//! the style of Damgard, Jurik and Nielsen: [`ShortExponentEncryptor`] says
//! what it is, what it assumes and what it costs.

use rayon::prelude::*;
use rug::integer::Order;
use rug::{Complete, Integer};
use sha2::{Digest, Sha256};

use crate::arith::{self, Timing};
use crate::ciphertext::Ciphertext;
use crate::encoding;
use crate::error::{Error, Result};
use crate::public_key::PublicKey;
use crate::rng;
use crate::zeroize::Secret;

/// The largest table built, in bytes of residues (16 MiB).
const TABLE_BUDGET_BYTES: usize = 16 << 20;

/// Domain-separation label of [`ShortExponentEncryptor::derive_base`] (version 1).
const BASE_LABEL: &[u8] = b"he-toolkit paillier djn base h v1\0";

/// How long the secret exponent `a` of the nonce `h_s^a` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ExponentLength {
    /// Twice the key's security strength: 224 bits for keys below 3072
    /// bits, 256 bits below 7680, 384 bits above (NIST SP 800-57
    /// strengths 112, 128, 192). Rests on the short-exponent assumption
    /// (see the [type docs](ShortExponentEncryptor)).
    #[default]
    Short,
    /// Half the size of n (1024 bits at 2048, 1536 at 3072), the length DJN
    /// suggest and pypaillier uses: about 4.5x slower than `Short` at 2048
    /// bits and 8x at 3072 (measured).
    HalfModulus,
}

impl ExponentLength {
    /// The exponent length in bits for an n of `key_bits` bits.
    #[must_use]
    pub fn bits(self, key_bits: u32) -> u32 {
        match self {
            ExponentLength::Short => 2 * security_bits(key_bits),
            ExponentLength::HalfModulus => key_bits.div_ceil(2),
        }
    }
}

/// Security strength of an RSA-type modulus (NIST SP 800-57 Part 1, table 2).
fn security_bits(key_bits: u32) -> u32 {
    match key_bits {
        0..3072 => 112,
        3072..7680 => 128,
        _ => 192,
    }
}

/// Powers of a fixed base: `rows[i][d - 1] = base^(d * 2^(w*i)) mod m` for
/// `d` in `1..2^w`. Its entries are public (powers of a public base).
struct WindowTable {
    m: Integer,
    window: u32,
    rows: Vec<Vec<Integer>>,
}

impl WindowTable {
    /// The table for exponents below `2^exp_bits`, rows built in parallel.
    fn new(base: &Integer, m: &Integer, exp_bits: u32, window: u32) -> Self {
        let count = exp_bits.div_ceil(window) as usize;
        // Row bases base^(2^(w*i)): w squarings each, serial and cheap.
        let mut bases = Vec::with_capacity(count);
        let mut b = Integer::from(base % m);
        for _ in 0..count {
            bases.push(b.clone());
            for _ in 0..window {
                b.square_mut();
                b %= m;
            }
        }
        let rows = bases
            .par_iter()
            .map(|b| {
                let mut row = Vec::with_capacity((1 << window) - 1);
                let mut acc = b.clone();
                for _ in 1..(1u32 << window) {
                    row.push(acc.clone());
                    acc *= b;
                    acc %= m;
                }
                row
            })
            .collect();
        WindowTable {
            m: m.clone(),
            window,
            rows,
        }
    }

    /// Bytes the residues of a table take (entries times the width of m).
    fn bytes_for(m: &Integer, exp_bits: u32, window: u32) -> usize {
        let limbs = m.significant_bits().div_ceil(64) as usize;
        exp_bits.div_ceil(window) as usize * ((1usize << window) - 1) * limbs * 8
    }

    /// `base^a mod m` for `0 <= a < 2^(w * rows)`: one product per non-zero
    /// window of a. Variable time: the table index is a's digits.
    fn pow_vartime(&self, a: &Integer) -> Integer {
        debug_assert!(
            *a >= 0 && a.significant_bits() as usize <= self.rows.len() * self.window as usize
        );
        let mut limbs = a.to_digits::<u64>(Order::Lsf);
        let mask = (1u64 << self.window) - 1;
        let mut acc = Integer::from(1);
        for (i, row) in self.rows.iter().enumerate() {
            let bit = i * self.window as usize;
            let (word, shift) = (bit / 64, bit % 64);
            let lo = limbs.get(word).copied().unwrap_or(0) >> shift;
            let hi = match (shift + self.window as usize > 64, limbs.get(word + 1)) {
                (true, Some(&next)) => next << (64 - shift),
                _ => 0,
            };
            let d = ((lo | hi) & mask) as usize;
            if d != 0 {
                acc *= &row[d - 1];
                acc %= &self.m;
            }
        }
        // The exponent is secret: clear its copy (kept by `black_box`).
        limbs.fill(0);
        std::hint::black_box(&mut limbs);
        acc
    }
}

/// Public-key encryption with short-exponent nonces `h_s^a mod n^2` (opt in).
///
/// **Extra assumption.** Besides the decisional composite residuosity
/// assumption of textbook Paillier, the secrecy of these ciphertexts rests on
/// the short-exponent assumption: that `h_s^a` for a short uniform `a` looks
/// like a uniform element of the group `h_s` generates. The
/// sections below give the argument, the exponent lengths and the derivation
/// of `h`. [`PublicKey::encrypt`] stays textbook.
///
/// The ciphertexts are ordinary Paillier ciphertexts for the key: they
/// decrypt with the unchanged [`PrivateKey`](crate::PrivateKey) and take
/// every homomorphic operation. [`new`](Self::new) builds a table of powers
/// of `h_s` (3.5 MiB at 2048 bits, 6.0 MiB at 3072, in parallel); build one
/// encryptor per key and share it (it is `Sync`). It implements
/// [`Encryptor`](crate::hazmat::Encryptor), so containers such as `enc-image` take it
/// where they take a key.
///
/// ```
/// # fn main() -> Result<(), paillier::Error> {
/// # #[cfg(feature = "insecure-test-keys")] {
/// use paillier::{Integer, Keypair, ShortExponentEncryptor};
/// # let kp = Keypair::generate_insecure_for_tests(512)?;
/// # /*
/// let kp = Keypair::generate(Keypair::default_bits())?;
/// # */
/// let enc = ShortExponentEncryptor::new(kp.public_key()); // public key only
/// let c = enc.encrypt(&Integer::from(-42))?;
/// let d = kp.public_key().add_plain(&c, &Integer::from(2));
/// assert_eq!(kp.private_key().decrypt(&d)?, -40);
/// # }
/// # Ok(()) }
/// ```
///
/// # The mode
///
/// Textbook encryption computes `(1 + m*n) * r^n mod n^2` with `r` uniform in
/// `Z*_n`: a full exponentiation by n, the whole cost. Damgard, Jurik and
/// Nielsen ("A generalization of Paillier's public-key system with
/// applications to electronic voting", Int. J. Inf. Secur. 9(6), 2010,
/// section 4.2) fix a public `h` in `Z*_n` of the form `-x^2 mod n`, publish
/// `h_s = h^n mod n^2`, and encrypt with the nonce `h_s^a mod n^2` for a
/// short uniformly random exponent `a`. The base is fixed, so a table of its
/// powers is built once and one nonce costs about `|a| / w` modular products
/// (`w`-bit windows) instead of `|n|` squarings.
///
/// `h_s^a = (h^a)^n` is an n-th power, so the ciphertext is an ordinary
/// Paillier ciphertext of m: decryption, every homomorphic operation and
/// every container treat it exactly like a textbook one. A decryptor needs
/// nothing new.
///
/// # The extra assumption
///
/// Textbook Paillier is semantically secure under the decisional composite
/// residuosity (DCR) assumption. This mode also needs the short-exponent
/// assumption: `h_s^a` with `a` uniform below `2^l` cannot be told apart
/// from `h_s^b` with `b` uniform modulo the (secret) order of `h_s`. DJN
/// suggest the variant with exponents of about `|n|/2` bits and rest it on
/// DCR together with that assumption. Koshiba and Kurosawa ("Short exponent
/// Diffie-Hellman problems", PKC 2004) show, for discrete-logarithm groups,
/// that the short-exponent decisional problem is as hard as the full one
/// when discrete logarithms with short exponents are hard; that it carries
/// over to the group `h_s` generates is the assumption this mode adds. The
/// best known attack on short exponents (Pollard's lambda method; van
/// Oorschot and Wiener, EUROCRYPT 1996) costs about `2^(l/2)` group
/// operations, and the Pohlig-Hellman half of van Oorschot and Wiener's
/// attack does not apply because the order of `h_s` is unknown without
/// the factors of n. So [`ExponentLength::Short`] (the default) takes
/// `l = 2k` for a key of `k`-bit strength (NIST SP 800-57: k = 112 at 2048
/// bits, 128 at 3072, 192 from 7680): 224 and 256 bits.
/// [`ExponentLength::HalfModulus`] takes `l = |n| / 2` like DJN and
/// pypaillier, at about 4.5x the cost at 2048 bits and 8x at 3072.
///
/// # The base h
///
/// `h` is derived from n alone by [`derive_base`](Self::derive_base), so existing key files work
/// unchanged and anyone can recompute and check it: SHA-256 in counter mode
/// over a domain-separation label, the byte length of n, n, an attempt
/// counter and a block counter, expanded to `|n| + 128` bits (so that the
/// reduction modulo n is within `2^-128` of uniform), reduced to `x` modulo
/// n; the attempt is retried while `gcd(x, n) != 1` or `h` is `1` or `n - 1`;
/// then `h = -x^2 mod n`. In every case `-h` is a square, so `h` has
/// Jacobi symbol `(-1 | n)`. For a Blum modulus (`p = q = 3 mod 4`) `h` is a
/// non-square in `J_n`, the subgroup of Jacobi symbol 1; when p and q are
/// safe primes (DJN's setting) `J_n` is cyclic and `h` generates it except
/// with negligible probability. Keys with other primes give an `h` of large
/// order all the same, with overwhelming probability, as any random square
/// times `-1` has.
///
/// # Memory
///
/// The table holds `ceil(l / w)` rows of `2^w - 1` residues modulo `n^2`,
/// with `w = 8` while the table fits in [`TABLE_BUDGET_BYTES`](Self::TABLE_BUDGET_BYTES) (16 MiB) and
/// the widest window that fits otherwise: 3.5 MiB at 2048 bits and 6.0 MiB at
/// 3072 bits for the default length. It is built once per encryptor, its
/// rows in parallel (rayon).
pub struct ShortExponentEncryptor {
    pk: PublicKey,
    h: Integer,
    hs: Integer,
    exponent_bits: u32,
    table: WindowTable,
    timing: Timing,
}

impl std::fmt::Debug for ShortExponentEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShortExponentEncryptor")
            .field("key", &self.pk)
            .field("exponent_bits", &self.exponent_bits)
            .field("window", &self.table.window)
            .field("table_bytes", &self.table_bytes())
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

impl ShortExponentEncryptor {
    /// The largest table an encryptor builds, in bytes of residues (16 MiB):
    /// windows narrow below 8 bits when a table would exceed it.
    pub const TABLE_BUDGET_BYTES: usize = TABLE_BUDGET_BYTES;

    /// The public base `h` of the short-exponent mode for the modulus n:
    /// `-x^2 mod n` with x hashed from n (see the type docs). The same
    /// n always gives the same h; n is not checked here ([`PublicKey`] does).
    #[must_use]
    pub fn derive_base(n: &Integer) -> Integer {
        let n_bytes = encoding::to_be_bytes(n);
        let want = arith::byte_len(n.significant_bits() + 128);
        let n_minus_1 = Integer::from(n - 1u32);
        let mut attempt = 0u32;
        loop {
            let mut stream = Vec::with_capacity(want + 32);
            let mut block = 0u32;
            while stream.len() < want {
                let mut d = Sha256::new();
                d.update(BASE_LABEL);
                d.update((n_bytes.len() as u64).to_be_bytes());
                d.update(&n_bytes);
                d.update(attempt.to_be_bytes());
                d.update(block.to_be_bytes());
                stream.extend_from_slice(&d.finalize());
                block += 1;
            }
            stream.truncate(want);
            let x = Integer::from_digits(&stream, Order::Msf) % n;
            attempt += 1;
            if x.gcd_ref(n).complete() != 1 {
                continue;
            }
            let mut h = Integer::from(x.square_ref());
            h %= n;
            h = Integer::from(n - &h);
            if h != 1 && h != n_minus_1 {
                return h;
            }
        }
    }

    /// The encryptor for `pk` with the default [`ExponentLength::Short`]
    /// (224-bit exponents at 2048 bits, 256 at 3072). Builds the table.
    #[must_use]
    pub fn new(pk: &PublicKey) -> Self {
        Self::with_length(pk, ExponentLength::Short)
    }

    /// The encryptor for `pk` with the given exponent length.
    #[must_use]
    pub fn with_length(pk: &PublicKey, length: ExponentLength) -> Self {
        let h = Self::derive_base(pk.n());
        let hs = arith::pow_public(&h, pk.n(), pk.n_squared());
        let exponent_bits = length.bits(pk.bits());
        let window = (1..=8u32)
            .rev()
            .find(|&w| {
                WindowTable::bytes_for(pk.n_squared(), exponent_bits, w) <= TABLE_BUDGET_BYTES
            })
            .unwrap_or(1);
        let table = WindowTable::new(&hs, pk.n_squared(), exponent_bits, window);
        ShortExponentEncryptor {
            pk: pk.clone(),
            h,
            hs,
            exponent_bits,
            table,
            timing: Timing::Fast,
        }
    }

    /// Chooses the timing behaviour. [`Timing::ConstantTime`] computes each
    /// nonce with `secure_pow_mod` (still a short exponent, several times
    /// faster than textbook) instead of the table, whose index is secret.
    #[must_use]
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The public key.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    /// The public base `h` ([`derive_base`](Self::derive_base) of n).
    #[must_use]
    pub fn base(&self) -> &Integer {
        &self.h
    }

    /// `h_s = h^n mod n^2`, the base of the nonces.
    #[must_use]
    pub fn nonce_base(&self) -> &Integer {
        &self.hs
    }

    /// The length of the secret exponents, in bits.
    #[must_use]
    pub fn exponent_bits(&self) -> u32 {
        self.exponent_bits
    }

    /// The width of the table's windows, in bits (8 unless the budget
    /// forces fewer).
    #[must_use]
    pub fn window_bits(&self) -> u32 {
        self.table.window
    }

    /// Bytes held by the table's residues (at most [`TABLE_BUDGET_BYTES`](Self::TABLE_BUDGET_BYTES)
    /// for windows of 2 bits or more).
    #[must_use]
    pub fn table_bytes(&self) -> usize {
        WindowTable::bytes_for(&self.table.m, self.exponent_bits, self.table.window)
    }

    /// `h_s^a mod n^2` for a fresh uniform `a` below `2^exponent_bits`.
    fn random_nonce(&self) -> Result<Integer> {
        let a = Secret(rng::random_bits(self.exponent_bits)?);
        Ok(match self.timing {
            Timing::Fast => self.table.pow_vartime(&a),
            Timing::ConstantTime => {
                arith::pow_secret(&self.hs, &a, self.pk.n_squared(), Timing::ConstantTime)
            }
        })
    }

    /// Encrypts a signed plaintext in `[-(n-1)/2, (n-1)/2]`.
    pub fn encrypt(&self, m: &Integer) -> Result<Ciphertext> {
        let m = self.pk.encode_signed(m)?;
        Ok(self.pk.combine(&m, self.random_nonce()?))
    }

    /// Encrypts many signed plaintexts in parallel (rayon).
    pub fn encrypt_many(&self, ms: &[Integer]) -> Result<Vec<Ciphertext>> {
        ms.par_iter().map(|m| self.encrypt(m)).collect()
    }

    /// A fresh ciphertext of the same plaintext: `c * h_s^a mod n^2`.
    pub fn rerandomize(&self, c: &Ciphertext) -> Result<Ciphertext> {
        let mut x = self.random_nonce()?;
        x *= &c.0;
        x %= self.pk.n_squared();
        Ok(Ciphertext(x))
    }

    /// `h_s^a mod n^2` from the table, for tests against `pow_mod`.
    #[cfg(test)]
    fn nonce_for(&self, a: &Integer) -> Integer {
        self.table.pow_vartime(a)
    }
}

impl crate::hazmat::Encryptor for ShortExponentEncryptor {
    fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    fn encrypt_raw(&self, m: &Integer) -> Result<Ciphertext> {
        if *m < 0 || m >= self.pk.n() {
            return Err(Error::PlaintextOutOfRange {
                bits: self.pk.bits(),
                max_bits: self.pk.bits(),
            });
        }
        Ok(self.pk.combine(m, self.random_nonce()?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is a test failure

    use super::*;

    fn test_key() -> PublicKey {
        // Two 256-bit primes' product is not needed: any valid-looking odd
        // composite serves the table arithmetic.
        let p = Integer::from(Integer::u_pow_u(2, 255)).next_prime();
        let q = Integer::from(Integer::u_pow_u(2, 256)).next_prime();
        PublicKey::new_unchecked(p * q)
    }

    #[test]
    fn table_matches_pow_mod_for_edge_and_random_exponents() {
        let pk = test_key();
        for length in [ExponentLength::Short, ExponentLength::HalfModulus] {
            let enc = ShortExponentEncryptor::with_length(&pk, length);
            let l = enc.exponent_bits();
            let top = Integer::from(Integer::u_pow_u(2, l)) - 1u32;
            let mut exps = vec![
                Integer::new(),
                Integer::from(1),
                Integer::from(255),
                Integer::from(256),
                top.clone(),
                Integer::from(&top >> 1u32),
                Integer::from(Integer::u_pow_u(2, l - 1)),
            ];
            for _ in 0..20 {
                exps.push(rng::random_bits(l).unwrap());
            }
            for a in &exps {
                let want = arith::pow_public(enc.nonce_base(), a, pk.n_squared());
                assert_eq!(enc.nonce_for(a), want, "a = {a:x}, {length:?}");
            }
        }
    }

    #[test]
    fn narrow_windows_match_pow_mod() {
        let pk = test_key();
        let hs = Integer::from(12345u32);
        for w in 1..=8 {
            let t = WindowTable::new(&hs, pk.n_squared(), 67, w);
            for _ in 0..10 {
                let a = rng::random_bits(67).unwrap();
                assert_eq!(
                    t.pow_vartime(&a),
                    arith::pow_public(&hs, &a, pk.n_squared()),
                    "w = {w}"
                );
            }
        }
    }

    #[test]
    fn exponent_lengths_follow_key_strength() {
        assert_eq!(ExponentLength::Short.bits(2048), 224);
        assert_eq!(ExponentLength::Short.bits(3072), 256);
        assert_eq!(ExponentLength::Short.bits(7680), 384);
        assert_eq!(ExponentLength::HalfModulus.bits(2048), 1024);
        assert_eq!(ExponentLength::HalfModulus.bits(3072), 1536);
    }

    #[test]
    fn table_stays_within_its_budget() {
        // 3072-bit modulus squared: about 768 bytes per residue.
        let m = Integer::from(Integer::u_pow_u(2, 6144)) - 1u32;
        let default = WindowTable::bytes_for(&m, 256, 8);
        assert_eq!(default, 32 * 255 * 768);
        assert!(default <= TABLE_BUDGET_BYTES);
        // HalfModulus at 3072 bits needs narrower windows to fit.
        assert!(WindowTable::bytes_for(&m, 1536, 8) > TABLE_BUDGET_BYTES);
        assert!(WindowTable::bytes_for(&m, 1536, 6) <= TABLE_BUDGET_BYTES);
    }
}
