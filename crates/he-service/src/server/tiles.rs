//! A tiled job's tiles as the store holds them: what the manifest fixed
//! (key, chain, every tile's exact description) and where each tile is.
//! The store (`jobs.rs`) moves tiles between states and counts their
//! bytes; the handlers (`tiled_handlers.rs`) check uploads against
//! [`Tiles::expected`].

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use enc_image::ImageMeta;
use he_filter::Filter;
use paillier::PublicKey;

use super::error::Error;
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
