//! The short-exponent (Damgard-Jurik-Nielsen) public-key encryption mode:
//! its ciphertexts decrypt with the unchanged private key and take every
//! homomorphic operation; `h` is derived from n as documented and has the
//! right form; the table gives what `pow_mod` gives; one 2048-bit check.
#![allow(clippy::unwrap_used)] // a panic is a test failure

mod common;

use paillier::hazmat::{Encryptor, decrypt_raw};
use paillier::{
    Ciphertext, ExponentLength, Integer, Keypair, PrivateKey, PublicKey, ShortExponentEncryptor,
    Timing,
};
use proptest::prelude::*;
use rug::Complete;
use rug::integer::Order;
use rug::ops::RemRounding;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

fn encryptor() -> &'static ShortExponentEncryptor {
    static E: OnceLock<ShortExponentEncryptor> = OnceLock::new();
    E.get_or_init(|| ShortExponentEncryptor::new(common::keypair().public_key()))
}

/// The first prime at or above `3 * 2^(bits-2) + offset` that is `residue`
/// modulo 4 (deterministic, so the test keys are fixed; two of them make an
/// n of exactly twice `bits` bits).
fn prime(bits: u32, offset: u64, residue: u32) -> Integer {
    let mut p = (Integer::from(Integer::u_pow_u(2, bits - 2)) * 3u32 + offset).next_prime();
    while p.mod_u(4) != residue {
        p = p.next_prime();
    }
    p
}

/// A key made from known primes, with the primes (for checks that need them).
fn key_from_primes(bits: u32, rp: u32, rq: u32) -> (PrivateKey, Integer, Integer) {
    let p = prime(bits / 2, 0x1234_5678_9abc_def1, rp);
    let q = prime(bits / 2, 0x0fed_cba9_8765_4321_u64 << 3, rq);
    let sk = PrivateKey::from_primes(p.clone(), q.clone()).unwrap();
    (sk, p, q)
}

/// The derivation of h as `docs/ENCRYPTION-MODES.md` and the type's docs
/// state it, written again here from that text.
fn h_from_the_spec(n: &Integer) -> Integer {
    let n_bytes = n.to_digits::<u8>(Order::Msf);
    let want = (n.significant_bits() as usize + 128).div_ceil(8);
    for attempt in 0u32.. {
        let mut stream = Vec::new();
        for block in 0u32.. {
            if stream.len() >= want {
                break;
            }
            let mut d = Sha256::new();
            d.update(b"he-toolkit paillier djn base h v1\0");
            d.update((n_bytes.len() as u64).to_be_bytes());
            d.update(&n_bytes);
            d.update(attempt.to_be_bytes());
            d.update(block.to_be_bytes());
            stream.extend_from_slice(&d.finalize());
        }
        stream.truncate(want);
        let x = Integer::from_digits(&stream, Order::Msf) % n;
        if x.gcd_ref(n).complete() != 1 {
            continue;
        }
        let h = n - Integer::from(x.square_ref()) % n;
        if h != 1 && h != Integer::from(n - 1u32) {
            return h;
        }
    }
    unreachable!()
}

