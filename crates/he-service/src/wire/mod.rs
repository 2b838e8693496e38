//! What client and server say to each other, shared by both and
//! depending on neither: the job envelope a client uploads
//! ([`Envelope`]), the filter spec inside it ([`JobSpec`]), the status of
//! a job ([`JobStatus`]), the manifest and tile states of a tiled job
//! ([`TiledManifest`], [`TileState`]) and the other JSON documents of the
//! API.
//!
//! `docs/SERVICE.md` at the root of the repository documents the API with
//! examples, and `docs/openapi.yaml` describes it formally.

mod api;
mod envelope;
mod spec;
mod status;
mod tiled;

pub use api::{
    DEFAULT_PORT, ErrorBody, FilterInfo, Health, IMAGE_CONTENT_TYPE, LimitsInfo, ServiceInfo,
};
pub use envelope::{
    ENVELOPE_FORMAT, ENVELOPE_VERSION, Envelope, EnvelopeError, JOB_CONTENT_TYPE, MAX_KEY_BYTES,
    MAX_SPEC_BYTES,
};
pub use spec::JobSpec;
pub use status::{JobState, JobStatus};
pub use tiled::{
    IMAGE_HEADER_ROOM, MANIFEST_CONTENT_TYPE, MANIFEST_FORMAT, MANIFEST_VERSION, TileEncryption,
    TileState, TiledManifest, TilesStatus,
};
