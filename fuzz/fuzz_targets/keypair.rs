//! Key-pair files: raw bytes and bodies behind a valid header and digest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paillier::{Integer, Keypair};

fuzz_target!(|data: &[u8]| {
    he_toolkit_fuzz::allow_test_keys();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        he_toolkit_fuzz::key_file(2, rest)
    };
    if let Ok(kp) = Keypair::from_bytes(&file) {
        // A key that loads works: encryption round-trips.
        let c = kp
            .public_key()
            .encrypt(&Integer::from(-5))
            .expect("encrypt");
        assert_eq!(kp.private_key().decrypt(&c).expect("decrypt"), -5);
    }
});
