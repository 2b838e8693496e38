//! The versioned binary format of key files: a magic, the kind of object,
//! a format version, then the object in bincode (with a size limit).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"PAIL";
const VERSION: u16 = 1;
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
    if bytes.len() < 7 || &bytes[..4] != MAGIC {
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
    let (value, used) =
        bincode::serde::decode_from_slice(&bytes[7..], config()).map_err(|e| bad(e.to_string()))?;
    if used != bytes.len() - 7 {
        return Err(bad(format!("{} trailing bytes", bytes.len() - 7 - used)));
    }
    Ok(value)
}
