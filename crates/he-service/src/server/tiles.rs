//! A tiled job's tiles as the store holds them: what the manifest fixed
//! (key, chain, every tile's exact description) and where each tile is,
//! and the checks of a manifest and of a tile against it. The in-memory
//! store (`jobs.rs`) moves tiles between states and counts their bytes;
//! the handlers (`tiled_handlers.rs`) and the Redis worker check
//! manifests and uploads here ([`check_manifest`], [`check_tile`]).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use enc_image::{EncryptedImage, ImageMeta};
use he_filter::Filter;
use paillier::PublicKey;

use super::config::Config;
use super::error::{Error, Result};
use crate::wire::{TileState, TiledManifest, TilesStatus};

/// Where one tile is, with what it holds.
#[derive(Debug)]
pub(super) enum Slot {
    /// Not uploaded, or its upload is being read (`uploading`).
    Missing,
    /// An upload is being read; the state to go back to if it fails.
    Uploading(Box<Slot>),
    /// Checked and waiting for a worker; its payload's bytes.
    Queued(usize),
    /// Being filtered; its payload's bytes.
    Running(usize),
    /// Filtered: the result, until downloaded.
    Done(Bytes),
    /// The result was downloaded and freed.
    Fetched,
    /// The filter failed.
    Failed,
}

impl Slot {
    /// The state reported for this slot.
    pub(super) fn state(&self) -> TileState {
        match self {
            Slot::Missing | Slot::Uploading(_) => TileState::Missing,
            Slot::Queued(_) => TileState::Queued,
            Slot::Running(_) => TileState::Running,
            Slot::Done(_) => TileState::Done,
            Slot::Fetched => TileState::Fetched,
            Slot::Failed => TileState::Failed,
        }
    }

    /// Whether the tile is being uploaded, queued or filtered.
    pub(super) fn in_flight(&self) -> bool {
        matches!(
            self,
            Slot::Uploading(_) | Slot::Queued(_) | Slot::Running(_)
        )
    }

    /// Bytes of a result held.
    pub(super) fn result_bytes(&self) -> usize {
        match self {
            Slot::Done(b) => b.len(),
            _ => 0,
        }
    }
}

/// What the manifest fixed for every tile of a job: the key, the chain
/// and each tile's exact description.
#[derive(Debug)]
pub(super) struct TileSpec {
    pub(super) pk: PublicKey,
    pub(super) chain: Vec<Filter>,
    pub(super) manifest: TiledManifest,
    /// The description of a full tile and of the last one (they differ
    /// only when the last tile is shorter).
    pub(super) full: ImageMeta,
    pub(super) last: ImageMeta,
}

impl TileSpec {
    /// The exact description an upload of tile `index` must have.
    pub(super) fn expected(&self, index: usize) -> &ImageMeta {
        if index + 1 == self.manifest.plan.count() {
            &self.last
        } else {
            &self.full
        }
    }
}

/// A tiled job's tiles in the store.
#[derive(Debug)]
pub(super) struct Tiles {
    pub(super) spec: Arc<TileSpec>,
    pub(super) slots: Vec<Slot>,
    /// The last upload, filter end or download: retention counts from it.
    pub(super) last_activity: Instant,
    /// The last failure of a tile's filter.
    pub(super) last_error: Option<String>,
}

impl Tiles {
    /// A job whose tiles are all missing.
    pub(super) fn new(spec: Arc<TileSpec>) -> Self {
        let n = spec.manifest.plan.count();
        Tiles {
            spec,
            slots: (0..n).map(|_| Slot::Missing).collect(),
            last_activity: Instant::now(),
            last_error: None,
        }
    }

    /// Whether any tile is being uploaded, queued or filtered.
    pub(super) fn in_flight(&self) -> bool {
        self.slots.iter().any(Slot::in_flight)
    }

    /// Bytes of results held.
    pub(super) fn result_bytes(&self) -> usize {
        self.slots.iter().map(Slot::result_bytes).sum()
    }

    /// Whether every tile was filtered (its result held or downloaded).
    pub(super) fn all_done(&self) -> bool {
        self.slots
            .iter()
            .all(|s| matches!(s, Slot::Done(_) | Slot::Fetched))
    }

    /// The tiles' states for the job status.
    pub(super) fn status(&self) -> TilesStatus {
        let plan = &self.spec.manifest.plan;
        TilesStatus {
            tile_rows: plan.tile_rows() as u32,
            halo_rows: plan.halo_rows(),
            states: self.slots.iter().map(Slot::state).collect(),
        }
    }
}

/// The `400` of a tile request on a single upload.
pub(super) fn not_tiled(id: &str) -> Error {
    Error::BadRequest(format!(
        "job {id} is a single upload, not tiled: its result is GET /v1/jobs/{id}/result"
    ))
}

