//! What one core's Paillier work costs while the other core works: the
//! milliseconds of one 2048-bit decryption and one key-holder encryption on
//! a core alone (the other idle), beside the same operation on the other
//! core, and beside the other operation.
//!
//! ```text
//! cargo run --release --example core_sharing -- [DECRYPTIONS] [ROUNDS]
//! ```
//!
//! On a machine whose cores are independent, each operation costs the same
//! in all three cases. On a virtual machine whose two "cores" share a
//! physical core or are squeezed by its neighbours, they do not: the cost
//! of a decryption then depends on what runs beside it, and a comparison
//! of two ways of running the same work (tiles against the whole image, a
//! resumed run against an uninterrupted one) measures the machine as much
//! as the code. docs/PERFORMANCE.md has the figures of this project's VM.
//!
//! Each case runs DECRYPTIONS decryptions (default 1000) or five times as
//! many encryptions; ROUNDS (default 3) repeats them all, alternated, since
//! such machines drift.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use paillier::{Ciphertext, Integer, Keypair, PrivateKey};

/// Milliseconds per operation of `n` runs of `op`, one after the other.
fn per_op(n: usize, op: impl Fn()) -> f64 {
    let t = Instant::now();
    (0..n).for_each(|_| op());
    t.elapsed().as_secs_f64() / n as f64 * 1e3
}

/// Milliseconds per operation when two threads each run `n` of `op`.
fn per_op_twice(n: usize, op: impl Fn() + Sync) -> f64 {
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| (0..n).for_each(|_| op()));
        (0..n).for_each(|_| op());
    });
    t.elapsed().as_secs_f64() / n as f64 * 1e3
}

/// Milliseconds per decryption and per encryption when one thread runs
/// `n` decryptions and another encrypts for as long.
fn mixed(sk: &PrivateKey, c: &Ciphertext, m: &Integer, n: usize) -> (f64, f64) {
    let stop = AtomicBool::new(false);
    let encryptions = AtomicUsize::new(0);
    let t = Instant::now();
    let took = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                drop(sk.encrypt(m));
                encryptions.fetch_add(1, Ordering::Relaxed);
            }
        });
        (0..n).for_each(|_| drop(sk.decrypt(c)));
        let took = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        took
    });
    let e = encryptions.load(Ordering::Relaxed).max(1);
    (took / n as f64 * 1e3, took / e as f64 * 1e3)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| match args.get(i) {
        None => Ok(default),
        Some(s) => s.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
            format!("usage: core_sharing [DECRYPTIONS] [ROUNDS]: '{s}' is not a positive number")
        }),
    };
    let (n, rounds) = match (number(0, 1000), number(1, 3)) {
        (Ok(n), Ok(r)) => (n, r),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let kp = match Keypair::generate(2048) {
        Ok(kp) => kp,
        Err(e) => {
            eprintln!("key generation: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sk = kp.private_key();
    sk.precompute();
    let m = Integer::from(123_456_789u64);
    let c = match sk.encrypt(&m) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("encryption: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dec = || drop(sk.decrypt(&c));
    let enc = || drop(sk.encrypt(&m));
    println!(
        "ms per operation on one core, 2048 bits; {n} decryptions or {} encryptions a case",
        5 * n
    );
    println!(
        "round  decrypt: alone  beside decrypt  beside encrypt   encrypt: alone  beside encrypt  beside decrypt"
    );
    for r in 1..=rounds {
        let d_alone = per_op(n, dec);
        let e_alone = per_op(5 * n, enc);
        let d_same = per_op_twice(n, dec);
        let e_same = per_op_twice(5 * n, enc);
        let (d_mixed, e_mixed) = mixed(sk, &c, &m, n);
        println!(
            "{r:>5}  {d_alone:>14.3}  {d_same:>14.3}  {d_mixed:>14.3}   {e_alone:>14.3}  {e_same:>14.3}  {e_mixed:>14.3}"
        );
    }
    ExitCode::SUCCESS
}
