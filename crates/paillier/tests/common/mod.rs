//! Shared helpers for the integration tests: cached small test keys and
//! plaintext strategies skewed to the edges of the range.
#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::OnceLock;

use paillier::{Integer, Keypair};
use proptest::prelude::*;

/// A 512-bit key pair generated once per test binary (test-only sizes).
pub fn keypair() -> &'static Keypair {
    static KP: OnceLock<Keypair> = OnceLock::new();
    KP.get_or_init(|| Keypair::generate_insecure_for_tests(512).expect("keygen"))
}

/// Signed plaintexts for `kp`: the edges (0, +-1, +-max, +-(max-1)) and
/// uniform values of the whole range.
pub fn plaintext(kp: &'static Keypair) -> impl Strategy<Value = Integer> {
    let max = kp.public_key().max_plaintext().clone();
    let span = Integer::from(&max * 2) + 1;
    let edges = {
        let max = max.clone();
        prop_oneof![
            Just(Integer::from(0)),
            Just(Integer::from(1)),
            Just(Integer::from(-1)),
            Just(max.clone()),
            Just(Integer::from(-&max)),
            Just(Integer::from(&max - 1)),
            Just(Integer::from(1 - &max)),
        ]
    };
    let uniform = proptest::collection::vec(any::<u8>(), 80).prop_map(move |bytes| {
        let x = Integer::from_digits(&bytes, rug::integer::Order::Msf);
        (x % &span) - &max
    });
    let small = any::<i32>().prop_map(Integer::from);
    prop_oneof![2 => edges, 3 => uniform, 2 => small]
}
