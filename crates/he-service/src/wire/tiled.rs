//! The tiled job: a manifest that creates it, then tiles uploaded,
//! filtered and downloaded one by one, so that no request carries the
//! whole encrypted image.
//!
//! `POST /v1/jobs` with the content type [`MANIFEST_CONTENT_TYPE`] takes a
//! manifest, framed like the job envelope ([`paillier::frame`], magic
//! `HETILED\0`, version [`MANIFEST_VERSION`]) with two length-prefixed
//! parts:
//!
//! ```text
//! magic     8 bytes   "HETILED\0"
//! version   u16 LE    1 (MANIFEST_VERSION)
//! length    u64 LE    bytes of the body
//! body      manifest: UTF-8 JSON (TiledManifest: filters, colour layout,
//!                     tile plan, encryption)
//!           key:      the public key (paillier's key file format)
//! digest    32 bytes, SHA-256 of everything before it
//! ```
//!
//! Then each tile `i` of the plan is `PUT /v1/jobs/{id}/tiles/{i}` as an
//! encrypted image (enc-image's wire format,
//! [`IMAGE_CONTENT_TYPE`](super::IMAGE_CONTENT_TYPE)) whose description
//! must be exactly [`TiledManifest::tile_meta`], and its result is
//! `GET /v1/jobs/{id}/tiles/{i}`. `docs/SERVICE.md` describes the states.

use enc_image::{
    BorderMode, ColorLayout, EncryptOptions, ImageMeta, Layout, TilePlan, ciphertext_width,
};
use he_filter::Filter;
use paillier::frame::{Format, Parts, write_part};
use serde::{Deserialize, Serialize};

use super::envelope::{EnvelopeError, MAX_KEY_BYTES, MAX_SPEC_BYTES};

/// Content type of a tiled job's manifest (`POST /v1/jobs`).
pub const MANIFEST_CONTENT_TYPE: &str = "application/vnd.he-toolkit.tiled-job";
/// The manifest version this build writes and reads.
pub const MANIFEST_VERSION: u16 = 1;
/// The manifest's framing: magic, version and name.
pub const MANIFEST_FORMAT: Format<8> =
    Format::new(*b"HETILED\0", MANIFEST_VERSION, "tiled job manifest");

/// Bytes of an encrypted image beyond its ciphertexts, at most: its
/// framing and JSON description (about 1 KiB; the history adds the
/// chain's labels, which the manifest bounds). Bounds what a server
/// accepts for a tile and what a client downloads.
pub const IMAGE_HEADER_ROOM: u64 = 16 * 1024;

/// How the tiles are encrypted: the packing and the border (the wire form
/// of [`EncryptOptions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TileEncryption {
    /// Bits per slot (packed layout); `None` for the unpacked layout,
    /// which has only whole-image plans (one tile).
    pub slot_bits: Option<u32>,
    /// Rows and columns of context the image carries (the packed
    /// layout's halo; 0 unpacked).
    pub halo: u32,
    /// The border mode at the image's edges.
    pub border: BorderMode,
}

impl From<&EncryptOptions> for TileEncryption {
    fn from(o: &EncryptOptions) -> Self {
        match o.layout {
            Layout::Packed { slot_bits, halo } => TileEncryption {
                slot_bits: Some(slot_bits),
                halo,
                border: o.border,
            },
            Layout::Unpacked => TileEncryption {
                slot_bits: None,
                halo: 0,
                border: o.border,
            },
        }
    }
}

impl TileEncryption {
    /// The options the tiles are encrypted with.
    #[must_use]
    pub fn options(&self) -> EncryptOptions {
        let layout = match self.slot_bits {
            Some(slot_bits) => Layout::Packed {
                slot_bits,
                halo: self.halo,
            },
            None => Layout::Unpacked,
        };
        EncryptOptions {
            layout,
            border: self.border,
        }
    }
}

