//! A chain on a large image, tile by tile: encrypted, filtered and
//! decrypted as a pipeline, with memory bounded by a small window of tiles
//! whatever the image size, and the result bit for bit the whole-image one.
//!
//! The image is cut by an [`enc_image::TilePlan`] into bands of rows, each
//! encrypted with the rows of vertical context the chain needs (see
//! [`EncryptedImage::encrypt_tile`]). [`TiledJob::run`] runs three stages
//! on their own threads, each using the rayon pool for its inner
//! parallelism:
//!
//! ```text
//! encrypt tile i+2  ->  server filters tile i+1  ->  decrypt tile i  ->  sink(tile i)
//! ```
//!
//! A tile enters the pipeline only when one of `window` places is free, and
//! frees it when the caller's sink has taken its decrypted rows: at most
//! `window` tiles exist at once, encrypted or in flight. The server is
//! anything that turns an encrypted tile's bytes into the filtered tile's
//! bytes ([`TileServer`]): [`LocalServer`] does it in this process with the
//! public key only, exactly as a remote server would.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use enc_image::{ColorLayout, NoProgress, PixelImage};
//! use he_filter::{Filter, reference, tiled::{TileOptions, filter_tiled}};
//! # let kp = paillier::Keypair::generate_insecure_for_tests(512)?;
//! # /*
//! let kp = paillier::Keypair::generate(3072)?;
//! # */
//! let img = PixelImage::new(9, 7, ColorLayout::Luma8, (0..63).map(|v| v * 4).collect())?;
//! let chain = [Filter::Mean { k: 3 }];
//! let opts = he_filter::encrypt_options(&chain)?;
//! let tiles = TileOptions::default().tile_rows(2); // 4 tiles
//! let out = filter_tiled(&img, &chain, kp.private_key(), &opts, &tiles, &NoProgress)?;
//! assert_eq!(out, reference::apply_chain(&img, &chain, opts.border)?);
//! # Ok(()) }
//! ```

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use enc_image::{
    DecryptedImage, EncryptOptions, EncryptedImage, ImageMeta, Limits, Packing, Phase, PixelImage,
    Progress, TilePlan,
};
use paillier::{PrivateKey, PublicKey};

use crate::error::{Error, Result};
use crate::eval::apply_chain;
use crate::filter::Filter;
use crate::plan::{check_chain, plan};

/// Tiles alive at once by default: one being encrypted, one filtered, one
/// decrypted.
pub const DEFAULT_WINDOW: usize = 3;

/// How a tiled job cuts and paces the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileOptions {
    /// Rows per tile; `None` for the default of
    /// [`TilePlan::for_encryption`] (at most about
    /// [`DEFAULT_TILE_BYTES`](enc_image::DEFAULT_TILE_BYTES) of
    /// ciphertexts per tile, the height that packs best).
    pub tile_rows: Option<usize>,
    /// Most tiles alive at once, between encryption and the sink (at least
    /// 1; [`DEFAULT_WINDOW`] by default).
    pub window: usize,
}

impl Default for TileOptions {
    fn default() -> Self {
        TileOptions {
            tile_rows: None,
            window: DEFAULT_WINDOW,
        }
    }
}

impl TileOptions {
    /// Sets the rows per tile.
    #[must_use]
    pub fn tile_rows(mut self, rows: usize) -> Self {
        self.tile_rows = Some(rows);
        self
    }

    /// Sets the most tiles alive at once.
    #[must_use]
    pub fn window(mut self, tiles: usize) -> Self {
        self.window = tiles;
        self
    }
}

/// An encrypted tile on its way to the server: the wire bytes of an
/// [`EncryptedImage`] of the tile's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedTile {
    /// Which tile of the plan.
    pub index: usize,
    /// The image rows it gives.
    pub rows: Range<usize>,
    /// [`EncryptedImage::to_bytes`] of the tile.
    pub bytes: Vec<u8>,
}

