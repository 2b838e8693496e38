//! The studio's one call into the service client: a plain image in, the
//! decrypted, verified result and the bytes the server saw out. Every job
//! of the page goes through [`filter_privately`], so a different client
//! path (the tiled HTTP jobs) changes this file only.

use std::time::Duration;

use enc_image::{BorderMode, DecryptedImage, EncryptedImage, PixelImage, Progress};
use he_filter::{SpotCheck, SpotCheckReport};
use he_service::client::{Client, FilterRequest};
use he_service::wire::{JobSpec, JobStatus};
use paillier::Keypair;

/// What one private job brought back.
#[derive(Debug)]
pub(super) struct Outcome {
    /// The decrypted result, checked.
    pub(super) exact: DecryptedImage,
    /// What the spot check compared.
    pub(super) report: SpotCheckReport,
    /// The server's final status of the job.
    pub(super) status: JobStatus,
    /// The ciphertext payload the server got, for the picture of what it saw.
    pub(super) seen: Vec<u8>,
}

/// The deadline of one job, everything included.
const JOB_TIMEOUT: Duration = Duration::from_secs(3600);

/// Encrypts `image` under `keypair` for `spec`, has the server behind
/// `client` filter it (public key and ciphertexts only; the history of the
/// result is checked by [`Client::filter`]), decrypts it and spot-checks it
/// against the chain recomputed on the image ([`he_filter::spot_check`],
/// one value of every ciphertext and 2000 random ones). `progress` sees
/// every phase: encrypt, upload, filter (the server), download, decrypt.
///
/// This is [`Client::filter_image`] with the encrypted image kept: the
/// page shows the ciphertext bytes as the server saw them.
pub(super) fn filter_privately(
    client: &Client,
    keypair: &Keypair,
    image: &PixelImage,
    spec: &JobSpec,
    border: BorderMode,
    progress: &dyn Progress,
) -> anyhow::Result<Outcome> {
    let opts = he_filter::encrypt_options(&spec.filters)?.border(border);
    keypair.private_key().precompute();
    let enc = EncryptedImage::encrypt(image, keypair.private_key(), &opts, progress)?;
    let (out, status) = client.filter(&FilterRequest {
        timeout: JOB_TIMEOUT,
        progress,
        ..FilterRequest::new(keypair.public_key(), spec, &enc)
    })?;
    let exact = out.decrypt(keypair.private_key(), progress)?;
    let report = he_filter::spot_check(
        image,
        &spec.filters,
        border,
        out.meta(),
        &exact,
        &SpotCheck::default(),
    )?;
    let bytes = enc.to_bytes();
    let seen = EncryptedImage::payload_of(&bytes)
        .map(<[u8]>::to_vec)
        .unwrap_or(bytes);
    Ok(Outcome {
        exact,
        report,
        status,
        seen,
    })
}
