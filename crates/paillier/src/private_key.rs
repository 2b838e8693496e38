//! The private key: CRT decryption and fast key-holder encryption.
//!
//! # Key-holder encryption
//!
//! A textbook ciphertext is `(1 + m*n) * r^n mod n^2` with r uniform in
//! `Z*_n`. Modulo `p^2`, `r^n` depends only on `r mod p` and is a uniform
//! element of `G_p`, the subgroup of `p`-th powers of `Z*_{p^2}`, which is
//! cyclic of order `p - 1`; likewise modulo `q^2`, independently. So the key
//! holder draws `u_p = h_p^a` with `h_p` a generator of `G_p` and `a` uniform
//! in `[0, p - 1)` (exactly uniform in `G_p`), the same modulo `q^2`, and joins
//! them by CRT: the same distribution as the textbook, from two half-size
//! fixed-base exponentiations with precomputed comb tables.
//!
//! `h_p` is proven to be a generator: keys generated here have `p - 1 = 2 t p'`
//! with `p'` prime and `t` small, and `h_p = g^p mod p^2` for the smallest
//! primitive root `g` modulo `p`. For imported keys without that structure, and
//! under [`Timing::ConstantTime`], encryption uses `s^p mod p^2` with `s`
//! uniform in `Z*_p` instead (same distribution, slower).

use std::sync::OnceLock;

