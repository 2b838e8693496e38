//! The wire format round-trips, and every malformed input gets a clear
//! error, never a panic and never a wrong image.
#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

use std::sync::OnceLock;

use enc_image::{
    ColorLayout, EncryptOptions, EncryptedImage, Error, Limits, NoProgress, PixelImage,
};
use paillier::{Integer, Keypair};
use proptest::prelude::*;

fn keypair() -> &'static Keypair {
    static KP: OnceLock<Keypair> = OnceLock::new();
    KP.get_or_init(|| Keypair::generate_insecure_for_tests(512).expect("keygen"))
}

fn sample() -> (PixelImage, EncryptedImage) {
    let img = PixelImage::new(
        13,
        7,
        ColorLayout::Rgb8,
        (0..13 * 7 * 3).map(|i| (i * 7 % 256) as u8).collect(),
    )
    .unwrap();
    let enc = EncryptedImage::encrypt(
        &img,
        keypair().private_key(),
        &EncryptOptions::for_mean(3),
        &NoProgress,
    )
    .unwrap();
    (img, enc)
}

/// Magic, version and body length: the bytes before the body.
const HEAD: usize = 18;

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

/// Recomputes the body length and the trailing digest after a deliberate
/// change of the body (between the 18-byte head and the digest), so that
/// the checks behind the digest are reached. Magic and version are kept.
fn reseal(b: Vec<u8>) -> Vec<u8> {
    let body = &b[HEAD..b.len() - 32];
    let mut out = b[..10].to_vec();
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let d = sha256(&out);
    out.extend_from_slice(&d);
    out
}

fn load(bytes: &[u8]) -> Result<EncryptedImage, Error> {
    EncryptedImage::from_bytes(bytes, keypair().public_key(), &Limits::default())
}

#[test]
fn round_trip_keeps_everything() {
    let (img, enc) = sample();
    let bytes = enc.to_bytes();
    let back = load(&bytes).unwrap();
    assert_eq!(back.meta(), enc.meta());
    assert_eq!(back.ciphertexts(), enc.ciphertexts());
    assert_eq!(
        back.decrypt(keypair().private_key(), &NoProgress)
            .unwrap()
            .to_pixels(),
        img
    );
    // Compact: the payload is the ciphertexts at fixed width, plus a small header.
    let payload = enc.ciphertexts().len() * enc_image::ciphertext_width(512);
    assert!(
        bytes.len() < payload + 256,
        "{} bytes for a {payload}-byte payload",
        bytes.len()
    );
}

