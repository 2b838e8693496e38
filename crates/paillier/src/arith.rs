//! Private arithmetic: exponentiation with a choice of timing behaviour, and
//! fixed-base comb tables.

use rug::Integer;

/// How exponentiations with secret operands are computed.
///
/// The threat model of this toolkit puts the adversary on the server and the
/// network; the key holder's machine is trusted. Secret-dependent operations
/// (decryption, key-holder encryption) run only there, so by default they use
/// GMP's fastest routines, whose timing and memory access pattern depend on
/// the secret exponent. [`Timing::ConstantTime`] switches every exponentiation
/// with a secret exponent or base to GMP's `mpz_powm_sec` and disables the
/// table-driven encryption (whose table index is secret), at a measured cost
/// of about 1.6x for decryption and about 5x for key-holder encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Timing {
    /// Fastest routines; timing may depend on secrets (see the type's docs).
    #[default]
    Fast,
    /// Every exponentiation involving a secret goes through `secure_pow_mod`.
    ConstantTime,
}

#[cfg(any(test, feature = "insecure-test-keys"))]
pub(crate) static SECRET_POWS_CT: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);
#[cfg(any(test, feature = "insecure-test-keys"))]
pub(crate) static SECRET_POWS_VARTIME: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// `base^exp mod m` where base or exponent is secret. `exp >= 0`, `m` odd.
pub(crate) fn pow_secret(base: &Integer, exp: &Integer, m: &Integer, timing: Timing) -> Integer {
    debug_assert!(*exp >= 0 && m.is_odd());
    match timing {
        Timing::ConstantTime => {
            #[cfg(any(test, feature = "insecure-test-keys"))]
            SECRET_POWS_CT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // mpz_powm_sec needs exp > 0 and an odd modulus.
            if *exp == 0 {
                return Integer::from(1);
            }
            Integer::from(base.secure_pow_mod_ref(exp, m))
        }
        Timing::Fast => {
            #[cfg(any(test, feature = "insecure-test-keys"))]
            SECRET_POWS_VARTIME.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            pow_public(base, exp, m)
        }
    }
}

/// `base^exp mod m` with public operands (`exp >= 0`), variable time.
pub(crate) fn pow_public(base: &Integer, exp: &Integer, m: &Integer) -> Integer {
    match base.pow_mod_ref(exp, m) {
        Some(v) => Integer::from(v),
        // Only a negative exponent without an inverse fails; callers pass
        // exp >= 0, so this is unreachable, and 1 keeps the maths total.
        None => Integer::from(1),
    }
}

/// Window width of [`FixedBase`] tables, in bits.
const WINDOW: u32 = 8;

/// A fixed-base comb table: `table[i][d-1] = h^(d * 2^(8i)) mod m` for
/// `d` in `1..256`, so that `h^a` for `a < 2^(8 * windows)` is a product of
/// one table entry per non-zero byte of `a`.
///
/// For a 1024-bit exponent modulo a 2048-bit `m` this is 128 modular
/// products instead of about 1024 squarings: about 5x faster than
/// `pow_mod`. The table index is the secret exponent's bytes, so lookups are
/// not constant-time; see [`Timing`].
pub(crate) struct FixedBase {
    m: Integer,
    table: Vec<Vec<Integer>>,
}

impl Drop for FixedBase {
    fn drop(&mut self) {
        // Powers of a generator modulo p^2: secret like p itself.
        crate::zeroize::wipe_integer(&mut self.m);
        for row in &mut self.table {
            row.iter_mut().for_each(crate::zeroize::wipe_integer);
        }
    }
}

impl std::fmt::Debug for FixedBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedBase")
            .field("windows", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl FixedBase {
    /// Builds the table for exponents below `2^exp_bits`.
    pub(crate) fn new(h: &Integer, m: &Integer, exp_bits: u32) -> Self {
        let windows = exp_bits.div_ceil(WINDOW) as usize;
        let mut table = Vec::with_capacity(windows);
        let mut base = Integer::from(h % m);
        for _ in 0..windows {
            let mut row = Vec::with_capacity((1 << WINDOW) - 1);
            let mut acc = base.clone();
            row.push(acc.clone());
            for _ in 2..(1u32 << WINDOW) {
                acc *= &base;
                acc %= m;
                row.push(acc.clone());
            }
            // next base = base^(2^WINDOW) = acc * base
            acc *= &base;
            acc %= m;
            base = acc;
            table.push(row);
        }
        FixedBase {
            m: m.clone(),
            table,
        }
    }

    /// `h^a mod m` for `0 <= a < 2^(8 * windows)`.
    pub(crate) fn pow(&self, a: &Integer) -> Integer {
        debug_assert!(*a >= 0 && a.significant_bits() as usize <= self.table.len() * 8);
        let mut digits = a.to_digits::<u8>(rug::integer::Order::Lsf);
        let mut acc = Integer::from(1);
        for (row, &d) in self.table.iter().zip(digits.iter()) {
            if d != 0 {
                acc *= &row[usize::from(d) - 1];
                acc %= &self.m;
            }
        }
        crate::rng::wipe(&mut digits);
        acc
    }
}

/// Bytes needed for `bits` bits.
pub(crate) fn byte_len(bits: u32) -> usize {
    bits.div_ceil(8) as usize
}