/// The `400` of a whole result asked of a tiled job.
pub(super) fn tiled_result(id: &str) -> Error {
    Error::BadRequest(format!(
        "job {id} is tiled: download each tile with GET /v1/jobs/{id}/tiles/{{i}}"
    ))
}

/// The `404` of tile `index` beyond a plan of `count` tiles.
pub(super) fn no_such_tile(id: &str, count: usize, index: usize) -> Error {
    Error::NotFound(format!(
        "job {id} has {count} tiles, numbered from 0; there is no tile {index}"
    ))
}

/// The `409` of an upload of tile `index` while it is being uploaded
/// (`uploading`) or is in `state`.
pub(super) fn tile_taken(id: &str, index: usize, uploading: bool, state: TileState) -> Error {
    Error::NotReady(format!(
        "tile {index} of job {id} is {} already; its result is GET \
         /v1/jobs/{id}/tiles/{index}",
        if uploading {
            "being uploaded".to_string()
        } else {
            format!("{state:?}").to_lowercase()
        }
    ))
}

/// Why tile `index` cannot be downloaded in `state` (fetched: `410`,
/// failed: `422` with `error`, else not uploaded: `409`).
pub(super) fn no_tile_result(
    id: &str,
    index: usize,
    state: TileState,
    error: Option<&str>,
) -> Error {
    match state {
        TileState::Fetched => Error::Gone(format!(
            "the result of tile {index} of job {id} was downloaded and freed; upload \
             the tile again to filter it once more"
        )),
        TileState::Failed => Error::Unprocessable(format!(
            "tile {index} of job {id} failed: {}",
            error.unwrap_or("cancelled")
        )),
        _ => Error::NotReady(format!(
            "tile {index} of job {id} has not been uploaded; PUT \
             /v1/jobs/{id}/tiles/{index}"
        )),
    }
}

/// Loads and checks a manifest: the chain, the key, the plan against the
/// encryption, every tile's size against the limits (a tile must fit in
/// one upload) and the chain against the tiles, and the whole job's
/// estimated cost against the per-job budget. Returns what the tiles
/// will be checked against, and the cost in whole units.
pub(super) fn check_manifest(config: &Config, body: &[u8]) -> Result<(TileSpec, u64)> {
    let (manifest, key) = TiledManifest::decode(body)?;
    let chain = manifest.filters.clone();
    if chain.is_empty() {
        return Err(Error::BadRequest("the manifest names no filter".into()));
    }
    if chain.len() > config.max_chain_len {
        return Err(Error::Unprocessable(format!(
            "{} filters in the chain, at most {} allowed",
            chain.len(),
            config.max_chain_len
        )));
    }
    let pk =
        PublicKey::from_bytes(key).map_err(|e| Error::BadRequest(format!("public key: {e}")))?;
    let plan = manifest.plan;
    if plan.width() > config.max_side || plan.height() > config.max_side {
        return Err(Error::TooLarge(format!(
            "the image is {}x{}, at most {}x{} allowed",
            plan.width(),
            plan.height(),
            config.max_side,
            config.max_side
        )));
    }
    let (full, last, whole) = check_tiles(config, &manifest, pk.bits(), pk.fingerprint())?;
    Ok((
        TileSpec {
            pk,
            chain,
            manifest,
            full,
            last,
        },
        whole,
    ))
}

/// The limits a tiled job is held to, for a key of `bits` bits and
/// fingerprint `fp`: the plan against the encryption, every tile within
/// one upload and the ciphertext limit, the chain against the tiles, and
/// the whole job's estimated cost (every tile's, halo rows included)
/// within the per-job budget. Returns the full and last tiles'
/// descriptions and the cost in whole units.
fn check_tiles(
    config: &Config,
    manifest: &TiledManifest,
    bits: u32,
    fp: [u8; 32],
) -> Result<(ImageMeta, ImageMeta, u64)> {
    let (plan, chain) = (manifest.plan, &manifest.filters);
    manifest
        .check_plan(bits)
        .map_err(|e| Error::Unprocessable(format!("tile plan: {e}")))?;
    let meta = |i| {
        manifest
            .tile_meta(i, bits, fp)
            .map_err(|e| Error::Unprocessable(format!("tile {i}: {e}")))
    };
    let count = plan.count();
    let (full, last) = (meta(0)?, meta(count - 1)?);
    let mut units = 0.0;
    for (m, n) in [(&full, count - 1), (&last, 1)] {
        if m.ciphertext_count() > config.max_ciphertexts {
            return Err(Error::TooLarge(format!(
                "a tile of {} rows has {} ciphertexts, at most {} allowed; use fewer rows per tile",
                m.height(),
                m.ciphertext_count(),
                config.max_ciphertexts
            )));
        }
        let bytes = TiledManifest::tile_bytes(m);
        if bytes > config.max_body_bytes as u64 {
            return Err(Error::TooLarge(format!(
                "a tile of {} rows takes up to {bytes} bytes, the server takes at most {} per \
                 upload; use fewer rows per tile",
                m.height(),
                config.max_body_bytes
            )));
        }
        he_filter::check_chain(m, chain).map_err(|e| Error::Unprocessable(e.to_string()))?;
        let cost =
            he_filter::estimate_cost(m, chain).map_err(|e| Error::Unprocessable(e.to_string()))?;
        units += cost.units() * n as f64;
    }
    let whole = units.ceil() as u64;
    if whole > config.max_job_cost {
        return Err(Error::OverBudget {
            estimate: whole,
            budget: config.max_job_cost,
            hint: format!(
                "{units:.1} units over {count} tiles; send a smaller image, a smaller kernel, or a \
                 smaller key"
            ),
        });
    }
    Ok((full, last, whole))
}

