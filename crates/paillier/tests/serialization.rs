//! Serialization of keys and ciphertexts: round trips through the versioned
//! key-file format and through serde (bincode 2), and rejection of malformed
//! input (with an error, never a panic), including key material that is well
//! formed but mathematically wrong.
//!
//! Malformed keys are built from mirror structs with the same serde shape as
//! the crate's private representations (every field a byte string: in
//! bincode's standard configuration, a varint length then the bytes). The
//! mirrors are first checked to reproduce the crate's own encoding byte for
//! byte, so that every rejection below is caused by the one defect injected.
#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use std::fmt::{self, Display};

use common::keypair;
use paillier::{Ciphertext, Integer, Keypair, PrivateKey, PublicKey};
use proptest::prelude::*;
use rug::integer::{IsPrime, Order};
use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MAGIC: &[u8; 4] = b"PAIL";
const KIND_PUBLIC_KEY: u8 = 1;
const KIND_KEYPAIR: u8 = 2;
const VERSION: u16 = 3;
/// Magic (5 bytes), version and body length: the bytes before the body.
const HEADER_LEN: usize = 15;
/// Bytes of the SHA-256 digest that ends every key file.
const DIGEST_LEN: usize = 32;
/// The largest key file the crate reads.
const FILE_LIMIT: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// Mirrors of the crate's serialized shapes
// ---------------------------------------------------------------------------

/// A serde byte string (`serialize_bytes`), the way the crate writes every
/// integer in binary formats.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Minimal big-endian bytes (empty for zero), as the crate writes integers.
fn be(x: &Integer) -> Bytes {
    Bytes(x.to_digits::<u8>(Order::Msf))
}

fn int(b: &Bytes) -> Integer {
    Integer::from_digits(&b.0, Order::Msf)
}

/// Same shape as the crate's `PublicKeyRepr`.
#[derive(Serialize, Deserialize)]
struct PublicKeyMirror {
    n: Bytes,
}

/// Same shape as the crate's `KeypairRepr` (also the serde form of
/// `PrivateKey` and `Keypair`).
#[derive(Clone, Serialize, Deserialize)]
struct KeypairMirror {
    n: Bytes,
    p: Bytes,
    q: Bytes,
    p_factor: Bytes,
    q_factor: Bytes,
}

/// The numbers of a private key, to be encoded (possibly after tampering).
#[derive(Clone)]
struct Parts {
    n: Integer,
    p: Integer,
    q: Integer,
    /// The large prime factor of `p - 1`, if recorded.
    p_factor: Option<Integer>,
    q_factor: Option<Integer>,
}

impl Parts {
    /// The parts of a key pair, read back from its key file.
    fn of(kp: &Keypair) -> Parts {
        let m: KeypairMirror =
            decode_exact(body_of(&kp.to_bytes())).expect("mirror of KeypairRepr");
        let opt = |b: &Bytes| (!b.0.is_empty()).then(|| int(b));
        Parts {
            n: int(&m.n),
            p: int(&m.p),
            q: int(&m.q),
            p_factor: opt(&m.p_factor),
            q_factor: opt(&m.q_factor),
        }
    }

    /// The test key's parts.
    fn test_key() -> Parts {
        Parts::of(keypair())
    }

    /// p and q with `n = p * q` and no recorded factors.
    fn from_primes(p: Integer, q: Integer) -> Parts {
        Parts {
            n: Integer::from(&p * &q),
            p,
            q,
            p_factor: None,
            q_factor: None,
        }
    }

    fn mirror(&self) -> KeypairMirror {
        let opt = |x: &Option<Integer>| x.as_ref().map(be).unwrap_or(Bytes(Vec::new()));
        KeypairMirror {
            n: be(&self.n),
            p: be(&self.p),
            q: be(&self.q),
            p_factor: opt(&self.p_factor),
            q_factor: opt(&self.q_factor),
        }
    }
}

// ---------------------------------------------------------------------------
// Encoding helpers and assertions
// ---------------------------------------------------------------------------

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("bincode encode")
}

/// Decodes with bincode's standard configuration, refusing trailing bytes.
fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - used));
    }
    Ok(value)
}

/// Magic, kind, version and body length.
fn header(kind: u8, version: u16, len: usize) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(kind);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
    out
}

/// A framed, sealed file of `kind` around the raw `body`.
fn frame(kind: u8, version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = header(kind, version, body.len());
    out.extend_from_slice(body);
    seal(out)
}

/// A key file: the 15-byte header, then `body` in bincode, then the digest.
fn key_file<T: Serialize>(kind: u8, body: &T) -> Vec<u8> {
    frame(kind, VERSION, &encode(body))
}

