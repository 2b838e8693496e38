//! Key files: the toolkit's framing ([`crate::frame`]) around the key in
//! bincode. The magic is `PAIL` and one byte for the kind of object, so
//! that a public key is never read as a key pair or the reverse, and a
//! corrupted file is an error rather than another key.
//!
//! Version 3 (this one) is the common framing with a body length; version 2
//! had no length and is refused with a message naming both versions.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::frame::{Format, FrameError};

/// The magic's first four bytes; the fifth is the [`Kind`].
const MAGIC_PREFIX: &[u8; 4] = b"PAIL";
/// The version of key files this build writes and reads (3: the common
/// framing, with a body length).
const VERSION: u16 = 3;
/// Keys are a few KiB; a larger file is refused before decoding.
const LIMIT: usize = 64 * 1024;

/// The framing of public-key files.
pub(crate) const PUBLIC_KEY: Format<5> = Format::new(*b"PAIL\x01", VERSION, "public key");
/// The framing of key-pair files.
pub(crate) const KEYPAIR: Format<5> = Format::new(*b"PAIL\x02", VERSION, "key pair");

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    PublicKey = 1,
    Keypair = 2,
}

impl Kind {
    /// The framing of files of this kind.
    fn format(self) -> Format<5> {
        match self {
            Kind::PublicKey => PUBLIC_KEY,
            Kind::Keypair => KEYPAIR,
        }
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

pub(crate) fn encode<T: Serialize>(kind: Kind, value: &T) -> Vec<u8> {
    // Serializing plain byte vectors into a Vec cannot fail.
    let body = bincode::serde::encode_to_vec(value, config()).unwrap_or_default();
    kind.format().seal(&body)
}

pub(crate) fn decode<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Result<T> {
    let format = kind.format();
    let what = format.name();
    let bad = |reason: String| Error::Malformed { what, reason };
    if bytes.len() > LIMIT {
        return Err(bad(format!(
            "{} bytes, at most {LIMIT} allowed",
            bytes.len()
        )));
    }
    // The kind gets its own message: the other kind's file is a common mistake.
    if let Some((&found, _)) = bytes
        .strip_prefix(MAGIC_PREFIX)
        .and_then(|rest| rest.split_first())
        && found != kind as u8
    {
        return Err(bad(format!(
            "file holds object kind {found}, expected {what}"
        )));
    }
    let body = format.open(bytes, LIMIT).map_err(|e| match e {
        FrameError::Magic { .. } => bad("not a key file of this toolkit (bad magic)".into()),
        other => bad(other.to_string()),
    })?;
    let (value, used) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| bad(e.to_string()))?;
    if used != body.len() {
        return Err(bad(format!("{} trailing bytes", body.len() - used)));
    }
    Ok(value)
}
