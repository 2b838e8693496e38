//! Images encrypted with the public key alone, in each named mode, decrypt
//! to themselves with the unchanged private key, survive the wire format,
//! and are told apart from the key holder's by nothing.
#![allow(clippy::unwrap_used)] // a panic is a test failure

use std::sync::OnceLock;

use enc_image::{
    ColorLayout, EncryptOptions, EncryptedImage, Limits, NoProgress, PixelImage, PublicEncryption,
};
use paillier::{Keypair, ShortExponentEncryptor};

fn keypair() -> &'static Keypair {
    static KP: OnceLock<Keypair> = OnceLock::new();
    KP.get_or_init(|| Keypair::generate_insecure_for_tests(512).expect("keygen"))
}

fn image(w: usize, h: usize, color: ColorLayout) -> PixelImage {
    let n = w * h * color.channels();
    PixelImage::new(w, h, color, (0..n).map(|i| (i * 131 % 256) as u8).collect()).unwrap()
}

#[test]
fn every_public_mode_round_trips_every_layout() {
    let kp = keypair();
    let (pk, sk) = (kp.public_key(), kp.private_key());
    for mode in [PublicEncryption::Textbook, PublicEncryption::ShortExponent] {
        for (img, opts) in [
            (image(23, 5, ColorLayout::Rgb8), EncryptOptions::for_mean(3)),
            (image(1, 1, ColorLayout::Luma8), EncryptOptions::default()),
            (image(9, 4, ColorLayout::Rgba8), EncryptOptions::unpacked()),
        ] {
            let enc = EncryptedImage::encrypt_with_public_key(&img, pk, mode, &opts, &NoProgress)
                .unwrap();
            let loaded =
                EncryptedImage::from_bytes(&enc.to_bytes(), pk, &Limits::default()).unwrap();
            let back = loaded.decrypt(sk, &NoProgress).unwrap().to_pixels();
            assert_eq!(back, img, "{mode:?} {opts:?}");
        }
    }
}

#[test]
fn a_shared_encryptor_plugs_into_encrypt() {
    let kp = keypair();
    let e = ShortExponentEncryptor::new(kp.public_key());
    let img = image(17, 3, ColorLayout::LumaA8);
    let opts = EncryptOptions::for_mean(5);
    let a = EncryptedImage::encrypt(&img, &e, &opts, &NoProgress).unwrap();
    let b = EncryptedImage::encrypt(&img, &e, &opts, &NoProgress).unwrap();
    // Same description, fresh nonces.
    assert_eq!(a.meta(), b.meta());
    assert!(
        a.ciphertexts()
            .iter()
            .zip(b.ciphertexts())
            .all(|(x, y)| x != y)
    );
    let back = a
        .decrypt(kp.private_key(), &NoProgress)
        .unwrap()
        .to_pixels();
    assert_eq!(back, img);
}