/// The body of a key file.
fn body_of(file: &[u8]) -> &[u8] {
    &file[HEADER_LEN..file.len() - DIGEST_LEN]
}

/// Appends the SHA-256 digest of `file`, as the writer does.
fn seal(mut file: Vec<u8>) -> Vec<u8> {
    use sha2::Digest;
    let d: [u8; DIGEST_LEN] = sha2::Sha256::digest(&file).into();
    file.extend_from_slice(&d);
    file
}

/// Asserts that `r` is an error whose message contains `needle`.
#[track_caller]
fn assert_err<T, E: Display>(r: Result<T, E>, needle: &str) -> String {
    match r {
        Ok(_) => panic!("accepted; expected an error mentioning {needle:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(needle),
                "error {msg:?} does not mention {needle:?}"
            );
            msg
        }
    }
}

/// Asserts that a public key with modulus bytes `n` is refused both from a
/// key file and through serde.
#[track_caller]
fn assert_public_bytes_rejected(n: &[u8], needle: &str) {
    let m = PublicKeyMirror {
        n: Bytes(n.to_vec()),
    };
    assert_err(
        PublicKey::from_bytes(&key_file(KIND_PUBLIC_KEY, &m)),
        needle,
    );
    assert_err(decode_exact::<PublicKey>(&encode(&m)), needle);
}

/// Asserts that the modulus `n` is refused by every way of making a public key.
#[track_caller]
fn assert_modulus_rejected(n: &Integer, needle: &str) {
    assert_err(PublicKey::from_modulus(n.clone()), needle);
    assert_public_bytes_rejected(&be(n).0, needle);
}

/// Asserts that the private key encoded as `m` is refused from a key file and
/// through serde as both `PrivateKey` and `Keypair`.
#[track_caller]
fn assert_keypair_mirror_rejected(m: &KeypairMirror, needle: &str) {
    assert_err(Keypair::from_bytes(&key_file(KIND_KEYPAIR, m)), needle);
    assert_err(decode_exact::<PrivateKey>(&encode(m)), needle);
    assert_err(decode_exact::<Keypair>(&encode(m)), needle);
}

/// As [`assert_keypair_mirror_rejected`], and where no factor is recorded
/// also through [`PrivateKey::from_primes`].
#[track_caller]
fn assert_parts_rejected(parts: &Parts, needle: &str) {
    assert_keypair_mirror_rejected(&parts.mirror(), needle);
    if parts.p_factor.is_none() && parts.q_factor.is_none() {
        assert_err(
            PrivateKey::from_primes(parts.p.clone(), parts.q.clone()),
            needle,
        );
    }
}

/// Asserts that every proper prefix of `bytes` fails to load with `load`.
#[track_caller]
fn assert_every_prefix_rejected<T>(bytes: &[u8], load: impl Fn(&[u8]) -> Result<T, String>) {
    for len in 0..bytes.len() {
        assert!(
            load(&bytes[..len]).is_err(),
            "prefix of {len} of {} bytes accepted",
            bytes.len()
        );
    }
}

/// A ciphertext with an arbitrary positive value, made through serde, which
/// cannot check it against a key.
fn forged_ciphertext(x: &Integer) -> Ciphertext {
    decode_exact(&encode(&be(x))).expect("serde accepts any canonical non-zero value")
}

/// The smallest odd composite number above `x`.
fn next_odd_composite(x: &Integer) -> Integer {
    let mut c = Integer::from(x + 1u32) | 1u32;
    while c.is_probably_prime(40) != IsPrime::No {
        c += 2u32;
    }
    c
}

/// `E(m)` made by the public key and by the key holder of `kp`.
fn both_encryptions(kp: &Keypair, m: i64) -> [Ciphertext; 2] {
    let m = Integer::from(m);
    [
        kp.public_key().encrypt(&m).expect("public encryption"),
        kp.private_key().encrypt(&m).expect("key-holder encryption"),
    ]
}

