//! What the fuzz targets share: a fixed small key (so that seeds made once
//! stay valid) and the framing of files whose digest a fuzzer cannot forge.

use std::sync::OnceLock;

use enc_image::{ColorLayout, EncryptedImage, NoProgress, PixelImage};
use he_filter::Filter;
use paillier::{Integer, Keypair, PrivateKey};

/// A fixed 512-bit test key (two 256-bit primes): deterministic, so seeds
/// written by `seeds` match what the targets load. Insecure by design.
pub fn keypair() -> &'static Keypair {
    static KP: OnceLock<Keypair> = OnceLock::new();
    KP.get_or_init(|| {
        let p = (Integer::from(1) << 255u32) + 0x1234_5677u32;
        let q = (Integer::from(1) << 255u32) + 0x7654_3211u32;
        let sk = PrivateKey::from_primes(p.next_prime(), q.next_prime()).expect("fixed test key");
        Keypair::from(sk)
    })
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// `bytes` followed by their digest: what the writers produce, so that a
/// fuzzer's mutations reach the checks behind the digest.
pub fn seal(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.extend_from_slice(&sha256(bytes));
    out
}

/// A key file of `kind` (1 public key, 2 key pair) around `body`, sealed.
pub fn key_file(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"PAIL".to_vec();
    out.push(kind);
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(body);
    seal(&out)
}

/// A small RGB image and its encryption for `chain` under [`keypair`].
pub fn sample_image(chain: &[Filter]) -> (PixelImage, EncryptedImage) {
    let img = PixelImage::new(
        9,
        5,
        ColorLayout::Rgb8,
        (0..9 * 5 * 3).map(|i| (i * 37 % 256) as u8).collect(),
    )
    .expect("sample image");
    let opts = he_filter::encrypt_options(chain).expect("options");
    let enc = EncryptedImage::encrypt(&img, keypair().private_key(), &opts, &NoProgress)
        .expect("encrypt");
    (img, enc)
}