/// What a tiled job is: the chain, the image's colour layout, the tile
/// plan (dimensions, rows per tile, halo rows) and the encryption. With
/// the public key it determines the exact description of every tile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TiledManifest {
    /// The filter chain, applied first to last.
    pub filters: Vec<Filter>,
    /// The image's colour layout.
    pub color: ColorLayout,
    /// How the image is cut (checked when read).
    pub plan: TilePlan,
    /// How the tiles are encrypted.
    pub encryption: TileEncryption,
}

impl TiledManifest {
    /// The manifest of a job running `filters` on a `color` image cut by
    /// `plan`, encrypted with `options`.
    #[must_use]
    pub fn new(
        filters: Vec<Filter>,
        color: ColorLayout,
        plan: TilePlan,
        options: &EncryptOptions,
    ) -> Self {
        TiledManifest {
            filters,
            color,
            plan,
            encryption: options.into(),
        }
    }

    /// Checks that the plan is the one [`TilePlan::for_encryption`] makes
    /// for this encryption under a `key_bits`-bit key (its halo rows, one
    /// tile for the unpacked layout).
    pub fn check_plan(&self, key_bits: u32) -> Result<(), String> {
        let p = &self.plan;
        let want = TilePlan::for_encryption(
            p.width(),
            p.height(),
            self.color,
            key_bits,
            &self.encryption.options(),
            Some(p.tile_rows()),
        )
        .map_err(|e| e.to_string())?;
        if want != *p {
            return Err(format!(
                "the tile plan carries {} halo rows, the encryption needs {}",
                p.halo_rows(),
                want.halo_rows()
            ));
        }
        Ok(())
    }

    /// The exact description every upload of tile `index` must have under
    /// a key of `key_bits` bits and fingerprint `fingerprint`: the tile's
    /// rows as an image of their own, with the plan's halo rows.
    pub fn tile_meta(
        &self,
        index: usize,
        key_bits: u32,
        fingerprint: [u8; 32],
    ) -> Result<ImageMeta, String> {
        let rows = self.plan.rows(index).ok_or_else(|| {
            format!(
                "tile {index} does not exist, the plan has {} tiles",
                self.plan.count()
            )
        })?;
        ImageMeta::for_encryption(
            self.plan.width(),
            rows.len(),
            self.color,
            key_bits,
            fingerprint,
            &self.encryption.options(),
        )
        .map_err(|e| e.to_string())
    }

    /// The most bytes an upload of a tile described by `meta` takes: its
    /// ciphertexts and [`IMAGE_HEADER_ROOM`].
    #[must_use]
    pub fn tile_bytes(meta: &ImageMeta) -> u64 {
        (meta.ciphertext_count() * ciphertext_width(meta.key_bits())) as u64 + IMAGE_HEADER_ROOM
    }

    /// Frames the manifest with the public key bytes.
    #[must_use]
    pub fn encode(&self, public_key: &[u8]) -> Vec<u8> {
        // Numbers, strings and vectors only: this cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut w = MANIFEST_FORMAT.writer(8 + json.len() + public_key.len());
        for p in [&json[..], public_key] {
            write_part(w.body(), p);
        }
        w.finish()
    }

    /// Reads a framed manifest: the manifest and the public key's bytes
    /// (not yet loaded). Checks the framing, the parts' lengths and the
    /// JSON (the plan's invariants included).
    pub fn decode(body: &[u8]) -> Result<(Self, &[u8]), EnvelopeError> {
        let inner = MANIFEST_FORMAT.open(body, usize::MAX)?;
        let mut parts = Parts::new(inner, "tiled job manifest");
        let json = parts.next("manifest", MAX_SPEC_BYTES)?;
        let public_key = parts.next("public key", MAX_KEY_BYTES)?;
        if !parts.rest().is_empty() {
            return Err(EnvelopeError::Malformed(format!(
                "{} bytes follow the manifest's parts",
                parts.rest().len()
            )));
        }
        let manifest: TiledManifest = serde_json::from_slice(json)
            .map_err(|e| EnvelopeError::Malformed(format!("manifest: {e}")))?;
        Ok((manifest, public_key))
    }
}

