//! Known-answer tests against vectors computed independently in Python
//! (`tests/data/make_kat.py`, textbook formulas with `pow`).
#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

use paillier::{Integer, PrivateKey};

fn hex(s: &str) -> Integer {
    Integer::from_str_radix(s, 16).expect("hex")
}

struct Kat {
    sk: PrivateKey,
    cases: Vec<(Integer, Integer, Integer)>,
}

fn load() -> Kat {
    // The vectors use a 256-bit key: a test key, loaded by name.
    paillier::insecure_test_keys::allow_in_this_process();
    let text = include_str!("data/kat.txt");
    let mut p = None;
    let mut q = None;
    let mut n = None;
    let mut cases = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["p", v] => p = Some(hex(v)),
            ["q", v] => q = Some(hex(v)),
            ["n", v] => n = Some(hex(v)),
            ["kat", m, r, c] => cases.push((m.parse::<Integer>().expect("m"), hex(r), hex(c))),
            _ => panic!("bad line {line}"),
        }
    }
    let sk = PrivateKey::from_primes(p.expect("p"), q.expect("q")).expect("key");
    assert_eq!(sk.public_key().n(), &n.expect("n"));
    assert!(cases.len() >= 10);
    Kat { sk, cases }
}

#[test]
fn encryption_with_fixed_nonce_matches_python() {
    let kat = load();
    let pk = kat.sk.public_key();
    for (m, r, c) in &kat.cases {
        let got = paillier::hazmat::encrypt_with_nonce(pk, m, r).expect("encrypt");
        assert_eq!(got.as_integer(), c, "m = {m}");
    }
}

#[test]
fn decryption_matches_python() {
    let kat = load();
    let pk = kat.sk.public_key();
    for (m, _, c) in &kat.cases {
        let ct = pk
            .ciphertext_from_integer(c.clone())
            .expect("valid ciphertext");
        assert_eq!(&kat.sk.decrypt(&ct).expect("decrypt"), m);
    }
}

#[test]
fn homomorphic_sum_of_vectors_matches_python_plaintexts() {
    let kat = load();
    let pk = kat.sk.public_key();
    let (m1, _, c1) = &kat.cases[5]; // 42
    let (m2, _, c2) = &kat.cases[8]; // 123456789
    let a = pk.ciphertext_from_integer(c1.clone()).expect("c1");
    let b = pk.ciphertext_from_integer(c2.clone()).expect("c2");
    assert_eq!(
        kat.sk.decrypt(&pk.add(&a, &b)).expect("dec"),
        Integer::from(m1 + m2)
    );
    assert_eq!(
        kat.sk.decrypt(&pk.sub(&a, &b)).expect("dec"),
        Integer::from(m1 - m2)
    );
}