use rayon::prelude::*;
use rug::ops::RemRounding;
use rug::{Complete, Integer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::arith::{self, FixedBase, Timing};
use crate::ciphertext::Ciphertext;
use crate::encoding;
use crate::error::{Error, Result};
use crate::primes::{self, StructuredPrime};
use crate::public_key::{PublicKey, serde_bytes_compat};
use crate::rng;
use crate::zeroize::{Secret, wipe_integer};

/// One prime factor of n with what is precomputed for it.
struct Half {
    p: Integer,
    pp: Integer,
    pm1: Integer,
    /// `L_p((n+1)^(p-1) mod p^2)^-1 mod p`.
    hp: Integer,
    /// `p'`, the large prime factor of `p - 1`, if known.
    big_factor: Option<Integer>,
    /// A generator of the `p`-th powers modulo `p^2`, if one is proven.
    generator: Option<Integer>,
    table: OnceLock<FixedBase>,
}

impl Clone for Half {
    fn clone(&self) -> Self {
        Half {
            p: self.p.clone(),
            pp: self.pp.clone(),
            pm1: self.pm1.clone(),
            hp: self.hp.clone(),
            big_factor: self.big_factor.clone(),
            generator: self.generator.clone(),
            // The table is rebuilt on demand rather than copied (megabytes).
            table: OnceLock::new(),
        }
    }
}

impl Drop for Half {
    fn drop(&mut self) {
        for x in [&mut self.p, &mut self.pp, &mut self.pm1, &mut self.hp] {
            wipe_integer(x);
        }
        for x in [&mut self.big_factor, &mut self.generator]
            .into_iter()
            .flatten()
        {
            wipe_integer(x);
        }
    }
}

impl Half {
    fn new(p: Integer, n: &Integer, big_factor: Option<Integer>) -> Result<Self> {
        let pp = Integer::from(p.square_ref());
        let pm1 = Integer::from(&p - 1u32);
        let g = Integer::from(n + 1u32);
        let x = arith::pow_public(&g, &pm1, &pp);
        let l = (x - 1u32) / &p;
        let hp = l
            .invert(&p)
            .map_err(|_| Error::InvalidPrivateKey("n and phi(n) are not coprime"))?;
        let factors = big_factor
            .as_ref()
            .and_then(|b| primes::factors_of_p_minus_1(&p, b));
        if big_factor.is_some() && factors.is_none() {
            return Err(Error::InvalidPrivateKey("recorded factor of p-1 is wrong"));
        }
        let generator = factors.map(|fs| {
            let mut g = Integer::from(2);
            while !primes::is_primitive_root(&g, &p, &fs) {
                g += 1;
            }
            arith::pow_public(&g, &p, &pp)
        });
        Ok(Half {
            p,
            pp,
            pm1,
            hp,
            big_factor,
            generator,
            table: OnceLock::new(),
        })
    }

    /// `m mod p` from `c` (already reduced modulo `p^2`).
    fn decrypt(&self, c: &Integer, timing: Timing) -> Result<Integer> {
        let cp = Integer::from(c % &self.pp);
        if cp.is_divisible(&self.p) {
            return Err(Error::CiphertextOutOfRange { bits: 0 });
        }
        let x = arith::pow_secret(&cp, &self.pm1, &self.pp, timing);
        let mut l = (x - 1u32) / &self.p;
        l *= &self.hp;
        l %= &self.p;
        Ok(l)
    }

    /// A uniform element of the `p`-th powers modulo `p^2`.
    fn random_pth_power(&self, timing: Timing) -> Result<Integer> {
        match (&self.generator, timing) {
            (Some(h), Timing::Fast) => {
                let table = self
                    .table
                    .get_or_init(|| FixedBase::new(h, &self.pp, self.pm1.significant_bits()));
                let a = Secret(rng::random_below(&self.pm1)?);
                Ok(table.pow(&a))
            }
            _ => {
                let s = Secret(rng::random_unit(&self.p)?);
                Ok(arith::pow_secret(&s, &self.p, &self.pp, timing))
            }
        }
    }
}

/// The x modulo `mp * mq` with `x = xp mod mp` and `x = xq mod mq`, given
/// `inv = mq^-1 mod mp` (Garner): `xq + mq * ((xp - xq) * inv mod mp)`.
fn crt_join(xp: Integer, xq: Integer, inv: &Integer, mp: &Integer, mq: &Integer) -> Integer {
    let mut t = xp - &xq;
    t *= inv;
    t = t.rem_euc(mp);
    t *= mq;
    t += xq;
    t
}

/// A Paillier private key: the factors p and q of n, with what decryption
/// and fast encryption precompute from them.
///
/// Its `Debug` output shows no secret. It holds its [`PublicKey`].
#[derive(Clone)]
pub struct PrivateKey {
    public: PublicKey,
    p: Half,
    q: Half,
    /// `q^-1 mod p`, to join plaintext halves.
    q_inv_p: Integer,
    /// `(q^2)^-1 mod p^2`, to join ciphertext halves.
    qq_inv_pp: Integer,
    timing: Timing,
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        wipe_integer(&mut self.q_inv_p);
        wipe_integer(&mut self.qq_inv_pp);
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("public", &self.public)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Makes a private key from the primes p and q, checking them.
    ///
    /// They must be distinct probable primes of the same size, with n of an
    /// accepted size and `gcd(n, (p-1)(q-1)) = 1`. A key made this way
    /// encrypts with the slower `s^p` method; keys from
    /// [`Keypair::generate`](crate::Keypair::generate) use precomputed tables.
    pub fn from_primes(p: Integer, q: Integer) -> Result<Self> {
        Self::from_parts(p, q, None, None)
    }

    fn from_parts(
        p: Integer,
        q: Integer,
        p_factor: Option<Integer>,
        q_factor: Option<Integer>,
    ) -> Result<Self> {
        if p <= 2 || q <= 2 || !primes::is_prime(&p) || !primes::is_prime(&q) {
            return Err(Error::InvalidPrivateKey("p and q must be odd primes"));
        }
        if p == q {
            return Err(Error::InvalidPrivateKey("p and q are equal"));
        }
        if p.significant_bits() != q.significant_bits() {
            return Err(Error::InvalidPrivateKey("p and q differ in size"));
        }
        let n = Integer::from(&p * &q);
        crate::check_key_bits(n.significant_bits())?;
        let phi = Integer::from(&p - 1u32) * Integer::from(&q - 1u32);
        if n.gcd_ref(&phi).complete() != 1 {
            return Err(Error::InvalidPrivateKey("n and phi(n) are not coprime"));
        }
        let ph = Half::new(p, &n, p_factor)?;
        let qh = Half::new(q, &n, q_factor)?;
        let q_inv_p = Integer::from(&qh.p % &ph.p)
            .invert(&ph.p)
            .map_err(|_| Error::InvalidPrivateKey("q is not invertible modulo p"))?;
        let qq_inv_pp = Integer::from(&qh.pp % &ph.pp)
            .invert(&ph.pp)
            .map_err(|_| Error::InvalidPrivateKey("q^2 is not invertible modulo p^2"))?;
        Ok(PrivateKey {
            public: PublicKey::new_unchecked(n),
            p: ph,
            q: qh,
            q_inv_p,
            qq_inv_pp,
            timing: Timing::Fast,
        })
    }

    pub(crate) fn from_structured(p: StructuredPrime, q: StructuredPrime) -> Result<Self> {
        Self::from_parts(p.p, q.p, Some(p.big_factor), Some(q.big_factor))
    }

    /// The public key.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The timing behaviour of operations on secrets (see [`Timing`]).
    #[must_use]
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Chooses the timing behaviour of operations on secrets (see [`Timing`]).
    pub fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
        self.public.set_timing(timing);
    }

    /// Builds the fixed-base tables now rather than on the first encryption
    /// (about 0.1 s and 16 MiB for a 2048-bit key).
    pub fn precompute(&self) {
        for h in [&self.p, &self.q] {
            if let Some(g) = &h.generator {
                h.table
                    .get_or_init(|| FixedBase::new(g, &h.pp, h.pm1.significant_bits()));
            }
        }
    }

    /// Decrypts to a signed plaintext in `[-(n-1)/2, (n-1)/2]`.
    pub fn decrypt(&self, c: &Ciphertext) -> Result<Integer> {
        Ok(self.public.decode_signed(self.decrypt_raw(c)?))
    }

    /// Decrypts to the plaintext residue in `[0, n)`.
    pub(crate) fn decrypt_raw(&self, c: &Ciphertext) -> Result<Integer> {
        let bad = || Error::CiphertextOutOfRange {
            bits: self.public.bits(),
        };
        let c = c.as_integer();
        if *c <= 0 || c >= self.public.n_squared() {
            return Err(bad());
        }
        let (mp, mq) = rayon::join(
            || self.p.decrypt(c, self.timing),
            || self.q.decrypt(c, self.timing),
        );
        let (mp, mq) = (mp.map_err(|_| bad())?, mq.map_err(|_| bad())?);
        Ok(crt_join(mp, mq, &self.q_inv_p, &self.p.p, &self.q.p))
    }

    /// Decrypts many ciphertexts in parallel (rayon).
    pub fn decrypt_many(&self, cs: &[Ciphertext]) -> Result<Vec<Integer>> {
        cs.par_iter().map(|c| self.decrypt(c)).collect()
    }

    /// Decrypts many ciphertexts to residues in `[0, n)`, in parallel.
    pub(crate) fn decrypt_many_raw(&self, cs: &[Ciphertext]) -> Result<Vec<Integer>> {
        cs.par_iter().map(|c| self.decrypt_raw(c)).collect()
    }

    /// `r^n mod n^2` for a fresh uniform r, computed by CRT.
    fn random_nth_power(&self) -> Result<Integer> {
        let up = self.p.random_pth_power(self.timing)?;
        let uq = self.q.random_pth_power(self.timing)?;
        Ok(crt_join(up, uq, &self.qq_inv_pp, &self.p.pp, &self.q.pp))
    }

    /// Encrypts a signed plaintext; same distribution as
    /// [`PublicKey::encrypt`], several times faster (see the module docs).
    pub fn encrypt(&self, m: &Integer) -> Result<Ciphertext> {
        let m = self.public.encode_signed(m)?;
        Ok(self.public.combine(&m, self.random_nth_power()?))
    }

    /// Encrypts a residue in `[0, n)`.
    pub(crate) fn encrypt_raw(&self, m: &Integer) -> Result<Ciphertext> {
        if *m < 0 || m >= self.public.n() {
            return Err(Error::PlaintextOutOfRange {
                bits: self.public.bits(),
                max_bits: self.public.bits(),
            });
        }
        Ok(self.public.combine(m, self.random_nth_power()?))
    }

    /// Encrypts many signed plaintexts in parallel (rayon).
    pub fn encrypt_many(&self, ms: &[Integer]) -> Result<Vec<Ciphertext>> {
        self.precompute();
        ms.par_iter().map(|m| self.encrypt(m)).collect()
    }

    fn repr(&self) -> KeypairRepr {
        KeypairRepr {
            n: encoding::to_be_bytes(self.public.n()),
            p: encoding::to_be_bytes(&self.p.p),
            q: encoding::to_be_bytes(&self.q.p),
            p_factor: self
                .p
                .big_factor
                .as_ref()
                .map(encoding::to_be_bytes)
                .unwrap_or_default(),
            q_factor: self
                .q
                .big_factor
                .as_ref()
                .map(encoding::to_be_bytes)
                .unwrap_or_default(),
        }
    }

    pub(crate) fn to_file_bytes(&self) -> Vec<u8> {
        crate::file::encode(crate::file::Kind::Keypair, &self.repr())
    }

    pub(crate) fn from_file_bytes(bytes: &[u8]) -> Result<Self> {
        let repr: KeypairRepr = crate::file::decode(crate::file::Kind::Keypair, bytes)?;
        repr.into_key()
    }
}

