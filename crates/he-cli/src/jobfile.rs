//! The file `he encrypt` writes, `he filter` transforms and `he decrypt`
//! reads: what a job upload carries (public key, chain, ciphertexts) plus
//! what the key holder needs to check the result later.
//!
//! Layout: magic `HEJF`, version, then bincode of [`JobFile`], then the
//! SHA-256 of everything before it.
//!
//! The chain tag is an HMAC-SHA256 of the chain and the public key under
//! a key derived from the private key: whoever runs `he filter` can
//! rewrite the file's chain and the image's history together (a plain
//! digest is recomputed in a moment), but not this tag, so `he decrypt`
//! knows the chain it checks against is the one the key holder chose.
//!
//! The input tag is an HMAC-SHA256 of the input's pixels under a key
//! derived from the private key: whoever runs `he filter` (the server's
//! role) cannot use it to test guesses of the image, and the key holder
//! can tell whether an image given to `he decrypt --input` is the one that
//! was encrypted.

use anyhow::{Context, Result, anyhow, bail};
use enc_image::PixelImage;
use he_filter::Filter;
use hmac::{Hmac, Mac};
use paillier::Keypair;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 4] = b"HEJF";
const VERSION: u16 = 2;
/// The digest at the end.
const DIGEST_LEN: usize = 32;

/// The contents of a job file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct JobFile {
    /// The chain the image was encrypted for, as JSON (the service's form).
    chain_json: String,
    /// HMAC-SHA256 of the chain and the public key, keyed from the private
    /// key; none when the image was encrypted with the public key only.
    chain_tag: Option<[u8; 32]>,
    /// HMAC-SHA256 of the input pixels, keyed from the private key; none
    /// when the image was encrypted with the public key only.
    pub(crate) input_tag: Option<[u8; 32]>,
    /// The public key's bytes.
    pub(crate) public_key: Vec<u8>,
    /// The encrypted image's bytes (filtered, after `he filter`).
    pub(crate) image: Vec<u8>,
}

impl JobFile {
    /// A job file for `image` encrypted from `input` for `chain`.
    pub(crate) fn new(
        kp: &Keypair,
        input: &PixelImage,
        chain: &[Filter],
        image: Vec<u8>,
    ) -> Result<JobFile> {
        let chain_json = serde_json::to_string(chain)?;
        let public_key = kp.public_key().to_bytes();
        Ok(JobFile {
            chain_tag: Some(chain_tag(kp, &chain_json, &public_key)?),
            chain_json,
            input_tag: Some(input_tag(kp, input)?),
            public_key,
            image,
        })
    }

    /// A job file for `image` encrypted with the public key alone: no input
    /// tag (it needs the private key).
    pub(crate) fn for_public_key(
        pk: &paillier::PublicKey,
        chain: &[Filter],
        image: Vec<u8>,
    ) -> Result<JobFile> {
        Ok(JobFile {
            chain_json: serde_json::to_string(chain)?,
            chain_tag: None,
            input_tag: None,
            public_key: pk.to_bytes(),
            image,
        })
    }

    /// The chain the image was encrypted for, as the file says (anyone
    /// who can write the file can change it: see [`JobFile::authentic_chain`]).
    pub(crate) fn chain(&self) -> Result<Vec<Filter>> {
        serde_json::from_str(&self.chain_json).context("the job file's filter chain")
    }

    /// The chain, checked against its tag under `kp`: `Ok(Some(chain))`
    /// when the key holder made the file, `Ok(None)` for a file made with
    /// the public key only (no tag: the chain cannot be authenticated),
    /// and an error when the chain or the key was changed.
    pub(crate) fn authentic_chain(&self, kp: &Keypair) -> Result<Option<Vec<Filter>>> {
        let Some(tag) = self.chain_tag else {
            return Ok(None);
        };
        if chain_tag(kp, &self.chain_json, &self.public_key)? != tag {
            bail!(crate::VerificationFailed(
                "the file's filter chain or public key was changed after encryption \
                 (its tag under your key does not match)"
                    .into()
            ));
        }
        Ok(Some(self.chain()?))
    }

    /// The same job with another image (the filtered one).
    pub(crate) fn with_image(&self, image: Vec<u8>) -> JobFile {
        JobFile {
            image,
            ..self.clone()
        }
    }

