//! Property tests of the homomorphic identities and of the two encryption
//! paths, on random signed plaintexts skewed to the edges of the range.
#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use common::{keypair, plaintext};
use paillier::{Integer, hazmat};
use proptest::prelude::*;
use rug::ops::RemRounding;

/// `x` reduced into the signed plaintext range of the test key.
fn signed_mod_n(x: Integer) -> Integer {
    let pk = keypair().public_key();
    let r = x.rem_euc(pk.n());
    if &r > pk.max_plaintext() {
        r - pk.n()
    } else {
        r
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn public_and_key_holder_encryption_decrypt_alike(m in plaintext(keypair())) {
        let kp = keypair();
        let (pk, sk) = (kp.public_key(), kp.private_key());
        let a = pk.encrypt(&m).unwrap();
        let b = sk.encrypt(&m).unwrap();
        prop_assert!(pk.validate(&a).is_ok() && pk.validate(&b).is_ok());
        prop_assert_eq!(sk.decrypt(&a).unwrap(), m.clone());
        prop_assert_eq!(sk.decrypt(&b).unwrap(), m);
        // Fresh randomness: encrypting twice gives different ciphertexts.
        prop_assert_ne!(a, b);
    }

    #[test]
    fn add_sub_neg(a in plaintext(keypair()), b in plaintext(keypair())) {
        let kp = keypair();
        let (pk, sk) = (kp.public_key(), kp.private_key());
        let (ca, cb) = (sk.encrypt(&a).unwrap(), pk.encrypt(&b).unwrap());
        prop_assert_eq!(sk.decrypt(&pk.add(&ca, &cb)).unwrap(), signed_mod_n(Integer::from(&a + &b)));
        prop_assert_eq!(sk.decrypt(&pk.sub(&ca, &cb)).unwrap(), signed_mod_n(Integer::from(&a - &b)));
        prop_assert_eq!(sk.decrypt(&pk.neg(&ca)).unwrap(), signed_mod_n(Integer::from(-&a)));
    }

    #[test]
    fn mul_plain_and_add_plain(a in plaintext(keypair()), k in plaintext(keypair()), s in any::<i64>()) {
        let kp = keypair();
        let (pk, sk) = (kp.public_key(), kp.private_key());
        let ca = sk.encrypt(&a).unwrap();
        prop_assert_eq!(sk.decrypt(&pk.mul_plain(&ca, &k)).unwrap(), signed_mod_n(Integer::from(&a * &k)));
        let s = Integer::from(s);
        prop_assert_eq!(sk.decrypt(&pk.mul_plain(&ca, &s)).unwrap(), signed_mod_n(Integer::from(&a * &s)));
        prop_assert_eq!(sk.decrypt(&pk.add_plain(&ca, &k)).unwrap(), signed_mod_n(Integer::from(&a + &k)));
    }

    #[test]
    fn rerandomize_keeps_plaintext_changes_ciphertext(a in plaintext(keypair())) {
        let kp = keypair();
        let (pk, sk) = (kp.public_key(), kp.private_key());
        let ca = sk.encrypt(&a).unwrap();
        let cr = pk.rerandomize(&ca).unwrap();
        prop_assert_ne!(&ca, &cr);
        prop_assert_eq!(sk.decrypt(&cr).unwrap(), a);
    }

    #[test]
    fn raw_residues_round_trip(bytes in proptest::collection::vec(any::<u8>(), 64)) {
        let kp = keypair();
        let (pk, sk) = (kp.public_key(), kp.private_key());
        let m = Integer::from_digits(&bytes, rug::integer::Order::Msf) % pk.n();
        prop_assert_eq!(hazmat::decrypt_raw(sk, &hazmat::encrypt_raw(sk, &m).unwrap()).unwrap(), m.clone());
        prop_assert_eq!(hazmat::decrypt_raw(sk, &hazmat::encrypt_raw(pk, &m).unwrap()).unwrap(), m);
    }
}

#[test]
fn out_of_range_plaintexts_are_refused_not_reduced() {
    let kp = keypair();
    let (pk, sk) = (kp.public_key(), kp.private_key());
    let too_big = Integer::from(pk.max_plaintext() + 1);
    let too_small = Integer::from(-&too_big);
    for m in [&too_big, &too_small, pk.n()] {
        assert!(matches!(
            pk.encrypt(m),
            Err(paillier::Error::PlaintextOutOfRange { .. })
        ));
        assert!(matches!(
            sk.encrypt(m),
            Err(paillier::Error::PlaintextOutOfRange { .. })
        ));
    }
    assert!(hazmat::encrypt_raw(pk, pk.n()).is_err());
    assert!(hazmat::encrypt_raw(pk, &Integer::from(-1)).is_err());
    assert!(hazmat::encrypt_raw(sk, pk.n()).is_err());
}

#[test]
fn batches_match_single_operations() {
    let kp = keypair();
    let (pk, sk) = (kp.public_key(), kp.private_key());
    let ms: Vec<Integer> = (-20..20).map(|i| Integer::from(i * 1_000_003)).collect();
    assert_eq!(sk.decrypt_many(&pk.encrypt_many(&ms).unwrap()).unwrap(), ms);
    assert_eq!(sk.decrypt_many(&sk.encrypt_many(&ms).unwrap()).unwrap(), ms);
}

#[test]
fn key_holder_ciphertexts_of_zero_never_repeat() {
    // Fresh nonces every time: 2000 encryptions of 0 are all distinct and
    // all decrypt to 0 (a stuck or reused nonce would show up here).
    let sk = keypair().private_key();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2000 {
        let c = sk.encrypt(&Integer::from(0)).unwrap();
        assert_eq!(sk.decrypt(&c).unwrap(), 0);
        assert!(seen.insert(c.into_integer()));
    }
}