/// The serialized form of a private key: n (to check consistency), p, q,
/// and the large factors of p-1 and q-1 when known (empty otherwise).
#[derive(Serialize, Deserialize)]
struct KeypairRepr {
    #[serde(with = "serde_bytes_compat")]
    n: Vec<u8>,
    #[serde(with = "serde_bytes_compat")]
    p: Vec<u8>,
    #[serde(with = "serde_bytes_compat")]
    q: Vec<u8>,
    #[serde(with = "serde_bytes_compat")]
    p_factor: Vec<u8>,
    #[serde(with = "serde_bytes_compat")]
    q_factor: Vec<u8>,
}

impl Drop for KeypairRepr {
    fn drop(&mut self) {
        rng::wipe(&mut self.p);
        rng::wipe(&mut self.q);
    }
}

impl KeypairRepr {
    fn into_key(self) -> Result<PrivateKey> {
        let max = crate::MAX_KEY_BITS as usize / 8;
        let int = |b: &[u8], what| {
            encoding::from_be_bytes(b, max, what).map_err(|reason| Error::Malformed {
                what: "private key",
                reason,
            })
        };
        let opt = |b: &[u8], what| -> Result<Option<Integer>> {
            if b.is_empty() {
                Ok(None)
            } else {
                int(b, what).map(Some)
            }
        };
        let n = int(&self.n, "n")?;
        let sk = PrivateKey::from_parts(
            int(&self.p, "p")?,
            int(&self.q, "q")?,
            opt(&self.p_factor, "factor of p-1")?,
            opt(&self.q_factor, "factor of q-1")?,
        )?;
        if *sk.public.n() != n {
            return Err(Error::KeyMismatch);
        }
        Ok(sk)
    }
}