/// A decrypted tile: the exact values of its rows of the whole image's
/// result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptedTile {
    /// Which tile of the plan.
    pub index: usize,
    /// The image rows it gives.
    pub rows: Range<usize>,
    /// The rows' exact values and scale (`rows.len()` rows high).
    pub image: DecryptedImage,
    /// The public description of the filtered tile it was decrypted from:
    /// which ciphertext held which value, for a spot check
    /// ([`spot_check_rows`](crate::spot_check_rows)).
    pub meta: ImageMeta,
}

/// Where tiles are filtered: [`LocalServer`] in this process, or a client
/// of a remote server.
pub trait TileServer: Sync {
    /// What can go wrong; this crate's errors convert into it.
    type Error: From<Error> + Send;

    /// Filters one encrypted tile and returns the filtered tile's wire
    /// bytes, without the vertical halo (see
    /// [`EncryptedImage::trim_halo`]). Called for one tile at a time, in
    /// order, from the pipeline's filter stage; `progress` counts
    /// [`Phase::Filter`] ciphertexts (a remote server may report nothing).
    fn filter_tile(
        &self,
        tile: EncryptedTile,
        progress: &dyn Progress,
    ) -> std::result::Result<Vec<u8>, Self::Error>;
}

/// The server's side in this process: it holds the public key (read from
/// its bytes) and the chain, loads every tile from bytes under
/// [`Limits`], checks the chain against it, filters and returns bytes. No
/// secret is involved.
#[derive(Debug, Clone)]
pub struct LocalServer {
    pk: PublicKey,
    chain: Vec<Filter>,
    limits: Limits,
}

impl LocalServer {
    /// A server for `chain` under the public key whose bytes are
    /// `public_key`, loading images under `limits`.
    pub fn from_bytes(public_key: &[u8], chain: &[Filter], limits: Limits) -> Result<Self> {
        Ok(LocalServer {
            pk: PublicKey::from_bytes(public_key)?,
            chain: chain.to_vec(),
            limits,
        })
    }

    /// Loads an encrypted image (a tile or a whole image) from its bytes,
    /// runs the chain, drops the vertical halo and returns the result's
    /// bytes.
    pub fn filter(&self, upload: &[u8], progress: &dyn Progress) -> Result<Vec<u8>> {
        let enc = EncryptedImage::from_bytes(upload, &self.pk, &self.limits)?;
        check_chain(enc.meta(), &self.chain)?;
        let out = apply_chain(&enc, &self.pk, &self.chain, progress)?;
        drop(enc);
        Ok(out.trim_halo().to_bytes())
    }
}

impl TileServer for LocalServer {
    type Error = Error;

    fn filter_tile(&self, tile: EncryptedTile, progress: &dyn Progress) -> Result<Vec<u8>> {
        self.filter(&tile.bytes, progress)
    }
}

/// Units of work of a job, per phase, for [`Progress::start`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobTotals {
    /// Ciphertexts encrypted (halo rows included).
    pub encrypt: u64,
    /// Ciphertexts computed by the filters, step by step.
    pub filter: u64,
    /// Ciphertexts decrypted.
    pub decrypt: u64,
}

/// A chain to run on an image tile by tile: the image, the chain, how it
/// is encrypted and the tile plan, checked in full when made.
#[derive(Debug)]
pub struct TiledJob<'a> {
    img: &'a PixelImage,
    encrypt: EncryptOptions,
    plan: TilePlan,
    window: usize,
    labels: Vec<String>,
    /// The work of each tile.
    per_tile: Vec<JobTotals>,
}