/// Where one tile of a tiled job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TileState {
    /// Not uploaded yet (or its upload is being read).
    Missing,
    /// Uploaded and checked, waiting for a worker.
    Queued,
    /// Being filtered.
    Running,
    /// Filtered: the result can be downloaded (once).
    Done,
    /// Its result was downloaded and freed on the server; upload the tile
    /// again to get it once more.
    Fetched,
    /// The filter failed (see the job's `error`); upload it again to retry.
    Failed,
}

impl TileState {
    /// Whether a `PUT` of the tile is accepted in this state: it was never
    /// uploaded, or its result is gone (fetched or failed).
    #[must_use]
    pub fn accepts_upload(self) -> bool {
        matches!(
            self,
            TileState::Missing | TileState::Fetched | TileState::Failed
        )
    }
}

/// The tiles of a tiled job, in [`JobStatus::tiles`](super::JobStatus::tiles).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TilesStatus {
    /// Rows per tile (the last may have fewer).
    pub tile_rows: u32,
    /// Rows of context above and below each tile.
    pub halo_rows: u32,
    /// Each tile's state, in plan order.
    pub states: Vec<TileState>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> TiledManifest {
        let chain = vec![Filter::Mean { k: 3 }];
        let opts = he_filter::encrypt_options(&chain).unwrap();
        let plan = TilePlan::new(20, 9, 4, 1).unwrap();
        TiledManifest::new(chain, ColorLayout::Rgb8, plan, &opts)
    }

    #[test]
    fn round_trip_and_every_truncation_refused() {
        let m = manifest();
        let bytes = m.encode(b"key");
        let (back, key) = TiledManifest::decode(&bytes).unwrap();
        assert_eq!((back, key), (m.clone(), &b"key"[..]));
        for n in 0..bytes.len() {
            assert!(TiledManifest::decode(&bytes[..n]).is_err(), "{n}");
        }
        assert_eq!(
            m.encryption.options(),
            he_filter::encrypt_options(&m.filters).unwrap()
        );
    }

    #[test]
    fn plans_and_tiles_are_checked() {
        let m = manifest();
        m.check_plan(512).unwrap();
        let mut wrong = m.clone();
        wrong.plan = TilePlan::new(20, 9, 4, 3).unwrap();
        assert!(wrong.check_plan(512).unwrap_err().contains("halo"));
        let last = m.tile_meta(2, 512, [0; 32]).unwrap();
        assert_eq!((last.width(), last.height()), (20, 1));
        assert!(
            m.tile_meta(3, 512, [0; 32])
                .unwrap_err()
                .contains("3 tiles")
        );
        assert!(TiledManifest::tile_bytes(&last) > IMAGE_HEADER_ROOM);
        // The room is ample for a real tile's header.
        let kp = paillier::Keypair::generate_insecure_for_tests(512).unwrap();
        let img = enc_image::PixelImage::new(20, 9, ColorLayout::Rgb8, vec![7; 540]).unwrap();
        let enc = enc_image::EncryptedImage::encrypt_tile(
            &img,
            &m.plan,
            2,
            kp.private_key(),
            &m.encryption.options(),
            &enc_image::NoProgress,
        )
        .unwrap();
        let meta = m.tile_meta(2, 512, kp.public_key().fingerprint()).unwrap();
        assert_eq!(enc.meta(), &meta);
        let size = enc.to_bytes().len() as u64;
        assert!(size <= TiledManifest::tile_bytes(&meta), "{size}");
        let header = size + IMAGE_HEADER_ROOM - TiledManifest::tile_bytes(&meta);
        assert!(header < 4096, "a header of {header} bytes");
    }
}