/// Loads tile `index` under the manifest's key and the limits, and checks
/// that its description is exactly the one the manifest gives it.
pub(super) fn check_tile(
    config: &Config,
    spec: &TileSpec,
    index: usize,
    body: &[u8],
) -> Result<EncryptedImage> {
    let image = EncryptedImage::from_bytes(body, &spec.pk, &config.image_limits()).map_err(
        |e| match e {
            enc_image::Error::Limit(_) => Error::TooLarge(format!("tile {index}: {e}")),
            e => Error::BadRequest(format!("tile {index}: {e}")),
        },
    )?;
    let want = spec.expected(index);
    if let Some(why) = mismatch(want, image.meta()) {
        return Err(Error::Unprocessable(format!(
            "tile {index} does not match the job's manifest: {why}"
        )));
    }
    Ok(image)
}

/// How `found` differs from the description `want`, in words, if it does.
fn mismatch(want: &ImageMeta, found: &ImageMeta) -> Option<String> {
    if (found.width(), found.height()) != (want.width(), want.height()) {
        return Some(format!(
            "it is {}x{}, the tile is {}x{}",
            found.width(),
            found.height(),
            want.width(),
            want.height()
        ));
    }
    if found.key_fingerprint() != want.key_fingerprint() {
        return Some("it is encrypted under another key".into());
    }
    if !found.history().is_empty() {
        return Some(format!("it was filtered already ({:?})", found.history()));
    }
    if found.color() != want.color() || found.border() != want.border() {
        return Some(format!(
            "it is {:?} with border {:?}, the manifest says {:?} with border {:?}",
            found.color(),
            found.border(),
            want.color(),
            want.border()
        ));
    }
    (found != want).then(|| {
        format!(
            "its packing or halo differs ({:?} with {:?} halo, the manifest's {:?} with {:?})",
            found.packing(),
            found.halo_left(),
            want.packing(),
            want.halo_left()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use enc_image::{ColorLayout, TilePlan};
    use he_filter::Filter;

    /// Every built-in filter with a kernel of at most 7x7.
    fn builtins_up_to_7x7() -> Vec<Filter> {
        let mut all = Filter::every_builtin();
        all.extend([
            Filter::Mean { k: 7 },
            Filter::Gaussian { k: 7, sigma: None },
            Filter::MotionH { k: 7 },
            Filter::MotionV { k: 7 },
        ]);
        all.retain(|f| f.radius().is_ok_and(|r| r <= 3));
        all
    }

    #[test]
    fn the_defaults_admit_a_48_mp_photo_at_3072_bits_in_default_tiles() {
        let config = Config::default();
        let mut worst = 0;
        for f in builtins_up_to_7x7() {
            let chain = vec![f.clone()];
            let opts = he_filter::encrypt_options(&chain).unwrap();
            let plan =
                TilePlan::for_encryption(8000, 6000, ColorLayout::Rgb8, 3072, &opts, None).unwrap();
            let m = TiledManifest::new(chain, ColorLayout::Rgb8, plan, &opts);
            let (full, _, units) = check_tiles(&config, &m, 3072, [0; 32])
                .unwrap_or_else(|e| panic!("{}: {e}", f.label()));
            assert!(TiledManifest::tile_bytes(&full) <= config.max_body_bytes as u64);
            worst = worst.max(units);
        }
        assert!(worst > 0 && worst <= config.max_job_cost, "{worst}");
        // Each tile is a small fraction of the body limit: a few MiB.
        let chain = vec![Filter::Mean { k: 7 }];
        let opts = he_filter::encrypt_options(&chain).unwrap();
        let plan =
            TilePlan::for_encryption(8000, 6000, ColorLayout::Rgb8, 3072, &opts, None).unwrap();
        let m = TiledManifest::new(chain, ColorLayout::Rgb8, plan, &opts);
        let (full, _, _) = check_tiles(&config, &m, 3072, [0; 32]).unwrap();
        assert!(TiledManifest::tile_bytes(&full) < 8 << 20);
    }
}
