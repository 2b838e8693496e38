//! Randomness from the operating system's CSPRNG, and only from it.
//!
//! GMP's `RandState` is a Mersenne Twister and is never used for anything
//! here: keys, primes and nonces all come from `getrandom`.

use rug::integer::Order;
use rug::{Complete, Integer};

use crate::error::{Error, Result};

/// Fills `buf` from the OS CSPRNG.
pub(crate) fn fill(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(Error::Rng)
}

/// A uniform integer in `[0, 2^bits)`.
pub(crate) fn random_bits(bits: u32) -> Result<Integer> {
    let nbytes = bits.div_ceil(8) as usize;
    let mut buf = vec![0u8; nbytes];
    fill(&mut buf)?;
    let extra = (nbytes as u32) * 8 - bits;
    if extra > 0 {
        buf[0] &= 0xff >> extra;
    }
    let x = Integer::from_digits(&buf, Order::Msf);
    wipe(&mut buf);
    Ok(x)
}

/// A uniform integer in `[0, bound)` by rejection sampling (bound > 0).
pub(crate) fn random_below(bound: &Integer) -> Result<Integer> {
    debug_assert!(*bound > 0);
    let bits = bound.significant_bits();
    loop {
        let x = random_bits(bits)?;
        if x < *bound {
            return Ok(x);
        }
    }
}

/// A uniform element of `Z*_m` (m > 1).
pub(crate) fn random_unit(m: &Integer) -> Result<Integer> {
    loop {
        let r = random_below(m)?;
        if r != 0 && r.gcd_ref(m).complete() == 1 {
            return Ok(r);
        }
    }
}

/// Overwrites a byte buffer that held secret material.
pub(crate) fn wipe(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        // Plain stores could be optimised away as dead; `black_box` below
        // makes the buffer observable so they are kept (best effort).
        *b = 0;
    }
    std::hint::black_box(buf);
}
