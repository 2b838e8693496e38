//! Job uploads as the server receives them: the envelope's framing and
//! digest, then what the server checks before accepting a job (the public
//! key, the encrypted image with every ciphertext, the chain against the
//! image). Raw bytes (mode 0) and bodies framed as the envelope's format
//! frames them (mode 1), so that mutations of the spec and the framing reach
//! the checks behind the digest.
#![no_main]

use enc_image::{EncryptedImage, Limits};
use he_service::wire::Envelope;
use libfuzzer_sys::fuzz_target;
use paillier::PublicKey;

fuzz_target!(|data: &[u8]| {
    he_toolkit_fuzz::allow_test_keys();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        he_service::wire::ENVELOPE_FORMAT.seal(rest)
    };
    let Ok(env) = Envelope::decode(&body) else {
        return;
    };
    let Ok(pk) = PublicKey::from_bytes(env.public_key) else {
        return;
    };
    let limits = Limits {
        max_width: 256,
        max_height: 256,
        max_ciphertexts: 4096,
        max_bytes: 1 << 20,
    };
    let Ok(img) = EncryptedImage::from_bytes(env.image, &pk, &limits) else {
        return;
    };
    let _ = he_filter::check_chain(img.meta(), &env.spec.filters);
});