impl<'a> TiledJob<'a> {
    /// Plans `chain` on `img` encrypted with `encrypt` under `pk`, cut as
    /// `options` says. Checks that the chain fits what every tile will
    /// carry (halo, slot width) before any ciphertext work.
    pub fn new(
        img: &'a PixelImage,
        chain: &[Filter],
        encrypt: &EncryptOptions,
        pk: &PublicKey,
        options: &TileOptions,
    ) -> Result<Self> {
        if options.window == 0 {
            return Err(Error::Parameter(
                "a tiled job needs a window of at least one tile".into(),
            ));
        }
        let plan = TilePlan::for_encryption(
            img.width(),
            img.height(),
            img.color(),
            pk.bits(),
            encrypt,
            options.tile_rows,
        )?;
        let mut per_tile = Vec::with_capacity(plan.count());
        for rows in plan.iter() {
            let mut totals = JobTotals::default();
            let mut m = ImageMeta::for_encryption(
                img.width(),
                rows.len(),
                img.color(),
                pk.bits(),
                pk.fingerprint(),
                encrypt,
            )?;
            totals.encrypt += m.ciphertext_count() as u64;
            for f in chain {
                m = plan_step(&m, f)?;
                totals.filter += m.ciphertext_count() as u64;
            }
            totals.decrypt += match m.packing() {
                Packing::Packed(g) => m.channels() * (g.band_rows * g.chunks) as usize,
                Packing::Unpacked => m.ciphertext_count(),
            } as u64;
            per_tile.push(totals);
        }
        Ok(TiledJob {
            img,
            encrypt: *encrypt,
            plan,
            window: options.window,
            labels: chain.iter().map(Filter::label).collect(),
            per_tile,
        })
    }

    /// The tile plan (for a job's manifest).
    #[must_use]
    pub fn plan(&self) -> &TilePlan {
        &self.plan
    }

    /// The work of the whole job, per phase.
    #[must_use]
    pub fn totals(&self) -> JobTotals {
        self.totals_of(0..self.plan.count())
    }

    /// The work of the tiles `tiles` (indices past the plan count
    /// nothing), per phase: what [`Self::run_tiles`] reports.
    #[must_use]
    pub fn totals_of(&self, tiles: impl IntoIterator<Item = usize>) -> JobTotals {
        tiles
            .into_iter()
            .filter_map(|i| self.per_tile.get(i))
            .fold(JobTotals::default(), |a, t| JobTotals {
                encrypt: a.encrypt + t.encrypt,
                filter: a.filter + t.filter,
                decrypt: a.decrypt + t.decrypt,
            })
    }

    /// Encrypts tile `index` (the client's side; `sk` makes it fast).
    pub fn encrypt_tile(
        &self,
        index: usize,
        sk: &PrivateKey,
        progress: &dyn Progress,
    ) -> Result<EncryptedTile> {
        let enc =
            EncryptedImage::encrypt_tile(self.img, &self.plan, index, sk, &self.encrypt, progress)?;
        Ok(EncryptedTile {
            index,
            rows: enc_rows(&self.plan, index)?,
            bytes: enc.to_bytes(),
        })
    }

    /// Loads the server's result for tile `index` from its bytes, checks
    /// that it is that tile filtered by the chain (dimensions, history,
    /// key) and decrypts it.
    pub fn decrypt_tile(
        &self,
        index: usize,
        bytes: &[u8],
        sk: &PrivateKey,
        progress: &dyn Progress,
    ) -> Result<DecryptedTile> {
        let rows = enc_rows(&self.plan, index)?;
        let enc = EncryptedImage::from_bytes(bytes, sk.public_key(), &Limits::default())?;
        let m = enc.meta();
        if (m.width(), m.height()) != (self.plan.width(), rows.len()) {
            return Err(Error::Parameter(format!(
                "the server returned a {}x{} image for tile {index}, which is {}x{}",
                m.width(),
                m.height(),
                self.plan.width(),
                rows.len()
            )));
        }
        if m.history() != self.labels {
            return Err(Error::Parameter(format!(
                "the server applied {:?} to tile {index}, not {:?}",
                m.history(),
                self.labels
            )));
        }
        let image = enc.decrypt(sk, progress)?;
        Ok(DecryptedTile {
            index,
            rows,
            image,
            meta: m.clone(),
        })
    }