impl Serialize for PrivateKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.repr().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PrivateKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        KeypairRepr::deserialize(d)?
            .into_key()
            .map_err(serde::de::Error::custom)
    }
}

/// Generates a key of `bits` bits; below [`MIN_KEY_BITS`](crate::MIN_KEY_BITS)
/// only when `small` (a test constructor, which has also allowed loading
/// small keys in this process).
pub(crate) fn generate(bits: u32, small: bool) -> Result<PrivateKey> {
    crate::check_key_bits_from(bits, small)?;
    if !bits.is_multiple_of(2) {
        return Err(Error::KeySize {
            bits,
            reason: "must be even (p and q have half the bits each)",
        });
    }
    loop {
        let (p, q) = rayon::join(
            || primes::structured_prime(bits / 2),
            || primes::structured_prime(bits / 2),
        );
        let (p, q) = (p?, q?);
        if p.p == q.p {
            continue;
        }
        match PrivateKey::from_structured(p, q) {
            Ok(sk) => return Ok(sk),
            Err(Error::InvalidPrivateKey(_)) => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed-base generator must have order exactly p - 1 modulo p^2
    /// (and lie in the p-th powers), or the nonces would not be uniform.
    #[test]
    fn generators_have_full_order_in_the_pth_powers() {
        for bits in [128, 256, 512] {
            let sk = test_key(bits);
            for h in [&sk.p, &sk.q] {
                let g = h
                    .generator
                    .as_ref()
                    .expect("generated keys carry a generator");
                // In the p-th powers: g^(p-1) = 1 mod p^2.
                assert_eq!(arith::pow_public(g, &h.pm1, &h.pp), 1);
                let fs = primes::factors_of_p_minus_1(&h.p, h.big_factor.as_ref().expect("factor"))
                    .expect("structure");
                assert!(fs.contains(&Integer::from(2)));
                for f in fs {
                    let e = Integer::from(&h.pm1 / &f);
                    assert_ne!(
                        arith::pow_public(g, &e, &h.pp),
                        1,
                        "order divides (p-1)/{f}"
                    );
                }
            }
        }
    }

    #[test]
    fn fixed_base_table_matches_pow_mod() {
        let sk = test_key(256);
        let h = &sk.p;
        let g = h.generator.as_ref().expect("generator");
        let t = FixedBase::new(g, &h.pp, h.pm1.significant_bits());
        for a in [
            Integer::from(0),
            Integer::from(1),
            Integer::from(255),
            Integer::from(256),
            Integer::from(&h.pm1 - 1u32),
        ] {
            assert_eq!(t.pow(&a), arith::pow_public(g, &a, &h.pp), "a = {a}");
        }
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let sk = test_key(256);
        let dbg = format!("{sk:?} {:?}", Keypair::from(sk.clone()));
        for secret in [&sk.p.p, &sk.q.p] {
            assert!(!dbg.contains(&secret.to_string()));
            assert!(!dbg.contains(&secret.to_string_radix(16)));
        }
        assert!(dbg.contains("PrivateKey"));
    }

    use crate::Keypair;

    fn test_key(bits: u32) -> PrivateKey {
        Keypair::generate_insecure_for_tests(bits)
            .expect("keygen")
            .into_private_key()
    }
}
