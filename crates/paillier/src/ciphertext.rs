//! The ciphertext type.

use rug::Integer;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::encoding;

/// A Paillier ciphertext: an element of `Z*_{n^2}`.
///
/// Values are made only by a key's operations or by
/// [`PublicKey::ciphertext_from_integer`](crate::PublicKey::ciphertext_from_integer)
/// / [`ciphertext_from_bytes`](crate::PublicKey::ciphertext_from_bytes), which
/// check that the value is in `[1, n^2)` and coprime to n.
///
/// Deserializing a ciphertext on its own (serde) can check only that it is
/// canonical, non-zero and not larger than the largest key allows: the key
/// is not known there. Check it against its key with
/// [`PublicKey::validate`](crate::PublicKey::validate) before use;
/// containers such as `enc-image` do this for every ciphertext they load.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ciphertext(pub(crate) Integer);

impl Ciphertext {
    /// The ciphertext as an integer in `[1, n^2)`.
    #[must_use]
    pub fn as_integer(&self) -> &Integer {
        &self.0
    }

    /// Consumes the ciphertext, returning its integer.
    #[must_use]
    pub fn into_integer(self) -> Integer {
        self.0
    }

    /// Minimal big-endian bytes.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::to_be_bytes(&self.0)
    }
}

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ciphertexts are public, but thousands of digits help nobody.
        write!(f, "Ciphertext({} bits)", self.0.significant_bits())
    }
}

impl Serialize for Ciphertext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        encoding::serialize_uint(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Ciphertext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let max = 2 * crate::MAX_KEY_BITS as usize / 8;
        let x = encoding::deserialize_uint(d, max, "ciphertext")?;
        if x == 0 {
            return Err(serde::de::Error::custom("ciphertext is zero"));
        }
        Ok(Ciphertext(x))
    }
}
