//! With `Timing::ConstantTime`, every exponentiation with a secret operand
//! goes through GMP's `mpz_powm_sec`. Checked by counting, in a test binary
//! of its own so that no other test's operations are counted.
#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

use paillier::{Integer, Keypair, Timing};

#[test]
fn constant_time_setting_routes_every_secret_exponentiation_through_secure_pow() {
    let mut kp = Keypair::generate_insecure_for_tests(512).unwrap();
    kp.private_key_mut().set_timing(Timing::ConstantTime);
    let sk = kp.private_key();
    let (ct0, vt0) = paillier::secret_pow_counts();
    let a = sk.encrypt(&Integer::from(5)).unwrap(); // 2 halves
    let b = sk.public_key().encrypt(&Integer::from(-6)).unwrap(); // r^n
    assert_eq!(sk.decrypt(&a).unwrap(), 5); // 2 halves
    assert_eq!(sk.decrypt(&b).unwrap(), -6); // 2 halves
    let _ = sk
        .encrypt_many(&[Integer::from(1), Integer::from(2)])
        .unwrap(); // 4
    let (ct1, vt1) = paillier::secret_pow_counts();
    assert_eq!(ct1 - ct0, 11, "secure exponentiations");
    assert_eq!(vt1 - vt0, 0, "variable-time exponentiations with secrets");

    // And the default really is the fast path (so the counter can fail).
    let mut fast = kp.clone();
    fast.private_key_mut().set_timing(Timing::Fast);
    let c = fast.private_key().encrypt(&Integer::from(1)).unwrap();
    assert_eq!(fast.private_key().decrypt(&c).unwrap(), 1);
    let (_, vt2) = paillier::secret_pow_counts();
    assert_eq!(
        vt2 - vt1,
        2,
        "fast decryption uses two variable-time halves"
    );
}
