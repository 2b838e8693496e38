//! Ciphertexts as bytes for a fixed key: anything accepted decrypts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let kp = he_toolkit_fuzz::keypair();
    if let Ok(c) = kp.public_key().ciphertext_from_bytes(data) {
        kp.private_key()
            .decrypt(&c)
            .expect("an accepted ciphertext decrypts");
    }
});