    /// The file's bytes.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        bincode::serde::encode_into_std_write(self, &mut out, bincode::config::standard())
            .context("cannot encode the job file")?;
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        Ok(out)
    }

    /// Reads a job file, checking its magic, version and digest.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<JobFile> {
        if bytes.len() < MAGIC.len() + 2 + DIGEST_LEN {
            bail!("not a job file (written by `he encrypt`): too short");
        }
        if &bytes[..4] != MAGIC {
            bail!("not a job file (written by `he encrypt`): wrong magic bytes");
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != VERSION {
            bail!(
                "job file version {version}; this `he` reads version {VERSION} (use the `he` that wrote it)"
            );
        }
        let (body, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
        if Sha256::digest(body).as_slice() != digest {
            bail!("the job file is damaged (its SHA-256 digest does not match)");
        }
        let limit = bincode::config::standard().with_limit::<{ 1 << 32 }>();
        let (file, used): (JobFile, usize) =
            bincode::serde::decode_from_slice(&body[6..], limit)
                .map_err(|e| anyhow!("the job file does not decode: {e}"))?;
        if used != body.len() - 6 {
            bail!("the job file has trailing bytes");
        }
        Ok(file)
    }
}

/// An HMAC-SHA256 under a key derived from the key pair (its serialized
/// bytes), domain-separated by `label`.
fn keyed_mac(kp: &Keypair, label: &[u8]) -> Result<Hmac<Sha256>> {
    let mut kdf = Sha256::new();
    kdf.update(label);
    kdf.update(kp.to_bytes());
    let key = kdf.finalize();
    <Hmac<Sha256> as Mac>::new_from_slice(&key).map_err(|e| anyhow!("HMAC key: {e}"))
}

/// HMAC-SHA256 of the chain's JSON and the public key's bytes.
fn chain_tag(kp: &Keypair, chain_json: &str, public_key: &[u8]) -> Result<[u8; 32]> {
    let mut mac = keyed_mac(kp, b"he-cli chain tag v1\0")?;
    mac.update(&(chain_json.len() as u64).to_le_bytes());
    mac.update(chain_json.as_bytes());
    mac.update(public_key);
    Ok(mac.finalize().into_bytes().into())
}

/// HMAC-SHA256 of the image's dimensions, layout and pixels, under a key
/// derived from the key pair (its serialized bytes, domain-separated).
pub(crate) fn input_tag(kp: &Keypair, img: &PixelImage) -> Result<[u8; 32]> {
    let mut mac = keyed_mac(kp, b"he-cli input tag v1\0")?;
    mac.update(&(img.width() as u64).to_le_bytes());
    mac.update(&(img.height() as u64).to_le_bytes());
    mac.update(&(img.channels() as u64).to_le_bytes());
    mac.update(img.data());
    Ok(mac.finalize().into_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use enc_image::ColorLayout;

    fn sample() -> (Keypair, PixelImage, JobFile) {
        let kp = Keypair::generate(2048).unwrap();
        let img = PixelImage::new(2, 1, ColorLayout::Rgb8, vec![1, 2, 3, 4, 5, 6]).unwrap();
        let f = JobFile::new(&kp, &img, &[Filter::Mean { k: 3 }], vec![9; 40]).unwrap();
        (kp, img, f)
    }

    #[test]
    fn round_trips_and_refuses_any_damage() {
        let (_, _, f) = sample();
        let bytes = f.to_bytes().unwrap();
        assert_eq!(JobFile::from_bytes(&bytes).unwrap(), f);
        assert_eq!(f.chain().unwrap(), vec![Filter::Mean { k: 3 }]);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(JobFile::from_bytes(&b).is_err(), "flip at {i} accepted");
        }
        assert!(JobFile::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut v1 = bytes.clone();
        v1[4] = 1;
        let e = JobFile::from_bytes(&v1).unwrap_err().to_string();
        assert!(e.contains("version 1"), "{e}");
    }

    #[test]
    fn a_chain_rewritten_by_the_filterer_is_caught() {
        let (kp, _, f) = sample();
        assert_eq!(
            f.authentic_chain(&kp).unwrap(),
            Some(vec![Filter::Mean { k: 3 }])
        );
        // The filterer rewrites the chain (and would recompute the digest).
        let forged = JobFile {
            chain_json: serde_json::to_string(&[Filter::Sharpen]).unwrap(),
            ..f.clone()
        };
        let e = forged.authentic_chain(&kp).unwrap_err();
        assert!(e.to_string().contains("changed after encryption"), "{e}");
        let other = Keypair::generate(2048).unwrap();
        assert!(f.authentic_chain(&other).is_err());
        let public = JobFile::for_public_key(kp.public_key(), &[Filter::Sharpen], vec![]).unwrap();
        assert_eq!(public.authentic_chain(&kp).unwrap(), None);
    }

    #[test]
    fn the_input_tag_names_the_image_and_needs_the_key() {
        let (kp, img, f) = sample();
        assert_eq!(Some(input_tag(&kp, &img).unwrap()), f.input_tag);
        let other = PixelImage::new(2, 1, ColorLayout::Rgb8, vec![1, 2, 3, 4, 5, 7]).unwrap();
        assert_ne!(Some(input_tag(&kp, &other).unwrap()), f.input_tag);
        let kp2 = Keypair::generate(2048).unwrap();
        assert_ne!(Some(input_tag(&kp2, &img).unwrap()), f.input_tag);
    }
}