    /// Runs the job as a pipeline (see the module docs): tiles are
    /// encrypted, filtered by `server` and decrypted at once, and handed to
    /// `sink` in order, on the calling thread. At most `window` tiles are
    /// alive at once. Progress: [`Progress::start`] for the encrypt,
    /// filter and decrypt phases with [`Self::totals`], then
    /// [`Progress::advance_phase`] from the stages, and
    /// [`Progress::finish`] at the end. The first error (of a stage, the
    /// server or the sink) stops the job and is returned. The job stops
    /// with [`Error::Cancelled`] between tiles once
    /// [`Progress::cancelled`] says so (every stage looks before each
    /// tile; the filters of a [`LocalServer`] look between ciphertexts).
    pub fn run<S: TileServer>(
        &self,
        sk: &PrivateKey,
        server: &S,
        progress: &dyn Progress,
        sink: impl FnMut(DecryptedTile) -> std::result::Result<(), S::Error>,
    ) -> std::result::Result<(), S::Error> {
        let all: Vec<usize> = (0..self.plan.count()).collect();
        self.run_tiles(&all, sk, server, progress, sink)
    }

    /// [`Self::run`] for the tiles `tiles` only, in the order given (to
    /// resume a job whose other tiles are decrypted already): each is
    /// encrypted, filtered and decrypted as `run` does, and the progress
    /// totals are [`Self::totals_of`] these tiles. An index past the plan
    /// or given twice is an error before any work.
    pub fn run_tiles<S: TileServer>(
        &self,
        tiles: &[usize],
        sk: &PrivateKey,
        server: &S,
        progress: &dyn Progress,
        mut sink: impl FnMut(DecryptedTile) -> std::result::Result<(), S::Error>,
    ) -> std::result::Result<(), S::Error> {
        let mut seen = vec![false; self.plan.count()];
        for &i in tiles {
            enc_rows(&self.plan, i)?;
            if std::mem::replace(&mut seen[i], true) {
                return Err(Error::Parameter(format!("tile {i} is asked for twice")).into());
            }
        }
        let count = tiles.len();
        if count == 0 {
            return Ok(());
        }
        let totals = self.totals_of(tiles.iter().copied());
        progress.start(Phase::Encrypt, totals.encrypt);
        progress.start(Phase::Filter, totals.filter);
        progress.start(Phase::Decrypt, totals.decrypt);
        // A free place in the window is a token in this channel.
        let (free_tx, free_rx) = mpsc::sync_channel::<()>(self.window);
        for _ in 0..self.window {
            free_tx.send(()).map_err(|_| closed())?;
        }
        let (up_tx, up_rx) = mpsc::channel::<std::result::Result<EncryptedTile, S::Error>>();
        let (down_tx, down_rx) = mpsc::channel::<std::result::Result<(usize, Vec<u8>), S::Error>>();
        let (done_tx, done_rx) = mpsc::channel::<std::result::Result<DecryptedTile, S::Error>>();
        let stop = &AtomicBool::new(false);
        // Every channel end moves into the one thread that uses it, so that
        // a stage that ends (done, or on an error) closes its channels and
        // the next one ends too.
        let result = std::thread::scope(move |s| {
            s.spawn(move || {
                let progress = InPhase(progress, Phase::Encrypt);
                for &index in tiles {
                    if free_rx.recv().is_err() || stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let tile = check_cancel(&progress)
                        .and_then(|()| self.encrypt_tile(index, sk, &progress))
                        .map_err(S::Error::from);
                    let failed = tile.is_err();
                    if up_tx.send(tile).is_err() || failed {
                        return;
                    }
                }
            });
            s.spawn(move || {
                let progress = InPhase(progress, Phase::Filter);
                for tile in up_rx {
                    let out = tile.and_then(|t| {
                        check_cancel(&progress)?;
                        let index = t.index;
                        Ok((index, server.filter_tile(t, &progress)?))
                    });
                    let failed = out.is_err();
                    if down_tx.send(out).is_err() || failed {
                        return;
                    }
                }
            });
            s.spawn(move || {
                let progress = InPhase(progress, Phase::Decrypt);
                for out in down_rx {
                    let tile = out.and_then(|(index, bytes)| {
                        check_cancel(&progress)?;
                        Ok(self.decrypt_tile(index, &bytes, sk, &progress)?)
                    });
                    let failed = tile.is_err();
                    if done_tx.send(tile).is_err() || failed {
                        return;
                    }
                }
            });
            let mut delivered = 0;
            for tile in &done_rx {
                let tile = tile.and_then(|t| {
                    check_cancel(progress)?;
                    Ok(t)
                });
                if let Err(e) = tile.and_then(&mut sink) {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                delivered += 1;
                if delivered == count {
                    break;
                }
                // The encryption stage may have ended already (an error
                // on its way): then nobody waits for the place.
                let _ = free_tx.try_send(());
            }
            if delivered == count {
                Ok(())
            } else {
                Err(S::Error::from(closed()))
            }
        });
        progress.finish();
        result
    }
}

/// The error of a pipeline whose stage ended without a result (it can only
/// follow another error or a panic).
fn closed() -> Error {
    Error::Parameter("a stage of the tiled pipeline stopped early".into())
}

/// The rows of tile `index`, or an error naming the plan's size.
fn enc_rows(plan: &TilePlan, index: usize) -> Result<Range<usize>> {
    plan.rows(index).ok_or_else(|| {
        Error::Parameter(format!(
            "tile {index} does not exist, the plan has {} tiles",
            plan.count()
        ))
    })
}

/// The description after one filter, checked.
fn plan_step(meta: &ImageMeta, f: &Filter) -> Result<ImageMeta> {
    plan(meta, &f.step()?, &f.label())
}

/// A stage's view of the job's progress: its units belong to one phase,
/// and the job (not each tile) starts and finishes the phases.
struct InPhase<'a>(&'a dyn Progress, Phase);