fn decrypts_to(sk: &PrivateKey, c: &Ciphertext, m: &Integer) {
    sk.public_key().validate(c).unwrap();
    assert_eq!(&sk.decrypt(c).unwrap(), m);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ciphertexts_decrypt_with_the_unchanged_private_key(m in common::plaintext(common::keypair())) {
        let sk = common::keypair().private_key();
        let c = encryptor().encrypt(&m).unwrap();
        prop_assert_eq!(sk.decrypt(&c).unwrap(), m);
    }

    #[test]
    fn every_homomorphic_operation_works_on_them(
        a in common::plaintext(common::keypair()),
        b in common::plaintext(common::keypair()),
        k in any::<i64>(),
    ) {
        let kp = common::keypair();
        let (pk, sk) = (kp.public_key(), kp.private_key());
        let n = pk.n();
        // Plaintext arithmetic is modulo n, read back in the signed range.
        let reduce = |x: Integer| {
            let r = x.rem_euc(n);
            if &r > pk.max_plaintext() { r - n } else { r }
        };
        let e = encryptor();
        let (ca, cb) = (e.encrypt(&a).unwrap(), e.encrypt(&b).unwrap());
        // Mixed with a textbook and a key-holder ciphertext as well.
        let cb_text = pk.encrypt(&b).unwrap();
        let cb_holder = sk.encrypt(&b).unwrap();
        let k = Integer::from(k);
        let sum = reduce(Integer::from(&a + &b));
        for cb in [&cb, &cb_text, &cb_holder] {
            prop_assert_eq!(sk.decrypt(&pk.add(&ca, cb)).unwrap(), sum.clone());
            prop_assert_eq!(sk.decrypt(&pk.sub(&ca, cb)).unwrap(), reduce(Integer::from(&a - &b)));
        }
        prop_assert_eq!(sk.decrypt(&pk.neg(&ca)).unwrap(), reduce(Integer::from(-&a)));
        prop_assert_eq!(sk.decrypt(&pk.mul_plain(&ca, &k)).unwrap(), reduce(Integer::from(&a * &k)));
        prop_assert_eq!(sk.decrypt(&pk.add_plain(&ca, &k)).unwrap(), reduce(Integer::from(&a + &k)));
        let r1 = pk.rerandomize(&ca).unwrap();
        let r2 = e.rerandomize(&ca).unwrap();
        prop_assert_ne!(&r1, &ca);
        prop_assert_ne!(&r2, &ca);
        prop_assert_eq!(sk.decrypt(&r1).unwrap(), a.clone());
        prop_assert_eq!(sk.decrypt(&r2).unwrap(), a);
    }
}

#[test]
fn raw_encryption_through_the_trait_checks_its_range() {
    let kp = common::keypair();
    let (pk, sk) = (kp.public_key(), kp.private_key());
    let e = encryptor();
    assert_eq!(Encryptor::public_key(e), pk);
    let top = Integer::from(pk.n() - 1u32);
    for m in [Integer::new(), Integer::from(1), top.clone()] {
        let c = e.encrypt_raw(&m).unwrap();
        assert_eq!(decrypt_raw(sk, &c).unwrap(), m);
    }
    assert!(e.encrypt_raw(pk.n()).is_err());
    assert!(e.encrypt_raw(&Integer::from(-1)).is_err());
    let too_big = Integer::from(pk.max_plaintext() + 1u32);
    assert!(e.encrypt(&too_big).is_err());
}

#[test]
fn batches_decrypt_and_nonces_are_fresh() {
    let sk = common::keypair().private_key();
    let ms: Vec<Integer> = (-20..20).map(|i| Integer::from(i * 1_000_003)).collect();
    let cs = encryptor().encrypt_many(&ms).unwrap();
    assert_eq!(sk.decrypt_many(&cs).unwrap(), ms);
    let zeros = encryptor().encrypt_many(&vec![Integer::new(); 50]).unwrap();
    let distinct: std::collections::HashSet<_> = zeros.iter().collect();
    assert_eq!(distinct.len(), 50, "a nonce repeated");
}

