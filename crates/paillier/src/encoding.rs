//! Byte encodings of big integers, used by serde and the key files.
//!
//! Binary formats (bincode) get compact big-endian bytes; human-readable
//! formats (JSON, TOML) get lower-case hex strings. Decoding rejects
//! non-canonical encodings (leading zero bytes) and anything longer than the
//! caller's limit.

use rug::Integer;
use rug::integer::Order;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;

/// Minimal big-endian bytes of a non-negative integer (empty for zero).
pub(crate) fn to_be_bytes(x: &Integer) -> Vec<u8> {
    x.to_digits::<u8>(Order::Msf)
}

/// `x` as exactly `width` big-endian bytes (`x` must fit).
pub(crate) fn to_be_bytes_fixed(x: &Integer, width: usize, out: &mut Vec<u8>) {
    let digits = x.significant_digits::<u8>();
    debug_assert!(digits <= width);
    let start = out.len();
    out.resize(start + width, 0);
    x.write_digits(&mut out[start + width - digits..], Order::Msf);
}

/// Parses canonical big-endian bytes of at most `max_len` bytes.
pub(crate) fn from_be_bytes(
    bytes: &[u8],
    max_len: usize,
    what: &'static str,
) -> Result<Integer, String> {
    if bytes.len() > max_len {
        return Err(format!(
            "{what} is {} bytes, at most {max_len} allowed",
            bytes.len()
        ));
    }
    if bytes.first() == Some(&0) {
        return Err(format!("{what} has a leading zero byte (not canonical)"));
    }
    Ok(Integer::from_digits(bytes, Order::Msf))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("hex string has an odd length".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "invalid hex digit".to_string())
        })
        .collect()
}

/// Serializes a non-negative integer as bytes (or hex when human readable).
pub(crate) fn serialize_uint<S: Serializer>(x: &Integer, s: S) -> Result<S::Ok, S::Error> {
    serialize_byte_slice(&to_be_bytes(x), s)
}

/// Serializes bytes compactly (or as hex when human readable).
pub(crate) fn serialize_byte_slice<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&to_hex(bytes))
    } else {
        s.serialize_bytes(bytes)
    }
}

/// Raw bytes (or hex) of an integer, before canonical checks.
pub(crate) fn deserialize_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("big-endian bytes or a hex string")
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
            from_hex(v).map_err(E::custom)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                if out.len() >= crate::MAX_KEY_BITS as usize / 4 + 8 {
                    return Err(de::Error::custom("integer too long"));
                }
                out.push(b);
            }
            Ok(out)
        }
    }
    if d.is_human_readable() {
        d.deserialize_str(V)
    } else {
        d.deserialize_bytes(V)
    }
}

/// Deserializes a canonical non-negative integer of at most `max_len` bytes.
pub(crate) fn deserialize_uint<'de, D: Deserializer<'de>>(
    d: D,
    max_len: usize,
    what: &'static str,
) -> Result<Integer, D::Error> {
    let bytes = deserialize_raw(d)?;
    from_be_bytes(&bytes, max_len, what).map_err(de::Error::custom)
}