impl Progress for InPhase<'_> {
    fn advance(&self, n: u64) {
        self.0.advance_phase(self.1, n);
    }
    /// A stage that names another phase (a server's upload and download
    /// within its filter stage) counts in that phase.
    fn advance_phase(&self, phase: Phase, n: u64) {
        self.0.advance_phase(phase, n);
    }
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}

/// [`Error::Cancelled`] once `progress` says so: every stage looks before
/// each tile, so that a cancelled job stops between tiles.
fn check_cancel(progress: &dyn Progress) -> Result<()> {
    if progress.cancelled() {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}

/// Runs `chain` on `img` tile by tile in this process (see [`TiledJob`]),
/// the filter done by a [`LocalServer`] that sees only the public key's
/// bytes and each tile's bytes, and returns the whole decrypted result:
/// bit for bit what the whole-image path gives. The result holds 8 bytes
/// per value; a caller that must not hold it uses [`TiledJob::run`] with a
/// sink.
pub fn filter_tiled(
    img: &PixelImage,
    chain: &[Filter],
    sk: &PrivateKey,
    encrypt: &EncryptOptions,
    options: &TileOptions,
    progress: &dyn Progress,
) -> Result<DecryptedImage> {
    let pk = sk.public_key();
    let job = TiledJob::new(img, chain, encrypt, pk, options)?;
    let server = LocalServer::from_bytes(&pk.to_bytes(), chain, Limits::default())?;
    let mut values = Vec::new();
    let mut first: Option<DecryptedImage> = None;
    job.run(sk, &server, progress, |tile| {
        values.extend_from_slice(tile.image.values());
        match &first {
            Some(f) if (f.scale(), f.color()) != (tile.image.scale(), tile.image.color()) => Err(
                Error::Parameter(format!("tile {} has another scale or layout", tile.index)),
            ),
            Some(_) => Ok(()),
            None => {
                first = Some(tile.image);
                Ok(())
            }
        }
    })?;
    let first = first.ok_or_else(closed)?;
    Ok(DecryptedImage::new(
        img.width(),
        img.height(),
        first.color(),
        values,
        first.scale(),
    )?)
}
