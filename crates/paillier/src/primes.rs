//! Prime generation for key generation.
//!
//! Each prime is generated as `p = 2*t*p' + 1` with `p'` a large random prime
//! and `t` small, so that the factorisation of `p - 1` is known. That lets
//! the key holder prove that a chosen element generates the subgroup of
//! `p`-th powers modulo `p^2`, which is what makes the fast fixed-base
//! encryption produce exactly the textbook distribution of ciphertexts
//! (see `crate::private_key`). A large prime factor of `p - 1` also rules out
//! Pollard's p-1 method.

use rug::Integer;
use rug::integer::IsPrime;
use rug::ops::DivRounding;

use crate::error::Result;
use crate::rng;

/// Miller-Rabin repetitions on top of GMP's Baillie-PSW test.
pub(crate) const PRIME_REPS: u32 = 40;

/// Bits of the small cofactor `t` (and so of the search range).
const T_BITS: u32 = 20;

/// A prime of exactly `bits` bits whose two top bits are set (so that the
/// product of two such primes has exactly `2*bits` bits), together with the
/// distinct prime factors of `p - 1`.
#[derive(Debug, Clone)]
pub(crate) struct StructuredPrime {
    pub(crate) p: Integer,
    /// `p'`, the large prime factor of `p - 1`.
    pub(crate) big_factor: Integer,
}

pub(crate) fn is_prime(x: &Integer) -> bool {
    x.is_probably_prime(PRIME_REPS) != IsPrime::No
}

/// A uniform random prime of exactly `bits` bits (top bit set).
fn random_prime(bits: u32) -> Result<Integer> {
    loop {
        let mut x = rng::random_bits(bits)?;
        x.set_bit(bits - 1, true);
        x.set_bit(0, true);
        if is_prime(&x) {
            return Ok(x);
        }
    }
}

/// Generates a [`StructuredPrime`] of `bits` bits (`bits >= 48`).
pub(crate) fn structured_prime(bits: u32) -> Result<StructuredPrime> {
    assert!(bits >= 48, "prime size too small");
    // p lies in [3 * 2^(bits-2), 2^bits): the two top bits set.
    let lo = Integer::from(3) << (bits - 2);
    let hi = Integer::from(1) << bits;
    loop {
        let big = random_prime(bits - T_BITS - 1)?;
        let two_big = Integer::from(&big << 1);
        // t in [ceil((lo - 1) / 2p'), floor((hi - 2) / 2p')]
        let tmin = Integer::from(&lo - 1).div_ceil(&two_big);
        let tmax = Integer::from(&hi - 2).div_floor(&two_big);
        if tmax < tmin {
            continue;
        }
        let span = Integer::from(&tmax - &tmin) + 1u32;
        // A few hundred tries find a prime with overwhelming probability;
        // otherwise start over with a new p'.
        for _ in 0..20 * bits {
            let t = rng::random_below(&span)? + &tmin;
            let p = Integer::from(&t * &two_big) + 1u32;
            if is_prime(&p) {
                debug_assert_eq!(p.significant_bits(), bits);
                return Ok(StructuredPrime { p, big_factor: big });
            }
        }
    }
}

/// The distinct prime factors of `p - 1`, given its large prime factor `p'`
/// (the cofactor `(p - 1) / p'` must be small enough to factor by trial
/// division). Returns `None` if the structure does not hold.
pub(crate) fn factors_of_p_minus_1(p: &Integer, big: &Integer) -> Option<Vec<Integer>> {
    let pm1 = Integer::from(p - 1u32);
    if *big <= 1 || !pm1.is_divisible(big) || !is_prime(big) {
        return None;
    }
    let cof = Integer::from(&pm1 / big);
    let mut t = cof.to_u64()?;
    if t > 1 << (T_BITS + 2) {
        return None;
    }
    let mut out = vec![big.clone()];
    let mut f = 2u64;
    while f * f <= t {
        if t % f == 0 {
            out.push(Integer::from(f));
            while t % f == 0 {
                t /= f;
            }
        }
        f += 1;
    }
    if t > 1 {
        out.push(Integer::from(t));
    }
    out.dedup();
    Some(out)
}

/// Whether `g` is a primitive root modulo the prime `p`, given the distinct
/// prime factors of `p - 1`.
pub(crate) fn is_primitive_root(g: &Integer, p: &Integer, factors: &[Integer]) -> bool {
    let pm1 = Integer::from(p - 1u32);
    factors.iter().all(|f| {
        let e = Integer::from(&pm1 / f);
        g.clone().pow_mod(&e, p).map(|v| v != 1).unwrap_or(false)
    })
}