/// Asserts that `a` decrypts what `b` encrypts, both ways, with both
/// encryption paths.
#[track_caller]
fn assert_interoperable(a: &Keypair, b: &Keypair) {
    for (enc, dec) in [(a, b), (b, a)] {
        for m in [0, 1, -1, 123_456_789, -987_654_321] {
            for c in both_encryptions(enc, m) {
                assert_eq!(dec.private_key().decrypt(&c).expect("decrypt"), m);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

#[test]
fn mirrors_reproduce_the_crates_encodings() {
    let kp = keypair();
    let pk = kp.public_key();
    let pk_mirror = PublicKeyMirror { n: be(pk.n()) };
    assert_eq!(key_file(KIND_PUBLIC_KEY, &pk_mirror), pk.to_bytes());
    assert_eq!(encode(&pk_mirror), encode(pk));

    let parts = Parts::test_key();
    assert_eq!(&parts.n, pk.n());
    assert_eq!(Integer::from(&parts.p * &parts.q), parts.n);
    assert!(parts.p_factor.is_some() && parts.q_factor.is_some());
    let m = parts.mirror();
    assert_eq!(key_file(KIND_KEYPAIR, &m), kp.to_bytes());
    assert_eq!(encode(&m), encode(kp));
    assert_eq!(encode(&m), encode(kp.private_key()));

    // The hand-made valid encodings load, so the negative tests built from
    // them test the one defect they inject.
    let loaded = Keypair::from_bytes(&key_file(KIND_KEYPAIR, &m)).expect("hand-made key file");
    assert_eq!(loaded.public_key(), pk);
    decode_exact::<PrivateKey>(&encode(&m)).expect("hand-made serde private key");
    PublicKey::from_bytes(&key_file(KIND_PUBLIC_KEY, &pk_mirror)).expect("hand-made public key");
}

#[test]
fn public_key_file_round_trip() {
    let pk = keypair().public_key();
    let bytes = pk.to_bytes();
    assert_eq!(
        &bytes[..HEADER_LEN],
        &header(
            KIND_PUBLIC_KEY,
            VERSION,
            bytes.len() - HEADER_LEN - DIGEST_LEN
        )[..]
    );
    let loaded = PublicKey::from_bytes(&bytes).expect("load");
    assert_eq!(&loaded, pk);
    assert_eq!(loaded.fingerprint(), pk.fingerprint());
    assert_eq!(loaded.bits(), pk.bits());
    assert_eq!(loaded.to_bytes(), bytes);
    // Ciphertexts of the loaded key decrypt with the original private key.
    let c = loaded.encrypt(&Integer::from(-77)).expect("encrypt");
    assert_eq!(keypair().private_key().decrypt(&c).expect("decrypt"), -77);
}

#[test]
fn keypair_file_round_trip() {
    let kp = keypair();
    let bytes = kp.to_bytes();
    assert_eq!(
        &bytes[..HEADER_LEN],
        &header(KIND_KEYPAIR, VERSION, bytes.len() - HEADER_LEN - DIGEST_LEN)[..]
    );
    let loaded = Keypair::from_bytes(&bytes).expect("load");
    assert_eq!(loaded.public_key(), kp.public_key());
    // The recorded factors survive, so the bytes are identical.
    assert_eq!(loaded.to_bytes(), bytes);
    assert_interoperable(kp, &loaded);
}

#[test]
fn keypair_without_recorded_factors_loads_and_works() {
    // Imported keys carry no factorisation of p-1: they load, and encrypt by
    // the slower method.
    let parts = Parts::from_primes(Parts::test_key().p, Parts::test_key().q);
    let bytes = key_file(KIND_KEYPAIR, &parts.mirror());
    let loaded = Keypair::from_bytes(&bytes).expect("load");
    assert_eq!(loaded.public_key(), keypair().public_key());
    assert_eq!(loaded.to_bytes(), bytes);
    assert_interoperable(keypair(), &loaded);
    let from_primes = PrivateKey::from_primes(parts.p.clone(), parts.q.clone()).expect("primes");
    assert_eq!(Keypair::from(from_primes).to_bytes(), bytes);
}

#[test]
fn serde_bincode_round_trips() {
    let kp = keypair();
    let pk = kp.public_key();

    let pk_bytes = encode(pk);
    let pk2: PublicKey = decode_exact(&pk_bytes).expect("public key");
    assert_eq!(&pk2, pk);
    // Compact: a one-byte length, then n.
    assert_eq!(pk_bytes.len(), 1 + pk.n().significant_digits::<u8>());

    let sk2: PrivateKey = decode_exact(&encode(kp.private_key())).expect("private key");
    assert_eq!(sk2.public_key(), pk);
    let kp2: Keypair = decode_exact(&encode(kp)).expect("key pair");
    assert_eq!(encode(&kp2), encode(kp));
    assert_interoperable(kp, &kp2);
    assert_interoperable(kp, &Keypair::from(sk2));

    for c in both_encryptions(kp, -31_337) {
        let bytes = encode(&c);
        let c2: Ciphertext = decode_exact(&bytes).expect("ciphertext");
        assert_eq!(c2, c);
        pk.validate(&c2).expect("valid for its key");
        assert_eq!(kp.private_key().decrypt(&c2).expect("decrypt"), -31_337);
    }
}

#[test]
fn ciphertext_bincode_encoding_is_compact() {
    let kp = keypair();
    let pk = kp.public_key();
    // A 512-bit key: ciphertexts below n^2 fit in 128 bytes, which bincode
    // prefixes with a one-byte length (decimal would take about 309 digits).
    assert_eq!(pk.ciphertext_bytes(), 2 * pk.bits() as usize / 8);
    for _ in 0..8 {
        for c in both_encryptions(kp, 5) {
            let bytes = encode(&c);
            let minimal = c.to_bytes();
            assert!(minimal.len() <= pk.ciphertext_bytes());
            assert_eq!(bytes.len(), 1 + minimal.len(), "length prefix + bytes");
            assert_eq!(usize::from(bytes[0]), minimal.len());
            assert_eq!(&bytes[1..], &minimal[..]);
        }
    }
}

#[test]
fn fixed_width_ciphertext_bytes_round_trip() {
    let kp = keypair();
    let pk = kp.public_key();
    for c in both_encryptions(kp, 99) {
        let mut out = Vec::new();
        pk.write_ciphertext(&c, &mut out);
        assert_eq!(out.len(), pk.ciphertext_bytes());
        assert_eq!(pk.ciphertext_from_bytes(&out).expect("fixed width"), c);
        assert_eq!(pk.ciphertext_from_bytes(&c.to_bytes()).expect("minimal"), c);
        assert_eq!(
            pk.ciphertext_from_integer(c.as_integer().clone())
                .expect("integer"),
            c
        );
    }
}

// ---------------------------------------------------------------------------
// Key files: framing
// ---------------------------------------------------------------------------

/// Both loaders, with errors as strings.
fn load_public(b: &[u8]) -> Result<PublicKey, String> {
    PublicKey::from_bytes(b).map_err(|e| e.to_string())
}

fn load_keypair(b: &[u8]) -> Result<Keypair, String> {
    Keypair::from_bytes(b).map_err(|e| e.to_string())
}

#[test]
fn empty_and_wrong_magic_are_rejected() {
    let valid = [keypair().public_key().to_bytes(), keypair().to_bytes()];
    for load in [
        |b: &[u8]| load_public(b).map(drop),
        |b: &[u8]| load_keypair(b).map(drop),
    ] {
        assert_err(load(&[]), "bad magic");
        assert_err(load(b"PAIX"), "bad magic");
        assert_err(load(b"PAIL"), "truncated");
        for file in &valid {
            for i in 0..4 {
                let mut bad = file.clone();
                bad[i] ^= 0x20;
                assert_err(load(&bad), "bad magic");
            }
        }
    }
}

#[test]
fn wrong_kind_is_rejected() {
    let pk_file = keypair().public_key().to_bytes();
    let kp_file = keypair().to_bytes();
    assert_err(
        Keypair::from_bytes(&pk_file),
        "file holds object kind 1, expected key pair",
    );
    assert_err(
        PublicKey::from_bytes(&kp_file),
        "file holds object kind 2, expected public key",
    );
    for kind in [0u8, 3, 255] {
        let mut bad = pk_file.clone();
        bad[4] = kind;
        assert_err(
            PublicKey::from_bytes(&bad),
            &format!("object kind {kind}, expected public key"),
        );
        let mut bad = kp_file.clone();
        bad[4] = kind;
        assert_err(
            Keypair::from_bytes(&bad),
            &format!("object kind {kind}, expected key pair"),
        );
    }
}

#[test]
fn wrong_version_is_rejected() {
    for version in [0u16, 1, 2, 256, u16::MAX] {
        let needle =
            format!("format version {version} is not supported: this build reads version 3 only");
        let mut pk_file = keypair().public_key().to_bytes();
        pk_file[5..7].copy_from_slice(&version.to_le_bytes());
        assert_err(PublicKey::from_bytes(&pk_file), &needle);
        let mut kp_file = keypair().to_bytes();
        kp_file[5..7].copy_from_slice(&version.to_le_bytes());
        assert_err(Keypair::from_bytes(&kp_file), &needle);
    }
}

/// A file of version 2 (before the common framing: no body length) is
/// refused with a message naming both versions, never misread.
#[test]
fn version_2_files_are_named_not_misread() {
    for (kind, file) in [
        (KIND_PUBLIC_KEY, keypair().public_key().to_bytes()),
        (KIND_KEYPAIR, keypair().to_bytes()),
    ] {
        let mut old = MAGIC.to_vec();
        old.push(kind);
        old.extend_from_slice(&2u16.to_le_bytes());
        old.extend_from_slice(body_of(&file));
        let old = seal(old);
        let needle = "format version 2 is not supported: this build reads version 3 only";
        if kind == KIND_PUBLIC_KEY {
            assert_err(PublicKey::from_bytes(&old), needle);
        } else {
            assert_err(Keypair::from_bytes(&old), needle);
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    let kp = keypair();
    assert_every_prefix_rejected(&kp.public_key().to_bytes(), load_public);
    assert_every_prefix_rejected(&kp.to_bytes(), load_keypair);
    // The same through serde.
    assert_every_prefix_rejected(&encode(kp.public_key()), decode_exact::<PublicKey>);
    assert_every_prefix_rejected(&encode(kp), decode_exact::<Keypair>);
    assert_every_prefix_rejected(&encode(kp.private_key()), decode_exact::<PrivateKey>);
    let c = kp.public_key().encrypt(&Integer::from(3)).expect("encrypt");
    assert_every_prefix_rejected(&encode(&c), decode_exact::<Ciphertext>);
    // A truncated body is reported as malformed.
    let file = kp.to_bytes();
    assert_err(
        Keypair::from_bytes(&file[..file.len() - 1]),
        "malformed key pair",
    );
    let file = kp.public_key().to_bytes();
    assert_err(
        PublicKey::from_bytes(&file[..file.len() - 1]),
        "malformed public key",
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    for extra in [&[0u8][..], &[1, 2, 3], &[0; 100]] {
        let needle = format!("{} trailing bytes", extra.len());
        // Behind a valid digest, trailing bytes are named as such...
        let pk_file = keypair().public_key().to_bytes();
        let body = [body_of(&pk_file), extra].concat();
        assert_err(
            PublicKey::from_bytes(&frame(KIND_PUBLIC_KEY, VERSION, &body)),
            &needle,
        );
        let kp_file = keypair().to_bytes();
        let body = [body_of(&kp_file), extra].concat();
        assert_err(
            Keypair::from_bytes(&frame(KIND_KEYPAIR, VERSION, &body)),
            &needle,
        );
        // ...and appended to a sealed file, they are refused by the framing.
        let mut kp_file = keypair().to_bytes();
        kp_file.extend_from_slice(extra);
        assert_err(
            Keypair::from_bytes(&kp_file),
            &format!("{} bytes follow the digest", extra.len()),
        );
        // A body changed behind a kept length and digest breaks the digest.
        let mut kp_file = keypair().to_bytes();
        kp_file[HEADER_LEN] ^= extra.len() as u8 | 1;
        assert_err(Keypair::from_bytes(&kp_file), "digest mismatch");
    }
}

#[test]
fn oversized_files_and_lengths_are_rejected() {
    let mut big = keypair().to_bytes();
    big.resize(FILE_LIMIT + 1, 0);
    assert_err(
        Keypair::from_bytes(&big),
        &format!("{} bytes, at most {FILE_LIMIT} allowed", FILE_LIMIT + 1),
    );
    let mut big = keypair().public_key().to_bytes();
    big.resize(FILE_LIMIT + 1, 0);
    assert_err(PublicKey::from_bytes(&big), "at most 65536 allowed");

    // A declared length of 2^64 - 1 bytes (varint tag 253, then a u64) must
    // be refused without trying to allocate it.
    let mut huge = vec![253u8];
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    for kind in [KIND_PUBLIC_KEY, KIND_KEYPAIR] {
        let file = frame(kind, VERSION, &huge);
        assert!(load_public(&file).is_err() && load_keypair(&file).is_err());
    }
    assert!(decode_exact::<PublicKey>(&huge).is_err());
    assert!(decode_exact::<Keypair>(&huge).is_err());
    assert!(decode_exact::<Ciphertext>(&huge).is_err());
}

// ---------------------------------------------------------------------------
// Public keys: the modulus
// ---------------------------------------------------------------------------

#[test]
fn bad_moduli_are_rejected() {
    let parts = Parts::test_key();
    let n = &parts.n;

    assert_modulus_rejected(&Integer::from(n + 1u32), "n is even");
    assert_modulus_rejected(
        &Integer::from(parts.p.square_ref()),
        "n is a perfect square",
    );
    assert_modulus_rejected(&Integer::from(n * 3u32), "n has a small prime factor");
    assert_modulus_rejected(
        &Integer::from(&parts.p * 199u32),
        "n has a small prime factor",
    );
    // 64 bits, odd: below the 128-bit minimum of the test feature.
    assert_modulus_rejected(
        &Integer::from(0xf123_4567_89ab_cdefu64),
        "key size of 64 bits is not accepted: below the test minimum",
    );
    assert_modulus_rejected(&Integer::new(), "key size of 0 bits");
    // Above 8192 bits: only from_modulus can be given such a number (the key
    // file refuses more than 1024 bytes first).
    let huge = (Integer::from(1) << 8192u32) + 1u32;
    assert_err(
        PublicKey::from_modulus(huge),
        "key size of 8193 bits is not accepted: above the maximum",
    );
    assert_public_bytes_rejected(&[0xff; 1025], "modulus is 1025 bytes, at most 1024 allowed");
    // A negative modulus (only reachable through from_modulus): it used to be
    // accepted, with a negative largest plaintext, the fingerprint of the
    // positive key, and a nonce sampler that never returns.
    assert_err(
        PublicKey::from_modulus(Integer::from(-n)),
        "invalid public key: n is negative",
    );
}

#[test]
fn non_canonical_modulus_is_rejected() {
    let mut bytes = be(keypair().public_key().n()).0;
    bytes.insert(0, 0);
    assert_public_bytes_rejected(&bytes, "modulus has a leading zero byte (not canonical)");
}

// ---------------------------------------------------------------------------
// Private keys: p, q, n and the recorded factors
// ---------------------------------------------------------------------------

#[test]
fn composite_p_or_q_is_rejected() {
    let parts = Parts::test_key();
    let p_bad = next_odd_composite(&parts.p);
    assert_eq!(p_bad.significant_bits(), parts.p.significant_bits());
    let needle = "invalid private key: p and q must be odd primes";
    assert_parts_rejected(&Parts::from_primes(p_bad.clone(), parts.q.clone()), needle);
    assert_parts_rejected(&Parts::from_primes(parts.p.clone(), p_bad), needle);
    assert_parts_rejected(&Parts::from_primes(Integer::new(), parts.q.clone()), needle);
    assert_parts_rejected(
        &Parts::from_primes(Integer::from(2), parts.q.clone()),
        needle,
    );
    // Even with the real n recorded.
    let mut wrong = parts.clone();
    wrong.p = next_odd_composite(&parts.p);
    assert_parts_rejected(&wrong, needle);
}

#[test]
fn equal_primes_are_rejected() {
    let parts = Parts::test_key();
    let mut same = Parts::from_primes(parts.p.clone(), parts.p.clone());
    assert_parts_rejected(&same, "p and q are equal");
    same.p_factor = parts.p_factor.clone();
    same.q_factor = parts.p_factor;
    assert_parts_rejected(&same, "p and q are equal");
}

#[test]
fn primes_of_different_sizes_are_rejected() {
    let parts = Parts::test_key();
    let bits = parts.p.significant_bits();
    let smaller = (Integer::from(1) << (bits - 2)).next_prime();
    assert_eq!(smaller.significant_bits(), bits - 1);
    assert_parts_rejected(
        &Parts::from_primes(parts.p.clone(), smaller),
        "p and q differ in size",
    );
}

#[test]
fn small_private_key_is_rejected() {
    // Two 32-bit primes: a 64-bit n.
    let p = Integer::from(0xc000_0001u32).next_prime();
    let q = p.clone().next_prime();
    let parts = Parts::from_primes(p, q);
    assert_eq!(parts.n.significant_bits(), 64);
    assert_parts_rejected(&parts, "below the test minimum of 128 bits");
}

#[test]
fn n_inconsistent_with_p_and_q_is_rejected() {
    let parts = Parts::test_key();
    let needle = "the private key does not belong to this public key";
    for n in [
        Integer::from(&parts.n + 2u32),
        Integer::from(&parts.n - 2u32),
        Integer::new(),
        Integer::from(parts.p.square_ref()),
    ] {
        let mut wrong = parts.clone();
        wrong.n = n;
        assert_parts_rejected(&wrong, needle);
    }
}

#[test]
fn non_canonical_private_fields_are_rejected() {
    let good = Parts::test_key().mirror();
    type Field = fn(&mut KeypairMirror) -> &mut Bytes;
    let fields: [(Field, &str); 5] = [
        (|m| &mut m.n, "n has a leading zero byte"),
        (|m| &mut m.p, "p has a leading zero byte"),
        (|m| &mut m.q, "q has a leading zero byte"),
        (|m| &mut m.p_factor, "factor of p-1 has a leading zero byte"),
        (|m| &mut m.q_factor, "factor of q-1 has a leading zero byte"),
    ];
    for (field, needle) in fields {
        let mut m = good.clone();
        field(&mut m).0.insert(0, 0);
        assert_keypair_mirror_rejected(&m, needle);
        // And over-long fields.
        let mut m = good.clone();
        *field(&mut m) = Bytes(vec![0xff; 1025]);
        assert_keypair_mirror_rejected(&m, "is 1025 bytes, at most 1024 allowed");
    }
}

#[test]
fn wrong_recorded_factors_are_rejected() {
    let parts = Parts::test_key();
    let pf = parts.p_factor.clone().expect("generated keys record p'");
    let qf = parts.q_factor.clone().expect("generated keys record q'");
    let pm1 = Integer::from(&parts.p - 1u32);
    assert!(pm1.is_divisible(&pf) && !pm1.is_divisible(&qf));
    let needle = "invalid private key: recorded factor of p-1 is wrong";
    for bad in [
        qf.clone(),                       // prime, does not divide p-1
        Integer::from(&pf * 2u32),        // divides p-1, not prime
        pm1.clone(),                      // divides p-1, not prime
        Integer::from(1),                 // trivial
        Integer::from(2),                 // prime, divides, cofactor too large
        Integer::from(&pf + 2u32),        // close to the real one
        (Integer::from(1) << 64) + 13u32, // unrelated
    ] {
        let mut wrong = parts.clone();
        wrong.p_factor = Some(bad.clone());
        assert_parts_rejected(&wrong, needle);
        let mut wrong = parts.clone();
        wrong.q_factor = Some(if bad == qf { pf.clone() } else { bad });
        assert_parts_rejected(&wrong, needle);
    }
    // Swapped factors.
    let mut swapped = parts.clone();
    swapped.p_factor = Some(qf);
    swapped.q_factor = Some(pf);
    assert_parts_rejected(&swapped, needle);
}

#[test]
fn from_keys_checks_that_the_keys_belong_together() {
    let kp = keypair();
    let joined = Keypair::from_keys(kp.public_key(), kp.private_key().clone()).expect("matching");
    assert_eq!(joined.public_key(), kp.public_key());

    let other = Keypair::generate_insecure_for_tests(256).expect("keygen");
    assert_err(
        Keypair::from_keys(other.public_key(), kp.private_key().clone()),
        "the private key does not belong to this public key (n differs)",
    );
    assert_err(
        Keypair::from_keys(kp.public_key(), other.private_key().clone()),
        "does not belong",
    );
    // A loaded public key with another n.
    let loaded = PublicKey::from_bytes(&other.public_key().to_bytes()).expect("load");
    assert_err(
        Keypair::from_keys(&loaded, kp.clone().into_private_key()),
        "does not belong",
    );
}

// ---------------------------------------------------------------------------
// Ciphertexts
// ---------------------------------------------------------------------------

#[test]
fn serde_rejects_zero_long_and_non_canonical_ciphertexts() {
    assert_err(
        decode_exact::<Ciphertext>(&encode(&Bytes(Vec::new()))),
        "ciphertext is zero",
    );
    assert_err(
        decode_exact::<Ciphertext>(&encode(&Bytes(vec![0xff; 2049]))),
        "ciphertext is 2049 bytes, at most 2048 allowed",
    );
    assert_err(
        decode_exact::<Ciphertext>(&encode(&Bytes(vec![0, 1]))),
        "ciphertext has a leading zero byte (not canonical)",
    );
    assert_err(
        decode_exact::<Ciphertext>(&encode(&Bytes(vec![0]))),
        "leading zero",
    );
    // The longest value serde allows still fails against the key.
    let longest: Ciphertext =
        decode_exact(&encode(&Bytes(vec![0xff; 2048]))).expect("2048 bytes are allowed");
    assert_err(
        keypair().public_key().validate(&longest),
        "must be in [1, n^2)",
    );
}

/// Values that are not ciphertexts of the test key, with a name for messages.
fn invalid_ciphertext_values() -> Vec<(&'static str, Integer)> {
    let parts = Parts::test_key();
    let nn = Integer::from(parts.n.square_ref());
    vec![
        ("n^2", nn.clone()),
        ("n^2 + 1", Integer::from(&nn + 1u32)),
        ("2 n^2 - 1", Integer::from(&nn * 2u32) - 1u32),
        ("n", parts.n.clone()),
        ("3 n", Integer::from(&parts.n * 3u32)),
        ("p", parts.p.clone()),
        ("q (n - 1)", Integer::from(&parts.n - 1u32) * &parts.q),
    ]
}

#[test]
fn ciphertext_from_integer_and_bytes_check_the_value() {
    let pk = keypair().public_key();
    let needle = "ciphertext is not valid for this 512-bit key";
    let mut cases = invalid_ciphertext_values();
    cases.push(("0", Integer::new()));
    for (name, x) in &cases {
        let msg = assert_err(pk.ciphertext_from_integer(x.clone()), needle);
        assert!(msg.contains("coprime to n"), "{name}: {msg}");
        assert_err(pk.ciphertext_from_bytes(&be(x).0), needle);
    }
    for x in [-1i64, -2, i64::MIN] {
        assert_err(pk.ciphertext_from_integer(Integer::from(x)), needle);
    }
    let c = pk.encrypt(&Integer::from(8)).expect("encrypt");
    assert_err(
        pk.ciphertext_from_integer(Integer::from(-c.as_integer())),
        needle,
    );

    // Zero as bytes: empty, and zeros within the fixed width.
    assert_err(pk.ciphertext_from_bytes(&[]), needle);
    assert_err(
        pk.ciphertext_from_bytes(&vec![0; pk.ciphertext_bytes()]),
        needle,
    );
    // Leading zeros are allowed up to the fixed width, not beyond.
    let mut wide = vec![0; pk.ciphertext_bytes() - 1];
    wide.push(1);
    assert_eq!(
        pk.ciphertext_from_bytes(&wide)
            .expect("1 in fixed width")
            .as_integer(),
        &1
    );
    wide.insert(0, 0);
    assert_err(pk.ciphertext_from_bytes(&wide), needle);
}

#[test]
fn validate_refuses_forged_ciphertexts_and_decryption_fails_cleanly() {
    let kp = keypair();
    let (pk, sk) = (kp.public_key(), kp.private_key());
    // The forging route itself yields ciphertexts that work.
    let c = pk.encrypt(&Integer::from(-5)).expect("encrypt");
    let forged = forged_ciphertext(c.as_integer());
    pk.validate(&forged).expect("a real ciphertext validates");
    assert_eq!(sk.decrypt(&forged).expect("decrypt"), -5);

    for (name, x) in invalid_ciphertext_values() {
        let forged = forged_ciphertext(&x);
        let msg = assert_err(pk.validate(&forged), "must be in [1, n^2) and coprime to n");
        assert!(msg.contains("512-bit"), "{name}: {msg}");
        assert_err(sk.decrypt(&forged), "not valid for this 512-bit key");
        assert_err(
            paillier::hazmat::decrypt_raw(sk, &forged),
            "not valid for this 512-bit key",
        );
    }
}

// ---------------------------------------------------------------------------
// Fuzzing: nothing panics
// ---------------------------------------------------------------------------

/// Every loader and decoder, on the same bytes; none may panic.
fn load_everything(bytes: &[u8]) {
    let _ = PublicKey::from_bytes(bytes);
    let _ = Keypair::from_bytes(bytes);
    let _ = decode_exact::<PublicKey>(bytes);
    let _ = decode_exact::<PrivateKey>(bytes);
    let _ = decode_exact::<Keypair>(bytes);
    let _ = decode_exact::<Ciphertext>(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        load_everything(&bytes);
    }

    #[test]
    fn random_body_after_a_valid_header_never_panics(
        kind in KIND_PUBLIC_KEY..=KIND_KEYPAIR,
        body in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        let file = frame(kind, VERSION, &body);
        load_everything(&file[..file.len() - DIGEST_LEN]);
        load_everything(&file);
        // The header alone decides which loader may accept it.
        if kind == KIND_PUBLIC_KEY {
            prop_assert!(Keypair::from_bytes(&file).is_err());
        } else {
            prop_assert!(PublicKey::from_bytes(&file).is_err());
        }
    }

    /// Well-framed byte-string fields of random content reach the checks of
    /// the key material itself.
    #[test]
    fn random_fields_after_a_valid_header_never_panic(
        kind in KIND_PUBLIC_KEY..=KIND_KEYPAIR,
        fields in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..80), 0..7),
    ) {
        let body: Vec<Bytes> = fields.into_iter().map(Bytes).collect();
        let raw: Vec<u8> = body.iter().flat_map(encode).collect();
        load_everything(&raw);
        let file = frame(kind, VERSION, &raw);
        load_everything(&file);
        // Random primes with p * q = n are out of reach.
        prop_assert!(Keypair::from_bytes(&file).is_err());
    }

    /// Any one-byte change of a valid key file is refused (the digest
    /// catches what the structure checks would not).
    #[test]
    fn one_byte_changes_are_caught(at in any::<proptest::sample::Index>(), x in 1u8..=255) {
        let kp_file = keypair().to_bytes();
        let mut bad = kp_file.clone();
        bad[at.index(kp_file.len())] ^= x;
        prop_assert!(Keypair::from_bytes(&bad).is_err());

        let pk_file = keypair().public_key().to_bytes();
        let mut bad = pk_file.clone();
        bad[at.index(pk_file.len())] ^= x;
        prop_assert!(PublicKey::from_bytes(&bad).is_err());
    }
}

#[test]
fn prime_modulus_is_refused() {
    // Under a prime n, phi(n) = n - 1 is public: anyone could decrypt.
    let p = (Integer::from(1) << 511u32).next_prime();
    let err = paillier::PublicKey::from_modulus(p)
        .unwrap_err()
        .to_string();
    assert!(err.contains("n is prime"), "{err}");
}
