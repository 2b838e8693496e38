//! Public-key files: raw bytes (the digest must refuse them) and bodies
//! behind a valid header and digest (the modulus checks must refuse them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use paillier::PublicKey;

fuzz_target!(|data: &[u8]| {
    he_toolkit_fuzz::allow_test_keys();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        he_toolkit_fuzz::key_file(1, rest)
    };
    if let Ok(pk) = PublicKey::from_bytes(&file) {
        let again = PublicKey::from_bytes(&pk.to_bytes()).expect("a loaded key re-loads");
        assert_eq!(again, pk);
    }
});
