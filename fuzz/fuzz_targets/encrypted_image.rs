//! Encrypted images for a fixed key: raw bytes (the framing must refuse
//! them) and bodies framed with a valid length and digest (every other
//! check). Whatever loads is filtered and decrypted: errors are fine,
//! panics are not.
#![no_main]

use enc_image::{EncryptedImage, Limits, NoProgress};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        enc_image::FORMAT.seal(rest)
    };
    let kp = he_toolkit_fuzz::keypair();
    let limits = Limits {
        max_width: 256,
        max_height: 256,
        max_ciphertexts: 4096,
        max_bytes: 1 << 20,
    };
    let Ok(img) = EncryptedImage::from_bytes(&bytes, kp.public_key(), &limits) else {
        return;
    };
    let _ = img.decrypt(kp.private_key(), &NoProgress);
    if let Ok(out) = he_filter::mean_filter(&img, kp.public_key(), 3) {
        let _ = out.trim_halo().decrypt(kp.private_key(), &NoProgress);
    }
});