#[test]
fn public_key_encryption_decrypts_alike() {
    let (img, _) = sample();
    let enc = EncryptedImage::encrypt(
        &img,
        keypair().public_key(),
        &EncryptOptions::for_mean(3),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(
        enc.decrypt(keypair().private_key(), &NoProgress)
            .unwrap()
            .to_pixels(),
        img
    );
}

#[test]
fn malformed_inputs_get_clear_errors() {
    let (_, enc) = sample();
    let good = enc.to_bytes();
    let expect = |bytes: &[u8], needle: &str| {
        let err = load(bytes).expect_err(needle).to_string();
        assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    };
    expect(&[], "bad magic");
    expect(b"HEIMAGX", "bad magic");
    expect(b"HEIMAGE", "truncated");
    expect(&good[..13], "truncated");
    let mut b = good.clone();
    b[0] ^= 1;
    expect(&b, "bad magic");
    let mut b = good.clone();
    b[8] = 9;
    expect(&b, "format version 9");
    let mut b = good.clone();
    b[8] = 1;
    expect(&b, "format version 1");
    // A cut or a longer file: the framing's length catches it.
    expect(&good[..good.len() - 1], "truncated");
    let mut b = good.clone();
    b.push(0);
    expect(&b, "1 bytes follow the digest");
    // Corruption anywhere after the version: the digest catches it.
    let mut b = good.clone();
    b[HEAD + 1] ^= 4;
    expect(&b, "digest mismatch");
    let mut b = good.clone();
    b[20] ^= 4;
    expect(&b, "digest mismatch");
    // Deliberate changes with a valid digest reach the checks behind it.
    let mut b = good.clone();
    b[HEAD..HEAD + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    expect(&reseal(b), "header length");
    let mut b = good[..good.len() - 33].to_vec();
    b.extend_from_slice(&[0; 32]);
    expect(&reseal(b), "payload is");
    let mut b = good.clone();
    b.insert(good.len() - 32, 0);
    expect(&reseal(b), "payload is");
    // A ciphertext replaced by n^2 (out of range) and by 0.
    let width = enc_image::ciphertext_width(512);
    let n2 = Integer::from(keypair().public_key().n_squared());
    let mut b = good.clone();
    let at = b.len() - 32 - width;
    let bytes = n2.to_digits::<u8>(rug::integer::Order::Msf);
    b[at..at + width].copy_from_slice(&[vec![0u8; width - bytes.len()], bytes].concat());
    expect(&reseal(b), "not valid for this key");
    let mut b = good.clone();
    b[at..at + width].fill(0);
    expect(&reseal(b), "not valid for this key");
    // A multiple of a prime factor of n is not coprime to n.
    let mut b = good.clone();
    let nbytes = keypair()
        .public_key()
        .n()
        .to_digits::<u8>(rug::integer::Order::Msf);
    b[at..at + width].fill(0);
    let end = at + width;
    b[end - nbytes.len()..end].copy_from_slice(&nbytes);
    expect(&reseal(b), "not valid for this key");
}

/// A file of version 2 (before the common framing: a u32 header length
/// right after the version, no body length) is refused with a message
/// naming both versions, never misread.
#[test]
fn version_2_files_are_named_not_misread() {
    let (_, enc) = sample();
    let good = enc.to_bytes();
    let mut old = b"HEIMAGE\0".to_vec();
    old.extend_from_slice(&2u16.to_le_bytes());
    old.extend_from_slice(&good[HEAD..good.len() - 32]);
    let d = sha256(&old);
    old.extend_from_slice(&d);
    let err = load(&old).unwrap_err();
    assert!(matches!(err, Error::Format(_)), "{err}");
    assert!(
        err.to_string()
            .contains("format version 2 is not supported: this build reads version 3 only"),
        "{err}"
    );
    assert_eq!(EncryptedImage::payload_of(&old), None);
    assert_eq!(
        EncryptedImage::payload_of(&good).map(<[u8]>::len),
        Some(enc.ciphertexts().len() * enc_image::ciphertext_width(512))
    );
}

#[test]
fn limits_are_enforced_before_work() {
    let (_, enc) = sample();
    let bytes = enc.to_bytes();
    let pk = keypair().public_key();
    let tight = |l: Limits| {
        EncryptedImage::from_bytes(&bytes, pk, &l)
            .unwrap_err()
            .to_string()
    };
    assert!(
        tight(Limits {
            max_bytes: 100,
            ..Limits::default()
        })
        .contains("at most 100 allowed")
    );
    assert!(
        tight(Limits {
            max_width: 12,
            ..Limits::default()
        })
        .contains("13x7 pixels")
    );
    assert!(
        tight(Limits {
            max_height: 6,
            ..Limits::default()
        })
        .contains("13x7 pixels")
    );
    assert!(
        tight(Limits {
            max_ciphertexts: 2,
            ..Limits::default()
        })
        .contains("ciphertexts, at most 2")
    );
}

#[test]
fn wrong_key_is_named() {
    let (_, enc) = sample();
    let other = Keypair::generate_insecure_for_tests(512).unwrap();
    let err = EncryptedImage::from_bytes(&enc.to_bytes(), other.public_key(), &Limits::default())
        .unwrap_err();
    assert!(matches!(err, Error::WrongKey { .. }), "{err}");
}

#[test]
fn corrupted_plaintexts_are_detected_not_decoded() {
    // A ciphertext of a value beyond the slots the image can hold.
    let (_, enc) = sample();
    let pk = keypair().public_key();
    let mut cts = enc.ciphertexts().to_vec();
    let junk = Integer::from(pk.n() - 12345u32);
    let idx = enc.meta().index(0, enc.meta().row_margin() as usize, 0);
    cts[idx] = paillier::hazmat::encrypt_raw(keypair().private_key(), &junk).unwrap();
    let bad = EncryptedImage::from_parts(enc.meta().clone(), cts).unwrap();
    let err = bad
        .decrypt(keypair().private_key(), &NoProgress)
        .unwrap_err();
    assert!(matches!(err, Error::Corrupted(_)), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random corruption of any byte is refused on loading (the digest, or
    /// magic and version before it), never a panic, never an image.
    #[test]
    fn random_corruption_is_always_refused(pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let (_, enc) = sample();
        let mut b = enc.to_bytes();
        let i = pos.index(b.len());
        b[i] ^= xor;
        prop_assert!(load(&b).is_err());
    }

    /// Corruption behind a recomputed digest (a malicious sender) never
    /// panics, in loading or in decryption.
    #[test]
    fn resealed_corruption_never_panics(pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let (_, enc) = sample();
        let mut b = enc.to_bytes();
        let i = pos.index(b.len() - 32);
        b[i] ^= xor;
        if let Ok(loaded) = load(&reseal(b)) {
            let _ = loaded.decrypt(keypair().private_key(), &NoProgress);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = load(&bytes);
        let mut framed = b"HEIMAGE\0\x03\x00".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = load(&framed);
    }
}