#[test]
fn h_is_derived_from_n_as_documented_and_has_the_right_form() {
    // A Blum modulus (p = q = 3 mod 4) and one with p = 1 mod 4.
    for (rp, rq) in [(3, 3), (1, 3), (1, 1)] {
        let (sk, p, q) = key_from_primes(512, rp, rq);
        let pk = sk.public_key();
        let n = pk.n();
        let h = ShortExponentEncryptor::derive_base(n);
        assert_eq!(h, h_from_the_spec(n), "derivation differs from the spec");
        assert_eq!(
            ShortExponentEncryptor::derive_base(n),
            h,
            "not deterministic"
        );
        assert!(h > 1 && h < Integer::from(n - 1u32));
        assert_eq!(h.gcd_ref(n).complete(), 1);
        // -h is a square modulo p and modulo q: h = -x^2.
        let minus_h = Integer::from(n - &h);
        assert_eq!(minus_h.legendre(&p), 1);
        assert_eq!(minus_h.legendre(&q), 1);
        assert_eq!(h.jacobi(n), Integer::from(-1).jacobi(n));
        if (rp, rq) == (3, 3) {
            // Blum: h is a non-square of Jacobi symbol 1 (DJN's J_n).
            assert_eq!(h.jacobi(n), 1);
            assert_eq!(h.legendre(&p), -1);
        }
        // The encryptor uses it, and h_s = h^n mod n^2.
        let e = ShortExponentEncryptor::new(pk);
        assert_eq!(e.base(), &h);
        let hs = h.pow_mod_ref(n, pk.n_squared()).unwrap().complete();
        assert_eq!(e.nonce_base(), &hs);
        // Ciphertexts decrypt for these keys too (no structured primes).
        let m = Integer::from(-123_456);
        decrypts_to(&sk, &e.encrypt(&m).unwrap(), &m);
    }
    // Another n, another h.
    let (a, _, _) = key_from_primes(512, 3, 3);
    let other = common::keypair().public_key();
    assert_ne!(
        ShortExponentEncryptor::derive_base(a.public_key().n()),
        ShortExponentEncryptor::derive_base(other.n())
    );
}

#[test]
fn both_lengths_and_constant_time_decrypt() {
    let kp = common::keypair();
    let (pk, sk) = (kp.public_key(), kp.private_key());
    let half = ShortExponentEncryptor::with_length(pk, ExponentLength::HalfModulus);
    assert_eq!(half.exponent_bits(), 256);
    assert_eq!(encryptor().exponent_bits(), 224);
    let m = Integer::from(987_654_321);
    decrypts_to(sk, &half.encrypt(&m).unwrap(), &m);
    let ct = ShortExponentEncryptor::new(pk).with_timing(Timing::ConstantTime);
    let (before, _) = paillier::secret_pow_counts();
    decrypts_to(sk, &ct.encrypt(&m).unwrap(), &m);
    let (after, _) = paillier::secret_pow_counts();
    assert!(
        after > before,
        "constant-time mode did not use secure_pow_mod"
    );
}

/// One check at a real size: 2048 bits, 224-bit exponents, the documented
/// table size, correct decryption.
#[test]
fn works_at_2048_bits() {
    let (sk, _, _) = key_from_primes(2048, 3, 3);
    let pk: &PublicKey = sk.public_key();
    assert_eq!(pk.bits(), 2048);
    let e = ShortExponentEncryptor::new(pk);
    assert_eq!(e.exponent_bits(), 224);
    assert_eq!(e.window_bits(), 8);
    assert_eq!(e.table_bytes(), 28 * 255 * 512);
    let ms: Vec<Integer> = [0i64, 1, -1, 255, -65_536, i64::MAX]
        .into_iter()
        .map(Integer::from)
        .chain([
            pk.max_plaintext().clone(),
            Integer::from(-pk.max_plaintext()),
        ])
        .collect();
    let cs = e.encrypt_many(&ms).unwrap();
    assert_eq!(sk.decrypt_many(&cs).unwrap(), ms);
    let sum = pk.add(&cs[3], &cs[4]);
    assert_eq!(sk.decrypt(&sum).unwrap(), 255 - 65_536);
}

#[test]
fn keypair_public_key_and_loaded_key_agree() {
    // A key file written before this mode existed loads and gets the same h.
    let kp: &Keypair = common::keypair();
    let loaded = PublicKey::from_bytes(&kp.public_key().to_bytes()).unwrap();
    assert_eq!(
        ShortExponentEncryptor::new(&loaded).base(),
        encryptor().base()
    );
}
