//! Key generation and the key pair.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Result;
use crate::private_key::{self, PrivateKey};
use crate::public_key::PublicKey;

/// A private key with its public key.
///
/// ```
/// # fn main() -> Result<(), paillier::Error> {
/// # #[cfg(feature = "insecure-test-keys")] {
/// use paillier::{Integer, Keypair};
/// # let kp = Keypair::generate_insecure_for_tests(512)?;
/// # /*
/// let kp = Keypair::generate(Keypair::default_bits())?;
/// # */
/// let c = kp.public_key().encrypt(&Integer::from(-42))?;
/// let d = kp.public_key().add_plain(&c, &Integer::from(50));
/// assert_eq!(kp.private_key().decrypt(&d)?, 8);
/// # }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Keypair {
    sk: PrivateKey,
}

impl Keypair {
    /// The framing of key-pair files ([`to_bytes`](Self::to_bytes)): magic
    /// `PAIL\x02`, version, length, bincode body, digest.
    pub const FILE_FORMAT: crate::frame::Format<5> = crate::file::KEYPAIR;

    /// The default size of n: 3072 bits, about 128-bit security.
    #[must_use]
    pub const fn default_bits() -> u32 {
        3072
    }

    /// Generates a key pair with an n of exactly `bits` bits, from the OS
    /// CSPRNG. `bits` must be even and at least 2048 (about 112-bit
    /// security); 3072 is the default. Smaller sizes are refused whatever
    /// features the build has.
    pub fn generate(bits: u32) -> Result<Self> {
        Ok(Keypair {
            sk: private_key::generate(bits, false)?,
        })
    }

    /// Generates a small key for fast tests (down to 128 bits), and from
    /// then on lets this process load small keys too (see
    /// [`insecure_test_keys`](crate::insecure_test_keys) for why).
    ///
    /// Only with the `insecure-test-keys` feature; such keys give no
    /// security at all. Programs never call it.
    #[cfg(feature = "insecure-test-keys")]
    pub fn generate_insecure_for_tests(bits: u32) -> Result<Self> {
        crate::insecure_test_keys::allow_in_this_process();
        Ok(Keypair {
            sk: private_key::generate(bits, true)?,
        })
    }

    /// Joins a public and a private key, checking that they belong together.
    pub fn from_keys(public: &PublicKey, private: PrivateKey) -> Result<Self> {
        if public.n() != private.public_key().n() {
            return Err(crate::Error::KeyMismatch);
        }
        Ok(Keypair { sk: private })
    }

    /// The public key.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        self.sk.public_key()
    }

    /// The private key.
    #[must_use]
    pub fn private_key(&self) -> &PrivateKey {
        &self.sk
    }

    /// The private key, mutably (to change its [`Timing`](crate::Timing)).
    pub fn private_key_mut(&mut self) -> &mut PrivateKey {
        &mut self.sk
    }

    /// Consumes the pair, returning the private key.
    #[must_use]
    pub fn into_private_key(self) -> PrivateKey {
        self.sk
    }

    /// Serializes the pair in the toolkit's versioned binary format. The
    /// bytes are secret: store them with owner-only permissions.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.sk.to_file_bytes()
    }

    /// Loads a pair written by [`to_bytes`](Self::to_bytes), checking
    /// everything: format, primality of p and q, consistency with n.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(Keypair {
            sk: PrivateKey::from_file_bytes(bytes)?,
        })
    }
}

impl From<PrivateKey> for Keypair {
    fn from(sk: PrivateKey) -> Self {
        Keypair { sk }
    }
}

impl Serialize for Keypair {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.sk.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Keypair {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Keypair {
            sk: PrivateKey::deserialize(d)?,
        })
    }
}
