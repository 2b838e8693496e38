//! The versioned binary format of key files: a magic, the kind of object,
//! a format version, the object in bincode (with a size limit), and a
//! SHA-256 digest of everything before it, so that a corrupted file is an
//! error rather than another key.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"PAIL";
const VERSION: u16 = 2;
/// Bytes of the trailing digest.
const DIGEST_LEN: usize = 32;
/// Magic, kind and version.
const PREFIX_LEN: usize = 7;

fn digest(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
/// Keys are a few KiB; anything larger is refused before decoding.
const LIMIT: usize = 64 * 1024;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    PublicKey = 1,
    Keypair = 2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::PublicKey => "public key",
            Kind::Keypair => "key pair",
        }
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

pub(crate) fn encode<T: Serialize>(kind: Kind, value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(MAGIC);
    out.push(kind as u8);
    out.extend_from_slice(&VERSION.to_le_bytes());
    // Serializing plain byte vectors into a Vec cannot fail.
    if let Ok(body) = bincode::serde::encode_to_vec(value, config()) {
        out.extend_from_slice(&body);
    }
    let d = digest(&out);
    out.extend_from_slice(&d);
    out
}

pub(crate) fn decode<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Result<T> {
    let what = kind.name();
    let bad = |reason: String| Error::Malformed { what, reason };
    if bytes.len() > LIMIT {
        return Err(bad(format!(
            "{} bytes, at most {LIMIT} allowed",
            bytes.len()
        )));
    }
    if bytes.len() < PREFIX_LEN || &bytes[..4] != MAGIC {
        return Err(bad("not a key file of this toolkit (bad magic)".into()));
    }
    if bytes[4] != kind as u8 {
        return Err(bad(format!(
            "file holds object kind {}, expected {what}",
            bytes[4]
        )));
    }
    let version = u16::from_le_bytes([bytes[5], bytes[6]]);
    if version != VERSION {
        return Err(bad(format!(
            "format version {version}, this build reads version {VERSION}"
        )));
    }
    let Some(body_end) = bytes
        .len()
        .checked_sub(DIGEST_LEN)
        .filter(|&e| e >= PREFIX_LEN)
    else {
        return Err(bad("file too short for its digest".into()));
    };
    if digest(&bytes[..body_end]) != bytes[body_end..] {
        return Err(bad(
            "digest mismatch: the file was corrupted or changed".into()
        ));
    }
    let body = &bytes[PREFIX_LEN..body_end];
    let (value, used) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| bad(e.to_string()))?;
    if used != body.len() {
        return Err(bad(format!("{} trailing bytes", body.len() - used)));
    }
    Ok(value)
}
