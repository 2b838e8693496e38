//! What the fuzz targets share: a fixed small key (so that seeds made once
//! stay valid) and the framing of files whose digest a fuzzer cannot forge
//! (the toolkit's own framing helper, `paillier::frame`).

use std::sync::OnceLock;

use enc_image::{ColorLayout, EncryptedImage, NoProgress, PixelImage};
use he_filter::Filter;
use paillier::frame::Format;
use paillier::{Integer, Keypair, PrivateKey, PublicKey};

/// A fixed 512-bit test key (two 256-bit primes): deterministic, so seeds
/// written by `seeds` match what the targets load. Insecure by design.
/// Lets this process load test keys (see [`allow_test_keys`]).
pub fn keypair() -> &'static Keypair {
    static KP: OnceLock<Keypair> = OnceLock::new();
    KP.get_or_init(|| {
        allow_test_keys();
        let p = (Integer::from(1) << 255u32) + 0x1234_5677u32;
        let q = (Integer::from(1) << 255u32) + 0x7654_3211u32;
        let sk = PrivateKey::from_primes(p.next_prime(), q.next_prime()).expect("fixed test key");
        Keypair::from(sk)
    })
}

/// Lets this process load keys below 2048 bits: the seeds hold 512-bit
/// keys, which loading refuses in a process that did not ask by name.
pub fn allow_test_keys() {
    paillier::insecure_test_keys::allow_in_this_process();
}

/// A key file of `kind` (1 public key, 2 key pair) around `body`, framed
/// as the writers frame it, so that mutations reach the checks behind the
/// digest.
pub fn key_file(kind: u8, body: &[u8]) -> Vec<u8> {
    match kind {
        1 => PublicKey::FILE_FORMAT.seal(body),
        _ => Keypair::FILE_FORMAT.seal(body),
    }
}

/// The body of framed bytes (between the header and the digest), what
/// the `body` seeds hold.
pub fn body<const M: usize>(format: &Format<M>, framed: &[u8]) -> Vec<u8> {
    framed[format.header_len()..framed.len() - paillier::frame::DIGEST_LEN].to_vec()
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
