//! Wiping secret integers from memory when they are dropped.
//!
//! rug's `Integer` has no zeroize support, so this module holds the one
//! reviewed `unsafe` block of the workspace: it overwrites the limbs GMP
//! allocated for an integer, with volatile stores the optimiser may not
//! remove, before the integer is freed.
//!
//! What this covers, and what it does not: the final value of every secret
//! the private key holds (p, q, their squares, the CRT constants, the
//! fixed-base tables) and the nonce exponents of key-holder encryption are
//! wiped. GMP's own temporaries inside `mpz_powm` and friends, and buffers
//! GMP reallocated while a value grew, are freed without wiping: GMP offers
//! no hook for that short of replacing its allocator. The key holder's
//! machine is trusted in this toolkit's threat model (see the README), so
//! this is defence in depth against memory disclosure after the fact, not a
//! guarantee.

use rug::Integer;

/// Overwrites the limbs of `x` with zeros (volatile stores) and sets it to 0.
#[allow(unsafe_code)]
pub(crate) fn wipe_integer(x: &mut Integer) {
    let raw = x.as_raw_mut();
    // SAFETY: `raw` points to the live `mpz_t` of `x`, which we borrow
    // mutably for the whole block, so nothing else reads or writes it. GMP
    // guarantees that `d` points to `alloc` limbs owned by this integer
    // (`alloc` may be 0 for an integer that never allocated, in which case
    // no store happens). We only overwrite those limbs, never the pointer or
    // the allocation size, so the integer stays valid for GMP to free.
    unsafe {
        let alloc = usize::try_from((*raw).alloc).unwrap_or(0);
        let limbs = (*raw).d.as_ptr();
        for i in 0..alloc {
            std::ptr::write_volatile(limbs.add(i), 0);
        }
        // Size 0 is the integer 0: consistent with the zeroed limbs.
        (*raw).size = 0;
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// An `Integer` that is wiped when dropped.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Secret(pub(crate) Integer);

impl Drop for Secret {
    fn drop(&mut self) {
        wipe_integer(&mut self.0);
    }
}

impl std::ops::Deref for Secret {
    type Target = Integer;
    fn deref(&self) -> &Integer {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn wipe_zeroes_every_allocated_limb() {
        let mut x: Integer = Integer::from(1) << 4000;
        x -= 12345;
        let (limbs, alloc) = {
            let raw = x.as_raw();
            // SAFETY: reading the fields of a live mpz_t.
            unsafe {
                (
                    (*raw).d.as_ptr(),
                    usize::try_from((*raw).alloc).unwrap_or(0),
                )
            }
        };
        assert!(alloc >= 4000 / 64);
        wipe_integer(&mut x);
        assert_eq!(x, 0);
        // The same allocation is still owned by x (nothing was freed), so
        // reading it is sound; every limb must be zero.
        for i in 0..alloc {
            // SAFETY: `limbs` points to `alloc` limbs owned by `x`, alive.
            assert_eq!(
                unsafe { std::ptr::read_volatile(limbs.add(i)) },
                0,
                "limb {i}"
            );
        }
        // The integer is still usable.
        x += 7;
        assert_eq!(x, 7);
    }

    #[test]
    fn secret_debug_shows_nothing() {
        let s = Secret(Integer::from(0xdead_beef_u32));
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert_eq!(*s, 0xdead_beef_u32);
    }
}
