//! The studio's one call into the service client: a plain image in, the
//! decrypted, verified result and the bytes the server saw out. Every job
//! of the page goes through [`filter_privately`], on the tiled path of
//! [`Client::filter_image_tiled`]: a photo of any size goes up tile by
//! tile, each well within the server's upload limit, with memory bounded
//! by the pipeline's window.

use std::sync::Mutex;

use enc_image::{
    BorderMode, DEFAULT_TILE_BYTES, EncryptOptions, EncryptedImage, OutputMapping, Phase,
    PixelImage, Progress, TilePlan,
};
use he_filter::tiled::{TileOptions, TiledJob};
use he_service::client::{Client, TiledRequest};
use he_service::wire::IMAGE_HEADER_ROOM;
use he_service::wire::{JobSpec, JobStatus};
use paillier::Keypair;

use super::meter::Meter;
use crate::canvas::{Canvas, ServerView};

/// What one private job brought back.
#[derive(Debug)]
pub(super) struct Outcome {
    /// The decrypted result, checked, as pixels.
    pub(super) result: PixelImage,
    /// What the spot checks compared, all tiles.
    pub(super) checked: Checked,
    /// The server's last status of the job (`None` if no tile had to go
    /// to the server).
    pub(super) status: Option<JobStatus>,
    /// The first ciphertext bytes the server got, for the picture of
    /// what it saw.
    pub(super) seen: ServerView,
}

/// What the spot checks of every tile compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checked {
    /// Tiles run.
    pub(super) tiles: usize,
    /// Values recomputed here and compared.
    pub(super) values: usize,
    /// Ciphertexts of which a value was compared.
    pub(super) ciphertexts: usize,
    /// Random values compared per tile.
    pub(super) random_per_tile: usize,
}

/// Filters `image` with `spec` on the server behind `client`, tile by
/// tile ([`Client::filter_image_tiled`]: public key and ciphertexts only,
/// each tile's history and rows spot-checked against the chain
/// recomputed here, the tiles together bit for bit the whole image's
/// result), and maps the decrypted tiles to pixels with `mapping` as they
/// come. `meter` sees every phase at once (encrypt, upload, server,
/// download, decrypt); once it is cancelled the job stops between tiles.
/// The server's job is deleted at the end, and on any failure or cancel.
pub(super) fn filter_privately(
    client: &Client,
    keypair: &Keypair,
    image: &PixelImage,
    spec: &JobSpec,
    (border, mapping): (BorderMode, OutputMapping),
    meter: &Meter,
) -> anyhow::Result<Outcome> {
    let seen = Mutex::new(ServerView::new(image.width(), image.height()));
    let on_upload = |_: usize, tile: &[u8]| {
        if let Ok(mut seen) = seen.lock() {
            seen.push(EncryptedImage::payload_of(tile).unwrap_or(tile));
        }
    };
    let job = Mutex::new(None::<String>);
    let on_job = |st: &JobStatus| {
        if let Ok(mut j) = job.lock() {
            *j = Some(st.id.clone());
        }
    };
    let opts = he_filter::encrypt_options(&spec.filters)?.border(border);
    let pk = keypair.public_key();
    let tiles = tile_options(client, image, pk.bits(), &opts);
    let request = TiledRequest {
        border,
        tiles,
        // Everything included: an hour per started 12 MP, as `he submit`.
        timeout: crate::cmd::job_deadline(image.width(), image.height()),
        progress: meter,
        on_upload: &on_upload,
        on_job: &on_job,
        ..TiledRequest::new(keypair, image, spec)
    };
    // The transfers count bytes: a ciphertext's width for each ciphertext
    // encrypted (up) and decrypted (down, the halo trimmed), plus headers
    // of a few hundred bytes a tile. The estimates become the counts at
    // the end.
    let totals = TiledJob::new(image, &spec.filters, &opts, pk, &tiles)?.totals();
    let width = enc_image::ciphertext_width(pk.bits()) as u64;
    meter.start(Phase::Upload, totals.encrypt * width);
    meter.start(Phase::Download, totals.decrypt * width);
    let mut canvas = Canvas::new(request.plan()?);
    let random_per_tile = request.spot_check.random_values;
    let run = client.filter_image_tiled(&request, |tile, _report| {
        let part = tile.image.to_pixels_with(mapping);
        canvas.put(tile.index, part.color(), part.data())?;
        Ok(())
    });
    let run = match run {
        Ok(run) => run,
        Err(e) => {
            // No resume here: the job on the server is of no more use.
            if let Some(id) = job.lock().ok().and_then(|mut j| j.take()) {
                let _ = client.delete(&id);
            }
            if meter.is_cancelled() {
                anyhow::bail!("cancelled");
            }
            return Err(e.into());
        }
    };
    meter.complete(Phase::Upload);
    meter.complete(Phase::Download);
    let result = canvas.into_image()?;
    Ok(Outcome {
        result,
        checked: Checked {
            tiles: run.ran,
            values: run.values_checked,
            ciphertexts: run.ciphertexts_checked,
            random_per_tile,
        },
        status: run.job,
        seen: seen
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    })
}

/// Tiles of about [`DEFAULT_TILE_BYTES`] of ciphertexts, or of about half
/// the server's upload limit (less the room it keeps for a header) if
/// that is less: a server set up with a small limit still takes every
/// tile, the halo rows fit in the other half. Without the server's
/// limits (`/v1/info` failed: the job fails soon in words), the default.
fn tile_options(
    client: &Client,
    image: &PixelImage,
    key_bits: u32,
    opts: &EncryptOptions,
) -> TileOptions {
    let Ok(info) = client.info() else {
        return TileOptions::default();
    };
    if opts.layout == enc_image::Layout::Unpacked {
        // One tile only (it applies the border when filtering).
        return TileOptions::default();
    }
    let room = (info.limits.max_body_bytes as u64).saturating_sub(IMAGE_HEADER_ROOM) as usize / 2;
    if room >= DEFAULT_TILE_BYTES {
        return TileOptions::default();
    }
    let rows = TilePlan::default_tile_rows(image.width(), image.color(), key_bits, opts);
    TileOptions {
        tile_rows: Some((rows * room / DEFAULT_TILE_BYTES).max(1)),
        ..TileOptions::default()
    }
}
